"""Test helpers: images with bright markers at keypoints, and the check that augmentation moves
every marker exactly where it moves the keypoint."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
import tensorflow as tf

from posemachines.core import skeleton
from posemachines.data import pipeline

BACKGROUND = 40


def marker_image(width: int, height: int, points, fmt: str = 'PNG') -> bytes:
  """A dark image with a white 5 x 5 square centred on each (x, y) of ``points``."""
  img = np.full((height, width, 3), BACKGROUND, np.uint8)
  for x, y in points:
    x, y = int(round(x)), int(round(y))
    img[y - 2:y + 3, x - 2:x + 3] = 255
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format=fmt, quality=95)
  return buf.getvalue()


def marker_centre(crop: np.ndarray) -> np.ndarray:
  """The intensity-weighted centre of the pixels above the grey padding."""
  crop = crop[..., 0].astype(float)
  ys, xs = np.nonzero(crop > 140)
  assert len(xs), 'no marker in the crop'
  w = crop[ys, xs] - BACKGROUND
  return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()


def check_marker_lands(raw: dict, src: str, part: str, model: str = 'cpm14', crop: int = 368,
                       indices=range(4), seed: int = 5, atol: float = 0.75, **fn_kwargs):
  """Warps the tfds example ``raw`` (undecoded image) as training does, for several seeds, and
  checks that the single marker (drawn at ``part``) lands on that part's moved keypoint (its
  mirror part after a flip)."""
  aug = pipeline.Augment(crop_size=crop, target_dist=41 / 35, scale_min=0.7, scale_max=1.3,
                         max_rotation=40.0, flip=True, max_shift=10.0)
  fn = pipeline.make_transform_fn(aug, src, model, seed=seed, max_others=2, train=True,
                                  **fn_kwargs)
  skel = skeleton.get(model)
  raw = {k: tf.constant(v) for k, v in raw.items()}
  flips = set()
  for i in indices:
    out = fn(tf.constant(i, tf.int64), tf.constant(0, tf.int64), raw)
    flip = bool(pipeline.affine_params(aug, pipeline.example_seed(seed, 0, i))[2])
    flips.add(flip)
    name = ('l_' + part[2:] if part.startswith('r_') else 'r_' + part[2:]) if flip else part
    kp = out['keypoints'].numpy()[skel.index(name)]
    assert kp[2] == 1
    np.testing.assert_allclose(marker_centre(out['image'].numpy()), kp[:2], atol=atol)
  return flips
