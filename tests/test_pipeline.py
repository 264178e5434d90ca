"""The host pipeline: the warp moves keypoints exactly as pixels, flips swap sides, and the
stream is a deterministic function of (seed, step)."""
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from posemachines.core import skeleton
from posemachines.data import pipeline
from tests.conftest import tiny_config


def _example(marker_xy, size=(150, 200)):
  h, w = size
  img = np.full((h, w, 3), 40, np.uint8)
  x, y = marker_xy
  img[y - 1:y + 2, x - 1:x + 2] = 255
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format='PNG')
  joints = np.zeros((16, 2), np.float32)
  annotated = np.zeros(16, bool)
  wrist = skeleton.MPII.index('r_wrist')
  joints[wrist] = marker_xy
  annotated[wrist] = True
  return {'image': tf.constant(buf.getvalue()), 'joints': tf.constant(joints),
          'joints_annotated': tf.constant(annotated), 'joints_visible': tf.constant(annotated),
          'center': tf.constant([100.0, 75.0]), 'scale': tf.constant(0.6),
          'norm': tf.constant(10.0), 'others': tf.zeros([0, 16, 3])}


@pytest.mark.parametrize('index', range(6))
def test_marker_lands_on_the_moved_keypoint(index):
  aug = pipeline.Augment(crop_size=96, target_dist=41 / 35, scale_min=0.7, scale_max=1.3,
                         max_rotation=40.0, flip=True, max_shift=10.0)
  fn = pipeline.make_transform_fn(aug, 'mpii', 'cpm14', seed=3, max_others=1, train=True)
  out = fn(tf.constant(index, tf.int64), tf.constant(0, tf.int64), _example((120, 60)))
  crop = out['image'].numpy()[..., 0].astype(float)
  kp = out['keypoints'].numpy()
  marked = np.flatnonzero(kp[:, 2])
  assert len(marked) == 1
  name = skeleton.CPM14.parts[marked[0]]
  assert name in ('r_wrist', 'l_wrist')  # l_wrist after a flip: the person's sides swap
  ys, xs = np.nonzero(crop > 140)  # above the grey (128) padding
  weights = crop[ys, xs] - 40
  centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
  np.testing.assert_allclose(centre, kp[marked[0], :2], atol=0.75)


def test_flip_swaps_left_and_right_parts():
  aug = pipeline.Augment(crop_size=96, target_dist=41 / 35, flip=True)
  fn = pipeline.make_transform_fn(aug, 'mpii', 'cpm14', seed=0, max_others=1, train=True)
  names = set()
  for i in range(12):
    kp = fn(tf.constant(i, tf.int64), tf.constant(0, tf.int64), _example((120, 60)))['keypoints']
    names.add(skeleton.CPM14.parts[int(np.flatnonzero(kp.numpy()[:, 2])[0])])
  assert names == {'r_wrist', 'l_wrist'}


def test_eval_transform_inverts_to_image_coordinates():
  aug = pipeline.Augment(crop_size=96, target_dist=41 / 35)
  fn = pipeline.make_transform_fn(aug, 'mpii', 'cpm14', seed=0, max_others=1, train=False)
  out = fn(tf.constant(0, tf.int64), tf.constant(0, tf.int64), _example((120, 60)))
  a = out['crop_to_image'].numpy()
  wrist = skeleton.CPM14.index('r_wrist')
  back = a[:, :2] @ out['keypoints'].numpy()[wrist, :2] + a[:, 2]
  np.testing.assert_allclose(back, [120, 60], atol=1e-3)
  np.testing.assert_allclose(out['joints'].numpy()[wrist], [120, 60, 1])


def _batches(config, start, n):
  it = iter(pipeline.as_numpy(pipeline.train_dataset(config, start_step=start)))
  return [next(it) for _ in range(n)]


def test_stream_is_a_function_of_seed_and_step(tfds_dir):
  config = tiny_config(tfds_dir)
  full = _batches(config, 0, 6)  # 32 examples / batch 8: crosses an epoch boundary
  again = _batches(config, 0, 6)
  resumed = _batches(config, 3, 3)
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a['image'], b['image'])
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['keypoints'], b['keypoints'])
  assert full[0]['image'].shape == (8, 48, 48, 3) and full[0]['image'].dtype == np.uint8
  assert full[0]['others'].shape == (8, 1, 14, 3)
  # Epoch 2 sees the same examples in another order, with other augmentations.
  assert not np.array_equal(full[0]['image'], full[4]['image'])
  other_seed = _batches(tiny_config(tfds_dir, seed=1), 0, 1)
  assert not np.array_equal(full[0]['image'], other_seed[0]['image'])


def test_process_shards_are_disjoint_and_cover_the_split(tfds_dir):
  config = tiny_config(tfds_dir, eval_batch_size=4)
  seen = []
  for p in range(2):
    for b in pipeline.as_numpy(pipeline.eval_dataset(config, p, 2)):
      seen.extend(int(i) for i in b['index'] if i >= 0)
  assert sorted(seen) == list(range(8))
