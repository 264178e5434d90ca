"""Convolutional Pose Machines (Wei et al., CVPR 2016) in Flax Linen.

The network is three kinds of pure stage modules composed by an explicit loop over stages:

  Stage1         image -> trunk (conv + ceil-mode max-pool blocks) -> head convs -> b_1
  ImageFeatures  image -> its own trunk -> x', computed once and shared by every later stage
  StageT         [conv(x'), b_{t-1}, pooled center map] -> convs -> b_t   (own weights per stage)

``CPM.__call__`` returns every stage's belief maps stacked as [T, B, H/stride, W/stride, P+1],
because every stage is supervised and analysed. Inputs are NHWC.

Layers are written two ways with the same parameters and the same sums: ``layers='custom'`` (the
default) uses posemachines/models/ops.py, whose convolutions and ReLU + max-pools have
hand-written backward passes that XLA's CPU backend runs faster and in far less memory;
``layers='flax'`` uses flax's nn.Conv and nn.max_pool with JAX's own gradients. ``remat``
recomputes activations in the backward pass instead of keeping them: per stage (the two trunks
and every later stage; see ``remat_call``) or per block (each conv [+ ReLU] [+ pool]).
``dtype`` is the computation's type (bfloat16 for mixed precision: parameters stay float32,
beliefs are returned in float32).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from posemachines.models import ops
from posemachines.models.layers import (LAYERS, REMAT, avg_pool_ceil, block, conv_1x1, remat_call,
                                         remat_class)

class Trunk(nn.Module):
  """conv k/w + ReLU [+ 3x3/2 ceil max-pool] per block. Used by stage 1 and for x'."""
  kernels: Sequence[int]
  widths: Sequence[int]
  pools: Sequence[bool]
  weight_init: str = 'gaussian'
  batch_norm: bool = False
  layers: str = 'custom'
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, (k, w, pool) in enumerate(zip(self.kernels, self.widths, self.pools)):
      x = block(x, w, k, f'conv{i + 1}', self.weight_init, self.batch_norm, pool, self.layers,
                self.dtype, train)
    return x


class Stage1(nn.Module):
  """Stage 1: image -> belief maps b_1 (P+1 channels), from local image evidence only."""
  num_outputs: int
  trunk_kernels: Sequence[int]
  trunk_widths: Sequence[int]
  trunk_pools: Sequence[bool]
  head_kernels: Sequence[int]
  head_widths: Sequence[int]
  head_dropout: Sequence[bool]
  dropout_rate: float = 0.5
  weight_init: str = 'gaussian'
  batch_norm: bool = False
  layers: str = 'custom'
  dtype: Any = None
  remat_trunk: bool = False   # the trunk through ``remat_call`` (the head stays as it is)

  @nn.compact
  def __call__(self, image, train: bool = False):
    trunk = Trunk(self.trunk_kernels, self.trunk_widths, self.trunk_pools, self.weight_init,
                  self.batch_norm, self.layers, self.dtype, name='trunk')
    x = remat_call(trunk, image, train=train, fenced=self.remat_trunk and train)
    for i, (k, w, drop) in enumerate(zip(self.head_kernels, self.head_widths, self.head_dropout)):
      x = block(x, w, k, f'head{i + 1}', self.weight_init, self.batch_norm, False, self.layers,
                self.dtype, train)
      if drop and self.dropout_rate > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return conv_1x1(x, self.num_outputs, 'beliefs', self.weight_init, self.layers, self.dtype)


class StageT(nn.Module):
  """Stage t >= 2: refines b_{t-1} from shared image features x' and the pooled center map."""
  num_outputs: int
  feature_kernel: int
  feature_width: int
  kernels: Sequence[int]
  widths: Sequence[int]
  weight_init: str = 'gaussian'
  batch_norm: bool = False
  layers: str = 'custom'
  dtype: Any = None

  @nn.compact
  def __call__(self, features, beliefs, center=None, train: bool = False):
    args = (self.weight_init, self.batch_norm, False, self.layers, self.dtype, train)
    x = block(features, self.feature_width, self.feature_kernel, 'features', *args)
    parts = [x, beliefs] + ([] if center is None else [center])
    x = jnp.concatenate([p.astype(x.dtype) for p in parts], axis=-1)
    for i, (k, w) in enumerate(zip(self.kernels, self.widths)):
      x = block(x, w, k, f'conv{i + 1}', *args)
    return conv_1x1(x, self.num_outputs, 'beliefs', self.weight_init, self.layers, self.dtype)


