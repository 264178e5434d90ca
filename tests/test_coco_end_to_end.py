"""Training, evaluation (COCOeval, on ground-truth boxes and on detections) and export run end to
end on the COCO fixture with 256 x 192 crops, through the same pipeline as the other datasets."""
import json
import os

import jax
import numpy as np
import pytest

from posemachines.data import coco
from posemachines.evaluation import coco_eval
from posemachines.tools import export
from posemachines.tools import loading
from posemachines.training import loop as train
from tests.conftest import tiny_config

FIXTURE = os.path.join(os.path.dirname(__file__), 'data', 'coco')
ANNOTATIONS = os.path.join(FIXTURE, 'annotations', 'person_keypoints_val2017.json')


def _config(data_dir):
  return tiny_config(data_dir, **{
      'data.dataset': 'coco', 'data.manual_dir': FIXTURE, 'data.parts': 'coco17',
      'data.crop_size': 256, 'data.crop_width': 192, 'data.target_dist': coco.TARGET_DIST,
      'data.train_split': 'validation', 'data.eval_split': 'validation', 'data.max_others': 1,
      'data.shuffle_buffer': 8, 'batch_size': 4, 'eval_batch_size': 4, 'num_train_steps': 2,
      'checkpoint_every_steps': 2, 'num_pictures': 2})


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp('coco_run')
  config = _config(str(root / 'tfds'))
  workdir = str(root / 'work')
  state, result = train.train_and_evaluate(config, workdir)
  return config, workdir, state, result


def test_a_rectangular_cpm_trains_on_coco(trained):
  config, workdir, state, result = trained
  assert int(state.step) == 2
  logged = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert all(np.isfinite(l['loss']) for l in logged if 'loss' in l)
  assert result['num_people'] == 7 and len(result['stages']) == 2
  assert os.path.getsize(os.path.join(workdir, 'pictures', 'predictions.png')) > 1000


def test_cocoeval_on_ground_truth_boxes_and_on_detections(trained, tmp_path):
  config, workdir, _, _ = trained
  model = loading.load(workdir)
  assert model.crop_size == (256, 192)
  out = str(tmp_path / 'gt_boxes.json')
  ev = coco_eval.evaluate(model, config, ANNOTATIONS, scales=(1.0,), flip=True, batch_size=4,
                          out=out)
  assert ev['num_people'] == 7 and ev['boxes'] == 'ground truth'
  results = json.load(open(out))
  assert len(results) == ev['num_results'] and 1 <= len(results) <= 7
  assert {r['image_id'] for r in results} <= {im['id'] for im in json.load(
      open(ANNOTATIONS))['images']}
  assert all(len(r['keypoints']) == 51 for r in results)
  assert set(ev['stats']) == set(coco_eval.STAT_NAMES)
  assert all(0 <= ev['stats'][k] <= 1 for k in ('AP', 'AR'))
  print('ground-truth boxes:', coco_eval.format_table(ev['stats']), sep='\n')
  # Detections: every annotated box, and one for the image that is missing.
  doc = json.load(open(ANNOTATIONS))
  dets = [{'image_id': a['image_id'], 'category_id': 1, 'bbox': a['bbox'], 'score': 0.9}
          for a in doc['annotations'] if a['id'] in (1, 2, 3, 4, 5, 901, 905, 907)]
  path = tmp_path / 'detections.json'
  path.write_text(json.dumps(dets))
  ev = coco_eval.evaluate(model, config, ANNOTATIONS, detections=str(path), scales=(1.0,),
                          flip=False, batch_size=4, out=str(tmp_path / 'det.json'))
  assert ev['num_people'] == 7 and ev['skipped'] == {'missing image': 1}
  assert ev['boxes'] == str(path)
  print('detections:', coco_eval.format_table(ev['stats']), sep='\n')


def test_a_rectangular_model_exports(trained, tmp_path):
  _, workdir, _, _ = trained
  art_dir = export.export(workdir, str(tmp_path / 'art'), platforms=('cpu',))
  meta = json.load(open(os.path.join(art_dir, 'artifact.json')))
  assert meta['input_size'] == [256, 192] and meta['map_size'] == [64, 48]
  art = loading.load(art_dir)
  ckpt = loading.load(workdir)
  assert art.crop_size == (256, 192)
  x = np.random.RandomState(0).randint(0, 256, (2, 256, 192, 3)).astype(np.uint8)
  got = np.asarray(art.forward(x))
  assert got.shape == (2, 2, 64, 48, 18)
  np.testing.assert_allclose(got, np.asarray(jax.jit(ckpt.forward)(x)), atol=1e-5)
  with pytest.raises(ValueError, match=r'\[batch, 256, 192, 3\]'):
    art.forward(x[:, :192])


def test_evaluate_cli_on_coco(trained, tmp_path):
  """``evaluate --model --dataset=coco --annotations`` and scoring the results file it writes."""
  import subprocess
  import sys
  config, workdir, _, _ = trained
  out = tmp_path / 'eval'
  env = dict(os.environ, TFDS_DATA_DIR=config.data.data_dir)
  run = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', f'--model={workdir}',
                        '--dataset=coco', '--split=validation', f'--annotations={ANNOTATIONS}',
                        f'--manual_dir={FIXTURE}', f'--data_dir={config.data.data_dir}',
                        '--scales=1.0', '--batch_size=4', f'--out={out}'],
                       capture_output=True, text=True, timeout=600, env=env)
  assert run.returncode == 0, run.stderr[-3000:]
  assert '| AP | AP50 | AP75 |' in run.stdout and 'on ground truth boxes' in run.stdout
  saved = json.load(open(out / 'eval.json'))
  assert saved['num_people'] == 7
  scored = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', '--dataset=coco',
                           f'--annotations={ANNOTATIONS}',
                           f'--predictions={out / "keypoints_results.json"}', '--json'],
                          capture_output=True, text=True, timeout=300)
  assert scored.returncode == 0, scored.stderr[-3000:]
  stats = json.loads(scored.stdout)['files'][0]['stats']
  assert stats == pytest.approx(saved['stats'])
  missing = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', f'--model={workdir}',
                            '--dataset=coco', f'--manual_dir={FIXTURE}'],
                           capture_output=True, text=True, timeout=300)
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines()[-1] == ('posemachines.evaluate: error: '
                                                     '--dataset=coco needs --annotations='
                                                     'person_keypoints_SPLIT2017.json')
