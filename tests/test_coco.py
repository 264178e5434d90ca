"""COCO keypoints: the ``coco`` builder on an official-format fixture (tests/data/coco: five real
MPII images, small, with COCO annotations derived from MPII's, and one record per messy case),
the 'coco17' part set, and the official evaluation (pycocotools' COCOeval) with rescoring and OKS
non-maximum suppression."""
from __future__ import annotations

import copy
import json
import math
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from posemachines.core import errors
from posemachines.core import skeleton
from posemachines.data import coco
from posemachines.data import manual
from posemachines.data import pipeline
from posemachines.evaluation import coco_eval

FIXTURE = os.path.join(os.path.dirname(__file__), 'data', 'coco')
ANNOTATIONS = os.path.join(FIXTURE, 'annotations', 'person_keypoints_val2017.json')
S = skeleton.COCO17
# COCO's published per-keypoint sigmas (x 10), nose to ankles.
PUBLISHED_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                             .87, .87, .89, .89]) / 10.0
THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _doc():
  with open(ANNOTATIONS) as f:
    return json.load(f)


def _read(b, split='validation'):
  return list(tfds.as_numpy(b.as_dataset(split=split,
                                         decoders={'image': tfds.decode.SkipDecoding()})))


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """The fixture's folders (annotations/, val2017/) as the manual directory."""
  folder = str(tmp_path_factory.mktemp('coco'))
  b = coco.builder(os.path.join(folder, 'tfds'), FIXTURE)
  return {'builder': b, 'examples': _read(b), 'report': manual.skip_report(b)}


def _by_id(examples):
  return {int(ex['annotation_id']): ex for ex in examples}


# ------------------------------------------------------------------------------ builder --

def test_people_carry_keypoints_visibility_boxes_and_ids(prepared):
  doc = _doc()
  anns = {a['id']: a for a in doc['annotations']}
  images = {im['id']: im for im in doc['images']}
  examples = _by_id(prepared['examples'])
  assert sorted(examples) == [1, 2, 3, 4, 5, 901, 907]
  for ann_id in (1, 2, 3, 4, 5, 901):
    ex, ann = examples[ann_id], anns[ann_id]
    kp = np.array(ann['keypoints'], np.float32).reshape(17, 3)
    np.testing.assert_array_equal(ex['joints_annotated'], kp[:, 2] > 0)
    np.testing.assert_array_equal(ex['joints_visible'], kp[:, 2] == 2)
    np.testing.assert_allclose(ex['joints'][kp[:, 2] > 0], kp[kp[:, 2] > 0, :2])
    assert (ex['joints'][kp[:, 2] == 0] == -1).all()
    image = images[ann['image_id']]
    assert ex['image_id'].decode() == image['file_name']
    assert ex['coco_image_id'] == ann['image_id'] and ex['annotation_id'] == ann_id
    x, y, w, h = ann['bbox']
    clipped = [x, y, min(x + w, image['width']) - x, min(y + h, image['height']) - y]
    np.testing.assert_allclose(ex['box'], clipped, rtol=1e-6)
    np.testing.assert_allclose(ex['center'], [x + clipped[2] / 2, y + clipped[3] / 2], rtol=1e-6)
    assert ex['scale'] == pytest.approx(max(clipped[3], clipped[2] / 0.75) * 1.25 / 200)
    assert ex['area'] == pytest.approx(ann['area'])
    assert ex['norm'] == pytest.approx(math.sqrt(ann['area']))
    with open(os.path.join(FIXTURE, 'val2017', image['file_name']), 'rb') as f:
      assert ex['image'] == f.read()  # the JPEG's own bytes
  # v = 1 (labelled, hidden): annotated, not visible; MPII has no face parts (v = 0).
  curler = examples[1]
  for part in ('l_hip', 'r_hip'):
    assert curler['joints_annotated'][S.index(part)] and not curler['joints_visible'][S.index(part)]
  assert not curler['joints_annotated'][:5].any()


