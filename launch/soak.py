"""Soak test of exact resume: a training run killed (SIGKILL) at random steps, then compared.

  python launch/soak.py --workdir=/tmp/soak --kills=5 -- \\
      --config=experiments/default.py --config.num_train_steps=300

Trains the same config twice from scratch: WORKDIR/reference without interruption, and
WORKDIR/killed, which is killed at --kills random steps (distinct, uniform over the run, from
--seed) and rerun with the same command after each kill until it finishes. Then it compares the
final checkpoints of the two runs (parameters, optimizer state, model state); on one machine
with the same devices they should be bit-identical. Arguments after -- go to
posemachines.train (--config.log_every_steps=1 is added, since kills are timed from
metrics.jsonl). Runs are started through launch/local.py (one process by default); with
--num_processes > 1 each kill hits one random process and the launcher stops the others.
Each kill comes a random 0..--kill_jitter_s seconds after its step is logged, so that it lands
anywhere in a step (training, logging, saving, evaluating).

The logs are checked too: the killed run's metrics.jsonl and TensorBoard events must hold every
step exactly once, with the reference run's values (all but images_per_sec).

With --predict_loop, another process runs ``posemachines.predict`` on WORKDIR/killed over and
over while it trains and is killed (on a generated image): every such run must succeed, or fail
only because no checkpoint was saved yet, and none may disturb the training.
Writes WORKDIR/soak.json; the exit status is 0 when every check passes.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import local  # launch/local.py


def logged_steps(workdir: str) -> list[int]:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  lines = open(path).read().split('\n')[:-1]  # the last, unterminated line may be cut short
  return [json.loads(l)['step'] for l in lines if '"loss"' in l]


def newest_checkpoint(workdir: str) -> int:
  d = os.path.join(workdir, 'checkpoints')
  return max([int(s) for s in os.listdir(d) if s.isdigit()], default=0) if os.path.isdir(d) else 0


def metric_lines(workdir: str) -> list[dict]:
  path = os.path.join(workdir, 'metrics.jsonl')
  return [json.loads(l) for l in open(path).read().split('\n')[:-1]] if os.path.exists(path) else []


def tensorboard_scalars(workdir: str) -> list[tuple]:
  """(tag, step) of every scalar in the workdir's TensorBoard event files."""
  import glob
  import tensorflow as tf
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, 'tensorboard', '*tfevents*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      out += [(v.tag, event.step) for v in event.summary.value]
  return out


def check_logs(killed: str, reference: str, steps: int) -> dict:
  """Whether the killed run logged every step exactly once, with the reference run's values."""
  def by_kind(lines):
    out = collections.defaultdict(list)
    for l in lines:
      out['eval' if any(k.startswith('eval/') for k in l) else 'train'].append(l)
    return out
  a, b = by_kind(metric_lines(killed)), by_kind(metric_lines(reference))
  train_steps = [l['step'] for l in a['train']]
  same = lambda x, y: {k: v for k, v in x.items() if k != 'images_per_sec'} == {
      k: v for k, v in y.items() if k != 'images_per_sec'}
  tb = collections.Counter(tensorboard_scalars(killed))
  tb_reference = collections.Counter(tensorboard_scalars(reference))
  report = {
      'train_steps_logged_once': train_steps == list(range(1, steps + 1)),
      'eval_steps': [l['step'] for l in a['eval']],
      'eval_steps_as_reference': [l['step'] for l in a['eval']] == [l['step'] for l in b['eval']],
      'values_as_reference': len(a['train']) == len(b['train']) and len(a['eval']) == len(
          b['eval']) and all(same(x, y) for x, y in zip(a['train'] + a['eval'],
                                                        b['train'] + b['eval'])),
      'duplicated_lines': sum(c - 1 for c in collections.Counter(train_steps).values() if c > 1),
      'tensorboard_once_each': max(tb.values(), default=0) == 1,
      'tensorboard_as_reference': set(tb) == set(tb_reference),
  }
  report['ok'] = all(v for k, v in report.items() if k not in ('eval_steps', 'duplicated_lines'))
  return report


