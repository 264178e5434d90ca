"""The data tools: inspect (counts, skip report, grid) and the host pipeline benchmark."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from posemachines.data import benchmark
from posemachines.data import inspect as inspect_lib
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mpii_sample')
PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'photos')


def test_inspect_command_on_the_real_mpii_samples(tmp_path):
  out = tmp_path / 'grid.png'
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, '-m', 'posemachines.data.inspect', '--dataset=json_people',
       f'--annotations={SAMPLE}/test_mpii.json', f'--data_dir={tmp_path}/tfds', '--num=4',
       f'--out={out}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'json_people: train 5 (parts mpii, metric pckh)' in proc.stdout
  assert 'kept 5 examples, skipped 0 items' in proc.stdout  # the stored skip report
  width, height = Image.open(out).size
  assert width > 1000 and height > 200


def test_samples_and_grid(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir)
  crops = inspect_lib.samples(config, 'train', 3)
  assert len(crops) == 3 and crops[0]['image'].shape == (48, 48, 3)
  assert crops[0]['keypoints'].shape == (14, 3)  # the model's part order
  inspect_lib.draw_grid(config, crops, str(tmp_path / 'g.png'))
  assert os.path.getsize(tmp_path / 'g.png') > 5000
  lines = inspect_lib.describe(config)
  assert lines[0].startswith('synthetic_people: train 32, validation 8')


def test_benchmark_reports_rates_for_real_photos():
  config = tiny_config('')
  config.data.crop_size = 96
  examples = benchmark.examples_from_images(os.path.join(PHOTOS, 'im16*.jpg'), '320x240')
  assert len(examples) == 3 and examples[0]['center'].tolist() == [160, 120]
  result = benchmark.benchmark(config, examples, 'mpii', seconds=0.2)
  for key in ('pipeline_fast', 'pipeline_full_decode', 'decode_full', 'decode_window'):
    assert result[key]['wall'] > 0 and result[key]['cpu'] > 0
  text = benchmark.format_result(result)
  assert 'samples/s/core' in text and 'images/s/core' in text
  assert np.isfinite([result[k]['cpu'] for k in result if isinstance(result[k], dict)]).all()