def test_messy_records_are_kept_correctly_or_skipped_and_counted(prepared):
  report = prepared['report']
  expected = {coco.CROWD: 1, coco.ZERO_BOX: 1, coco.NO_KEYPOINTS: 1, coco.UNKNOWN_IMAGE: 1,
              'missing image': 1, coco.CLIPPED: 4, coco.OUTSIDE: 1, coco.BAD_VISIBILITY: 1}
  for reason, count in expected.items():
    assert report.count(reason) == count, (reason, report.format())
  assert report.num_skipped == 5 and report.num_kept == 7
  assert '000000000999.jpg' in report.format()
  edge = _by_id(prepared['examples'])[907]
  # Clipped to the image; the shoulder at x = -3 kept; the v = 3 hip dropped; v = 1 knee hidden.
  np.testing.assert_allclose(edge['box'], [0, 40, 32, 100])
  np.testing.assert_allclose(edge['center'], [16, 90])
  assert edge['scale'] == pytest.approx(100 * 1.25 / 200)
  ann = [S.index(p) for p in ('l_shoulder', 'r_shoulder', 'l_knee')]
  assert np.flatnonzero(edge['joints_annotated']).tolist() == sorted(ann)
  np.testing.assert_allclose(edge['joints'][S.index('r_shoulder')], [-3, 62])
  assert edge['joints_visible'][ann].tolist() == [True, True, False]


def test_other_people_of_an_image(prepared):
  examples = _by_id(prepared['examples'])
  a, b = examples[1], examples[901]
  assert a['others'].shape == (1, 17, 3) and b['others'].shape == (1, 17, 3)
  np.testing.assert_allclose(a['others'][0, :, :2], b['joints'])
  np.testing.assert_array_equal(a['others'][0, :, 2] > 0, b['joints_annotated'])
  assert examples[2]['others'].shape == (0, 17, 3)  # the crowd is nobody's other person


def test_metadata_and_splits(prepared):
  b = prepared['builder']
  assert b.info.metadata['skeleton'] == 'coco17' and b.info.metadata['metric'] == 'oks'
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {'validation': 7}


def test_the_official_zips_are_streamed_and_a_corrupt_image_counted(tmp_path, prepared):
  manual_dir = tmp_path / 'manual' / 'coco'
  manual_dir.mkdir(parents=True)
  with zipfile.ZipFile(manual_dir / coco.ANNOTATION_ZIP, 'w') as z:
    z.write(ANNOTATIONS, 'annotations/person_keypoints_val2017.json')
  with zipfile.ZipFile(manual_dir / 'val2017.zip', 'w') as z:
    for name in sorted(os.listdir(os.path.join(FIXTURE, 'val2017'))):
      z.write(os.path.join(FIXTURE, 'val2017', name), f'val2017/{name}')
    with open(os.path.join(FIXTURE, 'val2017', '000005808361.jpg'), 'rb') as f:
      z.writestr('val2017/000000000999.jpg', f.read()[:300])
  b = coco.builder(str(tmp_path / 'tfds'), str(tmp_path / 'manual'))
  report = manual.skip_report(b)
  assert report.count('corrupt image') == 1 and report.count('missing image') == 0
  got, want = _by_id(_read(b)), _by_id(prepared['examples'])
  assert sorted(got) == sorted(want)
  for k in got:
    for field in ('joints', 'joints_annotated', 'center', 'scale', 'box', 'image'):
      np.testing.assert_array_equal(got[k][field], want[k][field])


def test_no_annotations_says_what_to_download(tmp_path):
  (tmp_path / 'manual').mkdir()
  (tmp_path / 'manual' / 'readme.txt').write_text('nothing here')
  with pytest.raises(FileNotFoundError, match='person_keypoints_val2017.json'):
    coco.builder(str(tmp_path / 'tfds'), str(tmp_path / 'manual'))


