"""Multi-scale and flip merge, tested geometrically: peaks known in image coordinates come back at
the same place from every scale, from the mirrored views, and from all of them merged."""
import numpy as np
import pytest
import tensorflow as tf

from posemachines.evaluation import inference
from posemachines.core import skeleton
from posemachines.codec import targets
from posemachines.data import pipeline
from posemachines.codec import keypoints

CROP, STRIDE = 96, 4
SKEL = skeleton.CPM14


def _model(forward=None):
  return inference.Model(forward=forward, crop_size=CROP, stride=STRIDE, parts='cpm14',
                         target_dist=41 / 35, config={}, source='test')


def _image_to_crop(center, scale, mult, mirrored):
  aug = pipeline.Augment(crop_size=CROP, target_dist=41 / 35)
  return pipeline.image_to_crop(aug, tf.constant(center, tf.float32), scale, mult, 0.0,
                                tf.constant(mirrored), tf.zeros([2])).numpy()


def _view_beliefs(points, center, scale, view_list, sigma=5.0):
  """What an ideal model sees in every view: Gaussian belief maps [1, 1, V, h, w, P+1] of
  ``points`` ([P, 2] image pixels), left and right swapped in mirrored views (as in training)."""
  perm = SKEL.flip_permutation
  maps = []
  for mult, mirrored in view_list:
    a = _image_to_crop(center, scale, mult, mirrored)
    crop = points @ a[:, :2].T + a[:, 2]
    if mirrored:
      crop = crop[perm]  # the model's channel p sees the mirror image of part perm[p]
    kp = np.concatenate([crop, np.ones((len(crop), 1))], axis=1).astype(np.float32)
    maps.append(np.asarray(targets.belief_maps(kp, CROP // STRIDE, CROP // STRIDE, STRIDE,
                                               sigma)))
  return np.stack(maps)[None, None]


def _decode(merge, beliefs, center, scale):
  kp = keypoints.decode_peaks(merge(beliefs), 1)
  base_crop_to_image = pipeline.invert_affine(
      tf.constant(_image_to_crop(center, scale, 1.0, False))).numpy()
  return np.asarray(keypoints.to_image(keypoints.to_image(kp, merge.grid_to_crop),
                                       base_crop_to_image))[0, 0]


CENTER, SCALE = (150.0, 110.0), 1.1
CROP_PX = CROP / 368 * (41 / 35) / SCALE   # crop pixels per image pixel at multiplier 1
RNG = np.random.RandomState(0)
# Parts spread over the person's box (about +-100 px around the centre at this scale).
POINTS = (np.asarray(CENTER) + RNG.uniform(-70, 70, (SKEL.num_parts, 2))).astype(np.float32)


@pytest.mark.parametrize('view', inference.views(inference.DEFAULT_SCALES, flip=True))
def test_every_single_view_returns_the_known_peaks(view):
  merge = inference.make_merge(_model(), [view], CROP // STRIDE)
  got = _decode(merge, _view_beliefs(POINTS, CENTER, SCALE, [view]), CENTER, SCALE)
  # The view's map is a Gaussian sampled once per map pixel (STRIDE crop pixels); cubic
  # resampling onto the grid and the log-parabola fit find its peak within a tenth of a map pixel
  # (measured: 0.03-0.08), mirrored views exactly as well as unmirrored ones.
  map_pixel = STRIDE / (CROP_PX * view[0])   # in image pixels
  err = np.linalg.norm(got[:, :2] - POINTS, axis=1)
  assert err.max() < 0.1 * map_pixel, (view, err.max(), map_pixel)
  # The peak height survives resampling: between 1 and the map's own samples' maximum, at least
  # exp(-(half a map pixel diagonal)^2 / 2 sigma^2) = 0.92.
  assert (got[:, 2] > 0.9).all() and (got[:, 2] < 1.01).all(), got[:, 2]


def test_all_views_merged_return_the_known_peaks_and_the_flip_is_undone():
  view_list = inference.views(inference.DEFAULT_SCALES, flip=True)
  merge = inference.make_merge(_model(), view_list, CROP // STRIDE)
  beliefs = _view_beliefs(POINTS, CENTER, SCALE, view_list)
  got = _decode(merge, beliefs, CENTER, SCALE)
  err = np.linalg.norm(got[:, :2] - POINTS, axis=1)
  assert err.max() < 0.1 * STRIDE / CROP_PX, err
  # Without swapping the mirrored views' channels back, left and right parts would be mixed:
  # the mirrored views' r_wrist channel holds the l_wrist, and the merged r_wrist has two modes.
  unswapped = inference.Merge(merge.wy, merge.wx, np.broadcast_to(np.arange(SKEL.num_parts + 1),
                                                                   merge.perm.shape),
                              merge.grid_stride, merge.offset)
  wrong = _decode(unswapped, beliefs, CENTER, SCALE)
  r = SKEL.index('r_wrist')
  assert wrong[r, 2] < 0.6 < got[r, 2]


def test_outside_a_view_parts_are_zero_and_background_one():
  # The grid covers the largest view (0.7); its corners lie outside the 1.3 view's crop.
  view_list = [(0.7, False), (1.3, False)]
  merge = inference.make_merge(_model(), view_list, CROP // STRIDE)
  beliefs = np.full((1, 1, 2, CROP // STRIDE, CROP // STRIDE, SKEL.num_parts + 1), 0.5,
                    np.float32)
  merged = np.asarray(merge(beliefs))[0, 0]
  corner = merged[0, 0]    # mean of 0.5 (inside the 0.7 view) and the fill of the 1.3 view
  np.testing.assert_allclose(corner[:-1], 0.25, atol=1e-5)
  assert corner[-1] == pytest.approx(0.75)
  middle = merged[merged.shape[0] // 2, merged.shape[1] // 2]
  np.testing.assert_allclose(middle, 0.5, atol=1e-5)  # cubic weights sum to one inside


def test_end_to_end_a_bright_spot_is_found_in_image_coordinates():
  """Real views (TF warps) through a 'model' whose belief maps are the crop's brightness."""
  # The image is larger than every view's crop (no grey padding); the spot is off the centre.
  center = np.array([350.0, 300.0])
  spot = center + [-37.3, 21.6]
  yy, xx = np.mgrid[0:600, 0:700]
  image = 255 * np.exp(-((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2) / (2 * 15.0 ** 2))
  image = np.repeat(image[..., None], 3, axis=-1).astype(np.uint8)

  def forward(crops):  # every part (and the background) peaks on the spot
    import jax.numpy as jnp
    x = crops[..., :1].astype(jnp.float32) / 255.0
    b, s = x.shape[0], x.shape[1]
    pooled = x.reshape(b, s // STRIDE, STRIDE, s // STRIDE, STRIDE, 1).mean((2, 4))
    return jnp.repeat(pooled, SKEL.num_parts + 1, axis=-1)[None]

  model = _model(forward)
  view_list = inference.views(inference.DEFAULT_SCALES, flip=True)
  fn, _ = inference.predict_fn(model, view_list)
  crops, crop_to_image = inference.view_crops(tf.constant(image), center, SCALE, model, view_list)
  kp, _ = fn(crops.numpy()[None], crop_to_image.numpy()[None])
  err = np.linalg.norm(np.asarray(kp)[0, 0, :, :2] - spot, axis=1)
  assert err.max() < 0.5, err


def test_bad_scales_are_refused():
  with pytest.raises(ValueError, match='scales must be positive'):
    inference.views((1.0, 0.0))
  with pytest.raises(ValueError, match='scales must be positive'):
    inference.views(())
