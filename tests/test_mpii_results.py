"""MPII .mat predictions: written, read back and scored against official-format ground truth."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from posemachines.evaluation import mpii_files as mpii_results
from posemachines.core import errors, skeleton
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
  assert res['num_people'] == 5 and res['left_out'] == {} and res['missed'] == {}
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
  assert res['num_people'] == 4
  assert res['left_out'] == {mpii_results.NO_POINTS: 1, mpii_results.NO_HEAD_BOX: 1}
  assert res['missed'] == {mpii_results.NO_PREDICTION: 1} and res['warnings'] == []
  row = res['table']['row']
  # Scored parts without pelvis and thorax: 14 + 12 + 14 + 14 = 54 labelled; wrong: r_wrist of
  # a/1, the missing l_wrist of b/1 and all 14 of b/4, which is not predicted.
  assert row['Mean'] == pytest.approx(38 / 54)
  assert row['Wrist'] == pytest.approx((2 / 4 + 2 / 4) / 2)
  assert row['Ankle'] == pytest.approx(2 / 3)       # a/2's ankles are unlabelled: not counted
  assert res['table']['per_part']['r_ankle'] == pytest.approx(2 / 3)

  # Images matched by name when the files list different images; the people of a.jpg, which the
  # predictions lack, count as wrong: 13 of 54 parts right (b/1 without its l_wrist).
  only_b = tmp_path / 'only_b.mat'
  mpii_mat.write_release(only_b, pred_images[1:], top='annolist')
  res = mpii_results.score(str(gt), str(only_b))
  assert res['num_people'] == 4
  assert res['missed'] == {mpii_results.NO_IMAGE: 2, mpii_results.NO_PREDICTION: 1}
  assert res['table']['row']['Mean'] == pytest.approx(13 / 54)
  assert res['table']['row']['Wrist'] == pytest.approx((1 / 4 + 0 / 4) / 2)
  assert res['warnings'] == [f'{only_b} lists 1 of the 2 images of {gt} (matched by name); '
                             'every person of the 1 images it lacks counts as wrong']
  unknown = tmp_path / 'unknown.mat'
  mpii_mat.write_release(unknown, [mpii_mat.ImageAnnotation(1, 'c.jpg', [rect(full)])],
                         top='annolist')
  with pytest.raises(errors.BadFile, match="1 predicted images are not in .*gt.mat.*'c.jpg'"):
    mpii_results.score(str(gt), str(unknown))


BOX = (0.0, 0.0, 30.0, 40.0)                        # head size 30
FULL = {pid: (10.0 * pid, 100.0, True) for pid in range(16)}


def _person(shift=0.0, index=1):
  return mpii_mat.Person(index, {pid: (x + shift, y, v) for pid, (x, y, v) in FULL.items()}, BOX,
                         (50.0, 50.0), 1.0)


def _write(path, images, top='RELEASE'):
  mpii_mat.write_release(path, images, top=top)
  return str(path)


def test_a_missing_person_is_a_miss(tmp_path):
  """3 people in one image; the predictions hold the first alone, exactly: 14 of 42 parts."""
  gt = _write(tmp_path / 'gt.mat', [mpii_mat.ImageAnnotation(
      1, 'a.jpg', [_person(0, 1), _person(5, 2), _person(9, 3)])])
  pred = _write(tmp_path / 'pred.mat', [mpii_mat.ImageAnnotation(1, 'a.jpg', [_person(0)])],
                'annolist')
  res = mpii_results.score(gt, pred)
  assert res['num_people'] == 3 and res['left_out'] == {}
  assert res['missed'] == {mpii_results.NO_PREDICTION: 2}
  row = res['table']['row']
  assert row['Mean'] == pytest.approx(1 / 3) and row['Mean@0.1'] == pytest.approx(1 / 3)
  assert row['Head'] == pytest.approx(1 / 3) and row['AUC'] == pytest.approx(1 / 3)
  # A person with no points counts as missing too.
  pred = _write(tmp_path / 'pred2.mat', [mpii_mat.ImageAnnotation(
      1, 'a.jpg', [_person(0), mpii_mat.Person(2, {}, None, None, None), _person(0)])],
      'annolist')
  res = mpii_results.score(gt, pred)
  assert res['missed'] == {mpii_results.NO_PREDICTION: 1}
  # Person 3 is 9 px off (right at 0.5 x 30 = 15 px, wrong at 0.1 x 30 = 3 px).
  assert res['table']['row']['Mean'] == pytest.approx(2 / 3)
  assert res['table']['row']['Mean@0.1'] == pytest.approx(1 / 3)


def _three_images():
  return [mpii_mat.ImageAnnotation(i + 1, name, [_person()]) for i, name in
          enumerate(('a.jpg', 'b.jpg', 'c.jpg'))]


def test_a_missing_image_is_a_miss(tmp_path):
  """1 of 3 images predicted, exactly: its person is right, the other two wrong."""
  gt = _write(tmp_path / 'gt.mat', _three_images())
  pred = _write(tmp_path / 'pred.mat', _three_images()[1:2], 'annolist')
  res = mpii_results.score(gt, pred)
  assert res['num_people'] == 3 and res['missed'] == {mpii_results.NO_IMAGE: 2}
  assert res['table']['row']['Mean'] == pytest.approx(1 / 3)
  assert res['warnings'] == [f'{pred} lists 1 of the 3 images of {gt} (matched by name); '
                             'every person of the 2 images it lacks counts as wrong']


def test_images_in_another_order_are_matched_by_name_with_a_warning(tmp_path):
  """Perfect predictions listed c, b, a: by name 100 (by position a/c and c/a would be wrong)."""
  images = _three_images()
  for shift, image in zip((0.0, 40.0, 80.0), images):
    image.people[0] = _person(shift)
  gt = _write(tmp_path / 'gt.mat', images)
  pred = _write(tmp_path / 'pred.mat', images[::-1], 'annolist')
  res = mpii_results.score(gt, pred)
  assert res['num_people'] == 3 and res['missed'] == {}
  assert res['table']['row']['Mean'] == 1.0
  assert res['warnings'] == [
      f"{pred}: 2 of its 3 images are not at the position of the same image in {gt} (first: "
      f"'c.jpg' at position 1, where {gt} has 'a.jpg'); images were matched by name, not by "
      'position']


def test_unnamed_images(tmp_path):
  unnamed = lambda images: [{'name': '', 'annorect': [mpii_mat.person_to_raw(p)
                                                       for p in im.people]} for im in images]
  gt = _write(tmp_path / 'gt.mat', _three_images())
  pred = _write(tmp_path / 'pred.mat', unnamed(_three_images()), 'annolist')
  with pytest.raises(errors.BadFile, match=r'images cannot be matched: .*gt.mat leaves 0 of 3 '
                                           r'images unnamed; .*pred.mat leaves 3 of 3'):
    mpii_results.score(gt, pred)
  gt = _write(tmp_path / 'gt2.mat', unnamed(_three_images()))
  res = mpii_results.score(gt, pred)
  assert res['table']['row']['Mean'] == 1.0
  assert res['warnings'] == [f'{gt} and {pred} do not name their images: matched by position']
  short = _write(tmp_path / 'short.mat', unnamed(_three_images()[:2]), 'annolist')
  with pytest.raises(errors.BadFile, match='and they list 3 and 2 images'):
    mpii_results.score(gt, short)
  twice = _write(tmp_path / 'twice.mat', _three_images()[:2] * 2, 'annolist')
  with pytest.raises(errors.BadFile, match="twice.mat lists image 'a.jpg' twice"):
    mpii_results.score(str(tmp_path / 'gt.mat'), twice)


def test_nothing_to_score(tmp_path):
  gt, pred = tmp_path / 'gt.mat', tmp_path / 'pred.mat'
  person = mpii_mat.Person(1, {0: (1.0, 1.0, True)}, (0, 0, 10, 10), (5.0, 5.0), 1.0)
  mpii_mat.write_release(gt, [mpii_mat.ImageAnnotation(1, 'a.jpg', [person])])
  mpii_mat.write_release(pred, [{'name': 'a.jpg', 'annorect': []}], top='annolist')
  res = mpii_results.score(str(gt), str(pred))
  assert res['table']['row']['Mean'] == 0.0 and res['missed'] == {mpii_results.NO_PREDICTION: 1}
  assert res['warnings'] == [f'{pred} predicts none of the 1 people of {gt}: every part counts '
                             'as wrong']
  no_box = tmp_path / 'no_box.mat'
  mpii_mat.write_release(no_box, [mpii_mat.ImageAnnotation(1, 'a.jpg', [
      mpii_mat.Person(1, {0: (1.0, 1.0, True)}, None, (5.0, 5.0), 1.0)])])
  with pytest.raises(errors.BadFile, match='No person of .*no_box.mat can be scored'):
    mpii_results.score(str(no_box), str(pred))


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


def _evaluate(*args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-m', 'posemachines.evaluate', *args], env=env,
                        capture_output=True, text=True, timeout=300)


def test_command_line_counts_every_person_and_warns(tmp_path):
  gt = _write(tmp_path / 'gt.mat', [mpii_mat.ImageAnnotation(
      1, 'a.jpg', [_person(0, 1), _person(5, 2), _person(9, 3)])] + _three_images()[1:])
  # a.jpg's first person alone, exactly; b.jpg and c.jpg listed in reverse order, exactly.
  pred = _write(tmp_path / 'pred.mat', [_three_images()[2], _three_images()[1],
                                        mpii_mat.ImageAnnotation(1, 'a.jpg', [_person(0)])],
                'annolist')
  proc = _evaluate(f'--annotations={gt}', f'--predictions={pred}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  # 3 of 5 people right: Mean 60.00.
  assert f'**MPII against {gt}, 5 test people** (PCKh@0.5, %)' in proc.stdout
  assert ('| pred | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 | 60.00 |'
          in proc.stdout)
  assert ('pred: counted as wrong: 2 of 5 people (no predicted person, or one without points)'
          in proc.stdout)
  assert (f"posemachines.evaluate: warning: {pred}: 2 of its 3 images are not at the position "
          f"of the same image in {gt} (first: 'c.jpg' at position 1, where {gt} has 'a.jpg'); "
          'images were matched by name, not by position') in proc.stderr
  unknown = _write(tmp_path / 'unknown.mat', [mpii_mat.ImageAnnotation(1, 'd.jpg', [_person()])],
                   'annolist')
  proc = _evaluate(f'--annotations={gt}', f'--predictions={unknown}')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      f"posemachines.evaluate: error: {unknown}: 1 predicted images are not in {gt} (first: "
      "'d.jpg'); is it the right ground truth?")
  proc = _evaluate(f'--annotations={gt}', f'--predictions={tmp_path / "missing.mat"}')
  assert proc.returncode == 2
  assert f'posemachines.evaluate: error: {tmp_path / "missing.mat"}: no such file' in proc.stderr
