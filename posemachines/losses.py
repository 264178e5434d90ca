"""Losses with intermediate supervision.

The CPM loss of one stage is the release's Caffe Euclidean loss: the sum of squared differences
between predicted and ideal belief maps over all P+1 channels, divided by 2 x batch. The total is
the sum over supervised stages: every stage with intermediate supervision, or only the last one.
"""
from __future__ import annotations

import jax.numpy as jnp


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
