"""Layer operations with hand-written backward passes, for speed and memory on XLA's CPU backend.

``relu_max_pool`` (ReLU then a max-pool) and ``max_pool``. JAX differentiates
``lax.reduce_window(max)`` into a select-and-scatter, which XLA's CPU backend expands into int32
index arrays of the padded input's size and a serial scatter: for the released CPM's first pools
(batch 4, 368x368x128), eight 266 MiB index buffers, most of the train step's memory. Here the
forward pass also records, per output, which offset of its window holds the maximum (the first in
raster order, as select-and-scatter chooses): one int8 per output, the only thing the backward
pass keeps. With the ReLU fused in, the code also says "no gradient" where the maximum is not
positive (ReLU's derivative is 0 there), so neither the ReLU's input nor its output is kept: at
368x368 an int8 map of the pooled size replaces two float maps of the full size. The backward
pass builds the input gradient phase by phase of the stride: each input pixel of a phase sums the
masked output gradients of the few windows that cover it, shifted copies of one array.

``conv`` (+ bias, + optional ReLU): a stride-1 NHWC x HWIO convolution whose input and weight
gradients are computed in a chosen form (``ConvForms``), because XLA's CPU backend runs the same
mathematical convolution at very different speeds depending on how it is written: its YNNPACK
path is fast for forward-form convolutions but slow for the weight gradient's
(batch-contracting, image-sized kernel) form, which its classic Eigen path runs well. The ReLU,
when fused, keeps its output (which is the next layer's input, kept anyway) and takes its
derivative from that, so no pre-activation map is kept. All forms compute the same sums in
float32 (or the inputs' type with float32 accumulation).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
from jax import lax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp

NHWC = ('NHWC', 'HWIO', 'NHWC')
NO_GRADIENT = 127  # `which` code of an output that passes no gradient back
POOL_WHICH = 'pool_which'  # checkpoint name of the pools' int8 maps (for remat policies)


# ---------------------------------------------------------------------------------------------
# Max-pooling.


def _pad(x, pads, value):
  return lax.pad(x, jnp.array(value, x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0),
                                                (0, 0, 0)])


def _window_slices(xp, window: int, stride: int, out_hw):
  """The window's offsets in raster order, each with the strided slice of ``xp`` it reads."""
  ho, wo = out_hw
  b, _, _, c = xp.shape
  for di in range(window):
    for dj in range(window):
      yield (di, dj), lax.slice(xp, (0, di, dj, 0),
                                (b, di + (ho - 1) * stride + 1, dj + (wo - 1) * stride + 1, c),
                                (1, stride, stride, 1))


def _pool_max(x, window, stride, pads, relu: bool):
  """(padded input, pooled map)."""
  if relu:
    x = jnp.maximum(x, jnp.array(0, x.dtype))
  xp = _pad(x, pads, 0 if relu else -jnp.inf)  # after a ReLU, 0 is as neutral as -inf
  y = lax.reduce_window(xp, jnp.array(-jnp.inf, x.dtype), lax.max, (1, window, window, 1),
                        (1, stride, stride, 1), 'VALID')
  return xp, y


def _pool_argmax(x, window, stride, pads, relu: bool):
  """(pooled map, which): per output, the raster index in its window of the window's first
  maximum (NO_GRADIENT where a fused ReLU passes no gradient)."""
  if relu:
    x = jnp.maximum(x, jnp.array(0, x.dtype))
  xp = _pad(x, pads, 0 if relu else -jnp.inf)
  slices = [xs for _, xs in _window_slices(xp, window, stride, _pool_out(xp, window, stride))]
  y = functools.reduce(jnp.maximum, slices)

  def which_of(xp, y):
    which = jnp.full(y.shape, NO_GRADIENT, jnp.int8)
    for k, (_, xs) in reversed(list(enumerate(_window_slices(xp, window, stride, y.shape[1:3])))):
      which = jnp.where(xs == y, jnp.int8(k), which)
    if relu:
      which = jnp.where(y > 0, which, jnp.int8(NO_GRADIENT))
    return which

  return y, computed_here(which_of, xp, y)


def computed_here(fn, *args):
  """``fn(*args)``, computed where it stands in the program.

  XLA fuses cheap elementwise producers into their consumers; when the consumer is in the
  backward pass, the producer's inputs stay alive until then (for the pools' index maps: the
  padded input, 266 MiB per pool at 368x368, instead of 17 MiB of int8). A conditional is not
  fused with its surroundings, so ``fn`` runs inside one, on a predicate that is always true but
  that XLA cannot fold (x == x or x != x, on an element of the first argument). Elsewhere than
  on CPU, just ``fn(*args)``."""
  def in_conditional(*args):
    first = lax.slice(args[0], (0,) * args[0].ndim, (1,) * args[0].ndim).reshape(())
    always = (first == first) | (first != first)
    out = jax.eval_shape(fn, *args)
    return lax.cond(always, fn, lambda *a: jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype), out), *args)

  # Only on CPU: a GPU reads a conditional's predicate back to the host.
  return lax.platform_dependent(*args, cpu=in_conditional, default=fn)


