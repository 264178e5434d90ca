"""Shared fixtures: a tiny synthetic-people dataset, tiny CPM and recurrent-model configs."""
import os
import shutil
import tempfile

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# As posemachines sets it for its commands: the tests' in-process runs and the commands they
# start as subprocesses then run the same TensorFlow kernels (bit-identical data pipelines).
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
# One persistent JAX compilation cache per test run, shared by its pytest workers and every
# command the tests start: the same tiny programs are compiled once, not in every process.
# (A fresh directory per run: nothing compiled by an earlier run is reused.)
# The first process to import this (pytest itself, which starts the workers) picks it.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.join(
      tempfile.gettempdir(), f'posemachines-tests-jax-cache-{os.getpid()}')
  os.environ['POSEMACHINES_TESTS_CACHE_OWNER'] = str(os.getpid())
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.3')


def pytest_sessionfinish(session):
  if os.environ.get('POSEMACHINES_TESTS_CACHE_OWNER') == str(os.getpid()):
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


def pytest_configure(config):
  config.addinivalue_line('markers', 'readme: runs the commands shown in README.md (slow-ish)')


def tiny_config(data_dir: str, **overrides):
  """A 2-stage, narrow CPM on 48x48 crops of a tiny synthetic set: seconds per step on CPU."""
  from posemachines.core import configs
  c = configs.cpm_small()
  c.model.update(dict(num_stages=2, trunk_kernels=(3, 3), trunk_widths=(8, 8),
                      trunk_pools=(True, True), stage1_kernels=(3, 1), stage1_widths=(8, 8),
                      stage1_dropout=(False, False), stage_feature_kernel=3,
                      stage_feature_width=4, stage_kernels=(3, 1), stage_widths=(8, 8)))
  c.data.update(dict(data_dir=data_dir, crop_size=48, synthetic_image_size=64,
                     synthetic_num_train=32, synthetic_num_validation=8, shuffle_buffer=32,
                     num_parallel_calls=1))
  c.targets.update(dict(sigma=3.0, center_sigma=6.0))
  c.update(dict(batch_size=8, eval_batch_size=8, num_train_steps=4, log_every_steps=2,
                eval_every_steps=1000, checkpoint_every_steps=2, num_pictures=0))
  return _override(c, overrides)


def tiny_cpm(**kw):
  """A 3-stage CPM module of width 4-8 (no config): for tests of the model itself."""
  from posemachines.models import cpm
  args = dict(num_stages=3, num_outputs=5, trunk_kernels=(3, 3), trunk_widths=(4, 4),
              trunk_pools=(True, True), stage1_kernels=(3, 1), stage1_widths=(4, 8),
              stage1_dropout=(False, True), stage_feature_kernel=3, stage_feature_width=4,
              stage_kernels=(3, 1), stage_widths=(4, 4), weight_init='he')
  args.update(kw)
  return cpm.CPM(**args)


def tiny_recurrent_config(data_dir: str, **overrides):
  """The tiny setting of ``tiny_config`` with a narrow recurrent model (2 iterations, limbs)."""
  from posemachines.core import configs
  base = tiny_config(data_dir)
  c = configs.recurrent_small()
  c.data = base.data
  c.data.max_others = 0
  c.model.update(dict(kernels=(3, 3, 3, 5, 1, 5, 1), widths=(8, 8, 8, 8, 8, 8, 8)))
  c.update({k: base[k] for k in ('batch_size', 'eval_batch_size', 'num_train_steps',
                                 'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                                 'num_pictures')})
  c.targets.center_sigma = base.targets.center_sigma
  return _override(c, overrides)


def _override(c, overrides):
  """Sets dotted config fields: {'model.batch_norm': True, ...}."""
  for k, v in overrides.items():
    node = c
    *path, last = k.split('.')
    for p in path:
      node = node[p]
    node[last] = v
  return c


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory):
  """A tfds data dir holding the tiny synthetic set (prepared once per session)."""
  d = str(tmp_path_factory.mktemp('tfds'))
  from posemachines.data import registry
  registry.get_builder(tiny_config(d))
  return d


@pytest.fixture(scope='session')
def trained_workdir(tfds_dir, tmp_path_factory):
  """A workdir holding the tiny CPM trained for 4 steps: checkpoints and config.json."""
  from posemachines.training import loop as train
  d = str(tmp_path_factory.mktemp('trained'))
  train.train_and_evaluate(tiny_config(tfds_dir), d)
  return d
