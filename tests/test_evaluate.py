"""The evaluate command: per-stage tables, outputs, and the .mat files it writes score the same."""
import json
import os
import subprocess
import sys

import pytest

from posemachines.evaluation import mpii_files as mpii_results
from posemachines.evaluation import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_evaluate_command_writes_tables_curves_and_mat_files(trained_workdir, tmp_path):
  out, mats = tmp_path / 'eval', tmp_path / 'mat'
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', f'--model={trained_workdir}',
                        '--scales=0.9,1.1', f'--out={out}', f'--mat_dir={mats}'], env=env,
                       check=True, timeout=600, capture_output=True, text=True)
  result = json.load(open(out / 'eval.json'))
  assert result['num_people'] == 8 and result['table'] == 'mpii' and result['split'] == 'validation'
  assert [(v['scale'], v['flip']) for v in result['views']] == [
      (0.9, False), (1.1, False), (0.9, True), (1.1, True)]
  assert len(result['stages']) == 2
  final = result['stages'][-1]
  assert final['columns'][-3:] == ['Mean', 'Mean@0.1', 'AUC']
  assert all(0.0 <= final['row'][c] <= 1.0 for c in final['columns'])
  assert len(final['curves']['Mean']) == 51
  assert '| stage 2 |' in open(out / 'eval.md').read() and '| stage 2 |' in run.stdout
  assert os.path.getsize(out / 'curves.png') > 10_000
  # The final stage's predictions, written as MPII .mat, score exactly as the table above.
  scored = mpii_results.score(str(mats / 'annotations.mat'), str(mats / 'predictions.mat'))
  assert scored['num_people'] == 8
  for column in final['columns']:
    assert scored['table']['row'][column] == pytest.approx(final['row'][column])


def test_unknown_split_is_refused(tfds_dir):
  from posemachines.evaluation import inference
  from tests.conftest import tiny_config
  config = tiny_config(tfds_dir)
  model = inference.Model(forward=None, crop_size=48, stride=4, parts='cpm14',
                          target_dist=config.data.target_dist, config=config.to_dict(),
                          source='test')
  with pytest.raises(ValueError, match="has no split 'test'"):
    runner.run(model, config, 'test')