def after(x, dep):
  """``x``, made to depend on ``dep``: what consumes the result runs once ``dep`` exists. (The
  CPM's two trunks are independent; run side by side, their 368x368 first layers are all alive
  at once.)"""
  first = lax.slice(dep, (0,) * dep.ndim, (1,) * dep.ndim).reshape(())
  return jnp.where((first == first) | (first != first), x, jnp.zeros_like(x))


def _pool_out(xp, window, stride):
  return (xp.shape[1] - window) // stride + 1, (xp.shape[2] - window) // stride + 1


def _pool_backward(which, g, x_shape, window, stride, pads, layout: str = 'NHWC'):
  """The pool's input gradient, [B, H, W, C] ('NHWC') or [H, W, B, C] ('HWBC')."""
  batch, _, _, ch = x_shape
  ho, wo = g.shape[1:3]
  hp = x_shape[1] + pads[0][0] + pads[0][1]
  wp = x_shape[2] + pads[1][0] + pads[1][1]
  hc, wc = -(-hp // stride), -(-wp // stride)
  zero = jnp.array(0, g.dtype)
  hwbc = layout == 'HWBC'
  # Input pixel (a * stride + r, b * stride + t) receives from the outputs (a - m, b - n) whose
  # window offset is (r + m * stride, t + n * stride).
  rows = []
  for r in range(stride):
    cols = []
    for t in range(stride):
      acc = jnp.zeros((batch, hc, wc, ch), g.dtype)
      for di in range(r, window, stride):
        for dj in range(t, window, stride):
          m, n = (di - r) // stride, (dj - t) // stride
          part = jnp.where(which == di * window + dj, g, zero)
          acc = acc + lax.pad(part, zero, [(0, 0, 0), (m, hc - ho - m, 0), (n, wc - wo - n, 0),
                                           (0, 0, 0)])
      cols.append(acc.transpose(1, 2, 0, 3) if hwbc else acc)
    rows.append(jnp.stack(cols, axis=2 if hwbc else 3))   # [hc, wc, s, B, C] / [B, hc, wc, s, C]
  (top, _), (left, _) = pads
  if hwbc:
    dxp = jnp.stack(rows, axis=1).reshape(hc * stride, wc * stride, batch, ch)
    return dxp[top:top + x_shape[1], left:left + x_shape[2]]
  dxp = jnp.stack(rows, axis=2).reshape(batch, hc * stride, wc * stride, ch)
  return dxp[:, top:top + x_shape[1], left:left + x_shape[2]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _pool(x, window, stride, pads, relu, x_shape):
  del x_shape
  return _pool_max(x, window, stride, pads, relu)[1]


def _pool_fwd(x, window, stride, pads, relu, x_shape):
  del x_shape
  y, which = _pool_argmax(x, window, stride, pads, relu)
  return y, checkpoint_name(which, POOL_WHICH)


def _pool_bwd(window, stride, pads, relu, x_shape, which, g):
  del relu

  def hwbc(which, g):
    # Built as [H, W, B, C]: the layout the next weight gradient ('conv' form) reads, so XLA
    # cancels the two transposes and writes one array instead of two (at 368x368: 266 MiB).
    return _pool_backward(which, g, x_shape, window, stride, pads, 'HWBC').transpose(2, 0, 1, 3)

  return (lax.platform_dependent(which, g, cpu=hwbc, default=lambda which, g: _pool_backward(
      which, g, x_shape, window, stride, pads)),)


_pool.defvjp(_pool_fwd, _pool_bwd)


def _as_pads(pads):
  return tuple(tuple(int(p) for p in pair) for pair in pads)


def max_pool(x, window: int, stride: int, pads):
  """Max-pool of NHWC ``x`` (square ``window`` and ``stride``; ``pads`` ((top, bottom), (left,
  right)) filled with -inf)."""
  return _pool(x, window, stride, _as_pads(pads), False, tuple(x.shape))


def relu_max_pool(x, window: int, stride: int, pads):
  """``max_pool(relu(x))``, keeping only one int8 per output for the backward pass."""
  return _pool(x, window, stride, _as_pads(pads), True, tuple(x.shape))


# ---------------------------------------------------------------------------------------------
# Convolution.


@dataclasses.dataclass(frozen=True)
class ConvForms:
  """How each gradient of a convolution is written for XLA.

  input_grad   'transpose': JAX's own transpose rule (a convolution XLA canonicalises with
               transposes); 'conv': an explicit forward-form convolution of the output gradient
               with the flipped, in/out-swapped kernel.
  weight_grad  'transpose': JAX's own transpose rule; 'conv': an explicit convolution in
               canonical form of the transposed operands (x as [Cin, H, W, B] is a batch of Cin
               images, the output gradient as [H, W, B, Cout] the kernel); 'swap': the roles
               swapped (the output gradient as a batch of Cout images, the padded input as a
               kernel larger than that image, which YNNPACK declines and XLA's classic Eigen
               path takes), the result flipped; 'rows': per kernel row, one matrix product of
               that row's patches (the kernel width's shifts stacked on channels) with the
               output gradient.
  """
  input_grad: str = 'conv'
  weight_grad: str = 'conv'


INPUT_GRAD_FORMS = ('transpose', 'conv')
WEIGHT_GRAD_FORMS = ('transpose', 'conv', 'swap', 'rows')


def _conv(x, w, padding, precision=None):
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC,
                                  precision=precision,
                                  preferred_element_type=_accumulator(x.dtype))


def _accumulator(dtype):
  return jnp.float32 if dtype in (jnp.bfloat16, jnp.float16) else None


def input_grad(g, w, x_shape, padding, form: str):
  """d(conv(x, w)) / dx contracted with the output gradient ``g``."""
  if form == 'transpose':
    w = w.astype(g.dtype)
    f = lambda x: _conv(x, w, padding)
    out = jax.eval_shape(f, jax.ShapeDtypeStruct(x_shape, g.dtype))
    return jax.linear_transpose(f, jax.ShapeDtypeStruct(x_shape, g.dtype))(
        g.astype(out.dtype))[0]
  if form == 'conv':
    kh, kw = w.shape[:2]
    (pt, pb), (pl, pr) = padding
    back = ((kh - 1 - pt, kh - 1 - pb + x_shape[1] - (g.shape[1] + kh - 1 - pt - pb)),
            (kw - 1 - pl, kw - 1 - pr + x_shape[2] - (g.shape[2] + kw - 1 - pl - pr)))
    return _conv(g, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2).astype(g.dtype), back)
  raise ValueError(f'Unknown input-gradient form {form!r}; known: {INPUT_GRAD_FORMS}')


