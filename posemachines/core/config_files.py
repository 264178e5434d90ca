"""Finding experiment config files: by path, or by name from the experiments folder.

``--config=cpm_mpii`` (or ``cpm_mpii.py``) names ``experiments/cpm_mpii.py`` wherever the
command runs; a path that exists is used as it is. A config file may take a parameter after a
colon, as ml_collections allows (``--config=NAME:ARG``).
"""
from __future__ import annotations

import importlib.util
import os
import sys

from posemachines.core import errors

DEFAULT = 'default'


def experiments_dir() -> str:
  """The experiments folder: installed inside the package as ``posemachines.experiments``, or
  ``experiments/`` beside the package in a checkout, or wherever an editable install maps it."""
  package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for d in (os.path.join(package, 'experiments'),
            os.path.join(os.path.dirname(package), 'experiments')):
    if os.path.isfile(os.path.join(d, f'{DEFAULT}.py')):
      return d
  spec = importlib.util.find_spec('posemachines.experiments')
  if spec is not None and spec.submodule_search_locations:
    return list(spec.submodule_search_locations)[0]
  return os.path.join(os.path.dirname(package), 'experiments')


def names() -> list[str]:
  """The experiments' config names (files that define get_config)."""
  d = experiments_dir()
  if not os.path.isdir(d):
    return []
  out = []
  for f in sorted(os.listdir(d)):
    if f.endswith('.py') and not f.startswith('_'):
      with open(os.path.join(d, f)) as src:
        if 'def get_config(' in src.read():
          out.append(f[:-3])
  return out


def resolve(value: str) -> str:
  """A config file's path from a path or a name (keeping any ``:ARG`` suffix)."""
  path, sep, arg = value.partition(':')
  if os.path.isfile(path):
    return value
  name = os.path.basename(path)
  name = name[:-3] if name.endswith('.py') else name
  candidate = os.path.join(experiments_dir(), f'{name}.py')
  if os.path.dirname(path) in ('', 'experiments') and os.path.isfile(candidate):
    return candidate + sep + arg
  raise errors.BadFlag(f'--config={value}: no such file, and no experiment named {name!r} '
                       f'(known: {", ".join(names()) or "none found"})')


def resolve_argv(argv: list[str], flag: str = 'config') -> list[str]:
  """``argv`` with ``--config=NAME`` (or ``--config NAME``) replaced by the config file's path."""
  out = list(argv)
  for i, a in enumerate(out):
    if a.startswith(f'--{flag}='):
      out[i] = f'--{flag}=' + resolve(a.split('=', 1)[1])
    elif a == f'--{flag}' and i + 1 < len(out):
      out[i + 1] = resolve(out[i + 1])
  return out


def define_config_flag(default: str | None = DEFAULT, flag: str = 'config', lock: bool = True,
                       help_text: str = 'Experiment config'):
  """An absl config-file flag whose default and values may be experiment names
  (``default`` None: no config unless the flag is given)."""
  from ml_collections import config_flags
  try:
    sys.argv[1:] = resolve_argv(sys.argv[1:], flag)
    default_path = resolve(default) if default else None
  except errors.BadFlag as e:
    print(f'{os.path.basename(sys.argv[0])}: error: {e}', file=sys.stderr)
    sys.exit(errors.EXIT_USER_ERROR)
  config_flags.DEFINE_config_file(flag, default_path, f'{help_text}: a file, or the name of one '
                                  f'in experiments/ ({", ".join(names())}).', lock_config=lock)
