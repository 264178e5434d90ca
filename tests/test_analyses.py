"""Training schemes (freezing, chaining), the gradient recorder and the analysis commands."""
import functools
import importlib.util
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from posemachines.training import runs as runs_lib
from posemachines import models
from posemachines.analyses import runner as analyses
from posemachines.training import checkpoint
from posemachines.training import gradients
from posemachines.training import writers as metrics_writer
from posemachines.training import schemes
from posemachines.tools import receptive_field
from posemachines.training import loop as train
from posemachines.data import pipeline
from posemachines.objectives.per_model import loss_fn
from posemachines.training.step import TrainState
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _batch(config, mesh):
  return train.shard_batch(next(iter(pipeline.as_numpy(pipeline.train_dataset(config)))), mesh)


def test_stagewise_phase_trains_only_its_modules(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, scheme='stagewise')
  phases = schemes.phases(config)
  assert [p.name for p in phases] == ['stage1', 'stage2']
  assert list(phases[0].config.frozen) == ['features', 'stage2']
  assert list(phases[0].config.loss.stage_weights) == [1.0, 0.0]
  phase2 = phases[1].config
  assert list(phase2.frozen) == ['stage1'] and list(phase2.loss.stage_weights) == [0.0, 1.0]
  # Two real steps of phase 2: stage 1 stays as it was; the features x' and stage 2 train.
  mesh = train.make_mesh()
  built = train.build(phase2, mesh)
  state, abstract, step = built.state, built.abstract_state, built.train_step
  before = jax.device_get(state.params)
  batch, rng = _batch(phase2, mesh), jax.random.key(0)
  for _ in range(2):
    state, _ = step(state, batch, rng)
  after = jax.device_get(state.params)
  assert not _changed(before['stage1'], after['stage1'])
  assert _changed(before['features'], after['features'])
  assert _changed(before['stage2'], after['stage2'])
  # The next phase starts from these weights with a fresh step and optimizer state.
  checkpoint.save(checkpoint.manager(str(tmp_path), 1), 2, state, force=True)
  fresh = TrainState(step=np.zeros((), np.int32), params=jax.tree.map(np.zeros_like, before),
                     opt_state=None, model_state={})
  started = checkpoint.initialise_from(str(tmp_path), fresh, abstract)
  assert int(started.step) == 0 and not _changed(after, jax.device_get(started.params))


def test_schemes_chain_their_phases(tfds_dir):
  config = tiny_config(tfds_dir, schemes={'stage_steps': 3, 'finetune_steps': 5})
  calls = []

  def runner(c, workdir, label):
    calls.append((label, c.init_from, tuple(c.frozen), c.num_train_steps, c.scheme))
    return f'/runs/{label}', {'stages': []}

  schemes.run(config, '/unused', 'stagewise_finetune', runner=runner)
  assert calls == [('stage1', '', ('features', 'stage2'), 3, 'stagewise'),
                   ('stage2', '/runs/stage1', ('stage1',), 3, 'stagewise'),
                   ('finetune', '/runs/stage2', (), 5, 'stagewise_finetune')]
  (joint,), (final,) = schemes.phases(config, 'joint'), schemes.phases(config, 'final_only')
  assert joint.config.loss.intermediate_supervision
  assert not final.config.loss.intermediate_supervision and not final.config.frozen
  with pytest.raises(ValueError, match='Unknown scheme'):
    schemes.phases(config, 'greedy')


def _events(workdir):
  tags = {}
  for path in tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*')):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for v in event.summary.value:
        tags.setdefault(v.tag, []).append(event.step)
  return tags


def test_gradient_recorder_saves_the_loss_gradients(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, gradients={'layers': (), 'every_steps': 2, 'at_steps': (3,)})
  mesh = train.make_mesh()
  built = train.build(config, mesh)
  model, state = built.model, built.state
  writer = metrics_writer.MetricsWriter(str(tmp_path))
  rec = gradients.Recorder(config, model, state.params, str(tmp_path), writer)
  assert [s for s in range(6) if rec.due(s)] == [0, 2, 3, 4]
  batch, rng = _batch(config, mesh), jax.random.key(1)
  rec.record(0, state, batch, rng)
  writer.close()
  saved = gradients.load(str(tmp_path / gradients.FILENAME))
  assert list(saved['steps']) == [0] and saved['epoch_steps'] == 32 / 8
  assert saved['layers'] == ['stage1/trunk/conv1', 'stage1/beliefs', 'features/conv1',
                             'stage2/conv1', 'stage2/beliefs']
  grads = jax.grad(functools.partial(loss_fn, model=model, config=config), has_aux=True)(
      state.params, state.model_state, batch, jax.random.fold_in(rng, 0))[0]
  for layer in saved['layers']:
    want = np.asarray(functools.reduce(dict.get, layer.split('/'), grads)['kernel']).ravel()
    np.testing.assert_allclose(saved['values'][layer][0], want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())
  assert {f'gradients/{l}' for l in saved['layers']} <= set(_events(str(tmp_path)))
  # A resumed run keeps the records from before its start step only.
  again = gradients.Recorder(config, model, state.params, str(tmp_path), None, start_step=0)
  assert again.steps == []
  kept = gradients.Recorder(config, model, state.params, str(tmp_path), None, start_step=1)
  assert kept.steps == [0]


def test_gradient_recording_is_off_unless_configured(tfds_dir):
  assert not gradients.enabled(tiny_config(tfds_dir))
  assert gradients.enabled(tiny_config(tfds_dir, gradients={'every_steps': 0, 'at_steps': (3,)}))
  with pytest.raises(ValueError, match='stage9/conv1'):
    gradients.select({'stage1': {'beliefs': {'kernel': np.zeros((1, 1, 2, 3))}}},
                     ['stage9/conv1'])


def test_stage_sweep_records_gradients_and_skips_finished_runs(tfds_dir, tmp_path, monkeypatch):
  config = tiny_config(tfds_dir, gradients={'layers': (), 'every_steps': 2, 'at_steps': ()})
  runs = runs_lib.Runs(str(tmp_path / 'runs'))
  rows = analyses.stages(config, str(tmp_path), runs, num_stages=(2,))
  assert [len(r['pck_per_stage']) for r in rows] == [2]
  assert '| 2 |' in open(tmp_path / 'stages.md').read()
  assert os.path.getsize(tmp_path / 'stages.png') > 5000
  # The trainer recorded gradients before the updates of steps 0 and 2, and drew them.
  rec = gradients.load(os.path.join(rows[0]['workdir'], gradients.FILENAME))
  assert list(rec['steps']) == [0, 2]
  assert _events(rows[0]['workdir'])['gradients/stage2/conv1'] == [0, 2]
  gradients.figure({'a': rec, 'b': rec}, str(tmp_path / 'fig.png'))
  assert os.path.getsize(tmp_path / 'fig.png') > 5000
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
    fields.append(receptive_field.receptive_fields(models.build(c), c.data.crop_size)[-1][0].size)
  assert fields[0] < fields[1]
