"""Deriving a config from dotted overrides: ``derive(config, **{'model.num_stages': 4})``."""
from __future__ import annotations

from posemachines.core import errors


def derive(config, overrides=None, **fields):
  """A resolved copy of ``config`` with dotted fields set. Every field must already exist
  (configs declare all their fields), so a misspelt name is an error, not a silent new field."""
  c = config.copy_and_resolve_references()
  fields = {**(overrides or {}), **fields}
  with c.unlocked():
    for key, value in fields.items():
      node = c
      *path, last = key.split('.')
      for p in path:
        if p not in node:
          raise errors.BadFlag(f'config has no section {p!r} (in override {key}={value!r})')
        node = node[p]
      if last not in node:
        raise errors.BadFlag(f'config has no field {key!r}')
      node[last] = value
  return c
