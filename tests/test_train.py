"""The trainer: sharded step = single-device step, exact resume, NaN stop, outputs."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from posemachines.training import checkpoint
from posemachines.training import loop as train
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_train_writes_metrics_checkpoints_eval_and_pictures(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, num_pictures=2)
  state, result = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  lines = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  logged = [l for l in lines if 'loss' in l]
  assert [l['step'] for l in logged] == [2, 4]
  assert {'loss/stage1', 'loss/stage2', 'learning_rate', 'images_per_sec'} <= set(logged[0])
  assert all(np.isfinite(l['loss']) for l in logged)
  assert os.listdir(tmp_path / 'tensorboard')
  ev = json.load(open(tmp_path / 'eval.json'))
  assert ev['num_people'] == 8 and len(ev['stages']) == 2
  assert all(0.0 <= s['pck@0.5'] <= 1.0 for s in ev['stages'])
  assert result['stages'][0]['pck@0.5'] == ev['stages'][0]['pck@0.5']
  for name in ('predictions.png', 'stages_0.png'):
    assert os.path.getsize(tmp_path / 'pictures' / name) > 1000
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']


def test_restarted_run_resumes_from_checkpoint_bit_identically(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir)
  full, _ = train.train_and_evaluate(config, str(tmp_path / 'a'))
  # Interrupted after step 2: only the step-2 checkpoint exists; the rerun resumes from it.
  shutil.copytree(tmp_path / 'a', tmp_path / 'b')
  shutil.rmtree(tmp_path / 'b' / 'checkpoints' / '4')
  mngr = checkpoint.manager(str(tmp_path / 'b'), 3)
  assert mngr.all_steps() == [2]
  resumed, _ = train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert int(resumed.step) == 4
  for a, b in zip(_params(full), _params(resumed)):
    np.testing.assert_array_equal(a, b)


def test_corrupt_newest_checkpoint_is_skipped(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir)
  train.train_and_evaluate(config, str(tmp_path))
  newest = tmp_path / 'checkpoints' / '4' / 'default'
  for root, _, files in os.walk(newest):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'garbage')
  built = train.build(config, train.make_mesh())
  abstract = built.abstract_state
  state, step = checkpoint.restore_latest(checkpoint.manager(str(tmp_path), 3), abstract)
  assert step == 2 and int(state.step) == 2


def test_non_finite_loss_stops_naming_the_step(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, **{'optim.name': 'sgd', 'optim.learning_rate': 1e30,
                                    'optim.schedule': 'constant', 'optim.warmup_steps': 0})
  with pytest.raises(FloatingPointError, match=r'Non-finite .* at step \d'):
    train.train_and_evaluate(config, str(tmp_path))


_SHARDED = textwrap.dedent('''
    import sys, jax, numpy as np
    sys.path.insert(0, {root!r})
    from posemachines.training import loop as train
    from posemachines.data import pipeline
    from tests.conftest import tiny_config, tiny_recurrent_config
    assert jax.device_count() == 8, jax.devices()
    # With BatchNorm, statistics must be over the global batch: the CPM's option, and the
    # recurrent model's BatchNorm inside its scanned iterations.
    configs = [tiny_config({data!r}, **{{'model.batch_norm': bn}}) for bn in (False, True)]
    configs.append(tiny_recurrent_config({data!r}))
    for config in configs:
      batch_norm = config.model.batch_norm
      it = iter(pipeline.as_numpy(pipeline.train_dataset(config)))
      batches = [next(it) for _ in range(2)]
      results = []
      for devices in (jax.devices()[:1], jax.devices()):
        mesh = train.make_mesh(devices)
        built = train.build(config, mesh)
        state, step = built.state, built.train_step
        for b in batches:
          state, metrics = step(state, train.shard_batch(b, mesh), jax.random.key(0))
        results.append((jax.device_get(state.variables), float(metrics['loss'])))
      (p1, l1), (p8, l8) = results
      assert ('batch_stats' in p1) == batch_norm, p1.keys()
      np.testing.assert_allclose(l1, l8, rtol=1e-5)
      for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
      print('SHARDED_OK', config.model.name, batch_norm, l1, l8)
''')


def test_sharded_step_on_8_devices_equals_single_device(tfds_dir):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', _SHARDED.format(root=ROOT, data=tfds_dir)],
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.count('SHARDED_OK') == 3
