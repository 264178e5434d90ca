"""The ``lsp`` and ``lsp_extended`` builders on official-format fixtures (joints.mat 3 x 14 x N in
a zip; 14 x 3 x N in an extracted folder), real LSP photos and marker images."""
from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import lsp
from posemachines.data import manual
from posemachines.data import pipeline
from tests import marker
from tests.conftest import tiny_config

PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'photos')
S = skeleton.LSP
# A person facing the camera in a 200 x 300 image (LSP order); the right wrist is in front.
PERSON = np.array([[80, 280], [85, 220], [90, 160], [110, 160], [115, 220], [120, 280],
                   [100, 130], [70, 120], [85, 80], [115, 80], [130, 120], [140, 160],
                   [100, 70], [100, 30]], np.float64)
L_ELBOW, HEAD_TOP, R_WRIST = S.index('l_elbow'), S.index('head_top'), S.index('r_wrist')


def _photo(name):
  with open(os.path.join(PHOTOS, name), 'rb') as f:
    return f.read()


def _fitted(width, height):
  return PERSON * [width / 200, height / 300]


def _lsp_fixture(folder):
  """lsp_dataset.zip with all 2,000 people; images only for people 1-3 (train) and 1001-1002
  (test), the others are missing."""
  marker_png = marker.marker_image(200, 300, [PERSON[R_WRIST]])
  joints = np.zeros((2000, 14, 3))
  joints[:, :, :2] = _fitted(133, 188)         # im1640.jpg is 133 x 188
  joints[0, :, :2] = PERSON
  joints[0, L_ELBOW, 2] = 1                     # occluded
  joints[1, :, :2] = _fitted(76, 193)          # im1630.jpg is 76 x 193
  joints[1, HEAD_TOP] = (-1, -1, 0)            # no label
  joints[2, :, :2] = PERSON
  joints[2, S.index('l_shoulder'), :2] = joints[2, S.index('r_hip'), :2]  # no torso
  path = os.path.join(folder, 'manual', 'lsp_dataset.zip')
  os.makedirs(os.path.dirname(path))
  mat = os.path.join(folder, 'joints.mat')
  scipy.io.savemat(mat, {'joints': joints.transpose(2, 1, 0)})  # 3 x 14 x N
  with zipfile.ZipFile(path, 'w') as z:
    z.write(mat, 'joints.mat')
    z.writestr('images/im0001.jpg', marker_png)  # a PNG with the wrong extension: re-encoded
    z.writestr('images/im0002.jpg', _photo('im1630.jpg'))
    z.writestr('images/im0003.jpg', _photo('im1630.jpg'))
    z.writestr('images/im1001.jpg', _photo('im1640.jpg'))
    z.writestr('images/im1002.jpg', _photo('im1640.jpg')[:500])
  return joints


def _lspet_fixture(folder):
  """An extracted lspet_dataset/ folder in the manual directory (flags: 1 = visible)."""
  root = os.path.join(folder, 'manual', 'lspet_dataset')
  os.makedirs(os.path.join(root, 'images'))
  joints = np.zeros((3, 14, 3))
  joints[0, :, :2] = PERSON + [300, 100]       # not centred in a 600 x 500 image
  joints[0, :, 2] = 1
  joints[0, L_ELBOW, 2] = 0                    # occluded
  joints[1, :, :2] = _fitted(61, 166)          # im1658.jpg is 61 x 166
  joints[1, :, 2] = 1
  scipy.io.savemat(os.path.join(root, 'joints.mat'), {'joints': joints.transpose(1, 2, 0)})
  with open(os.path.join(root, 'images', 'im00001.jpg'), 'wb') as f:
    f.write(marker.marker_image(600, 500, [PERSON[R_WRIST] + [300, 100]], fmt='JPEG'))
  shutil.copy(os.path.join(PHOTOS, 'im1658.jpg'), os.path.join(root, 'images', 'im00002.jpg'))
  shutil.copy(os.path.join(PHOTOS, 'im1658.jpg'), os.path.join(root, 'images', 'im00003.jpg'))
  return joints


def _read(b, split):
  return {int(ex['image_id'].decode()[2:-4]): ex for ex in tfds.as_numpy(
      b.as_dataset(split=split, decoders={'image': tfds.decode.SkipDecoding()}))}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('leeds'))
  _lsp_fixture(folder)
  _lspet_fixture(folder)
  data_dir, manual_dir = os.path.join(folder, 'tfds'), os.path.join(folder, 'manual')
  b = lsp.builder('lsp', data_dir, manual_dir)
  e = lsp.builder('lsp_extended', data_dir, manual_dir)
  return {'lsp': b, 'lspet': e, 'data_dir': data_dir, 'manual_dir': manual_dir,
          'train': _read(b, 'train'), 'test': _read(b, 'test'), 'ext': _read(e, 'train')}


