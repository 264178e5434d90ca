"""The layers the models are built from: Caffe's ceil-mode pools, conv + ReLU blocks in the two
ways ``model.layers`` names ('custom': posemachines/models/ops.py's hand-written backward passes;
'flax': nn.Conv and nn.max_pool with JAX's own gradients), rematerialisation per block or per
stage (``model.remat``), and the kernel initialisers.
"""
from __future__ import annotations

import math

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
