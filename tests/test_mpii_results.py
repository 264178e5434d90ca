"""MPII .mat predictions: written, read back and scored against official-format ground truth."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from posemachines.evaluation import mpii_files as mpii_results
from posemachines.core import skeleton
from posemachines.data import features, mpii_mat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mpii_sample')
MPII = skeleton.MPII.parts


def _sample():
  with open(os.path.join(SAMPLE, 'test_mpii.json')) as f:
    return json.load(f)


def _cpm14_predictions(records, shift):
  """Predictions in the model's order (cpm14, no pelvis or thorax): ground truth + ``shift``."""
  joints = np.array([r['joints'] for r in records], np.float64)            # [N, 16, 2] MPII
  kp = np.concatenate([joints + shift, np.full(joints.shape[:2] + (1,), 0.7)], axis=-1)
  return skeleton.convert(kp, 'mpii', 'cpm14')


def test_real_sample_round_trip_and_score(tmp_path):
  records = _sample()
  gt = tmp_path / 'gt.mat'
  mpii_mat.write_release(gt, mpii_mat.images_from_people(records))
  images = mpii_results.prediction_images([r['image'] for r in records],
                                          _cpm14_predictions(records, [0.0, 0.0]), 'cpm14',
                                          [r['center'] for r in records],
                                          [r['scale'] for r in records])
  pred = tmp_path / 'pred.mat'
  mpii_mat.write_release(pred, images, top='annolist')
  back = mpii_mat.load(pred)
  assert [im.name for im in back] == [r['image'] for r in records]
  person = back[0].people[0]
  assert sorted(person.points) == [i for i, p in enumerate(MPII) if p not in ('pelvis', 'thorax')]
  assert person.points[0][:2] == tuple(records[0]['joints'][0])
  assert person.objpos == tuple(records[0]['center'])
  res = mpii_results.score(str(gt), str(pred))
  assert res['num_people'] == 5 and res['left_out'] == {}
  row = res['table']['row']
  assert row['Mean'] == 1.0 and row['Mean@0.1'] == 1.0 and row['AUC'] == 1.0
  # Pelvis and thorax are labelled but not predicted: wrong, and outside the Mean.
  assert res['table']['per_part']['pelvis'] == 0.0


def test_score_hand_computed(tmp_path):
  box = (0.0, 0.0, 30.0, 40.0)                      # head size 30: PCKh@0.5 allows 15 px
  assert features.head_size(box) == 30.0
  rect = lambda points, box=box: mpii_mat.Person(1, points, box, (50.0, 50.0), 1.0)
  full = {pid: (10.0 * pid, 100.0, True) for pid in range(16)}
  no_ankles = {pid: v for pid, v in full.items() if pid not in (0, 5)}
  gt_images = [
      mpii_mat.ImageAnnotation(1, 'a.jpg', [rect(full), rect(no_ankles)]),
      mpii_mat.ImageAnnotation(2, 'b.jpg', [rect(full), rect({}), rect(full, None), rect(full)]),
  ]
  moved = lambda pts, by: {pid: (x + by.get(pid, 0.0), y, v) for pid, (x, y, v) in pts.items()}
  pred_images = [
      # a.jpg: person 1 with r_wrist (10) 20 px off; person 2 exact, ankles predicted anyway.
      mpii_mat.ImageAnnotation(1, 'a.jpg', [rect(moved(full, {10: 20.0})), rect(full)]),
      # b.jpg: person 1 without its l_wrist (15); person 2 has no ground-truth points; person 3 no
      # head box; person 4 not predicted.
      mpii_mat.ImageAnnotation(2, 'b.jpg', [
          rect({k: v for k, v in full.items() if k != 15}), rect(full), rect(full)]),
  ]
  gt, pred = tmp_path / 'gt.mat', tmp_path / 'pred.mat'
  mpii_mat.write_release(gt, gt_images)
  mpii_mat.write_release(pred, pred_images, top='annolist')
  res = mpii_results.score(str(gt), str(pred))
  assert res['num_people'] == 3
  assert res['left_out'] == {mpii_results.NO_POINTS: 1, mpii_results.NO_HEAD_BOX: 1,
                             mpii_results.NO_PREDICTION: 1}
  row = res['table']['row']
  # Scored parts without pelvis and thorax: 14 + 12 + 14 = 40 labelled; wrong: r_wrist of a/1 and
  # the missing l_wrist of b/1.
  assert row['Mean'] == pytest.approx(38 / 40)
  assert row['Wrist'] == pytest.approx((2 / 3 + 2 / 3) / 2)
  assert row['Ankle'] == 1.0                       # a/2's ankles are unlabelled: not counted
  assert res['table']['per_part']['r_ankle'] == 1.0

  # Images matched by name when the files list different numbers of images.
  only_b = tmp_path / 'only_b.mat'
  mpii_mat.write_release(only_b, pred_images[1:], top='annolist')
  res = mpii_results.score(str(gt), str(only_b))
  assert res['num_people'] == 1 and res['table']['row']['Wrist'] == pytest.approx(0.5)
  unknown = tmp_path / 'unknown.mat'
  mpii_mat.write_release(unknown, [mpii_mat.ImageAnnotation(1, 'c.jpg', [rect(full)])],
                         top='annolist')
  with pytest.raises(ValueError, match="not in .*gt.mat.*'c.jpg'"):
    mpii_results.score(str(gt), str(unknown))


def test_nothing_to_score_is_an_error(tmp_path):
  gt, pred = tmp_path / 'gt.mat', tmp_path / 'pred.mat'
  person = mpii_mat.Person(1, {0: (1.0, 1.0, True)}, (0, 0, 10, 10), (5.0, 5.0), 1.0)
  mpii_mat.write_release(gt, [mpii_mat.ImageAnnotation(1, 'a.jpg', [person])])
  mpii_mat.write_release(pred, [{'name': 'a.jpg', 'annorect': []}], top='annolist')
  with pytest.raises(ValueError, match='No person .* could be scored'):
    mpii_results.score(str(gt), str(pred))


def test_command_line_scoring(tmp_path):
  records = _sample()
  gt, pred = tmp_path / 'gt.mat', tmp_path / 'pred.mat'
  mpii_mat.write_release(gt, mpii_mat.images_from_people(records))
  # Everything 0.3 head sizes off along x: right at 0.5, wrong at 0.1.
  heads = np.array([features.head_size(im.people[0].head_box)
                    for im in mpii_mat.images_from_people(records)])
  kp = _cpm14_predictions(records, 0.0)
  kp[..., 0] += 0.3 * heads[:, None]
  mpii_mat.write_release(pred, mpii_results.prediction_images(
      [r['image'] for r in records], kp, 'cpm14'), top='annolist')
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', f'--annotations={gt}',
                        f'--predictions={pred}', '--json'], env=env, capture_output=True,
                       text=True, timeout=300, check=True).stdout
  res = json.loads(out)
  assert res['num_people'] == 5 and len(res['files']) == 1
  table = res['files'][0]['table']
  assert table['row']['Mean'] == 1.0 and table['row']['Mean@0.1'] == 0.0
  with pytest.raises(FileNotFoundError, match='missing.mat'):
    mpii_results.score(str(gt), str(tmp_path / 'missing.mat'))
