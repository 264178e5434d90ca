"""Convolutional Pose Machines (Wei et al., CVPR 2016) in Flax Linen.

The network is three kinds of pure stage modules composed by an explicit loop over stages:

  Stage1         image -> trunk (conv + ceil-mode max-pool blocks) -> head convs -> b_1
  ImageFeatures  image -> its own trunk -> x', computed once and shared by every later stage
  StageT         [conv(x'), b_{t-1}, pooled center map] -> convs -> b_t   (own weights per stage)

``CPM.__call__`` returns every stage's belief maps stacked as [T, B, H/stride, W/stride, P+1],
because every stage is supervised and analysed. Inputs are NHWC.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def ceil_pool_padding(size: int, window: int, stride: int) -> tuple[int, int]:
  """Right padding that makes a VALID pool round its output size up, as Caffe does."""
  out = math.ceil(max(size - window, 0) / stride) + 1
  return 0, max((out - 1) * stride + window - size, 0)


def max_pool_ceil(x, window: int = 3, stride: int = 2):
  pads = [ceil_pool_padding(x.shape[a], window, stride) for a in (1, 2)]
  return nn.max_pool(x, (window, window), (stride, stride), padding=pads)


def avg_pool_ceil(x, window: int, stride: int):
  """Caffe AVE pooling with ceil rounding: edge windows average only the pixels they cover."""
  pads = [ceil_pool_padding(x.shape[a], window, stride) for a in (1, 2)]
  summed = nn.pool(x, 0., jax.lax.add, (window, window), (stride, stride), pads)
  count = nn.pool(jnp.ones_like(x[:1, ..., :1]), 0., jax.lax.add, (window, window),
                  (stride, stride), pads)
  return summed / count


def conv_relu(x, width: int, kernel: int, name: str, weight_init: str, batch_norm: bool,
              train: bool):
  """conv [+ BatchNorm] + ReLU. BatchNorm (an option of the small variants, not in the release)
  normalises over the global batch in training and uses running averages in evaluation."""
  x = nn.Conv(width, (kernel, kernel), padding=kernel // 2, kernel_init=kernel_init(weight_init),
              use_bias=not batch_norm, name=name)(x)
  if batch_norm:
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name + '_bn')(x)
  return nn.relu(x)


def kernel_init(name: str):
  if name == 'gaussian':  # the release: N(0, 0.01)
    return nn.initializers.normal(0.01)
  if name == 'he':
    return nn.initializers.kaiming_normal()
  raise ValueError(f'Unknown init {name!r}; use "gaussian" or "he"')


class Trunk(nn.Module):
  """conv k/w + ReLU [+ 3x3/2 ceil max-pool] per block. Used by stage 1 and for x'."""
  kernels: Sequence[int]
  widths: Sequence[int]
  pools: Sequence[bool]
  weight_init: str = 'gaussian'
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, (k, w, pool) in enumerate(zip(self.kernels, self.widths, self.pools)):
      x = conv_relu(x, w, k, f'conv{i + 1}', self.weight_init, self.batch_norm, train)
      if pool:
        x = max_pool_ceil(x)
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

  @nn.compact
  def __call__(self, image, train: bool = False):
    x = Trunk(self.trunk_kernels, self.trunk_widths, self.trunk_pools, self.weight_init,
              self.batch_norm, name='trunk')(image, train)
    for i, (k, w, drop) in enumerate(zip(self.head_kernels, self.head_widths, self.head_dropout)):
      x = conv_relu(x, w, k, f'head{i + 1}', self.weight_init, self.batch_norm, train)
      if drop and self.dropout_rate > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Conv(self.num_outputs, (1, 1), kernel_init=kernel_init(self.weight_init),
                   name='beliefs')(x)


class StageT(nn.Module):
  """Stage t >= 2: refines b_{t-1} from shared image features x' and the pooled center map."""
  num_outputs: int
  feature_kernel: int
  feature_width: int
  kernels: Sequence[int]
  widths: Sequence[int]
  weight_init: str = 'gaussian'
  batch_norm: bool = False

  @nn.compact
  def __call__(self, features, beliefs, center=None, train: bool = False):
    x = conv_relu(features, self.feature_width, self.feature_kernel, 'features', self.weight_init,
                  self.batch_norm, train)
    x = jnp.concatenate([x, beliefs] + ([] if center is None else [center]), axis=-1)
    for i, (k, w) in enumerate(zip(self.kernels, self.widths)):
      x = conv_relu(x, w, k, f'conv{i + 1}', self.weight_init, self.batch_norm, train)
    return nn.Conv(self.num_outputs, (1, 1), kernel_init=kernel_init(self.weight_init),
                   name='beliefs')(x)


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

  @property
  def stride(self) -> int:
    return 2 ** sum(bool(p) for p in self.trunk_pools)

  @property
  def output_names(self) -> list[str]:
    return [f'stage {t}' for t in range(1, self.num_stages + 1)]

  def setup(self):
    self.stage1 = Stage1(self.num_outputs, self.trunk_kernels, self.trunk_widths, self.trunk_pools,
                         self.stage1_kernels, self.stage1_widths, self.stage1_dropout,
                         self.dropout_rate, self.weight_init, self.batch_norm)
    if self.num_stages > 1:
      self.features = Trunk(self.trunk_kernels, self.trunk_widths, self.trunk_pools,
                            self.weight_init, self.batch_norm)
    self.later_stages = [
        StageT(self.num_outputs, self.stage_feature_kernel, self.stage_feature_width,
               self.stage_kernels, self.stage_widths, self.weight_init, self.batch_norm,
               name=f'stage{t}')
        for t in range(2, self.num_stages + 1)]

  def stages(self, image, center_map=None, train: bool = False) -> list:
    """Belief maps of every stage, a list of T arrays [B, ceil(H/stride), ceil(W/stride), P+1]."""
    beliefs = [self.stage1(image, train)]
    if self.num_stages > 1:
      features = self.features(image, train)
      center = None
      if self.use_center_map:
        if center_map is None:
          raise ValueError('This CPM takes a center map (use_center_map=True); pass center_map.')
        center = avg_pool_ceil(center_map, self.stride + 1, self.stride)
      for stage in self.later_stages:
        beliefs.append(stage(features, beliefs[-1], center, train))
    return beliefs

  def __call__(self, image, center_map=None, train: bool = False):
    """image: [B, H, W, 3] normalised; center_map: [B, H, W, 1] Gaussian at the person center.

    Returns belief maps of every stage stacked, [T, B, ceil(H/stride), ceil(W/stride), P+1].
    """
    return jnp.stack(self.stages(image, center_map, train))


def from_config(cfg, num_outputs: int) -> CPM:
  """Builds a CPM from a config's ``model`` section (see experiments/)."""
  keys = ('num_stages', 'trunk_kernels', 'trunk_widths', 'trunk_pools', 'stage1_kernels',
          'stage1_widths', 'stage1_dropout', 'stage_feature_kernel', 'stage_feature_width',
          'stage_kernels', 'stage_widths', 'use_center_map', 'dropout_rate', 'weight_init',
          'batch_norm')
  kwargs = {k: tuple(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k] for k in keys}
  return CPM(num_outputs=num_outputs, **kwargs)