class PredictLoop:
  """Runs posemachines.predict on ``workdir`` over and over, in another process, until stopped."""

  def __init__(self, workdir: str, outdir: str):
    self.workdir, self.outdir = workdir, outdir
    self.runs = collections.Counter()
    self.failures = []
    self._stop = threading.Event()
    os.makedirs(outdir, exist_ok=True)
    self.image = os.path.join(outdir, 'person.png')
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 64, 3), dtype=np.uint8)).save(self.image)
    self._thread = threading.Thread(target=self._loop, daemon=True)

  def start(self):
    self._thread.start()
    return self

  def _loop(self):
    while not self._stop.is_set():
      if not os.path.exists(os.path.join(self.workdir, 'config.json')):
        time.sleep(0.2)
        continue
      out = subprocess.run([sys.executable, '-m', 'posemachines.predict',
                            f'--model={self.workdir}', f'--out={self.outdir}/out', '--flip=false',
                            '--scales=1.0', self.image], capture_output=True, text=True,
                           env=dict(os.environ, JAX_PLATFORMS='cpu'))
      if out.returncode == 0:
        self.runs['ok'] += 1
      elif 'No checkpoint in' in out.stderr:
        self.runs['no_checkpoint_yet'] += 1
      else:
        self.runs['failed'] += 1
        self.failures.append({'returncode': out.returncode, 'stderr': out.stderr[-2000:]})

  def stop(self) -> dict:
    self._stop.set()
    self._thread.join()
    return {'runs': dict(self.runs), 'failures': self.failures[:5],
            'ok': self.runs['ok'] > 0 and not self.runs['failed']}


def run(cmd, args, workdir, kill_at=None, rng=None):
  """Runs ``cmd`` to the end, or until ``kill_at`` is logged (and a random moment more) and then
  SIGKILLs a process."""
  logs = os.path.join(workdir, 'logs')
  attempt = len(os.listdir(logs)) if os.path.isdir(logs) else 0
  procs = local.start(cmd, args.num_processes, args.devices_per_process,
                      log_dir=os.path.join(logs, f'run_{attempt}'))
  # Every step logged before this run is below kill_at (main skips the targets already passed),
  # so the first step at or past it is this run's (a resumed run first drops what was logged
  # after its checkpoint, so lines cannot be counted by position).
  while all(p.poll() is None for p in procs):
    if kill_at is not None and max(logged_steps(workdir), default=0) >= kill_at:
      time.sleep(rng.uniform(0, args.kill_jitter_s))
      victim = rng.randrange(len(procs))
      procs[victim].send_signal(signal.SIGKILL)
      local.wait(procs, grace=args.grace)
      return {'target_step': kill_at, 'last_logged_step': max(logged_steps(workdir)),
              'killed_process': victim, 'newest_checkpoint_after_kill': newest_checkpoint(workdir)}
    time.sleep(0.02)
  rc = local.wait(procs, grace=args.grace)
  if rc:
    raise SystemExit(f'training in {workdir} failed with status {rc}; see {workdir}/logs')
  return None


def final_state(workdir: str):
  """(step, {'params': ..., 'opt_state': ..., ...}) of ``workdir``'s newest checkpoint, as numpy."""
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  ckpts = os.path.join(os.path.abspath(workdir), 'checkpoints')
  step = ocp.CheckpointManager(ckpts).latest_step()
  path = os.path.join(ckpts, str(step), 'default')
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return step, checkpointer.restore(path, restore_args=as_numpy)  # on any devices


