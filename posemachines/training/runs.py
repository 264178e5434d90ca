"""Runs that skip when finished and resume when interrupted: the runner of schemes and analyses."""
from __future__ import annotations

import hashlib
import json
import os
import time

from posemachines.training import loop as train


def digest(config) -> str:
  return hashlib.sha1(config.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:10]


def finished(config, workdir: str):
  """The run's eval.json if it trained all its steps, else None."""
  path = os.path.join(workdir, 'eval.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    result = json.load(f)
  return result if result.get('step') == config.num_train_steps else None


def run_once(config, workdir: str, label: str = ''):
  """Trains ``config`` in ``workdir`` unless it has finished there; (workdir, eval result)."""
  result = finished(config, workdir)
  if result is not None:
    print(f'  {label or workdir}: finished earlier ({workdir})', flush=True)
    return workdir, result
  os.makedirs(workdir, exist_ok=True)
  print(f'  {label or workdir}: training {config.num_train_steps} steps in {workdir}', flush=True)
  t0 = time.time()
  _, result = train.train_and_evaluate(config, workdir)
  if result is None:  # stopped by a signal; its checkpoint is saved
    raise SystemExit(f'Stopped during {label}; rerun the same command to resume.')
  with open(os.path.join(workdir, 'wall_time.json'), 'w') as f:
    json.dump({'seconds': time.time() - t0}, f)
  return workdir, result
