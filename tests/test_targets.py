"""Belief-map and center-map targets, the per-stage loss and peak decoding."""
import jax.numpy as jnp
import ml_collections
import numpy as np

from posemachines.objectives import losses
from posemachines.codec import targets
from posemachines.objectives import per_model
from posemachines.evaluation import metrics
from posemachines.codec import keypoints


def test_peak_lands_on_the_keypoint_and_decodes_back_exactly():
  kp = jnp.array([[[13.3, 20.7, 1.0], [40.2, 5.1, 1.0], [3.0, 3.0, 0.0]]])
  maps = targets.belief_maps(kp, 12, 12, 4, 3.0)
  assert maps.shape == (1, 12, 12, 4)
  # Map pixel (i, j) is centred on input pixel (4 j + 1.5, 4 i + 1.5).
  i, j = np.unravel_index(np.argmax(maps[0, :, :, 0]), (12, 12))
  assert abs(4 * j + 1.5 - 13.3) <= 2 and abs(4 * i + 1.5 - 20.7) <= 2
  dec = keypoints.decode_peaks(maps, 4)
  np.testing.assert_allclose(dec[0, :2, :2], kp[0, :2, :2], atol=1e-3)


def test_no_peak_for_unannotated_or_nan_parts_and_background():
  kp = jnp.array([[[10.0, 10.0, 0.0], [jnp.nan, 5.0, 1.0], [20.0, 20.0, 1.0]]])
  maps = targets.belief_maps(kp, 8, 8, 4, 3.0)
  assert float(jnp.abs(maps[..., 0]).max()) == 0.0
  assert float(jnp.abs(maps[..., 1]).max()) == 0.0
  np.testing.assert_allclose(maps[..., 3], 1 - maps[..., :3].max(-1), atol=1e-7)
  assert np.isfinite(np.asarray(maps)).all()


def test_keypoint_outside_the_crop_gives_no_peak_inside():
  kp = jnp.array([[[500.0, -300.0, 1.0]]])
  maps = targets.belief_maps(kp, 8, 8, 4, 3.0)
  assert float(maps[..., 0].max()) < 1e-12
  np.testing.assert_allclose(maps[..., 1], 1.0)


def test_other_people_peak_only_in_stage_one():
  cfg = ml_collections.ConfigDict({'targets': {'sigma': 3.0, 'others_in_stage1': True}})
  batch = {'keypoints': jnp.array([[[8.0, 8.0, 1.0]]]),
           'others': jnp.array([[[[24.0, 24.0, 1.0]]]])}
  t = per_model.stage_targets(cfg, batch, 3, 8, 4)
  assert t.shape == (3, 1, 8, 8, 2)
  assert float(t[0, 0, 6, 6, 0]) > 0.5          # the other person's peak in stage 1
  assert float(t[1, 0, 6, 6, 0]) < 1e-3         # but not in later stages
  np.testing.assert_array_equal(t[0, 0, 1, 1], t[1, 0, 1, 1])


def test_center_map_peak():
  m = targets.center_map(jnp.array([[10.0, 5.0]]), 16, 20, 2.0)
  assert m.shape == (1, 16, 20, 1)
  assert np.unravel_index(np.argmax(m[0, :, :, 0]), (16, 20)) == (5, 10)
  assert float(m.max()) == 1.0


def test_stage_losses_match_caffe_euclidean_and_supervision_modes():
  rng = np.random.default_rng(0)
  beliefs = rng.normal(size=(3, 2, 4, 4, 5)).astype(np.float32)
  target = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
  per_stage = losses.stage_losses(jnp.asarray(beliefs), jnp.asarray(target))
  expected = [((beliefs[t] - target) ** 2).sum() / (2 * 2) for t in range(3)]
  np.testing.assert_allclose(per_stage, expected, rtol=1e-5)
  np.testing.assert_allclose(losses.total_loss(per_stage, True), sum(expected), rtol=1e-5)
  np.testing.assert_allclose(losses.total_loss(per_stage, False), expected[-1], rtol=1e-5)


def test_pck_counts_only_annotated_parts():
  dist = np.array([[1.0, 6.0, 100.0], [4.9, 5.1, 0.0]])
  annotated = np.array([[1, 1, 0], [1, 1, 1]])
  per_part, total = metrics.pck(dist, annotated, np.array([10.0, 10.0]), 0.5)
  np.testing.assert_allclose(per_part, [1.0, 0.0, 1.0])
  assert total == 3 / 5