def test_the_padded_box_fills_a_crop_with_the_top_down_target_dist():
  box = (30.0, 50.0, 40.0, 100.0)  # narrower than 3 : 4: the height sets the scale
  center, scale = coco.box_center_scale(box)
  aug = pipeline.Augment(crop_size=256, target_dist=coco.TARGET_DIST)
  fwd = pipeline.image_to_crop(aug, tf.constant(center), tf.constant(scale, tf.float32), 1.0,
                               0.0, tf.constant(False), tf.zeros([2]))
  half = 100 * 1.25 / 2
  corners = tf.constant([[50.0, 100 - half], [50.0, 100 + half]])
  # Crop pixel centres are at 0 ... 255: its edges at -0.5 and 255.5.
  np.testing.assert_allclose(pipeline.apply_affine(fwd, corners).numpy(),
                             [[127.5, -0.5], [127.5, 255.5]], atol=1e-3)
  wide_center, wide_scale = coco.box_center_scale((0, 0, 150, 100))  # wider: the width sets it
  assert wide_scale == pytest.approx(150 / 0.75 * 1.25 / 200)
  np.testing.assert_allclose(wide_center, [75, 50])
  assert coco.box_center_scale(box, aspect_ratio=1.0)[1] == pytest.approx(scale)


# ---------------------------------------------------------------------------- skeleton --

def test_coco_skeleton_flips_and_converts():
  assert S.num_parts == 17 and S.parts[0] == 'nose' and S.parts[-1] == 'r_ankle'
  assert coco.KEYPOINT_NAMES == tuple(_doc()['categories'][0]['keypoints'])
  perm = S.flip_permutation
  for a, b in (('l_eye', 'r_eye'), ('l_ear', 'r_ear'), ('l_wrist', 'r_wrist'),
               ('l_ankle', 'r_ankle')):
    assert perm[S.index(a)] == S.index(b) and perm[S.index(b)] == S.index(a)
  assert perm[S.index('nose')] == S.index('nose')
  assert sorted(perm.tolist()) == list(range(17))
  assert len(S.limbs) == 19 and ('l_hip', 'r_hip') in S.limbs
  to_mpii = skeleton.conversion('coco17', 'mpii')
  for part in ('r_ankle', 'l_wrist', 'r_shoulder', 'l_hip'):
    assert to_mpii[skeleton.MPII.index(part)] == S.index(part)
  for part in ('head_top', 'neck', 'thorax', 'pelvis'):
    assert to_mpii[skeleton.MPII.index(part)] == -1
  from_mpii = skeleton.conversion('mpii', 'coco17')
  assert (from_mpii[:5] == -1).all() and (from_mpii[5:] >= 0).all()
  assert skeleton.conversion('flic', 'coco17')[S.index('nose')] == skeleton.FLIC.index('nose')


def test_a_flip_in_the_pipeline_swaps_cocos_left_and_right(prepared):
  ex = {k: tf.constant(v) for k, v in _by_id(prepared['examples'])[1].items()
        if k in ('image', 'joints', 'joints_annotated', 'joints_visible', 'center', 'scale',
                 'norm', 'others')}
  plain = pipeline.Augment(crop_size=64, target_dist=coco.TARGET_DIST)
  flipping = pipeline.Augment(crop_size=64, target_dist=coco.TARGET_DIST, flip=True)
  index = next(i for i in range(20) if bool(pipeline.affine_params(
      flipping, pipeline.example_seed(0, 0, i))[2]))
  run = lambda aug: pipeline.make_transform_fn(aug, 'coco17', 'coco17', seed=0, max_others=1,
                                               train=True)(tf.constant(index, tf.int64),
                                                           tf.constant(0, tf.int64), ex)
  a, b = run(plain), run(flipping)
  perm = S.flip_permutation
  kp, flipped = a['keypoints'].numpy(), b['keypoints'].numpy()
  np.testing.assert_allclose(flipped[:, 0], 63 - kp[perm, 0], atol=1e-3)
  np.testing.assert_allclose(flipped[:, 1:], kp[perm, 1:], atol=1e-3)
  np.testing.assert_array_equal(b['visible'].numpy(), a['visible'].numpy()[perm])
  hips = [S.index('l_hip'), S.index('r_hip')]
  assert not b['visible'].numpy()[hips].any()       # both hidden either way
  l_wrist, r_wrist = S.index('l_wrist'), S.index('r_wrist')
  assert flipped[l_wrist, 0] == pytest.approx(63 - kp[r_wrist, 0], abs=1e-3)
  np.testing.assert_allclose(b['image'].numpy().astype(float),
                             a['image'].numpy()[:, ::-1].astype(float), atol=2)


