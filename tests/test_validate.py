"""The config is checked before anything is built: one line per bad field, exit status 2."""
import os
import subprocess
import sys

import pytest

from posemachines.core import configs, errors, overrides, skeleton, validate
from tests.conftest import tiny_config, tiny_recurrent_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('value', ['0', '-4'])
def test_a_bad_batch_size_is_one_line_before_anything_is_built(tmp_path, value):
  workdir = tmp_path / 'w'
  out = subprocess.run([sys.executable, '-m', 'posemachines.train', f'--workdir={workdir}',
                        f'--config.batch_size={value}'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode == 2, out.stderr[-3000:]
  assert out.stderr.endswith(
      f'posemachines.train: error: --config.batch_size={value}: must be >= 1\n'), out.stderr
  assert 'Traceback' not in out.stderr and 'tensorflow' not in out.stderr.lower()
  assert not workdir.exists()


def test_every_bad_field_is_reported_at_once():
  config = overrides.derive(configs.cpm_small(), {
      'batch_size': 0, 'on_nan': 'ignore', 'model.stage_widths': (8, 8, 8),
      'data.scale_max': 0.5, 'data.validation_fraction': 1.5, 'optim.learning_rate': -1.0,
      'optim.schedule': 'linear', 'num_eval_examples': 0, 'data.crop_size': 0,
      'data.dataset': 'mpii+mpii', 'loss.stage_weights': (1.0, 1.0)})
  with pytest.raises(errors.BadFlag) as e:
    validate.check(config)
  assert str(e.value).split('\n') == [
      '11 config fields are bad:',
      '  --config.batch_size=0: must be >= 1',
      '  --config.num_eval_examples=0: must be >= 1 (or -1)',
      "  --config.on_nan='ignore': must be one of stop, skip",
      '  --config.model.stage_widths=(8,8,8): must have 4 entries, like model.stage_kernels',
      "  --config.data.dataset='mpii+mpii': must name one of synthetic_people, json_people, "
      "mpii, lsp, lsp_extended, flic, coco, or a mixture of different ones joined by '+' "
      "(e.g. 'mpii+lsp_extended')",
      '  --config.data.crop_size=0: must be >= 8',
      '  --config.data.scale_max=0.5: must be >= data.scale_min (0.85)',
      '  --config.data.validation_fraction=1.5: must be in [0, 1]',
      '  --config.loss.stage_weights=(1.0,1.0): must have one weight per model output (3), or '
      'be () for the default',
      "  --config.optim.schedule='linear': must be one of step, cosine, constant",
      '  --config.optim.learning_rate=-1.0: must be > 0']


def test_the_batch_must_split_over_the_devices():
  with pytest.raises(errors.BadFlag, match=r'^--config.batch_size=8: must be divisible by the '
                     r'3 devices the batch is split over \(e.g. 9\)$'):
    validate.check(configs.cpm_small(), num_devices=3)
  validate.check(configs.cpm_small(), num_devices=4)


def test_the_shipped_configs_pass():
  for config in (configs.cpm_release(), configs.cpm_small(), configs.recurrent_paper(),
                 configs.recurrent_small(), tiny_config('/tmp'), tiny_recurrent_config('/tmp')):
    validate.check(config)


def test_layers_remat_and_precision_are_checked():
  c = configs.cpm_small()
  c.model.layers, c.model.remat, c.precision = 'torch', 'all', 'fp16'
  c.data.synthetic_occlusion = 'some'
  with pytest.raises(errors.BadFlag) as e:
    validate.check(c)
  text = str(e.value)
  assert text.startswith('4 config fields are bad:')
  for field in ('model.layers', 'model.remat', 'precision'):
    assert f'--config.{field}=' in text, text
  assert "--config.data.synthetic_occlusion='some': must be one of light, heavy" in text


def test_the_known_values_agree_with_the_modules_that_use_them():
  from posemachines import models
  from posemachines.data import registry
  from posemachines.objectives import losses
  from posemachines.training import schemes
  assert validate.MODELS == models.MODELS
  assert validate.DATASETS == registry.DATASETS
  assert set(validate.OCCLUSION_MODES) == set(losses.OCCLUSION_MODES)
  assert validate.SCHEMES == schemes.SCHEMES
  from posemachines.models import layers
  assert validate.CPM_LAYERS == layers.LAYERS and validate.CPM_REMAT == layers.REMAT
  assert validate.PRECISIONS == tuple(models.PRECISIONS)
  from posemachines.data import synthetic
  assert validate.SYNTHETIC_OCCLUSION == tuple(synthetic.OCCLUSION)
  assert set(skeleton.SKELETONS) >= {'cpm14', 'mpii', 'lsp', 'flic'}


def test_evaluate_checks_its_flags_before_loading_the_model(tmp_path):
  out = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', f'--model={tmp_path}/none',
                        '--batch_size=0', '--num_examples=-3'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode == 2, out.stderr[-3000:]
  assert out.stderr.endswith('posemachines.evaluate: error: 2 flags are bad:\n'
                             '  --batch_size=0: must be >= 1\n'
                             '  --num_examples=-3: must be >= 1 (or -1: the whole split)\n'), \
      out.stderr[-3000:]


def test_benchmark_checks_the_config_before_starting_its_measurements():
  from posemachines.tools import benchmark
  config = overrides.derive(configs.cpm_small(), {'data.crop_size': 4})
  with pytest.raises(errors.BadFlag, match=r'^--config.data.crop_size=4: must be >= 8$'):
    benchmark.benchmark(config, batch_size=2, steps=1)


def test_a_crop_whose_features_and_center_map_disagree_is_named():
  """48 x 36 crops give the 3-pool CPM 4-pixel features but a 5-pixel pooled center map: named
  before anything is built, with sizes that fit, instead of a concatenate error in the model."""
  from posemachines.core import configs, errors, overrides, validate
  c = overrides.derive(configs.cpm_release(), {'data.crop_size': 48, 'data.crop_width': 36})
  with pytest.raises(errors.BadFlag) as e:
    validate.check(c)
  assert str(e.value) == ('--config.data.crop_width=36: gives 4-pixel image features but a '
                          '5-pixel pooled center map (stride 8); nearby sizes that fit: '
                          '[32, 33, 40, 41]')
  validate.check(overrides.derive(configs.cpm_release(), {'data.crop_size': 256,
                                                          'data.crop_width': 192}))