def weight_grad(x, g, w_shape, padding, form: str):
  """d(conv(x, w)) / dw contracted with the output gradient ``g``: [kh, kw, Cin, Cout]."""
  kh, kw = w_shape[:2]
  (pt, pb), (pl, pr) = padding
  g = g.astype(x.dtype)
  acc = _accumulator(x.dtype)
  if form == 'transpose':
    f = lambda w: _conv(x, w, padding)
    w_aval = jax.ShapeDtypeStruct(w_shape, x.dtype)
    out = jax.eval_shape(f, w_aval)
    return jax.linear_transpose(f, w_aval)(g.astype(out.dtype))[0]
  # The high padding that makes the output (kh, kw): x's padded size - g's size + 1 = k.
  hi_h = kh - 1 - (x.shape[1] + pt - g.shape[1])
  hi_w = kw - 1 - (x.shape[2] + pl - g.shape[2])
  if form == 'conv':
    out = lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1),
                                   ((pt, hi_h), (pl, hi_w)), dimension_numbers=NHWC,
                                   preferred_element_type=acc)
    return out.transpose(1, 2, 0, 3)
  if form == 'swap':
    # out[co, u, v, ci] = sum g[b, h, w, co] xpad[b, h + kh-1-u, w + kw-1-v, ci]: g, padded by
    # k - 1 on each side, is the image; the padded x the kernel.
    xp = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), (pt, hi_h, 0), (pl, hi_w, 0), (0, 0, 0)])
    ph, pw = xp.shape[1] - g.shape[1], xp.shape[2] - g.shape[2]   # = kh - 1, kw - 1
    out = lax.conv_general_dilated(g.transpose(3, 1, 2, 0), xp.transpose(1, 2, 0, 3), (1, 1),
                                   ((ph, ph), (pw, pw)), dimension_numbers=NHWC,
                                   preferred_element_type=acc)
    return jnp.flip(out, (1, 2)).transpose(1, 2, 3, 0)
  if form == 'rows':
    xp = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), (pt, hi_h, 0), (pl, hi_w, 0), (0, 0, 0)])
    b, h, w, c = g.shape[0], g.shape[1], g.shape[2], x.shape[3]
    g2 = g.reshape(b * h * w, g.shape[3])
    rows = []
    for i in range(kh):
      patches = jnp.concatenate([xp[:, i:i + h, j:j + w] for j in range(kw)], axis=-1)
      rows.append(lax.dot_general(patches.reshape(b * h * w, kw * c), g2,
                                  (((0,), (0,)), ((), ())),
                                  preferred_element_type=acc).reshape(kw, c, -1))
    return jnp.stack(rows)
  raise ValueError(f'Unknown weight-gradient form {form!r}; known: {WEIGHT_GRAD_FORMS}')


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv_bias(x, w, b, padding, relu, forms):
  y = _conv(x, w, padding)
  y = (y + b.astype(y.dtype)).astype(x.dtype)
  return jnp.maximum(y, jnp.array(0, y.dtype)) if relu else y


