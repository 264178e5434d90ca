"""Training targets, built on the device from keypoints inside the jitted step.

The CPM's belief maps (a Gaussian per part, then background) and center map; the recurrent model's
keypoint and body-part (limb) heatmaps and its foreground/background loss weights.

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


def keypoint_heatmaps(keypoints, height: int, width: int, stride: int, sigma: float, peak: float):
  """The recurrent model's keypoint heatmaps [..., H, W, P]: Gaussians of ``sigma`` output-map
  pixels (the paper: 1.3), scaled so that the mode is ``peak`` (the paper: about 12)."""
  return peak * gaussian_peaks(keypoints, height, width, stride, sigma * stride)


def limb_ends(values, limbs, axis: int = -2):
  """Per-part values (part axis ``axis``) -> the values at both ends of every limb ([L, 2]
  part indices): two arrays with L in place of P."""
  limbs = jnp.asarray(limbs, jnp.int32).reshape(-1, 2)
  return jnp.take(values, limbs[:, 0], axis=axis), jnp.take(values, limbs[:, 1], axis=axis)


def limb_heatmaps(keypoints, limbs, height: int, width: int, stride: int, along: float = 0.15,
                  across: float = 0.1, min_sigma: float = 0.5):
  """Body-part heatmaps [..., H, W, L] with mode 1: an anisotropic Gaussian at the midpoint of
  each limb (pairs of part indices, [L, 2]) whose sigma is ``along`` x the limb's length along it
  and ``across`` x its length across it (floored at ``min_sigma`` output-map pixels, so a
  foreshortened limb still gets a blob). Limbs with an unannotated end get no Gaussian."""
  a, b = limb_ends(keypoints, limbs)                                   # [..., L, 3]
  valid = (a[..., 2] > 0) & (b[..., 2] > 0)
  valid &= jnp.isfinite(a[..., :2]).all(-1) & jnp.isfinite(b[..., :2]).all(-1)
  a, b = jnp.where(valid[..., None], a, 0.0), jnp.where(valid[..., None], b, 0.0)
  mid = (a[..., :2] + b[..., :2]) / 2
  d = b[..., :2] - a[..., :2]
  length = jnp.linalg.norm(d, axis=-1)
  unit = jnp.where(length[..., None] > 0, d / jnp.maximum(length, 1e-12)[..., None],
                   jnp.array([1.0, 0.0]))
  floor = min_sigma * stride
  s_along = jnp.maximum(along * length, floor)[..., None, None, :]
  s_across = jnp.maximum(across * length, floor)[..., None, None, :]
  dx = map_coordinates(width, stride)[None, :, None] - mid[..., 0][..., None, None, :]
  dy = map_coordinates(height, stride)[:, None, None] - mid[..., 1][..., None, None, :]
  ux, uy = unit[..., 0][..., None, None, :], unit[..., 1][..., None, None, :]
  u = dx * ux + dy * uy                                                # along the limb
  v = dy * ux - dx * uy                                                # across it
  maps = jnp.exp(-0.5 * ((u / s_along) ** 2 + (v / s_across) ** 2))
  return jnp.where(valid[..., None, None, :], maps, 0.0)


def balanced_weights(foreground, keep=None):
  """Per-pixel loss weights [..., H, W, C] that make each map's foreground and background
  contribute equally: background pixels weigh 1, foreground pixels n_background / n_foreground.
  Pixels outside ``keep`` weigh 0 and are counted in neither."""
  keep = jnp.ones_like(foreground) if keep is None else keep
  fg, bg = foreground & keep, ~foreground & keep
  n_fg = fg.sum(axis=(-3, -2), keepdims=True)
  n_bg = bg.sum(axis=(-3, -2), keepdims=True)
  w_fg = n_bg / jnp.maximum(n_fg, 1)
  return jnp.where(fg, w_fg, jnp.where(bg, 1.0, 0.0)).astype(jnp.float32)
