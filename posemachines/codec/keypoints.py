"""Belief maps -> keypoints: each part's sub-pixel maximum, in crop and then image pixels.

Conventions (see targets.py): belief-map pixel (i, j) is centred on crop pixel
(j * s + (s - 1) / 2, i * s + (s - 1) / 2) for stride s.
"""
from __future__ import annotations

import jax.numpy as jnp


def _refine(left, centre, right):
  denom = left - 2.0 * centre + right
  off = jnp.where(denom < 0, 0.5 * (left - right) / jnp.where(denom < 0, denom, -1.0), 0.0)
  return jnp.clip(off, -0.5, 0.5)


def decode_peaks(beliefs, stride: int):
  """beliefs [..., H, W, C] (parts first, background last ignored) -> [..., P, 3] (x, y, score).

  Each part's maximum, refined below the map's stride by a parabola through the log of the maximum
  and its two neighbours along each axis (exact for a Gaussian peak), in input (crop) pixels.
  """
  maps = beliefs[..., :-1]
  h, w, p = maps.shape[-3:]
  flat = maps.reshape(maps.shape[:-3] + (h * w, p))
  best = jnp.argmax(flat, axis=-2)                       # [..., P]
  score = jnp.max(flat, axis=-2)
  iy, ix = best // w, best % w

  def at(dy, dx):
    y = jnp.clip(iy + dy, 0, h - 1)
    x = jnp.clip(ix + dx, 0, w - 1)
    return jnp.take_along_axis(flat, (y * w + x)[..., None, :], axis=-2)[..., 0, :]

  at_log = lambda dy, dx: jnp.log(jnp.maximum(at(dy, dx), 1e-6))
  c = at_log(0, 0)
  ox = jnp.where((ix > 0) & (ix < w - 1), _refine(at_log(0, -1), c, at_log(0, 1)), 0.0)
  oy = jnp.where((iy > 0) & (iy < h - 1), _refine(at_log(-1, 0), c, at_log(1, 0)), 0.0)
  xs = (ix + ox) * stride + (stride - 1) / 2
  ys = (iy + oy) * stride + (stride - 1) / 2
  return jnp.stack([xs, ys, score], axis=-1)


def to_image(points, crop_to_image):
  """[..., P, >=2] crop coordinates -> image coordinates with [..., 2, 3] affines."""
  xy = points[..., :2]
  m, t = crop_to_image[..., None, :, :2], crop_to_image[..., None, :, 2]
  out = jnp.einsum('...ij,...j->...i', m, xy) + t
  return jnp.concatenate([out, points[..., 2:]], axis=-1)


def compose(outer, inner):
  """The 2x3 affine x -> outer(inner(x)); leading dimensions broadcast."""
  m = outer[..., :2] @ inner[..., :2]
  t = outer[..., :2] @ inner[..., 2:] + outer[..., 2:]
  return jnp.concatenate([m, t], axis=-1)


def predict_keypoints(beliefs, stride: int, crop_to_image):
  """Every stage's beliefs [T, B, H, W, C] -> keypoints in image pixels [T, B, P, 3]."""
  return to_image(decode_peaks(beliefs, stride), crop_to_image[None])


