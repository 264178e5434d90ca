"""Training targets, built on the device from keypoints inside the jitted step.

Conventions: keypoints are [..., P, 3] arrays of (x, y, annotated) in input (crop) pixels, pixel
centres at integer coordinates. A belief map of stride s has its pixel (i, j) centred on input pixel
(j * s + (s - 1) / 2, i * s + (s - 1) / 2), as in the released CPM data layer.
"""
from __future__ import annotations

import jax.numpy as jnp


def map_coordinates(size: int, stride: int):
  """Input-pixel coordinate of the centre of each of ``size`` belief-map pixels."""
  return jnp.arange(size, dtype=jnp.float32) * stride + (stride - 1) / 2


def gaussian_peaks(keypoints, height: int, width: int, stride: int, sigma: float):
  """One Gaussian exp(-d^2 / 2 sigma^2) per part: [..., P, 3] -> [..., height, width, P].

  ``sigma`` is in input pixels. Parts with annotated == 0 (or non-finite positions) get no peak.
  """
  ys = map_coordinates(height, stride)
  xs = map_coordinates(width, stride)
  x = keypoints[..., 0][..., None, None, :]
  y = keypoints[..., 1][..., None, None, :]
  valid = (keypoints[..., 2] > 0) & jnp.isfinite(keypoints[..., 0]) & jnp.isfinite(keypoints[..., 1])
  d2 = (xs[None, :, None] - x) ** 2 + (ys[:, None, None] - y) ** 2
  maps = jnp.exp(-d2 / (2.0 * sigma ** 2))
  return jnp.where(valid[..., None, None, :], maps, 0.0)


def belief_maps(keypoints, height: int, width: int, stride: int, sigma: float, others=None):
  """Ideal belief maps [..., H, W, P + 1]: a Gaussian per annotated part, then background.

  ``others`` ([..., K, P, 3], optional) adds the peaks of other people (max-combined), as the
  release does for MPII's stage 1. Background = 1 - max over parts.
  """
  parts = gaussian_peaks(keypoints, height, width, stride, sigma)
  if others is not None and others.shape[-3] > 0:
    extra = gaussian_peaks(others, height, width, stride, sigma)  # [..., K, H, W, P]
    parts = jnp.maximum(parts, extra.max(axis=-4))
  background = 1.0 - parts.max(axis=-1, keepdims=True)
  return jnp.concatenate([parts, background], axis=-1)


def center_map(center, height: int, width: int, sigma: float):
  """The CPM's center-map input channel: a Gaussian at ``center`` ([..., 2], input pixels)."""
  ys = jnp.arange(height, dtype=jnp.float32)
  xs = jnp.arange(width, dtype=jnp.float32)
  d2 = ((xs[None, :] - center[..., 0, None, None]) ** 2
        + (ys[:, None] - center[..., 1, None, None]) ** 2)
  return jnp.exp(-d2 / (2.0 * sigma ** 2))[..., None]