def _conv_bias_fwd(x, w, b, padding, relu, forms):
  y = _conv_bias(x, w, b, padding, relu, forms)
  return y, (x, w, y if relu else None, jnp.zeros((0,), b.dtype))


def _conv_bias_bwd(padding, relu, forms, res, g):
  x, w, y, b_like = res
  if relu:
    g = jnp.where(y > 0, g, jnp.array(0, g.dtype))

  def grads(forms):
    def fn(x, w, g):
      dx = input_grad(g, w, x.shape, padding, forms.input_grad).astype(x.dtype)
      dw = weight_grad(x, g, w.shape, padding, forms.weight_grad).astype(w.dtype)
      return dx, dw
    return fn

  # The forms are chosen for XLA's CPU backend; elsewhere JAX's own transpose rules, which the
  # GPU and TPU compilers match to their backward-convolution kernels.
  dx, dw = lax.platform_dependent(x, w, g, cpu=grads(forms),
                                  default=grads(ConvForms('transpose', 'transpose')))
  db = jnp.sum(g, axis=(0, 1, 2), dtype=jnp.float32).astype(b_like.dtype)
  return dx, dw, db


_conv_bias.defvjp(_conv_bias_fwd, _conv_bias_bwd)


def choose_forms(x_shape, w_shape) -> ConvForms:
  """The forms of a convolution's gradients, by its shape (see ConvForms).

  Measured per convolution of the released CPM (benchmarks/conv_passes.py, batch 4, with the
  package's XLA flag): the explicit transposed-operand weight gradient ('conv') is faster than
  JAX's own ('transpose') for the k x k convolutions (the 3->128 9x9 one at 368x368 by 1.5x),
  and slower for the 1x1 ones; both input-gradient forms run at the same speed."""
  del x_shape
  return ConvForms(input_grad='conv', weight_grad='transpose' if w_shape[0] == 1 else 'conv')


def conv(x, w, b, padding, relu: bool = False, forms: ConvForms = ConvForms()):
  """``conv(x, w) + b`` (then ReLU when ``relu``), stride 1, NHWC x HWIO; ``padding`` ((top,
  bottom), (left, right)). Gradients in the forms of ``forms``."""
  if forms.input_grad not in INPUT_GRAD_FORMS:
    raise ValueError(f'Unknown input-gradient form {forms.input_grad!r}; known: '
                     f'{INPUT_GRAD_FORMS}')
  if forms.weight_grad not in WEIGHT_GRAD_FORMS:
    raise ValueError(f'Unknown weight-gradient form {forms.weight_grad!r}; known: '
                     f'{WEIGHT_GRAD_FORMS}')
  return _conv_bias(x, w, b, _as_pads(padding), bool(relu), forms)


# ---------------------------------------------------------------------------------------------
# Flax module.


class Conv(nn.Module):
  """A same-padded, stride-1 convolution (+ bias, + optional fused ReLU) with ``conv``'s
  backward pass. Parameters ``kernel`` [k, k, Cin, Cout] and ``bias`` [Cout], as flax's
  ``nn.Conv`` names and shapes them. ``dtype``: the computation's type (inputs, kernel and bias
  are cast to it; accumulation in float32); ``param_dtype``: the stored parameters' type."""
  features: int
  kernel_size: int
  kernel_init: Callable = nn.initializers.lecun_normal()
  use_bias: bool = True
  relu: bool = False
  forms: ConvForms | None = None   # None: chosen per convolution by ``choose_forms``
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        self.param_dtype)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), self.param_dtype)
    else:
      bias = jnp.zeros((self.features,), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
    x, kernel, bias = (a.astype(dtype) for a in (x, kernel, bias))
    forms = self.forms or choose_forms(x.shape, kernel.shape)
    return conv(x, kernel, bias, ((k // 2, k // 2),) * 2, self.relu, forms)
