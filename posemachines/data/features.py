"""The example layout that every posemachines dataset builder produces.

One example is one *primary* person in one image, annotated in the dataset's native part order
(``skeleton`` names it, see posemachines/skeleton.py):

  image             encoded image (JPEG or PNG), H x W x 3
  image_id          file name or other stable id
  joints            float32 [P, 2]  (x, y) in image pixels
  joints_annotated  bool [P]        the part has a label (no peak is drawn for unlabelled parts)
  joints_visible    bool [P]        the part is visible (False where occluded)
  center            float32 [2]     person centre in image pixels (MPII's objpos)
  scale             float32 []      person height / 200 px (MPII's convention)
  head_box          float32 [4]     x1, y1, x2, y2 of the head (zeros where the dataset has none)
  norm              float32 []      the metric's normaliser in pixels: head size (0.6 x head-box
                                    diagonal) for PCKh, torso size for PCK; 0 only for people
                                    without labels (a test split without ground truth)
  others            float32 [K, P, 3]  every other annotated person of the image: x, y, annotated
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


def features(num_parts: int, encoding: str = 'jpeg') -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      'image': tfds.features.Image(shape=(None, None, 3), encoding_format=encoding),
      'image_id': tfds.features.Text(),
      'joints': tfds.features.Tensor(shape=(num_parts, 2), dtype=np.float32),
      'joints_annotated': tfds.features.Tensor(shape=(num_parts,), dtype=np.bool_),
      'joints_visible': tfds.features.Tensor(shape=(num_parts,), dtype=np.bool_),
      'center': tfds.features.Tensor(shape=(2,), dtype=np.float32),
      'scale': tfds.features.Tensor(shape=(), dtype=np.float32),
      'head_box': tfds.features.Tensor(shape=(4,), dtype=np.float32),
      'norm': tfds.features.Tensor(shape=(), dtype=np.float32),
      'others': tfds.features.Tensor(shape=(None, num_parts, 3), dtype=np.float32),
  })


def head_size(head_box) -> float:
  """MPII's head-size normaliser: 0.6 x the diagonal of the head box."""
  x1, y1, x2, y2 = np.asarray(head_box, np.float64)
  return float(0.6 * np.hypot(x2 - x1, y2 - y1))


def check_example(ex: dict, num_parts: int, where: str) -> None:
  """Raises ValueError naming ``where`` if an example would yield wrong numbers downstream."""
  j = np.asarray(ex['joints'], np.float32)
  if j.shape != (num_parts, 2):
    raise ValueError(f'{where}: joints have shape {j.shape}, expected {(num_parts, 2)}')
  ann = np.asarray(ex['joints_annotated'], bool)
  if not np.isfinite(j[ann]).all():
    raise ValueError(f'{where}: non-finite coordinate in annotated joints {j[ann].tolist()}')
  c = np.asarray(ex['center'], np.float32)
  if not np.isfinite(c).all() or not np.isfinite(ex['scale']) or ex['scale'] <= 0:
    raise ValueError(f'{where}: bad person center {c.tolist()} or scale {ex["scale"]!r}')
  if not np.isfinite(ex['norm']) or ex['norm'] < 0 or (ex['norm'] == 0 and ann.any()):
    raise ValueError(f'{where}: metric normaliser must be positive, got {ex["norm"]!r}')