class CPM(nn.Module):
  """The full pose machine. ``num_outputs`` = parts + 1 (background)."""
  num_stages: int = 6
  num_outputs: int = 15
  trunk_kernels: Sequence[int] = (9, 9, 9)
  trunk_widths: Sequence[int] = (128, 128, 128)
  trunk_pools: Sequence[bool] = (True, True, True)
  stage1_kernels: Sequence[int] = (5, 9, 1)
  stage1_widths: Sequence[int] = (32, 512, 512)
  stage1_dropout: Sequence[bool] = (False, True, True)
  stage_feature_kernel: int = 5
  stage_feature_width: int = 32
  stage_kernels: Sequence[int] = (11, 11, 11, 1)
  stage_widths: Sequence[int] = (128, 128, 128, 128)
  use_center_map: bool = True
  dropout_rate: float = 0.5
  weight_init: str = 'gaussian'
  batch_norm: bool = False
  layers: str = 'custom'   # 'custom': ops.py's layers; 'flax': nn.Conv / nn.max_pool
  remat: str = 'none'      # 'none' | 'stage' | 'block': what the backward pass recomputes
  dtype: Any = None        # computation type (None: float32); parameters stay float32

  @property
  def stride(self) -> int:
    return 2 ** sum(bool(p) for p in self.trunk_pools)

  @property
  def output_names(self) -> list[str]:
    return [f'stage {t}' for t in range(1, self.num_stages + 1)]

  @property
  def _fenced(self) -> bool:
    """Per-stage rematerialisation through ``remat_call`` (BatchNorm models use nn.remat)."""
    return self.remat == 'stage' and not self.batch_norm

  def setup(self):
    if self.layers not in LAYERS:
      raise ValueError(f'Unknown model.layers {self.layers!r}; use one of {", ".join(LAYERS)}')
    if self.remat not in REMAT:
      raise ValueError(f'Unknown model.remat {self.remat!r}; use one of {", ".join(REMAT)}')
    stage1 = remat_class(Stage1, self.remat, 2, self.batch_norm)
    trunk = remat_class(Trunk, self.remat, 2, self.batch_norm)
    stage_t = remat_class(StageT, self.remat, 4, self.batch_norm)
    common = dict(weight_init=self.weight_init, batch_norm=self.batch_norm, layers=self.layers,
                  dtype=self.dtype)
    self.stage1 = stage1(self.num_outputs, self.trunk_kernels, self.trunk_widths,
                         self.trunk_pools, self.stage1_kernels, self.stage1_widths,
                         self.stage1_dropout, self.dropout_rate, **common,
                         remat_trunk=self._fenced)
    if self.num_stages > 1:
      self.features = trunk(self.trunk_kernels, self.trunk_widths, self.trunk_pools, **common)
    self.later_stages = [
        stage_t(self.num_outputs, self.stage_feature_kernel, self.stage_feature_width,
                self.stage_kernels, self.stage_widths, name=f'stage{t}', **common)
        for t in range(2, self.num_stages + 1)]

  def stages(self, image, center_map=None, train: bool = False) -> list:
    """Belief maps of every stage, a list of T arrays [B, ceil(H/stride), ceil(W/stride), P+1]."""
    if self.dtype is not None:
      image = image.astype(self.dtype)
    fenced = self._fenced and train
    beliefs = [self.stage1(image, train)]
    if self.num_stages > 1:
      # In training, after stage 1: the two trunks' large first layers (and their backward
      # passes) then run one after the other instead of side by side.
      features = remat_call(self.features, ops.after(image, beliefs[0]) if train else image,
                            train=train, fenced=fenced)
      center = None
      if self.use_center_map:
        if center_map is None:
          raise ValueError('This CPM takes a center map (use_center_map=True); pass center_map.')
        center = avg_pool_ceil(center_map, self.stride + 1, self.stride)
        if self.dtype is not None:
          center = center.astype(self.dtype)
      for stage in self.later_stages:
        beliefs.append(remat_call(stage, features, beliefs[-1], center, train=train,
                                  fenced=fenced))
    return [b.astype(jnp.float32) for b in beliefs]

  def __call__(self, image, center_map=None, train: bool = False):
    """image: [B, H, W, 3] normalised; center_map: [B, H, W, 1] Gaussian at the person center.

    Returns belief maps of every stage stacked, [T, B, ceil(H/stride), ceil(W/stride), P+1],
    in float32 whatever the computation's type.
    """
    return jnp.stack(self.stages(image, center_map, train))


def from_config(cfg, num_outputs: int, dtype=None) -> CPM:
  """Builds a CPM from a config's ``model`` section (see experiments/); ``dtype`` is the
  computation type (see ``models.compute_dtype``)."""
  keys = ('num_stages', 'trunk_kernels', 'trunk_widths', 'trunk_pools', 'stage1_kernels',
          'stage1_widths', 'stage1_dropout', 'stage_feature_kernel', 'stage_feature_width',
          'stage_kernels', 'stage_widths', 'use_center_map', 'dropout_rate', 'weight_init',
          'batch_norm', 'layers', 'remat')
  kwargs = {k: tuple(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k] for k in keys}
  return CPM(num_outputs=num_outputs, dtype=dtype, **kwargs)
