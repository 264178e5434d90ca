"""Rectangular crops (height x width): the warp, JPEG window decoding, model inputs, targets and
the multi-view merge work on H x W exactly as on squares."""
import numpy as np
import pytest
import tensorflow as tf

from posemachines.codec import keypoints
from posemachines.codec import targets
from posemachines.core import configs
from posemachines.core import crops
from posemachines.core import skeleton
from posemachines.data import decode
from posemachines.data import pipeline
from posemachines.evaluation import inference
from posemachines.objectives import per_model
from tests import marker

H, W, STRIDE = 64, 48, 4
SKEL = skeleton.CPM14


def test_crop_sizes_from_configs():
  c = configs.cpm_release()
  assert crops.from_config(c.data) == 368 and crops.size_hw(368) == (368, 368)
  c.data.crop_size, c.data.crop_width = 256, 192
  assert crops.from_config(c.data) == (256, 192) and crops.describe((256, 192)) == '256x192'
  c.data.crop_width = 256
  assert crops.from_config(c.data) == 256
  assert pipeline.Augment.from_config(c.data, train=False).crop_size == 256


def _raw(points, fmt):
  """An MPII-order example with one marker at the right wrist."""
  joints = np.zeros((16, 2), np.float32)
  annotated = np.zeros(16, bool)
  wrist = skeleton.MPII.index('r_wrist')
  joints[wrist], annotated[wrist] = points, True
  return {'image': marker.marker_image(200, 150, [points], fmt=fmt), 'joints': joints,
          'joints_annotated': annotated, 'joints_visible': annotated,
          'center': np.array([100.0, 75.0], np.float32), 'scale': np.float32(0.6),
          'norm': np.float32(10.0), 'others': np.zeros((0, 16, 3), np.float32)}


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_markers_land_on_their_keypoints_in_a_rectangular_crop(fmt):
  flips = marker.check_marker_lands(_raw((115, 60), fmt), 'mpii', 'r_wrist', crop=(96, 64),
                                    indices=range(6), atol=1.0)
  assert flips == {False, True}


def test_the_crop_is_h_by_w_centred_on_the_person_and_fast_decoding_agrees():
  aug = pipeline.Augment(crop_size=(H, W), target_dist=41 / 35)
  center = tf.constant([100.0, 75.0])
  fwd = pipeline.image_to_crop(aug, center, tf.constant(0.6), 1.0, 0.0, tf.constant(False),
                               tf.zeros([2]))
  np.testing.assert_allclose(pipeline.apply_affine(fwd, center).numpy(),
                             [(W - 1) / 2, (H - 1) / 2], atol=1e-4)
  # Person size follows the height: a 368-high crop would see the person 368 / H times larger.
  square = pipeline.image_to_crop(pipeline.Augment(crop_size=H, target_dist=41 / 35), center,
                                  tf.constant(0.6), 1.0, 0.0, tf.constant(False), tf.zeros([2]))
  np.testing.assert_allclose(fwd.numpy()[:, :2], square.numpy()[:, :2], rtol=1e-6)
  inv = pipeline.invert_affine(fwd)
  jpeg = marker.marker_image(200, 150, [(110, 70)], fmt='JPEG')
  fast = decode.decode_warp(tf.constant(jpeg), inv, (H, W), fast=True).numpy()
  full = decode.decode_warp(tf.constant(jpeg), inv, (H, W), fast=False).numpy()
  assert fast.shape == full.shape == (H, W, 3)
  assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2


def test_model_inputs_and_belief_targets_are_h_by_w():
  x, c = per_model.model_inputs(np.zeros((2, H, W, 3), np.uint8), (H, W), 6.0)
  assert x.shape == (2, H, W, 3) and c.shape == (2, H, W, 1)
  m = np.asarray(c[0, ..., 0])
  np.testing.assert_allclose(m, m[::-1, ::-1], atol=1e-6)    # symmetric about the crop centre
  iy, ix = np.unravel_index(np.argmax(m), m.shape)
  assert (iy, ix) in {(y, x) for y in (31, 32) for x in (23, 24)}
  batch = {'keypoints': np.array([[[10.0, 50.0, 1.0]] * 14], np.float32),
           'others': np.zeros((1, 0, 14, 3), np.float32)}
  config = configs.cpm_release()
  maps = per_model.stage_targets(config, batch, 2, (H // STRIDE, W // STRIDE), STRIDE)
  assert maps.shape == (2, 1, H // STRIDE, W // STRIDE, 15)
  peak = np.unravel_index(np.argmax(np.asarray(maps[0, 0, ..., 0])), maps.shape[2:4])
  assert peak == (12, 2)  # map pixel (i, j) is centred on crop (4 j + 1.5, 4 i + 1.5)


def _model():
  return inference.Model(forward=None, crop_size=(H, W), stride=STRIDE, parts='cpm14',
                         target_dist=41 / 35, config={}, source='test')


def test_the_multi_view_merge_of_rectangular_views_returns_known_peaks():
  center, scale = np.array([150.0, 110.0], np.float32), 1.6
  rng = np.random.RandomState(1)
  points = (center + rng.uniform([-25, -40], [25, 40], (SKEL.num_parts, 2))).astype(np.float32)
  view_list = inference.views((0.8, 1.0, 1.2), flip=True)
  aug = pipeline.Augment(crop_size=(H, W), target_dist=41 / 35)
  maps = []
  for mult, mirrored in view_list:
    a = pipeline.image_to_crop(aug, tf.constant(center), scale, mult, 0.0,
                               tf.constant(mirrored), tf.zeros([2])).numpy()
    crop = points @ a[:, :2].T + a[:, 2]
    if mirrored:
      crop = crop[SKEL.flip_permutation]
    kp = np.concatenate([crop, np.ones((len(crop), 1))], axis=1).astype(np.float32)
    maps.append(np.asarray(targets.belief_maps(kp, H // STRIDE, W // STRIDE, STRIDE, 5.0)))
  beliefs = np.stack(maps)[None, None]
  merge = inference.make_merge(_model(), view_list, (H // STRIDE, W // STRIDE))
  merged = merge(beliefs)
  assert merged.shape[2] > merged.shape[3]   # the grid is taller than wide, like the crop
  base = pipeline.invert_affine(pipeline.image_to_crop(
      aug, tf.constant(center), scale, 1.0, 0.0, tf.constant(False), tf.zeros([2]))).numpy()
  kp = keypoints.to_image(keypoints.to_image(keypoints.decode_peaks(merged, 1),
                                             merge.grid_to_crop), base)
  np.testing.assert_allclose(np.asarray(kp)[0, 0, :, :2], points, atol=1.0)
