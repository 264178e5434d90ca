"""Inference: a trained model from a workdir or an exported artifact, person-centred views of an
image at several scales and flipped, their belief maps merged in image space, and decoding.

Test-time procedure (as the CPM release): the image is warped so that the person (centre and
scale, MPII's person height / 200 px) fills the crop as in training, at several scale multipliers
(default 0.7, 0.8, ..., 1.3) and, optionally, mirrored. The belief maps of every view are
resampled (separable cubic interpolation) onto one grid fixed in the image, the mirrored views'
left and right parts swapped back, and averaged; each part is then the maximum of the merged map,
refined below a grid pixel, in image pixels. Outside a view's crop its parts count as 0 and its
background as 1.

Decoding conventions (see targets.py): belief-map pixel (i, j) is centred on crop pixel
(j * s + (s - 1) / 2, i * s + (s - 1) / 2) for stride s.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from posemachines import models
from posemachines.codec.keypoints import compose, decode_peaks, to_image
from posemachines.core import crops
from posemachines.core import skeleton

DEFAULT_SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


# --------------------------------------------------------------------------------- models --

@dataclasses.dataclass(frozen=True)
class Model:
  """A trained pose model ready for inference.

  ``forward`` maps uint8 person-centred crops [B, H, W, 3] to every stage's belief maps
  [T, B, ceil(H / stride), ceil(W / stride), P + 1]; it is traceable (use it inside jax.jit).
  ``crop_size`` is S for a square crop, or (H, W).
  """
  forward: Callable[[Any], Any]
  crop_size: int | tuple[int, int]
  stride: int
  parts: str                 # skeleton name of the model's part order
  target_dist: float
  config: dict               # the resolved training config
  source: str
  variables: Any = None      # the trained variables (workdirs only; export uses them)

  @property
  def skeleton(self) -> skeleton.Skeleton:
    return skeleton.get(self.parts)

  @property
  def output_names(self) -> list[str]:
    """The model's names of its outputs ('stage 1', ... or 'feed-forward', 'iteration 1', ...)."""
    import ml_collections
    return models.output_names(ml_collections.ConfigDict(self.config))


# ---------------------------------------------------------------------------------- views --

def views(scales=DEFAULT_SCALES, flip: bool = True):
  """The test-time views: (scale multiplier, mirrored) pairs, unmirrored first."""
  scales = tuple(float(s) for s in scales)
  if not scales or min(scales) <= 0:
    raise ValueError(f'scales must be positive, got {scales}')
  return tuple((s, False) for s in scales) + (tuple((s, True) for s in scales) if flip else ())


def view_crops(image, center, scale, model: Model, view_list, encoded: bool = False,
               fast_decode: bool = True):
  """TF: one image -> uint8 crops [V, H, W, 3] and the base view's crop_to_image [2, 3].

  ``image`` is decoded pixels [H, W, 3], or with ``encoded`` the file's bytes, decoded per view as
  the training pipeline does (only the window a view needs, see data/decode.py). The base view is
  the person at multiplier 1, unmirrored: the frame the merge grid lives in. Works eagerly and
  inside tf.data maps.
  """
  import tensorflow as tf
  from posemachines.data import decode, pipeline
  aug = pipeline.Augment(crop_size=model.crop_size, target_dist=model.target_dist)
  center = tf.cast(center, tf.float32)
  scale = tf.cast(scale, tf.float32)
  crops = []
  for mult, mirrored in view_list:
    fwd = pipeline.image_to_crop(aug, center, scale, mult, 0.0, tf.constant(mirrored),
                                 tf.zeros([2]))
    inv = pipeline.invert_affine(fwd)
    crops.append(decode.decode_warp(image, inv, model.crop_size, fast_decode) if encoded
                 else decode.warp(image, inv, model.crop_size))
  base = pipeline.image_to_crop(aug, center, scale, 1.0, 0.0, tf.constant(False), tf.zeros([2]))
  return tf.stack(crops), pipeline.invert_affine(base)


def _cubic(d):
  """Keys' cubic convolution kernel (a = -0.5, as bicubic image resizing)."""
  d = np.abs(d)
  return np.where(d <= 1, 1.5 * d ** 3 - 2.5 * d ** 2 + 1,
                  np.where(d < 2, -0.5 * d ** 3 + 2.5 * d ** 2 - 4 * d + 2, 0.0))