def test_lsp_labels_splits_and_normalisers(prepared):
  train, test = prepared['train'], prepared['test']
  assert sorted(train) == [1, 2] and sorted(test) == [1001]
  one, two = train[1], train[2]
  np.testing.assert_allclose(one['joints'], PERSON)
  assert one['joints_annotated'].all()
  # LSP's flag 1 means occluded: only the left elbow is not visible.
  assert np.flatnonzero(~one['joints_visible']).tolist() == [L_ELBOW]
  assert not two['joints_annotated'][HEAD_TOP] and two['joints_annotated'].sum() == 13
  for ex, (w, h) in ((one, (200, 300)), (two, (76, 193)), (test[1001], (133, 188))):
    np.testing.assert_allclose(ex['center'], [w / 2, h / 2])  # LSP: the image centre
  # Torso size: left shoulder to right hip.
  assert one['norm'] == pytest.approx(np.hypot(115 - 90, 80 - 160))
  assert not one['head_box'].any()
  # Test people: scale from the image height, as the release tested.
  assert test[1001]['scale'] == pytest.approx(lsp.image_scale(188))
  assert lsp.image_scale(368 * 0.8) == pytest.approx(41 / 35)
  # Training people: the normalised person is a plausible size in the 368 crop.
  for ex in (one, two):
    height = np.ptp(ex['joints'][ex['joints_annotated'], 1]) * (41 / 35) / ex['scale']
    assert 150 < height <= 368 - 64 + 1e-3, height


def test_lsp_report_counts_bad_input(prepared):
  report = manual.skip_report(prepared['lsp'])
  assert report.count(lsp.NO_TORSO) == 1
  assert report.count('corrupt image') == 1 and report.count('missing image') == 1995
  assert report.count(lsp.UNLABELLED) == 1
  assert report.num_kept == 3
  b = prepared['lsp']
  assert b.info.metadata['skeleton'] == 'lsp' and b.info.metadata['metric'] == 'pck'


def test_lsp_extended_flags_mean_visible(prepared):
  ext = prepared['ext']
  assert sorted(ext) == [1, 2]
  one = ext[1]
  assert np.flatnonzero(~one['joints_visible']).tolist() == [L_ELBOW]
  # The centre: the middle of the visible joints' box (not the image centre).
  visible = (PERSON + [300, 100])[np.arange(14) != L_ELBOW]
  np.testing.assert_allclose(one['center'], (visible.min(0) + visible.max(0)) / 2)
  report = manual.skip_report(prepared['lspet'])
  assert report.count(lsp.NO_KEYPOINTS) == 1 and report.num_kept == 2


def test_joint_scale_follows_the_release_rule():
  visible = np.ones(14, bool)
  ratios = np.ones(len(lsp.LIMBS))
  # Every limb 70 px long: 70 / 35 = scale 2, unless the joints must be squeezed to fit.
  joints = np.zeros((14, 2))
  joints[:, 1] = np.arange(14) * 10.0  # a 130 px tall column
  lengths, _ = lsp.limb_lengths(joints, visible)
  ratios = lengths / 70.0
  scale, squeezed = lsp.joint_scale(joints, visible, ratios)
  assert scale == pytest.approx(2.0) and not squeezed
  tall = joints * [1, 5]  # 650 px tall: resized at most to 304 px
  scale, squeezed = lsp.joint_scale(tall, visible, ratios * 5)
  assert squeezed and 650 * (41 / 35) / scale == pytest.approx(368 - 64)
  assert lsp.joint_scale(joints, np.zeros(14, bool), ratios) == (None, False)


@pytest.mark.parametrize('which', ['train', 'ext'])
def test_augmented_keypoints_land_on_the_marker(prepared, which):
  raw = next(iter(tfds.as_numpy(
      (prepared['lsp'] if which == 'train' else prepared['lspet']).as_dataset(
          split='train', decoders={'image': tfds.decode.SkipDecoding()}).filter(
              lambda ex: ex['image_id'] == 'im0001.jpg' or ex['image_id'] == 'im00001.jpg'))))
  raw = {k: v for k, v in raw.items() if k not in ('image_id', 'head_box')}
  flips = marker.check_marker_lands(raw, 'lsp', 'r_wrist', indices=range(6))
  assert flips == {True, False}


def test_wrong_joints_layout_raises_naming_the_file(tmp_path):
  (tmp_path / 'manual' / 'lsp').mkdir(parents=True)
  scipy.io.savemat(tmp_path / 'manual' / 'lsp' / 'joints.mat', {'joints': np.zeros((2, 14, 5))})
  with pytest.raises(ValueError, match=r'joints.mat: joints have shape \(2, 14, 5\)'):
    lsp.builder('lsp', str(tmp_path / 'tfds'), str(tmp_path / 'manual'))


def _batches(config, start, n):
  it = iter(pipeline.as_numpy(pipeline.train_dataset(config, start_step=start)))
  return [next(it) for _ in range(n)]


def test_mixture_is_deterministic_resumes_and_converts_parts(prepared):
  mix = lambda **kw: tiny_config(prepared['data_dir'], **{
      'data.dataset': 'lsp+lsp_extended', 'data.manual_dir': prepared['manual_dir'],
      'data.cache': False, 'batch_size': 2, **kw})
  full = _batches(mix(), 0, 6)
  resumed = _batches(mix(), 3, 3)
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['keypoints'], b['keypoints'])
  assert full[0]['keypoints'].shape == (2, 14, 3)  # cpm14, the model's order
  # With all the weight on LSP, the mixture is exactly LSP's own stream.
  only_lsp = _batches(mix(**{'data.mixture_weights': (1.0, 0.0)}), 0, 3)
  lsp_alone = _batches(mix(**{'data.dataset': 'lsp'}), 0, 3)
  for a, b in zip(only_lsp, lsp_alone):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['keypoints'], b['keypoints'])
  pattern = pipeline.mixture_pattern([0.25, 0.75], period=8)
  assert (pattern == 0).sum() == 2 and (pattern == 1).sum() == 6
