"""Recurrent Human Pose Estimation (Belagiannis and Zisserman, FG 2017) in Flax Linen.

The network is a feed-forward module followed by a recurrent module with one set of weights:

  FeedForward  image -> layers 1-3 (3x3 convs, two 2x2 max-pools: stride 4) -> layer 4 (large
               filter) -> layer 5 (1x1); the skip [layer 3, layer 5] -> fusion layers 6 (large
               filter) and 7 (1x1) -> prediction layer 8A
  Iteration    [layer 3, previous layer 7] -> layers 6-7 -> prediction layer 8B; the same weights
               at every iteration, run with ``nn.scan`` (or an equivalent Python loop)

Batch normalisation follows every convolution except the 1x1 layers and the prediction layers.
Prediction layers are 1x1 convolutions followed by ReLU. Their channels are the P keypoint
heatmaps, then (optionally) one body-part (limb) heatmap per limb of the skeleton.

``__call__`` returns the predictions of the feed-forward module and of every iteration stacked,
[1 + num_iterations, B, ceil(H/4), ceil(W/4), P (+ L)], as the CPM returns its stages. The number
of iterations does not change the parameters: the recurrent module is created even with 0.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from posemachines.models.layers import kernel_init

NUM_LAYERS = 7


def conv_block(x, width: int, kernel: int, name: str, batch_norm: bool, weight_init: str,
               train: bool, dtype=None):
  """conv, then BatchNorm unless the conv is 1x1 (as in the paper), then ReLU."""
  bn = batch_norm and kernel > 1
  x = nn.Conv(width, (kernel, kernel), padding=kernel // 2, use_bias=not bn,
              kernel_init=kernel_init(weight_init), dtype=dtype, name=name)(x)
  if bn:
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype,
                     name=name + '_bn')(x)
  return nn.relu(x)


class Prediction(nn.Module):
  """A prediction layer (8A, 8B): 1x1 conv to the heatmaps, then ReLU (optional)."""
  num_outputs: int
  relu: bool = True
  weight_init: str = 'he'
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.num_outputs, (1, 1), kernel_init=kernel_init(self.weight_init),
                dtype=self.dtype, name='conv')(x)
    return nn.relu(x) if self.relu else x


class Fusion(nn.Module):
  """Layers 6 (large filter) and 7 (1x1) on a concatenation of features."""
  kernels: Sequence[int]
  widths: Sequence[int]
  batch_norm: bool = True
  weight_init: str = 'he'
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, (k, w) in enumerate(zip(self.kernels, self.widths)):
      x = conv_block(x, w, k, f'layer{6 + i}', self.batch_norm, self.weight_init, train,
                     self.dtype)
    return x


class FeedForward(nn.Module):
  """Layers 1-7. Returns (layer-3 output, layer-7 output), both at stride 4."""
  kernels: Sequence[int]
  widths: Sequence[int]
  pools: Sequence[bool]
  batch_norm: bool = True
  weight_init: str = 'he'
  dtype: Any = None

  @nn.compact
  def __call__(self, image, train: bool = False):
    x = image
    for i in range(5):
      x = conv_block(x, self.widths[i], self.kernels[i], f'layer{i + 1}', self.batch_norm,
                     self.weight_init, train, self.dtype)
      if self.pools[i]:
        x = nn.max_pool(x, (2, 2), (2, 2), padding='SAME')
      if i == 2:
        layer3 = x
    fused = Fusion(self.kernels[5:], self.widths[5:], self.batch_norm, self.weight_init,
                   self.dtype, name='fusion')(jnp.concatenate([layer3, x], axis=-1), train)
    return layer3, fused


class Iteration(nn.Module):
  """One pass of the recurrent module: (layer 7, layer 3) -> (new layer 7, its heatmaps)."""
  kernels: Sequence[int]
  widths: Sequence[int]
  num_outputs: int
  batch_norm: bool = True
  output_relu: bool = True
  weight_init: str = 'he'
  train: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, layer7, layer3):
    x = Fusion(self.kernels, self.widths, self.batch_norm, self.weight_init, self.dtype,
               name='fusion')(jnp.concatenate([layer3, layer7], axis=-1), self.train)
    return x, Prediction(self.num_outputs, self.output_relu, self.weight_init, self.dtype,
                         name='predict')(x)


class RecurrentPose(nn.Module):
  """The recurrent pose model. Output channels: ``num_parts`` keypoints, then ``num_limbs``."""
  num_parts: int
  num_limbs: int = 0
  num_iterations: int = 2
  kernels: Sequence[int] = (3, 3, 3, 9, 1, 9, 1)
  widths: Sequence[int] = (64, 128, 128, 256, 128, 192, 128)
  pools: Sequence[bool] = (True, True, False, False, False, False, False)
  batch_norm: bool = True
  output_relu: bool = True
  weight_init: str = 'he'
  scan: bool = True  # False: a Python loop over the same module (same parameters)
  # The scan's unroll (lax.scan): True unrolls every iteration. XLA's CPU backend computes the
  # weight gradients of convolutions inside a rolled loop tens of times slower (measured: a
  # 7x7 conv, 30 s against 0.7 s), so the default unrolls; 1 keeps the loop rolled.
  unroll: int | bool = True
  dtype: Any = None  # computation type (None: float32); parameters stay float32

  @property
  def stride(self) -> int:
    return 2 ** sum(bool(p) for p in self.pools)

  @property
  def num_outputs(self) -> int:
    return self.num_parts + self.num_limbs

  @property
  def output_names(self) -> list[str]:
    return ['feed-forward'] + [f'iteration {i}' for i in range(1, self.num_iterations + 1)]

  def keypoint_maps(self, outputs):
    """The keypoint heatmaps [..., P] of the outputs [..., P + L]."""
    return outputs[..., :self.num_parts]

  def limb_maps(self, outputs):
    """The body-part (limb) heatmaps [..., L] of the outputs [..., P + L]."""
    return outputs[..., self.num_parts:]

  def describe(self) -> list[str]:
    """The layers as the summary command lists them: kernel, width, BatchNorm, pooling."""
    lines = []
    for i, (k, w, pool) in enumerate(zip(self.kernels, self.widths, self.pools)):
      bn = ' + BN' if self.batch_norm and k > 1 else ''
      where = ' (and its own copy in the recurrent module)' if i >= 5 else ''
      lines.append(f'layer {i + 1}: {k}x{k} conv, {w}{bn}{" + 2x2 max-pool" if pool else ""}'
                   f'{where}')
    lines.append('skip: [layer 3, layer 5] -> layer 6; recurrent input: [layer 3, layer 7]')
    lines.append(f'prediction 8A/8B: 1x1 conv -> {self.num_parts} keypoint + {self.num_limbs} '
                 f'limb heatmaps{" + ReLU" if self.output_relu else ""}; '
                 f'{self.num_iterations} iterations (weights shared)')
    return lines

  def check(self):
    for name in ('kernels', 'widths', 'pools'):
      if len(getattr(self, name)) != NUM_LAYERS:
        raise ValueError(f'model.{name} needs {NUM_LAYERS} entries (layers 1-7), got '
                         f'{tuple(getattr(self, name))}')
    if any(self.pools[3:]):
      raise ValueError(f'model.pools {tuple(self.pools)}: pooling after layer 3 would leave '
                       'layers 3 and 5 at different resolutions for the skip connection')
    if self.num_iterations < 0:
      raise ValueError(f'model.num_iterations must be >= 0, got {self.num_iterations}')

  @nn.compact
  def __call__(self, image, center_map=None, train: bool = False):
    """image: [B, H, W, 3] normalised; center_map is ignored (this model takes none)."""
    del center_map
    self.check()
    if self.dtype is not None:
      image = image.astype(self.dtype)
    layer3, layer7 = FeedForward(self.kernels, self.widths, self.pools, self.batch_norm,
                                 self.weight_init, self.dtype, name='feedforward')(image, train)
    outputs = [Prediction(self.num_outputs, self.output_relu, self.weight_init, self.dtype,
                          name='predict')(layer7)]
    args = (self.kernels[5:], self.widths[5:], self.num_outputs, self.batch_norm,
            self.output_relu, self.weight_init, train, self.dtype)
    return self._iterate(args, layer3, layer7, outputs).astype(jnp.float32)

  def _iterate(self, args, layer3, layer7, outputs):
    if self.num_iterations == 0:
      if self.is_initializing():  # the recurrent weights exist whatever the iteration count
        Iteration(*args, name='recurrent')(layer7, layer3)
      return jnp.stack(outputs)
    # One iteration is the iteration itself: XLA keeps a scan of length 1 as a while loop even
    # when unrolled, and on CPU that loop's weight gradients run tens of times slower.
    if self.scan and self.num_iterations > 1 and not self.is_initializing():
      # Weights are broadcast (shared) across iterations. BatchNorm statistics, when they are
      # being updated, are carried, so each iteration updates them in turn as the Python loop
      # does; otherwise they are broadcast too. (init takes the loop below: a scan cannot create
      # the statistics it carries.)
      updated = self.is_mutable_collection('batch_stats')
      scanned = nn.scan(Iteration,
                        variable_broadcast=['params'] if updated else ['params', 'batch_stats'],
                        variable_carry=['batch_stats'] if updated else [],
                        split_rngs={'params': False}, in_axes=nn.broadcast,
                        length=self.num_iterations, unroll=self.unroll)
      _, preds = scanned(*args, name='recurrent')(layer7, layer3)
      return jnp.concatenate([jnp.stack(outputs), preds])
    step = Iteration(*args, name='recurrent')
    for _ in range(self.num_iterations):
      layer7, pred = step(layer7, layer3)
      outputs.append(pred)
    return jnp.stack(outputs)


def from_config(cfg, num_parts: int, num_limbs: int, dtype=None) -> RecurrentPose:
  """Builds the recurrent model from a config's ``model`` section (see configs.py); ``dtype``
  is the computation type."""
  keys = ('num_iterations', 'kernels', 'widths', 'pools', 'batch_norm', 'output_relu',
          'weight_init', 'scan', 'unroll')
  kwargs = {k: tuple(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k] for k in keys}
  return RecurrentPose(num_parts=num_parts, num_limbs=num_limbs, dtype=dtype, **kwargs)