def _axis_weights(grid_crop, mult, mirrored, crop_size, stride, map_size):
  """[G, map_size] weights resampling one view's maps at base-crop coordinates ``grid_crop``."""
  half = (crop_size - 1) / 2.0
  view = half + (-1.0 if mirrored else 1.0) * mult * (grid_crop - half)
  u = (view - (stride - 1) / 2.0) / stride                   # map coordinate
  w = np.zeros((len(u), map_size))
  base = np.floor(u).astype(int)
  rows = np.arange(len(u))
  for k in range(-1, 3):
    np.add.at(w, (rows, np.clip(base + k, 0, map_size - 1)), _cubic(u - (base + k)))
  inside = (u >= -0.5) & (u <= map_size - 0.5)
  return w * inside[:, None]


@dataclasses.dataclass(frozen=True)
class Merge:
  """Resampling of every view's belief maps onto one grid fixed in the image.

  Grid pixel (i, j) lies at base-crop coordinate (j * grid_stride + offset_x, i * grid_stride +
  offset); the grid covers the largest view (the smallest multiplier).
  """
  wy: np.ndarray            # [V, Gy, h]
  wx: np.ndarray            # [V, Gx, w]
  perm: np.ndarray          # [V, C] channel order per view (mirrored views swap left and right)
  grid_stride: float
  offset: float             # along y (the rows)
  offset_x: float | None = None  # along x; None: as ``offset`` (a square crop)

  @property
  def grid_to_crop(self) -> np.ndarray:
    ox = self.offset if self.offset_x is None else self.offset_x
    return np.array([[self.grid_stride, 0, ox], [0, self.grid_stride, self.offset]], np.float32)

  def __call__(self, beliefs):
    """beliefs [T, B, V, h, w, C] -> merged [T, B, Gy, Gx, C] (mean over views)."""
    beliefs = jnp.take_along_axis(beliefs, jnp.asarray(self.perm)[None, None, :, None, None, :],
                                  axis=-1)
    fill = jnp.zeros(beliefs.shape[-1]).at[-1].set(1.0)     # parts 0, background 1 outside
    merged = jnp.einsum('vgh,tbvhwc,vkw->tbgkc', self.wy, beliefs - fill, self.wx)
    return merged / self.wy.shape[0] + fill


def make_merge(model: Model, view_list, map_size, grid_stride: float | None = None) -> Merge:
  """The Merge of ``view_list`` for maps of ``map_size`` (S, or (h, w))."""
  stride = model.stride
  crop_h, crop_w = crops.size_hw(model.crop_size)
  map_h, map_w = crops.size_hw(map_size)
  gs = float(grid_stride or max(1, stride // 2))
  smallest = min(m for m, _ in view_list)

  def axis(crop):
    size = int(math.ceil(crop / smallest / gs))
    offset = (crop - 1) / 2.0 - (size - 1) / 2.0 * gs
    return np.arange(size) * gs + offset, offset

  grid_y, offset_y = axis(crop_h)
  grid_x, offset_x = axis(crop_w)
  flip = np.append(model.skeleton.flip_permutation, model.skeleton.num_parts)
  same = np.arange(len(flip))
  wy = np.stack([_axis_weights(grid_y, m, False, crop_h, stride, map_h) for m, _ in view_list])
  wx = np.stack([_axis_weights(grid_x, m, f, crop_w, stride, map_w) for m, f in view_list])
  perm = np.stack([flip if f else same for _, f in view_list])
  return Merge(wy.astype(np.float32), wx.astype(np.float32), perm, gs, offset_y,
               None if crop_h == crop_w else offset_x)


def predict_fn(model: Model, view_list, grid_stride: float | None = None):
  """A jitted function: (crops [B, V, H, W, 3], base crop_to_image [B, 2, 3]) ->
  (keypoints in image pixels with scores [T, B, P, 3], merged maps [T, B, Gy, Gx, C]), and the
  Merge.
  """
  crop_h, crop_w = crops.size_hw(model.crop_size)
  map_size = (int(math.ceil(crop_h / model.stride)), int(math.ceil(crop_w / model.stride)))
  merge = make_merge(model, view_list, map_size, grid_stride)

  @jax.jit
  def fn(crops, crop_to_image):
    b, v = crops.shape[:2]
    beliefs = model.forward(crops.reshape((b * v,) + crops.shape[2:]))
    beliefs = beliefs.reshape(beliefs.shape[:1] + (b, v) + beliefs.shape[2:])
    merged = merge(beliefs)
    grid_to_image = compose(crop_to_image, jnp.asarray(merge.grid_to_crop))
    return to_image(decode_peaks(merged, 1), grid_to_image[None]), merged

  return fn, merge
