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

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax.ad_checkpoint import checkpoint_name

from posemachines.models import ops

LAYERS = ('custom', 'flax')
REMAT = ('none', 'stage', 'block')
BLOCK_OUTPUT = 'block_output'


def ceil_pool_padding(size: int, window: int, stride: int) -> tuple[int, int]:
  """Right padding that makes a VALID pool round its output size up, as Caffe does."""
  out = math.ceil(max(size - window, 0) / stride) + 1
  return 0, max((out - 1) * stride + window - size, 0)


def max_pool_ceil(x, window: int = 3, stride: int = 2, relu: bool = False, layers: str = 'flax'):
  """Caffe's ceil-mode max-pool (of relu(x) when ``relu``); 'custom' layers: ops.py's."""
  pads = [ceil_pool_padding(x.shape[a], window, stride) for a in (1, 2)]
  if layers == 'custom':
    return (ops.relu_max_pool if relu else ops.max_pool)(x, window, stride, pads)
  if relu:
    x = nn.relu(x)
  return nn.max_pool(x, (window, window), (stride, stride), padding=pads)


def avg_pool_ceil(x, window: int, stride: int):
  """Caffe AVE pooling with ceil rounding: edge windows average only the pixels they cover."""
  pads = [ceil_pool_padding(x.shape[a], window, stride) for a in (1, 2)]
  summed = nn.pool(x, 0., jax.lax.add, (window, window), (stride, stride), pads)
  count = nn.pool(jnp.ones_like(x[:1, ..., :1]), 0., jax.lax.add, (window, window),
                  (stride, stride), pads)
  return summed / count


def conv_relu(x, width: int, kernel: int, name: str, weight_init: str, batch_norm: bool,
              train: bool, layers: str = 'flax', dtype=None, relu: bool = True):
  """conv [+ BatchNorm] [+ ReLU]. BatchNorm (an option of the small variants, not in the release)
  normalises over the global batch in training and uses running averages in evaluation."""
  fuse = relu and not batch_norm
  if layers == 'custom':
    x = ops.Conv(width, kernel, kernel_init=kernel_init(weight_init), use_bias=not batch_norm,
                 relu=fuse, dtype=dtype, name=name)(x)
  else:
    x = nn.Conv(width, (kernel, kernel), padding=kernel // 2,
                kernel_init=kernel_init(weight_init), use_bias=not batch_norm, dtype=dtype,
                name=name)(x)
    if fuse:
      x = nn.relu(x)
  if batch_norm:
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype,
                     name=name + '_bn')(x)
    if relu:
      x = nn.relu(x)
  return x


def conv_1x1(x, width: int, name: str, weight_init: str, layers: str, dtype):
  """The 1x1 belief-map convolution (no ReLU)."""
  if layers == 'custom':
    return ops.Conv(width, 1, kernel_init=kernel_init(weight_init), dtype=dtype, name=name)(x)
  return nn.Conv(width, (1, 1), kernel_init=kernel_init(weight_init), dtype=dtype, name=name)(x)


def block(x, width, kernel, name, weight_init, batch_norm, pool, layers, dtype, train):
  """conv [+ BatchNorm] + ReLU [+ pool]; with 'custom' layers the ReLU fuses into the pool. The
  output is named BLOCK_OUTPUT for per-block rematerialisation."""
  x = conv_relu(x, width, kernel, name, weight_init, batch_norm, train, layers, dtype,
                relu=not (pool and layers == 'custom'))
  if pool:
    x = max_pool_ceil(x, relu=layers == 'custom', layers=layers)
  return checkpoint_name(x, BLOCK_OUTPUT)


def remat_class(cls, remat: str, train_argnum: int, batch_norm: bool):
  """``cls`` as flax's nn.remat makes it for ``remat``: 'block' keeps every block's output (and
  the pools' int8 maps) and recomputes inside blocks; 'stage' with BatchNorm keeps only the
  module's inputs. Otherwise ``cls`` itself ('stage' without BatchNorm: see ``remat_call``).
  Parameter names do not change."""
  if remat == 'block':
    policy = jax.checkpoint_policies.save_only_these_names(BLOCK_OUTPUT, ops.POOL_WHICH)
    return nn.remat(cls, static_argnums=(train_argnum,), policy=policy)
  if remat == 'stage' and batch_norm:
    return nn.remat(cls, static_argnums=(train_argnum,))
  return cls


def remat_call(module, *args, train: bool, fenced: bool):
  """``module(*args, train)``; when ``fenced``, keeping only ``args`` (and the parameters) for the
  backward pass, which recomputes the module's forward pass from them.

  jax.checkpoint (nn.remat) stops XLA from merging the recomputation with the forward pass by
  optimization barriers, which XLA's CPU backend drops before it eliminates common
  subexpressions: the recomputation of the CPM's trunks is merged back and nothing is saved.
  Here the recomputation's inputs are made to depend on the incoming gradient (``ops.after``),
  so they are not the forward pass's values and nothing can be merged. For modules without
  mutable state or randomness (the trunks and the later stages)."""
  if not fenced:
    return module(*args, train)
  template = module.clone(parent=None)

  def fn(mdl, *a):
    return mdl(*a, train)

  def fwd(mdl, *a):
    return mdl(*a, train), (mdl.variables['params'], a)

  def bwd(res, ct):
    params, a = res
    dep = jax.tree.leaves(ct)[0]
    a = jax.tree.map(lambda v: ops.after(v, dep), a)
    _, vjp = jax.vjp(lambda p, *a: template.apply({'params': p}, *a, train), params, *a)
    params_t, *args_t = vjp(ct)
    return ({'params': params_t}, *args_t)

  return nn.custom_vjp(fn, forward_fn=fwd, backward_fn=bwd)(module, *args)


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
