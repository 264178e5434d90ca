"""Losses with intermediate supervision.

The CPM loss of one stage is the release's Caffe Euclidean loss: the sum of squared differences
between predicted and ideal belief maps over all P+1 channels, divided by 2 x batch. The total is
the sum over supervised stages: every stage with intermediate supervision, or only the last one.

The recurrent model's loss has the same form with per-pixel weights (foreground and background
balanced, see targets.balanced_weights) after the feed-forward module and every iteration, and
one of three ways to treat occluded keypoints (``occlusion_targets``).
"""
from __future__ import annotations

import jax.numpy as jnp

from posemachines.codec import targets as targets_lib

OCCLUSION_MODES = ('ignore', 'include', 'exclude')


def stage_losses(beliefs, targets, weights=None):
  """beliefs: [T, B, H, W, C]; targets: [B, H, W, C] or [T, B, H, W, C]. Returns [T] losses."""
  if targets.ndim == beliefs.ndim - 1:
    targets = targets[None]
  sq = (beliefs - targets) ** 2
  if weights is not None:
    sq = sq * weights
  return sq.sum(axis=(1, 2, 3, 4)) / (2.0 * beliefs.shape[1])


def total_loss(per_stage, intermediate_supervision: bool = True, stage_weights=None):
  """Sums the supervised stages' losses: all of them, or only the last one."""
  if stage_weights is None:
    if intermediate_supervision:
      stage_weights = jnp.ones(per_stage.shape[0])
    else:
      stage_weights = jnp.zeros(per_stage.shape[0]).at[-1].set(1.0)
  return jnp.sum(per_stage * jnp.asarray(stage_weights, per_stage.dtype))


def occlusion_targets(maps, occluded, mode: str, foreground_level: float):
  """Targets and per-pixel weights, both [..., H, W, C], for heatmaps ``maps`` whose channels
  are flagged ``occluded`` ([..., C]). A map's foreground is where it exceeds
  ``foreground_level``; foreground and background are balanced (targets.balanced_weights).

    include  occluded parts are trained like visible ones;
    exclude  occluded parts are background: their target is 0, so any response is penalised;
    ignore   the foreground region of an occluded part weighs 0 (no gradient there); the rest
             of its map is background.
  """
  foreground = maps > foreground_level
  occ = occluded[..., None, None, :]
  if mode == 'include':
    return maps, targets_lib.balanced_weights(foreground)
  if mode == 'exclude':
    return jnp.where(occ, 0.0, maps), targets_lib.balanced_weights(foreground & ~occ)
  if mode == 'ignore':
    return maps, targets_lib.balanced_weights(foreground & ~occ, keep=~(foreground & occ))
  raise ValueError(f'Unknown occlusion mode {mode!r} (config.loss.occlusion); '
                   f'use one of {", ".join(OCCLUSION_MODES)}')