def compare(a, b) -> dict:
  import jax
  import numpy as np
  out = {}
  for key in ('params', 'opt_state', 'model_state'):
    xs, ys = jax.tree.leaves(a.get(key, {})), jax.tree.leaves(b.get(key, {}))
    if len(xs) != len(ys):
      out[key] = {'num_arrays': [len(xs), len(ys)], 'bit_identical': False}
      continue
    diff = max([float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())
                for x, y in zip(xs, ys)], default=0.0)
    out[key] = {'num_arrays': len(xs), 'max_abs_difference': diff,
                'bit_identical': all(x.tobytes() == y.tobytes() for x, y in zip(xs, ys))}
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(usage='%(prog)s [options] -- train flags ...')
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--kills', type=int, default=5)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--devices_per_process', type=int, default=1)
  parser.add_argument('--grace', type=float, default=10.0)
  parser.add_argument('--kill_jitter_s', type=float, default=0.5,
                      help='each kill comes up to this long after its step is logged')
  parser.add_argument('--predict_loop', action='store_true',
                      help='run posemachines.predict on the killed run\'s workdir in a loop')
  parser.add_argument('--compare_only', action='store_true',
                      help='only compare the final checkpoints of an earlier soak in --workdir')
  parser.add_argument('train_args', nargs=argparse.REMAINDER)
  args = parser.parse_args(argv)
  train_args = args.train_args[1:] if args.train_args[:1] == ['--'] else args.train_args
  train_args = train_args + ['--config.log_every_steps=1']
  steps = int(next((a.split('=', 1)[1] for a in reversed(train_args)
                    if a.startswith('--config.num_train_steps=')), 0))
  if not steps or args.kills >= steps:
    parser.error('give --config.num_train_steps=N with N > --kills after --')
  rng = random.Random(args.seed)
  targets = sorted(rng.sample(range(1, steps), args.kills))

  def command(name):
    return [sys.executable, '-m', 'posemachines.train', *train_args,
            f'--workdir={os.path.join(args.workdir, name)}']

  killed_dir = os.path.join(args.workdir, 'killed')
  kills_file = os.path.join(args.workdir, 'kills.jsonl')
  reference_s = killed_s = None
  predict = None
  if not args.compare_only:
    t0 = time.time()
    run(command('reference'), args, os.path.join(args.workdir, 'reference'))
    reference_s, t0 = round(time.time() - t0, 1), time.time()
    if args.predict_loop:
      predict = PredictLoop(killed_dir, os.path.join(args.workdir, 'predict')).start()
    try:
      for target in targets:
        if max(logged_steps(killed_dir), default=0) >= target:
          continue  # the previous kill landed past this step
        kill = run(command('killed'), args, killed_dir, kill_at=target, rng=rng)
        with open(kills_file, 'a') as f:
          f.write(json.dumps(kill) + '\n')
        print('killed:', kill, flush=True)
      run(command('killed'), args, killed_dir)
    finally:
      predict_report = predict.stop() if predict else None
    killed_s = round(time.time() - t0, 1)
  kills = [json.loads(l) for l in open(kills_file)] if os.path.exists(kills_file) else []
  (step_a, a), (step_b, b) = (final_state(os.path.join(args.workdir, n))
                              for n in ('reference', 'killed'))
  report = {'train_args': train_args, 'num_processes': args.num_processes,
            'devices_per_process': args.devices_per_process, 'kills': kills,
            'num_kills': len([k for k in kills if k]), 'final_steps': [step_a, step_b],
            **compare(a, b),
            'reference_seconds': reference_s, 'killed_run_seconds': killed_s}
  report['bit_identical'] = step_a == step_b and all(
      v['bit_identical'] for k, v in report.items() if k in ('params', 'opt_state', 'model_state'))
  report['logs'] = check_logs(killed_dir, os.path.join(args.workdir, 'reference'), steps)
  if predict is not None:
    report['predict_loop'] = predict_report
  report['ok'] = report['bit_identical'] and report['logs']['ok'] and (
      predict is None or predict_report['ok'])
  with open(os.path.join(args.workdir, 'soak.json'), 'w') as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report, indent=2))
  return 0 if report['ok'] else 1


if __name__ == '__main__':
  sys.exit(main())
