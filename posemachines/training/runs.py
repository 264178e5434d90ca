"""Runs that skip when finished and resume when interrupted: the runner of schemes and analyses."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import time

from posemachines.training import distributed
from posemachines.training import loop as train


def digest(config) -> str:
  return hashlib.sha1(config.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:10]


def finished(config, workdir: str, outputs=()):
  """The run's eval.json if it trained all its steps (and wrote ``outputs``), else None."""
  path = os.path.join(workdir, 'eval.json')
  if not os.path.exists(path) or not all(os.path.exists(os.path.join(workdir, o))
                                         for o in outputs):
    return None
  with open(path) as f:
    result = json.load(f)
  return result if result.get('step') == config.num_train_steps else None


def run_once(config, workdir: str, label: str = '', on_trained=None, outputs=()):
  """Trains ``config`` in ``workdir`` unless it has finished there; (workdir, eval result).

  ``on_trained(state, result, workdir)``, when given, runs after training (a finished run whose
  ``outputs`` files are missing is resumed at its last step, which only evaluates again, and
  then handed to it) and writes those files.
  """
  result = finished(config, workdir, outputs)
  if result is not None:
    print(f'  {label or workdir}: finished earlier ({workdir})', flush=True)
    return workdir, result
  if distributed.stop_noted():   # a SIGTERM that came as the run before this one finished
    raise SystemExit(f'Stopped before {label or workdir}: a SIGTERM came while the run before '
                     'it was finishing; rerun the same command to go on.')
  os.makedirs(workdir, exist_ok=True)
  print(f'  {label or workdir}: training {config.num_train_steps} steps in {workdir}', flush=True)
  t0 = time.time()
  state, result = train.train_and_evaluate(config, workdir)
  if result is None:  # stopped by a signal; its checkpoint is saved
    raise SystemExit(f'Stopped during {label}; rerun the same command to resume.')
  if on_trained is not None:
    on_trained(state, result, workdir)
  with open(os.path.join(workdir, 'wall_time.json'), 'w') as f:
    json.dump({'seconds': time.time() - t0}, f)
  return workdir, result


class Runs:
  """Runs shared by the analyses: ``runs(config, _, label)`` -> (workdir, result)."""

  def __init__(self, runs_dir: str, total: int | None = None, name: str = ''):
    self.runs_dir, self.total, self.name, self.count = runs_dir, total, name, 0

  def workdir(self, config, label: str) -> str:
    h = digest(config)
    same = glob.glob(os.path.join(self.runs_dir, f'*-{h}'))
    return same[0] if same else os.path.join(self.runs_dir, f'{label}-{h}')

  def __call__(self, config, _unused, label: str, **kwargs):
    self.count += 1
    of = f'/{self.total}' if self.total else ''
    print(f'[{self.name} {self.count}{of}] {label}', flush=True)
    return run_once(config, self.workdir(config, label), label, **kwargs)


def wall_time(workdir: str):
  path = os.path.join(workdir, 'wall_time.json')
  return json.load(open(path))['seconds'] if os.path.exists(path) else None