# -------------------------------------------------------------------------- evaluation --

def _ground_truth_results(doc):
  images = {im['id'] for im in doc['images']}
  return [{'image_id': a['image_id'], 'category_id': 1, 'keypoints': a['keypoints'], 'score': 1.0}
          for a in doc['annotations']
          if not a['iscrowd'] and a['num_keypoints'] > 0 and a['image_id'] in images]


def test_sigmas_are_cocos():
  np.testing.assert_allclose(coco_eval.SIGMAS, PUBLISHED_SIGMAS)


def test_ground_truth_fed_back_scores_ap_1(tmp_path):
  doc = _doc()
  path = str(tmp_path / 'results.json')
  coco_eval.write_results(path, _ground_truth_results(doc))
  stats = coco_eval.score(ANNOTATIONS, path)
  assert set(stats) == set(coco_eval.STAT_NAMES)
  for name, value in stats.items():
    assert value == pytest.approx(1.0), (name, stats)
  # The same through rescoring and OKS NMS (labelled parts confidence 1, the others 0).
  kps, ids, areas = [], [], []
  for r in _ground_truth_results(doc):
    kp = np.array(r['keypoints'], np.float64).reshape(17, 3)
    kp[:, 2] = kp[:, 2] > 0
    kps.append(kp)
    ids.append(r['image_id'])
    areas.append(1000.0)
  res = coco_eval.results(np.stack(kps), ids, areas=areas)
  assert len(res) == len(kps) and all(r['score'] == 1.0 for r in res)
  assert coco_eval.score(ANNOTATIONS, res)['AP'] == pytest.approx(1.0)


def _one_image(people, area=4000.0):
  """An annotation file of one 640 x 480 image with ``people`` ([17, 3] arrays)."""
  anns = []
  for k, kp in enumerate(people):
    x, y = kp[kp[:, 2] > 0, :2].min(0)
    anns.append({'id': k + 1, 'image_id': 7, 'category_id': 1, 'iscrowd': 0, 'area': area,
                 'bbox': [float(x), float(y), 60.0, 120.0], 'keypoints': kp.reshape(-1).tolist(),
                 'num_keypoints': int((kp[:, 2] > 0).sum())})
  return {'images': [{'id': 7, 'file_name': 'a.jpg', 'width': 640, 'height': 480}],
          'annotations': anns, 'categories': [{'id': 1, 'name': 'person'}]}


def _person(dx=0.0):
  """A standing person: body parts v = 2, the left wrist v = 1, face unlabelled."""
  kp = np.zeros((17, 3))
  body = {'l_shoulder': (120, 100), 'r_shoulder': (80, 100), 'l_elbow': (130, 140),
          'r_elbow': (70, 140), 'l_wrist': (135, 180), 'r_wrist': (65, 180), 'l_hip': (112, 190),
          'r_hip': (88, 190), 'l_knee': (114, 250), 'r_knee': (86, 250), 'l_ankle': (115, 310),
          'r_ankle': (85, 310)}
  for part, (x, y) in body.items():
    kp[S.index(part)] = (x + dx, y, 2)
  kp[S.index('l_wrist'), 2] = 1
  return kp


