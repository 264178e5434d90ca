"""A run's config is its identity: what a restart in the same workdir may change, and what not.

A workdir's ``config.json`` is the config its run was started with. Rerunning
``python -m posemachines.train --workdir=W`` resumes that run only if the requested config is the
same, apart from the fields in ``MAY_CHANGE``: how long to go on, how often to log, evaluate and
save, how much to evaluate, where the data lives. Any other difference stops the run before the
workdir is touched, with ``errors.ConfigMismatch`` listing every differing field (saved ->
requested). To continue the run with the change anyway, set ``--config.allow_config_change=True``
(the change is then recorded in ``W/config_changes.jsonl`` and ``config.json`` is the new config);
to train the new config from scratch, give it another ``--workdir``.
"""
from __future__ import annotations

import json
import os
import time

from posemachines.core import configs, errors

CONFIG_FILE = 'config.json'
CHANGES_FILE = 'config_changes.jsonl'

# Fields a restart may change: none of them changes what the steps already taken computed, nor
# (except num_train_steps, see below) what the next steps compute.
MAY_CHANGE = (
    # the step budget: a finished run can be extended, a long one cut short
    'num_train_steps',
    # how often the run logs, evaluates and saves, and how many checkpoints it keeps
    'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps', 'keep_checkpoints',
    # how much of the evaluation split is scored, in batches of how many; pictures at the end
    'num_eval_examples', 'eval_batch_size', 'num_pictures',
    # where the data is, and how it is read (the batches are the same: map is deterministic)
    'data.data_dir', 'data.manual_dir', 'data.prefetch', 'data.num_parallel_calls', 'data.cache',
    # what a non-finite step does from now on
    'on_nan',
    # the switch that accepts other changes
    'allow_config_change',
)

# num_train_steps may change unless the learning-rate schedule is defined over it: the cosine
# schedule decays to zero at num_train_steps, so a new budget changes every later step's rate.
SCHEDULES_OVER_NUM_TRAIN_STEPS = ('cosine',)


def as_json(config) -> dict:
  """The config as config.json holds it (tuples become lists, as they are read back)."""
  return json.loads(config.to_json_best_effort())


def _flat(tree, prefix=''):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


_ABSENT = '(absent)'


def _defaults() -> dict:
  """{field: [default values]} of the configs in core/configs.py."""
  out = {}
  for make in (configs.cpm_release, configs.cpm_small, configs.recurrent_paper,
               configs.recurrent_small):
    for k, v in _flat(as_json(make())).items():
      out.setdefault(k, []).append(v)
  return out


def _same(x, y) -> bool:
  return x == y and isinstance(x, bool) == isinstance(y, bool)


def differences(saved: dict, requested: dict, may_change=MAY_CHANGE):
  """[(field, saved value, requested value, why)] of the fields that differ and may not.

  A run saved before a field existed did what the field's default does: a field missing from
  the saved config counts as the same when the requested value is a default of core/configs.py.
  A field only the saved config has no longer exists, so it cannot describe this run: it is
  left out.
  """
  a, b = _flat(saved), _flat(requested)
  defaults = None
  out = []
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
    if _same(x, y) or y is _ABSENT:
      continue
    if x is _ABSENT:
      defaults = _defaults() if defaults is None else defaults
      if any(_same(d, y) for d in defaults.get(key, ())):
        continue
    if key in may_change:
      if key == 'num_train_steps' and a.get('optim.schedule') in SCHEDULES_OVER_NUM_TRAIN_STEPS:
        out.append((key, x, y, f'the {a["optim.schedule"]} learning-rate schedule spans '
                    'num_train_steps, so every later step\'s rate would change'))
      continue
    out.append((key, x, y, ''))
  return out


def _show(v):
  return v if v == _ABSENT else json.dumps(v)


def format_differences(diffs) -> str:
  return '\n'.join(f'  {k}: {_show(x)} -> {_show(y)}' + (f' ({why})' if why else '')
                   for k, x, y, why in diffs)


def saved_config(workdir: str):
  """The workdir's config.json as a dict, or None when it has none."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise errors.BadFile(f'{path} cannot be read as the run\'s config ({e}); restore it or '
                         'train in another --workdir') from e


def how_to_go_on(workdir: str) -> str:
  return (f'Nothing in {workdir} was changed. To train this config from scratch, give it a new '
          f'workdir (--workdir=ANOTHER_DIR); to continue the run in {workdir} with these '
          'changes, add --config.allow_config_change=True. A restart may change these fields '
          f'freely: {", ".join(MAY_CHANGE)}.')


def check(config, workdir: str):
  """Raises errors.ConfigMismatch if ``workdir`` holds a run of a different config (beyond
  MAY_CHANGE) and ``config.allow_config_change`` is not set. Returns the differences that were
  accepted ([] when the configs agree or the workdir holds no run yet)."""
  saved = saved_config(workdir)
  if saved is None:
    return []
  diffs = differences(saved, as_json(config))
  if diffs and not config.allow_config_change:
    s = 's' if len(diffs) > 1 else ''
    raise errors.ConfigMismatch(
        f'The workdir {workdir} holds a run with another config: {len(diffs)} field{s} '
        f'differ{"" if s else "s"} from its {CONFIG_FILE} (saved -> requested):\n'
        f'{format_differences(diffs)}\n{how_to_go_on(workdir)}')
  return diffs


def write(config, workdir: str, step: int, accepted=()) -> None:
  """Writes config.json (atomically, only when its content changes) and records the accepted
  changes, with the step they apply from, in config_changes.jsonl."""
  path = os.path.join(workdir, CONFIG_FILE)
  text = config.to_json_best_effort(indent=2)
  if accepted:
    with open(os.path.join(workdir, CHANGES_FILE), 'a') as f:
      f.write(json.dumps({'from_step': int(step), 'time': time.strftime('%Y-%m-%d %H:%M:%S'),
                          'changes': {k: [x, y] for k, x, y, _ in accepted}}) + '\n')
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  tmp = f'{path}.tmp.{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)  # a reader (predict on a training workdir) never sees half a file


def mismatch_context(config, workdir: str) -> str:
  """What to add to a checkpoint-shape mismatch: the config fields that differ from the
  workdir's config.json, and what to do."""
  saved = saved_config(workdir)
  todo = (f'Nothing in {workdir} was changed. Train this config in a new workdir '
          f'(--workdir=ANOTHER_DIR), or rerun with the config in {workdir}/{CONFIG_FILE}.')
  if saved is None:
    return f'{workdir} has no {CONFIG_FILE} to compare the config with. {todo}'
  diffs = differences(saved, as_json(config))
  if not diffs:
    return (f'The config agrees with {workdir}/{CONFIG_FILE}, so the checkpoints come from '
            f'another config. {todo}')
  return (f'Config fields that differ from {workdir}/{CONFIG_FILE} (saved -> requested):\n'
          f'{format_differences(diffs)}\n{todo}')
