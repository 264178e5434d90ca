"""Training schemes (freezing, chaining), the gradient recorder and the analysis commands."""
import functools
import importlib.util
import json
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from posemachines import analyses, checkpoint, gradients, models, schemes, summary, train
from posemachines.data import pipeline
from posemachines.step import loss_fn
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(workdir, config):
  _, _, _, abstract, _, _ = train.build(config, train.make_mesh())
  state, _ = checkpoint.restore_latest(checkpoint.manager(workdir, 3), abstract)
  return jax.device_get(state.params)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_stagewise_freezes_earlier_stages_and_finetune_chains(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, scheme='stagewise_finetune',
                       schemes={'stage_steps': 2, 'finetune_steps': 2})
  phases = schemes.phases(config)
  assert [p.name for p in phases] == ['stage1', 'stage2', 'finetune']
  assert list(phases[0].config.frozen) == ['features', 'stage2']
  assert list(phases[1].config.frozen) == ['stage1']
  assert list(phases[1].config.loss.stage_weights) == [0.0, 1.0]
  results = schemes.run(config, str(tmp_path))
  assert [name for name, _ in results] == ['stage1', 'stage2', 'finetune']
  init = jax.device_get(train.build(config, train.make_mesh())[2].params)
  p1 = _params(str(tmp_path / 'stage1'), config)
  p2 = _params(str(tmp_path / 'stage2'), config)
  p3 = _params(str(tmp_path / 'finetune'), config)
  # Phase 1 trains stage 1 only; phase 2 starts from it, keeps stage 1, trains x' and stage 2.
  assert _changed(init['stage1'], p1['stage1'])
  for m in ('features', 'stage2'):
    assert not _changed(init[m], p1[m])
    assert _changed(p1[m], p2[m])
  assert not _changed(p1['stage1'], p2['stage1'])
  # Fine-tuning starts from phase 2 and trains everything.
  for m in ('stage1', 'features', 'stage2'):
    assert _changed(p2[m], p3[m])
  cfg = json.load(open(tmp_path / 'finetune' / 'config.json'))
  assert cfg['init_from'] == os.path.abspath(tmp_path / 'stage2') and not cfg['frozen']


def test_final_only_and_joint_stage_weights(tfds_dir):
  config = tiny_config(tfds_dir)
  (joint,), (final,) = schemes.phases(config, 'joint'), schemes.phases(config, 'final_only')
  assert joint.config.loss.intermediate_supervision and not final.config.loss.intermediate_supervision
  assert not final.config.frozen and not final.config.init_from
  with pytest.raises(ValueError, match='Unknown scheme'):
    schemes.phases(config, 'greedy')


def _events(workdir):
  tags = set()
  for path in tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*')):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      tags.update(v.tag for v in event.summary.value)
  return tags


def test_gradient_recorder_saves_the_loss_gradients(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, gradients={'layers': (), 'every_steps': 2, 'at_steps': ()})
  state, _ = train.train_and_evaluate(config, str(tmp_path))
  rec = gradients.load(str(tmp_path / gradients.FILENAME))
  assert list(rec['steps']) == [0, 2]
  assert rec['layers'] == ['stage1/trunk/conv1', 'stage1/beliefs', 'features/conv1',
                           'stage2/conv1', 'stage2/beliefs']
  assert rec['epoch_steps'] == 32 / 8
  # The step-0 record is the gradient of the loss at the initial params on the first batch.
  model, _, init, _, _, _ = train.build(config, train.make_mesh())
  batch = next(iter(pipeline.as_numpy(pipeline.train_dataset(config))))
  rng = jax.random.fold_in(jax.random.key(config.seed + 1), 0)
  grads = jax.grad(functools.partial(loss_fn, model=model, config=config), has_aux=True)(
      init.params, init.model_state, batch, rng)[0]
  want = np.asarray(grads['stage1']['trunk']['conv1']['kernel']).ravel()
  np.testing.assert_allclose(rec['values']['stage1/trunk/conv1'][0], want, rtol=1e-4,
                             atol=1e-5 * np.abs(want).max())
  assert np.all(gradients.spread(rec, 'stage2/conv1') > 0)
  assert {f'gradients/{l}' for l in rec['layers']} <= _events(str(tmp_path))
  gradients.figure({'a': rec, 'b': rec}, str(tmp_path / 'fig.png'))
  assert os.path.getsize(tmp_path / 'fig.png') > 5000


def test_gradient_recording_is_off_unless_configured(tfds_dir):
  assert not gradients.enabled(tiny_config(tfds_dir))
  assert gradients.enabled(tiny_config(tfds_dir, gradients={'every_steps': 0, 'at_steps': (3,)}))


def test_unknown_layer_is_named(tfds_dir):
  config = tiny_config(tfds_dir)
  params = jax.device_get(train.build(config, train.make_mesh())[2].params)
  with pytest.raises(ValueError, match='stage9/conv1'):
    gradients.select(params, ['stage9/conv1'])


def test_stage_sweep_writes_table_and_skips_finished_runs(tfds_dir, tmp_path, monkeypatch):
  config = tiny_config(tfds_dir)
  runs = analyses.Runs(str(tmp_path / 'runs'))
  rows = analyses.stages(config, str(tmp_path), runs, num_stages=(2,))
  assert [len(r['pck_per_stage']) for r in rows] == [2]
  table = open(tmp_path / 'stages.md').read()
  assert '| 2 |' in table and os.path.getsize(tmp_path / 'stages.png') > 5000
  # The joint scheme of the same 2-stage model is the same run: nothing trains again.
  monkeypatch.setattr(train, 'train_and_evaluate', lambda *a: pytest.fail('retrained'))
  (_, result), = schemes.run(config, '', 'joint', runner=runs)
  assert 100 * result['stages'][-1]['pck@0.5'] == rows[0]['pck_per_stage'][-1]
  assert analyses.stages(config, str(tmp_path), runs, num_stages=(2,)) == rows


def test_receptive_field_variants_keep_parameter_count():
  spec = importlib.util.spec_from_file_location(
      'analyses_cpu', os.path.join(ROOT, 'experiments', 'analyses_cpu.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  target = analyses._params(config)
  fields = []
  for tk, sk in ((3, 1), (7, 7)):
    c = analyses.match_parameters(config, tk, sk, target)
    assert c.model.trunk_kernels == (tk,) * 3 and c.model.stage_kernels == (sk,) * 3 + (1,)
    assert abs(analyses._params(c) - target) < 0.05 * target
    fields.append(summary.receptive_fields(models.build(c), c.data.crop_size)[-1][0].size)
  assert fields[0] < fields[1]