def _hand_oks(pred, truth, area):
  """OKS by hand: exp(-d^2 / (2 s^2 k^2)) with s^2 = area, k = 2 sigma, over labelled parts."""
  total, n = 0.0, 0
  for i in range(17):
    if truth[i, 2] > 0:
      d2 = (pred[i, 0] - truth[i, 0]) ** 2 + (pred[i, 1] - truth[i, 1]) ** 2
      total += math.exp(-d2 / (2 * area * (2 * PUBLISHED_SIGMAS[i]) ** 2))
      n += 1
  return total / n


def _result(kp, score):
  out = kp.copy()
  out[:, 2] = 1.0
  return {'image_id': 7, 'category_id': 1, 'keypoints': out.reshape(-1).tolist(), 'score': score}


def test_a_hand_computed_oks_gives_the_expected_ap():
  truth = _person()
  pred = truth.copy()
  pred[truth[:, 2] > 0, :2] += (3.0, 4.0)   # every labelled part 5 px off
  pred[S.index('l_wrist'), :2] += (2.0, 0.0)
  pred[S.index('nose'), :2] = (400, 400)    # unlabelled in the truth: does not count
  oks = _hand_oks(pred, truth, 4000.0)
  assert 0.86 < oks < 0.89  # between the thresholds 0.85 and 0.9
  np.testing.assert_allclose(coco_eval.oks(pred[None], truth[None], [4000.0],
                                           truth[None, :, 2] > 0), [[oks]])
  stats = coco_eval.score(_one_image([truth]), [_result(pred, 0.9)])
  expected = float((oks >= THRESHOLDS).mean())   # one person: matched at each threshold <= OKS
  assert expected == pytest.approx(0.8)
  assert stats['AP'] == pytest.approx(expected) and stats['AR'] == pytest.approx(expected)
  assert stats['AP50'] == pytest.approx(1.0) and stats['AP75'] == pytest.approx(1.0)
  assert stats['APm'] == pytest.approx(expected) and stats['APl'] == -1  # area 4000: medium


def test_two_people_a_worse_match_and_the_precision_recall_curve():
  a, b = _person(), _person(dx=300.0)
  pa, pb = a.copy(), b.copy()
  pa[a[:, 2] > 0, :2] += (3.0, 4.0)
  pb[b[:, 2] > 0, :2] += (6.0, 8.0)           # 10 px off
  oks_a, oks_b = _hand_oks(pa, a, 4000.0), _hand_oks(pb, b, 4000.0)
  assert 0.86 < oks_a < 0.89 and 0.6 < oks_b < 0.65
  assert _hand_oks(pa, b, 4000.0) < 0.01 and _hand_oks(pb, a, 4000.0) < 0.01
  stats = coco_eval.score(_one_image([a, b]), [_result(pa, 0.9), _result(pb, 0.8)])
  # Both matched where t <= OKS_b (AP 1); only the first-ranked where OKS_b < t <= OKS_a:
  # precision 1 up to recall 1/2, so 51 of COCO's 101 recall points; none above OKS_a.
  both = (oks_b >= THRESHOLDS).sum()
  first = ((oks_a >= THRESHOLDS) & (oks_b < THRESHOLDS)).sum()
  assert (both, first) == (3, 5)
  assert stats['AP'] == pytest.approx((both + first * 51 / 101) / 10)
  assert stats['AR'] == pytest.approx((both + first * 0.5) / 10)


