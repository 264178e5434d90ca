"""Faults: SIGKILL at a random step, NaN in one batch (stop or skip), unusable workdirs."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow as tf

from posemachines.training import checkpoint
from posemachines.training import loop as train
from posemachines.data import pipeline
from tests.conftest import tiny_config
from posemachines.objectives import per_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def _logged_steps(path):
  """Steps in metrics.jsonl, ignoring a last line cut short by a kill."""
  if not os.path.exists(path):
    return [0]
  return [json.loads(l)['step'] for l in open(path).read().split('\n')[:-1]] or [0]


def _restorer(config):
  """A function (workdir, step) -> the train state saved there."""
  abstract = train.build(config, train.make_mesh()).abstract_state

  def restore(workdir, step):
    mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'))
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))

  return restore


def test_sigkill_at_a_random_step_then_restart_is_bit_identical(tfds_dir, tmp_path):
  steps = 10
  overrides = dict(num_train_steps=steps, checkpoint_every_steps=3, log_every_steps=1)
  config = tiny_config(tfds_dir, **overrides)
  full, _ = train.train_and_evaluate(config, str(tmp_path / 'full'))

  with open(tmp_path / 'tiny.py', 'w') as f:
    f.write(textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {ROOT!r})
        from tests.conftest import tiny_config
        def get_config():
          return tiny_config({tfds_dir!r}, **{overrides!r})
    '''))
  workdir = tmp_path / 'killed'
  kill_at = random.randrange(1, steps - 1)
  proc = subprocess.Popen([sys.executable, '-m', 'posemachines.train',
                           f'--config={tmp_path}/tiny.py', f'--workdir={workdir}'],
                          env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 600
  while time.time() < deadline and proc.poll() is None:
    if max(_logged_steps(metrics)) >= kill_at:
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, f'the run ended before step {kill_at}'
  logged = max(_logged_steps(metrics))
  assert logged < steps, f'killed too late (after step {logged})'

  resumed, _ = train.train_and_evaluate(config, str(workdir))
  assert int(resumed.step) == steps
  for a, b in zip(_params(full), _params(resumed)):
    np.testing.assert_array_equal(a, b, err_msg=f'killed after step {logged}')
  # The logs read as if the run had never stopped: every step once, the final evaluation once.
  lines = [json.loads(l) for l in open(metrics)]
  assert [l['step'] for l in lines if 'loss' in l] == list(range(1, steps + 1))
  assert [l['step'] for l in lines if 'eval/pck@0.5/stage1' in l] == [steps]


def _inject_nan(monkeypatch, at_step, stage):
  """Makes ``stage``'s loss, and so the gradients, NaN at global step ``at_step`` (1-based).

  The data stream marks that step's batch with a 'poison' entry, and the loss function
  multiplies the stage's loss by NaN on marked batches: the train step sees a NaN exactly as it
  would from a bad batch or a diverging stage.
  """
  original_data, original_loss = pipeline.train_dataset, per_model.loss_fn

  def train_dataset(config, process_index=0, process_count=1, start_step=0):
    ds = original_data(config, process_index, process_count, start_step)
    mark = lambda k, b: {**b, 'poison': tf.fill(tf.shape(b['visible'])[:1],
                                                tf.cast(tf.equal(k, at_step - 1), tf.float32))}
    return ds.enumerate(start=start_step).map(mark)

  def loss_fn(params, model_state, batch, rng, **kw):
    total, (per_stage, model_state) = original_loss(params, model_state, batch, rng, **kw)
    factor = jnp.where(batch['poison'][0] > 0, jnp.nan, 1.0)
    per_stage = per_stage.at[stage - 1].multiply(factor)
    return total * factor, (per_stage, model_state)

  monkeypatch.setattr(pipeline, 'train_dataset', train_dataset)
  monkeypatch.setattr(per_model, 'loss_fn', loss_fn)


def test_nan_stops_naming_step_and_stage_and_keeps_the_last_good_checkpoint(
    tfds_dir, tmp_path, monkeypatch):
  _inject_nan(monkeypatch, at_step=3, stage=2)
  config = tiny_config(tfds_dir, checkpoint_every_steps=1)
  with pytest.raises(FloatingPointError, match=r'Non-finite stage 2 loss at step 3\b'):
    train.train_and_evaluate(config, str(tmp_path / 'stop'))
  mngr = checkpoint.manager(str(tmp_path / 'stop'), 3)
  assert mngr.all_steps() == [1, 2]
  restore = _restorer(config)
  kept = restore(str(tmp_path / 'stop'), 2)
  assert all(np.isfinite(x).all() for x in _params(kept))

  # on_nan=skip: step 3 leaves the parameters as they were; training goes on.
  config = tiny_config(tfds_dir, checkpoint_every_steps=1, on_nan='skip')
  state, _ = train.train_and_evaluate(config, str(tmp_path / 'skip'))
  assert int(state.step) == 4
  p2, p3, p4 = (_params(restore(str(tmp_path / 'skip'), s)) for s in (2, 3, 4))
  for a, b in zip(p2, p3):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(p3, p4))
  assert all(np.isfinite(x).all() for x in p4)


def test_full_disk_fails_before_training(tfds_dir, tmp_path, monkeypatch):
  config = tiny_config(tfds_dir)
  monkeypatch.setattr(checkpoint, 'free_bytes', lambda path: 10 << 20)
  with pytest.raises(checkpoint.WorkdirError, match=r'has 10.0 MiB free; the run needs about'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists() and not (tmp_path / 'metrics.jsonl').exists()


def test_free_space_threshold_follows_the_checkpoint_size(tmp_path, monkeypatch):
  abstract = {'w': jax.ShapeDtypeStruct((1000, 1000), np.float32)}  # 4 MB
  size = checkpoint.state_bytes(abstract)
  assert size == 4_000_000
  need = 4 * size + checkpoint.OTHER_FILES_BYTES  # keep 3 + the one being written
  monkeypatch.setattr(checkpoint, 'free_bytes', lambda path: need)
  checkpoint.check_workdir(str(tmp_path), abstract, keep=3)
  monkeypatch.setattr(checkpoint, 'free_bytes', lambda path: need - 1)
  with pytest.raises(checkpoint.WorkdirError, match='4 more checkpoint'):
    checkpoint.check_workdir(str(tmp_path), abstract, keep=3)
  for s in (1, 2, 3):  # three checkpoints already on disk: one more is enough
    (tmp_path / 'checkpoints' / str(s)).mkdir(parents=True)
  monkeypatch.setattr(checkpoint, 'free_bytes', lambda path: size + checkpoint.OTHER_FILES_BYTES)
  checkpoint.check_workdir(str(tmp_path), abstract, keep=3)


def test_unwritable_workdir_fails_with_its_name(tmp_path):
  abstract = {'w': jax.ShapeDtypeStruct((4,), np.float32)}
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  with pytest.raises(checkpoint.WorkdirError, match=r"Cannot write to the workdir '.*a_file/run'"):
    checkpoint.check_workdir(str(blocker / 'run'), abstract, keep=3)
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(checkpoint.WorkdirError, match='locked'):
      checkpoint.check_workdir(str(locked), abstract, keep=3)


def test_metrics_line_cut_short_by_a_kill_is_dropped(tmp_path):
  from posemachines.training import writers as metrics_writer
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
  writer = metrics_writer.MetricsWriter(str(tmp_path))
  writer.write(2, {'loss': 1.5})
  writer.close()
  assert [json.loads(l) for l in open(path)] == [{'step': 1, 'loss': 2.0},
                                                 {'step': 2, 'loss': 1.5}]


def test_diverged_outputs_at_evaluation_are_reported_by_stage(tfds_dir, tmp_path, caplog):
  # A learning rate that blows the weights up in one step: every later step is non-finite and
  # skipped, and the model's outputs at evaluation are non-finite.
  diverging = {'optim.name': 'sgd', 'optim.learning_rate': 1e30, 'optim.schedule': 'constant',
               'optim.warmup_steps': 0}
  config = tiny_config(tfds_dir, on_nan='skip', num_pictures=2, **diverging)
  state, result = train.train_and_evaluate(config, str(tmp_path / 'skip'))
  assert int(state.step) == 4
  assert [s['non_finite_outputs'] for s in result['stages']] == [112, 112]
  assert [s['pck@0.5'] for s in result['stages']] == [0.0, 0.0]  # such parts are misses
  assert all(np.isnan(s['visibility_ap']) for s in result['stages'])
  warned = [r.getMessage() for r in caplog.records if 'non-finite (NaN' in r.getMessage()]
  assert warned == ["The model's outputs are non-finite (NaN or infinite belief maps) in the "
                    'evaluation at step 4: stage 1 (112 of 112 parts), stage 2 (112 of 112 '
                    'parts). The model has diverged; a lower --config.optim.learning_rate may '
                    'help. on_nan=skip: such parts count as misses and those stages have no '
                    'visibility AP.']
  assert json.load(open(tmp_path / 'skip' / 'eval.json'))['step'] == 4

  # on_nan=stop: a clean stop (a user error: one line, exit status 2) naming the stage.
  from posemachines.core import errors
  config = tiny_config(tfds_dir, on_nan='stop')
  mesh = train.make_mesh()
  built = train.build(config, mesh)

  def nan_in_stage_2(variables, batch):
    out = dict(built.eval_step(variables, batch))
    out['pred'] = out['pred'].at[1, :, :, 2].set(jnp.nan)
    return out

  with pytest.raises(errors.UserError, match=r"outputs are non-finite .* in the evaluation at "
                     r"step 7: stage 2 \(112 of 112 parts\)\..* Set --config.on_nan=skip"):
    train.run_evaluation(config, built.state.variables, nan_in_stage_2, mesh, step=7)
