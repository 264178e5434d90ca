"""Several processes: the same global batches, 2 x 2 devices == 1 x 4, SIGTERM to one process.

The processes run on 127.0.0.1 through launch/local.py with fake CPU devices and gloo
collectives, as hosts of a pod would.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from posemachines.training import loop as train
from posemachines.data import pipeline
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location('launch_local', os.path.join(ROOT, 'launch',
                                                                            'local.py'))
local = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local)

STEPS = 16
# The run the tests share: 16 steps, regular checkpoints every 6, evaluation of 7 people in
# batches of 6, rounded up to 8 for 4 devices (shares of 4 and 3 on two processes, so the
# second pads), pictures.
OVERRIDES = dict(num_train_steps=STEPS, checkpoint_every_steps=6, log_every_steps=1,
                 eval_batch_size=6, num_eval_examples=7, num_pictures=2)


def _config(data_dir):
  return tiny_config(data_dir, **OVERRIDES)


def test_processes_read_slices_of_the_same_global_batches(tfds_dir):
  config = _config(tfds_dir)
  start = 3  # as a resumed run: 24 examples in; the next 2 batches cross into epoch 2 (32 people)
  one = iter(pipeline.as_numpy(pipeline.train_dataset(config, 0, 1, start)))
  two = [iter(pipeline.as_numpy(pipeline.train_dataset(config, p, 2, start))) for p in (0, 1)]
  for _ in range(2):
    whole, parts = next(one), [next(t) for t in two]
    for k in ('image', 'keypoints', 'visible', 'others'):
      np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]), err_msg=k)
  config.eval_batch_size = 4
  shares = [list(pipeline.as_numpy(pipeline.eval_dataset(config, p, 2, 7))) for p in (0, 1)]
  assert len(shares[0]) == len(shares[1]) == 2  # 4 and 3 examples -> 2 batches of 2 each
  index = np.concatenate([b['index'] for s in shares for b in s])
  assert sorted(index[index >= 0]) == list(range(7)) and (index < 0).sum() == 1


_CONFIG = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    from tests.conftest import tiny_config

    def get_config():
      return tiny_config({data!r}, **{overrides!r})
''')

_RUN = textwrap.dedent('''
    import functools, sys, time
    import jax, numpy as np
    sys.path.insert(0, {root!r})
    from posemachines import models
    from posemachines.training import distributed
    from posemachines.training import loop as train
    from posemachines.training.step import eval_step
    sys.path.insert(0, {here!r})
    import tiny
    distributed.initialize()
    config = tiny.get_config()
    if jax.process_index() == 1:  # late for the first collective (gloo alone waits only 30 s)
      jax.devices()
      time.sleep(35)
    state, _ = train.train_and_evaluate(config, {workdir!r})
    mesh = train.make_mesh()
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    ev = jax.jit(functools.partial(eval_step, model=models.build(config), config=config),
                 out_shardings=replicated)
    result = train.run_evaluation(config, state.variables, ev, mesh, keep_predictions=True)
    if jax.process_index() == 0:
      np.savez({workdir!r} + '/predictions.npz', pred=result['predictions'],
               index=result['index'])
    if jax.process_count() > 1:  # a diverging run: every process stops at the same step
      with config.unlocked():
        config.optim.update(name='sgd', learning_rate=1e30, schedule='constant', warmup_steps=0)
      try:
        train.train_and_evaluate(config, {workdir!r} + '_nan')
      except FloatingPointError as e:
        print('NAN_STOP', str(e).split(':')[0])
    print('RUN_OK', jax.process_index(), jax.process_count(), jax.device_count())
''')


def _launch(tmp, name, num_processes, devices, cmd):
  # The launches share JAX's compilation cache: the 2 x 2 programs are compiled once.
  logs = os.path.join(tmp, name, 'logs')
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, 'cache'))
  return local.start(cmd, num_processes, devices, log_dir=logs, env=env), logs


def _read_logs(logs):
  return [open(os.path.join(logs, f)).read() for f in sorted(os.listdir(logs))]


def _final_params(abstract, workdir):
  mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  step = mngr.latest_step()
  state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  return step, jax.tree.leaves(jax.device_get(state.params))


@pytest.fixture(scope='module')
def reference_runs(tfds_dir, tmp_path_factory):
  """The shared config trained uninterrupted as 2 processes x 2 devices and 1 x 4.

  In the 2 x 2 run the second process starts training 35 s after the first, as a slow compile
  would make it: the first waits for it before the first collective.
  """
  tmp = str(tmp_path_factory.mktemp('multihost'))
  with open(os.path.join(tmp, 'tiny.py'), 'w') as f:
    f.write(_CONFIG.format(root=ROOT, data=tfds_dir, overrides=OVERRIDES))
  runs = {}
  for name, n, d in (('2x2', 2, 2), ('1x4', 1, 4)):
    script = _RUN.format(root=ROOT, here=tmp, workdir=os.path.join(tmp, name))
    procs, logs = _launch(tmp, name, n, d, [sys.executable, '-c', script])
    rc = local.wait(procs, grace=5)
    out = _read_logs(logs)
    assert rc == 0, out[0][-3000:] + out[-1][-3000:]
    assert all(f'RUN_OK {i} {n} 4' in o for i, o in enumerate(out))
    runs[name] = os.path.join(tmp, name)
  abstract = train.build(_config(tfds_dir), train.make_mesh()).abstract_state  # restores on 1 device
  return tmp, runs, abstract


def test_two_processes_of_two_devices_match_one_process_of_four(tfds_dir, reference_runs):
  tmp, runs, abstract = reference_runs
  step_a, a = _final_params(abstract, runs['2x2'])
  step_b, b = _final_params(abstract, runs['1x4'])
  assert step_a == step_b == STEPS
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6)
  # Evaluation gathers every process's share: all 7 people once, the same predictions.
  pa, pb = (np.load(os.path.join(runs[k], 'predictions.npz')) for k in ('2x2', '1x4'))
  assert sorted(pa['index']) == sorted(pb['index']) == list(range(7))
  np.testing.assert_allclose(pa['pred'][:, np.argsort(pa['index'])],
                             pb['pred'][:, np.argsort(pb['index'])], atol=1e-2)
  ev = [json.load(open(os.path.join(runs[k], 'eval.json'))) for k in ('2x2', '1x4')]
  assert ev[0]['num_people'] == ev[1]['num_people'] == 7
  assert os.path.getsize(os.path.join(runs['2x2'], 'pictures', 'predictions.png')) > 1000
  # Only process 0 writes metrics: one line per step, not one per process.
  lines = [json.loads(l) for l in open(os.path.join(runs['2x2'], 'metrics.jsonl'))]
  assert [l['step'] for l in lines if 'loss' in l] == list(range(1, STEPS + 1))


def test_a_nan_stops_every_process_at_the_same_step(reference_runs):
  tmp, _, _ = reference_runs  # the 2 x 2 run then trained a diverging config (lr 1e30)
  out = _read_logs(os.path.join(tmp, '2x2', 'logs'))
  stops = [o.split('NAN_STOP ')[1].split('\n')[0] for o in out]
  assert stops[0] == stops[1] and 'at step' in stops[0], stops
  assert not os.path.exists(os.path.join(tmp, '2x2_nan', 'eval.json'))


def _wait_for_step(workdir, step, procs, timeout=600):
  path = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.exists(path):
      steps = [json.loads(l)['step'] for l in open(path) if l.strip()]
      if steps and max(steps) >= step:
        return max(steps)
    if any(p.poll() is not None for p in procs):
      raise AssertionError('a process ended before reaching step %d' % step)
    time.sleep(0.05)
  raise AssertionError(f'step {step} not reached in {timeout} s')


def test_sigterm_to_one_process_stops_both_at_one_saved_step(tfds_dir, reference_runs):
  tmp, runs, abstract = reference_runs
  workdir = os.path.join(tmp, 'sigterm')
  cmd = [sys.executable, '-m', 'posemachines.train', f'--config={tmp}/tiny.py',
         f'--workdir={workdir}']
  procs, logs = _launch(tmp, 'sigterm', 2, 2, cmd)
  _wait_for_step(workdir, 1, procs)
  procs[1].send_signal(signal.SIGTERM)  # only the second process is told
  rc = local.wait(procs, grace=5)
  out = _read_logs(logs)
  assert rc == 0 and [p.returncode for p in procs] == [0, 0], out[0][-3000:] + out[1][-3000:]
  stopped = [int(o.split('Stopped by SIGTERM at step ')[1].split(';')[0]) for o in out]
  assert stopped[0] == stopped[1] < STEPS, stopped
  saved = stopped[0]
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))) == sorted(
      {s for s in range(6, saved + 1, 6)} | {saved})

  # The newest checkpoint gets corrupted: both processes fall back to the one before, say so,
  # and the resumed run ends bit-identical to the uninterrupted run.
  for root, _, files in os.walk(os.path.join(workdir, 'checkpoints', str(saved))):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'garbage')
  procs, logs = _launch(tmp, 'resumed', 2, 2, cmd)
  rc = local.wait(procs, grace=5)
  out = _read_logs(logs)
  assert rc == 0, out[0][-3000:] + out[1][-3000:]
  assert all(f'Checkpoint at step {saved} ' in o and 'is unreadable' in o for o in out)
  assert os.listdir(os.path.join(workdir, 'unreadable_checkpoints'))
  step_a, a = _final_params(abstract, runs['2x2'])
  step_b, b = _final_params(abstract, workdir)
  assert step_a == step_b == STEPS
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_initialize_is_explicit_or_detected(monkeypatch):
  from posemachines.training import distributed
  for k in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID', 'SLURM_JOB_ID',
            'TPU_WORKER_HOSTNAMES'):
    monkeypatch.delenv(k, raising=False)
  assert not distributed.cluster_detected()
  distributed.initialize('auto')  # one process: nothing to connect
  assert jax.process_count() == 1
  with pytest.raises(ValueError, match='without --num_processes'):
    distributed.initialize('auto', coordinator_address='127.0.0.1:1234')
  monkeypatch.setenv('JAX_PROCESS_ID', 'two')
  with pytest.raises(ValueError, match=r"\$JAX_PROCESS_ID='two' is not an integer"):
    distributed.initialize('auto', coordinator_address='127.0.0.1:1234', num_processes=2)
  with pytest.raises(ValueError, match='process_id 2 is not in 0..1'):
    distributed.initialize('auto', '127.0.0.1:1234', num_processes=2, process_id=2)
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w-0,w-1')
  assert distributed.cluster_detected()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w-0')
  for k, v in dict(SLURM_JOB_ID='7', SLURM_STEP_NODELIST='n[1-2]', SLURM_PROCID='0',
                   SLURM_LOCALID='0', SLURM_NTASKS='1').items():
    monkeypatch.setenv(k, v)
  assert not distributed.cluster_detected()  # a single task
  monkeypatch.setenv('SLURM_NTASKS', '16')
  assert distributed.cluster_detected()


def test_launcher_stops_the_others_when_one_process_fails(tmp_path):
  script = ('import os, sys, time\n'
            'if os.environ["JAX_PROCESS_ID"] == "1": sys.exit(3)\n'
            'time.sleep(300)')
  t0 = time.time()
  procs = local.start([sys.executable, '-c', script], 3, log_dir=str(tmp_path))
  assert local.wait(procs, grace=5) == 3
  assert time.time() - t0 < 60
  assert [p.returncode for p in procs] == [-signal.SIGTERM, 3, -signal.SIGTERM]



@pytest.mark.parametrize('process_id', [1, 0])
def test_a_process_whose_peers_never_come_says_so_and_gives_up(tmp_path, process_id):
  import socket
  with socket.socket() as s:  # a free port: nobody listens there
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  t0 = time.time()
  out = subprocess.run([sys.executable, '-m', 'posemachines.train',
                        f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                        f'--process_id={process_id}', '--coordinator_timeout_s=3',
                        f'--workdir={tmp_path}/w'], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode == 2, out.stderr[-3000:]
  if process_id:
    assert (f'Process 1 of 2: waiting up to 3 s for the coordinator (process 0) at '
            f'127.0.0.1:{port} and the other processes (--coordinator_timeout_s).') in out.stderr
    error = f'Process 1 of 2: no coordinator answered at 127.0.0.1:{port} within 3 s: '
  else:
    assert (f'Process 0 of 2: waiting up to 3 s for the other 1 process to connect to this '
            f'coordinator at 127.0.0.1:{port} (--coordinator_timeout_s).') in out.stderr
    error = (f'Process 0 of 2: the other processes did not all connect to this coordinator at '
             f'127.0.0.1:{port} within 3 s: ')
  assert out.stderr.endswith(
      f'posemachines.train: error: {error}start every process 0..1 with the same '
      f'--coordinator_address=127.0.0.1:{port} and --num_processes=2, check that '
      f'127.0.0.1:{port} is process 0\'s address and reachable, or wait longer with '
      '--coordinator_timeout_s.\n'), out.stderr[-3000:]
  assert 'Traceback' not in out.stderr and 'Check failure' not in out.stderr
  assert time.time() - t0 < 120
  assert not os.path.exists(tmp_path / 'w')