def test_rescoring_and_oks_nms():
  kp = np.zeros((3, 17, 3))
  kp[0] = _person()
  kp[0, :, 2] = np.linspace(0.0, 0.9, 17)
  kp[1] = kp[0]
  kp[1, :, 0] += 1.0                            # a near duplicate
  kp[2] = _person(dx=300.0)
  kp[2, :, 2] = 0.1                             # nothing above 0.2
  box = np.array([0.9, 0.8, 0.7])
  conf = kp[0, :, 2]
  want = 0.9 * conf[conf > 0.2].mean()
  scores = coco_eval.rescore(kp, box)
  assert scores[0] == pytest.approx(want) and scores[2] == 0
  areas = np.full(3, 4000.0)
  assert coco_eval.oks_nms(kp, scores, areas).tolist() == [0, 2]
  assert coco_eval.oks_nms(kp, scores, areas, threshold=1.0).tolist() == [0, 1, 2]
  res = coco_eval.results(kp, [7, 7, 8], box, areas)
  assert [r['image_id'] for r in res] == [7, 8]
  assert len(coco_eval.results(kp, [7, 8, 8], box, areas)) == 3  # NMS is per image
  res = coco_eval.results(kp, [7, 7, 8], box, areas, rescore_threshold=None, nms_threshold=None)
  assert [r['score'] for r in res] == pytest.approx(box.tolist())


def test_predictions_in_another_part_order_are_converted():
  kp = np.arange(14 * 3, dtype=np.float64).reshape(14, 3) + 1
  out = coco_eval.to_coco17(kp, 'cpm14')
  cpm = skeleton.CPM14
  assert (out[S.index('nose')] == 0).all() and (out[S.index('l_ear')] == 0).all()
  np.testing.assert_array_equal(out[S.index('r_knee')], kp[cpm.index('r_knee')])


def test_detections_give_people_and_duplicates_are_suppressed(tmp_path):
  doc = _doc()
  gt = coco_eval.ground_truth(ANNOTATIONS)
  truth = {a['id']: a for a in doc['annotations'] if a['id'] in (1, 2, 3, 4, 5, 901, 903, 905, 907)}
  dets = []
  for ann_id, a in truth.items():
    box = list(a['bbox']) if a['bbox'][2] > 0 else [45.0, 55.0, 10.0, 50.0]
    dets.append({'image_id': a['image_id'], 'category_id': 1, 'bbox': box, 'score': 0.95,
                 'ann': ann_id})
    dets.append({'image_id': a['image_id'], 'category_id': 1,
                 'bbox': [box[0] + 2, box[1] + 2, box[2], box[3]], 'score': 0.5, 'ann': ann_id})
  dets.append({'image_id': 5808361, 'category_id': 3, 'bbox': [0, 0, 50, 50], 'score': 0.99})
  dets.append({'image_id': 5808361, 'category_id': 1, 'bbox': [0, 0, 0, 50], 'score': 0.99})
  dets.append({'image_id': 5808361, 'category_id': 1, 'bbox': [10, 10, 40, 40], 'score': 0.01})
  path = tmp_path / 'detections.json'
  path.write_text(json.dumps(dets))
  loaded = coco_eval.load_detections(str(path), min_score=0.05)
  assert len(loaded) == 2 * len(truth) + 1   # not the car, not the low score
  people = coco_eval.detection_people(loaded, gt)
  assert len(people) == 2 * len(truth)       # not the zero-size box
  first = people[0]
  center, scale = coco.box_center_scale(coco.clip_box(truth[1]['bbox'], 320, 180))
  np.testing.assert_allclose(first.center, center)
  assert first.scale == pytest.approx(scale) and first.file_name == '000005808361.jpg'
  # An oracle predicts each detection's person exactly; the shifted duplicates are suppressed.
  owners = [d['ann'] for d in dets if d.get('ann')]
  kps = np.stack([np.array(truth[k]['keypoints'], np.float64).reshape(17, 3) for k in owners])
  kps[..., 2] = 1.0
  res = coco_eval.results(kps, [p.image_id for p in people], [p.score for p in people],
                          [p.area for p in people])
  assert len(res) == len(truth)
  out = str(tmp_path / 'keypoints.json')
  coco_eval.write_results(out, res)
  assert coco_eval.score(ANNOTATIONS, out)['AP'] == pytest.approx(1.0)


def test_an_empty_results_file_scores_zero():
  stats = coco_eval.score(ANNOTATIONS, [])
  assert stats['AP'] == 0 and stats['AR'] == 0


@pytest.mark.parametrize('content, message', [
    (None, 'no such'), ('{not json', 'not a readable JSON'), ('{"a": 1}', 'is a JSON list'),
    ('[{"image_id": 5808361, "keypoints": [1, 2], "score": 1}]', 'result 0 is not'),
    ('[{"image_id": 1, "keypoints": %s, "score": 1}]' % json.dumps([0] * 51), 'image 1'),
])
def test_bad_results_files_are_named_in_one_line(tmp_path, content, message):
  path = tmp_path / 'bad.json'
  if content is not None:
    path.write_text(content)
  kind = errors.MissingData if content is None else errors.BadFile
  with pytest.raises(errors.UserError, match=message) as e:
    coco_eval.score(ANNOTATIONS, str(path))
  assert isinstance(e.value, kind)
  assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_a_bad_annotation_file_is_named(tmp_path):
  doc = _doc()
  del doc['annotations'][0]['num_keypoints']
  path = tmp_path / 'gt.json'
  path.write_text(json.dumps(doc))
  with pytest.raises(errors.BadFile, match='gt.json'):
    coco_eval.score(str(path), [])
  with pytest.raises(ValueError, match='person_keypoints'):
    coco.read_annotations(b'[]', 'person_keypoints_val2017.json')
  bad = copy.deepcopy(_doc())
  bad['categories'][0]['keypoints'] = bad['categories'][0]['keypoints'][::-1]
  with pytest.raises(ValueError, match='not COCO'):
    coco.read_annotations(json.dumps(bad).encode(), 'x.json')


def test_predict_turns_a_box_into_the_builders_centre_and_scale_for_a_coco_model():
  from posemachines.evaluation import inference
  from posemachines.tools import predict
  model = lambda data: inference.Model(forward=None, crop_size=(256, 192), stride=8,
                                       parts='coco17', target_dist=coco.TARGET_DIST,
                                       config={'data': data}, source='test')
  coco_model = model({'dataset': 'coco', 'eval_dataset': '', 'coco_aspect_ratio': 0.75,
                      'coco_padding': 1.25})
  center, scale, how = predict.person_location((180, 320, 3), {'box': [10, 20, 130, 100]}, 'a',
                                               predict.box_location(coco_model))
  want_center, want_scale = coco.box_center_scale((10, 20, 120, 80))
  np.testing.assert_allclose(center, want_center)
  assert scale == pytest.approx(want_scale) == 120 / 0.75 * 1.25 / 200
  assert predict.box_location(model({'dataset': 'mpii', 'eval_dataset': ''})) is None


def _experiment(name, *args):
  import importlib.util
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'experiments', f'{name}.py')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*args)


def test_coco_configs_are_rectangular_top_down_crops_of_the_released_cpm():
  from posemachines.core import crops
  from posemachines.tools import abstract
  from posemachines import models
  c = _experiment('cpm_coco')
  assert crops.from_config(c.data) == (256, 192) and c.data.parts == 'coco17'
  assert c.data.target_dist == pytest.approx(coco.TARGET_DIST)
  assert c.data.coco_aspect_ratio == pytest.approx(192 / 256)
  assert crops.from_config(_experiment('cpm_coco', '384x288').data) == (384, 288)
  # The MPII model's 31,219,866 with 18 outputs instead of 15: stage 1's last 1x1 (512 inputs)
  # and, in each of stages 2-6, the first 11x11 (3 more input channels) and the last 1x1.
  extra = 3 * 513 + 5 * (121 * 3 * 128 + 3 * 129)
  assert abstract.count_parameters(models.build(c), (256, 192)) == 31_219_866 + extra
  r = _experiment('recurrent_coco')
  assert crops.from_config(r.data) == (256, 192) and r.model.name == 'recurrent'
  assert len(skeleton.get(r.data.parts).limbs) == 19
