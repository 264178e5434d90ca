"""Receptive fields read off the jaxpr of ``model.stages``.

For every array, the field of its elements along each input direction (rows, columns of the
image) is tracked: its size in input pixels, the jump (effective stride: input pixels between
neighbouring elements) and the centre of the first element's field. Convolutions and window
reductions grow the field; ops that mix values take the union; reductions and contractions over
a spatial axis make the field span the whole axis. See ``Field`` and ``output_fields``."""
from __future__ import annotations
import collections
import dataclasses
import math
from typing import Callable, Sequence
from absl import logging
import jax
from jax.extend import core as jcore
from posemachines.tools import abstract, jaxpr_walk

# ---------------------------------------------------------------------------------------------
# Receptive fields.


@dataclasses.dataclass(frozen=True)
class Field:
  """The receptive field of an array's elements along one input direction, in input pixels.

  size:  extent of one element's field.
  jump:  input pixels between the fields of neighbouring elements along ``axis`` (the effective
         stride; 0 when the field is the same for every element).
  start: input-pixel coordinate of the centre of the first element's field (pixel i has centre i).
  axis:  the array axis along which the field moves, or None when it does not move.
  """
  size: float
  jump: float
  start: float
  axis: int | None

  @property
  def stride(self) -> float:
    return abs(self.jump)


@dataclasses.dataclass(frozen=True)
class Stacked:
  """Fields of an array stacked along ``axis`` (jnp.stack, scan outputs): one state per index."""
  axis: int
  items: tuple


# A state maps an input direction (0: rows, 1: columns, ...) to its Field; {} for values that do
# not depend on any spatial input (parameters, constants). A Stacked holds one state per index.
State = dict


def _moved(f: Field, axis) -> Field:
  return dataclasses.replace(f, axis=axis)


def _covering(f: Field, n: int) -> Field:
  """The field of something that depends on all n elements along f's axis."""
  if f.axis is None:
    return f
  return Field(f.size + (n - 1) * abs(f.jump), 0., f.start + (n - 1) / 2 * f.jump, None)


def _all_covering(state: State, shape) -> State:
  return {d: _covering(f, shape[f.axis]) if f.axis is not None else f for d, f in state.items()}


def _union(fields: Sequence[Field]) -> Field:
  """Smallest field containing all of ``fields`` for the first element; the coarsest jump."""
  if len(fields) == 1:
    return fields[0]
  moving = [f for f in fields if f.axis is not None]
  axis = moving[0].axis if moving else None
  jump = max((f.jump for f in moving), key=abs) if moving else 0.
  if any(math.isinf(f.size) for f in fields):
    return Field(math.inf, jump, fields[0].start, axis)
  lo = min(f.start - (f.size - 1) / 2 for f in fields)
  hi = max(f.start + (f.size - 1) / 2 for f in fields)
  return Field(hi - lo + 1, jump, (lo + hi) / 2, axis)


def _merge(states: Sequence[State], shape) -> State:
  """State of a value that depends on all of ``states`` (axes already in the value's frame)."""
  by_dir = collections.defaultdict(list)
  for state in states:
    for d, f in _collapse(state, shape).items():
      by_dir[d].append(f)
  out = {}
  for d, fields in by_dir.items():
    if len({f.axis for f in fields if f.axis is not None}) > 1:
      fields = [_covering(f, shape[f.axis]) if f.axis is not None else f for f in fields]
    out[d] = _union(fields)
  return out


def _collapse(state, shape) -> State:
  """A plain state from a Stacked one (the union over the stacked axis)."""
  if isinstance(state, Stacked):
    return _merge(state.items, shape)
  return state


def _map_axes(state: State, axis_map: Callable, shape) -> State:
  """Moves every field to axis_map(axis); None there means the axis is reduced over (n = shape)."""
  out = {}
  for d, f in state.items():
    if f.axis is None:
      out[d] = f
    elif (new := axis_map(f.axis)) is None:
      out[d] = _covering(f, shape[f.axis])
    else:
      out[d] = _moved(f, new)
  return out


def _shape(v) -> tuple[int, ...]:
  return tuple(v.aval.shape)


def _window(f: Field, k, stride, pad_lo, base_dilation=1, window_dilation=1, axis=None) -> Field:
  """The field after a window op (convolution or pooling) of size k along f's axis."""
  axis = f.axis if axis is None else axis
  if base_dilation == 1:
    span = (k - 1) * window_dilation
    return Field(f.size + span * abs(f.jump), f.jump * stride,
                 f.start + (span / 2 - pad_lo) * f.jump, axis)
  return _dilated_window(f, k, stride, pad_lo, base_dilation, window_dilation, axis)


def _dilated_window(f: Field, k, stride, pad_lo, base_dilation, window_dilation, axis) -> Field:
  """A window over a base-dilated input (transposed convolution): only the taps that land on
  input elements, not on the holes between them, count. The taps differ between output
  elements (phases); the size is the largest over phases, the start that of element 0."""
  spans = []
  for i in range(base_dilation):
    taps = [i * stride - pad_lo + m * window_dilation for m in range(k)]
    real = [t // base_dilation for t in taps if t % base_dilation == 0]
    spans.append((min(real), max(real)) if real else None)
  if not any(spans):
    return f
  width = max(hi - lo for lo, hi in filter(None, spans))
  lo, hi = spans[0] or next(filter(None, spans))
  return Field(f.size + width * abs(f.jump), f.jump * stride / base_dilation,
               f.start + (lo + hi) / 2 * f.jump, axis)


def _rule_elementwise(eqn, ins):
  """Elementwise ops with numpy broadcasting of size-1 axes (and of scalars)."""
  outs = []
  for out in eqn.outvars:
    shape = _shape(out)
    stacked = [s for s in ins if isinstance(s, Stacked)]
    if stacked and all(s.axis == stacked[0].axis and len(s.items) == len(stacked[0].items)
                       == shape[s.axis] for s in stacked):
      n = len(stacked[0].items)
      per_index = [[s.items[i] if isinstance(s, Stacked) else s for s in ins] for i in range(n)]
      outs.append(Stacked(stacked[0].axis, tuple(
          _elementwise_merge(eqn, row, shape) for row in per_index)))
    else:
      outs.append(_elementwise_merge(eqn, [_collapse(s, shape) for s in ins], shape))
  return outs


def _elementwise_merge(eqn, states, shape) -> State:
  parts = []
  for v, state in zip(eqn.invars, states):
    in_shape = _shape(v)
    if not state:
      continue
    if in_shape and (len(in_shape) != len(shape)
                     or any(a not in (b, 1) for a, b in zip(in_shape, shape))):
      return _rule_dense(eqn, [_collapse(s, shape) for s in states])[0]
    parts.append({d: f if f.axis is None or in_shape[f.axis] == shape[f.axis]
                  else Field(f.size, 0., f.start, None) for d, f in state.items()})
  return _merge(parts, shape)


_warned = set()


def _rule_dense(eqn, ins):
  """Fallback: every output depends on every input element (an upper bound on the field)."""
  name = eqn.primitive.name
  if name not in _warned and name not in _RULES:
    _warned.add(name)
    logging.warning('No receptive-field rule for %r: treated as depending on all its input.', name)
  parts = [_all_covering(_collapse(s, _shape(v)), _shape(v)) for v, s in zip(eqn.invars, ins)]
  merged = _merge(parts, ())
  return [merged for _ in eqn.outvars]


def _rule_conv(eqn, ins):
  lhs, rhs = ins
  lhs_spec, rhs_spec, out_spec = eqn.params['dimension_numbers']
  p = eqn.params
  kernel = _shape(eqn.invars[1])
  out = {}
  for d, f in lhs.items():
    if f.axis is None:
      out[d] = f
    elif f.axis in lhs_spec[2:]:
      i = lhs_spec[2:].index(f.axis)
      out[d] = _window(f, kernel[rhs_spec[2 + i]], p['window_strides'][i], p['padding'][i][0],
                       p['lhs_dilation'][i], p['rhs_dilation'][i], out_spec[2 + i])
    elif f.axis == lhs_spec[0]:
      out[d] = _moved(f, out_spec[0])
    else:
      out[d] = _covering(f, _shape(eqn.invars[0])[f.axis])
  shape = _shape(eqn.outvars[0])
  return [_merge([out, _all_covering(rhs, kernel)], shape)]


def _rule_reduce_window(eqn, ins):
  p = eqn.params
  n = len(eqn.outvars)
  operands = _merge([_collapse(s, _shape(v)) for v, s in zip(eqn.invars[:n], ins[:n])],
                    _shape(eqn.invars[0]))
  out = {}
  for d, f in operands.items():
    if f.axis is None:
      out[d] = f
    else:
      a = f.axis
      out[d] = _window(f, p['window_dimensions'][a], p['window_strides'][a], p['padding'][a][0],
                       p['base_dilation'][a], p['window_dilation'][a])
  return [out] * n


def _rule_broadcast_in_dim(eqn, ins):
  (state, *_), in_shape, shape = ins, _shape(eqn.invars[0]), _shape(eqn.outvars[0])
  dims = eqn.params['broadcast_dimensions']
  out = {}
  for d, f in _collapse(state, in_shape).items():
    if f.axis is not None and in_shape[f.axis] == 1 and shape[dims[f.axis]] != 1:
      out[d] = Field(f.size, 0., f.start, None)
    else:
      out[d] = _moved(f, None if f.axis is None else dims[f.axis])
  return [out]


def _rule_reshape(eqn, ins):
  in_shape, shape = _shape(eqn.invars[0]), _shape(eqn.outvars[0])
  if eqn.params.get('dimensions') is not None:
    return _rule_dense(eqn, ins)

  def axis_map(a):
    before = math.prod(in_shape[:a])
    for b in range(len(shape)):
      if math.prod(shape[:b]) == before and shape[b] == in_shape[a]:
        return b
    return None

  return [_map_axes(_collapse(ins[0], in_shape), axis_map, in_shape)]


def _rule_transpose(eqn, ins):
  perm = list(eqn.params['permutation'])
  in_shape = _shape(eqn.invars[0])
  return [_map_axes(_collapse(ins[0], in_shape), perm.index, in_shape)]


def _renumber_without(dims):
  """Axis map for an op that removes the axes ``dims`` (None for a removed axis)."""
  dims = set(dims)
  return lambda a: None if a in dims else a - sum(x < a for x in dims)


def _rule_squeeze(eqn, ins):
  (state,), in_shape = ins, _shape(eqn.invars[0])
  dims = [d % len(in_shape) for d in eqn.params['dimensions']]
  axis_map = _renumber_without(dims)
  if isinstance(state, Stacked):
    if state.axis in dims:
      return [_map_axes(state.items[0], axis_map, in_shape)]
    return [Stacked(axis_map(state.axis),
                    tuple(_map_axes(s, axis_map, in_shape) for s in state.items))]
  return [_map_axes(state, axis_map, in_shape)]


def _reduced(axes_param):
  def rule(eqn, ins):
    in_shape = _shape(eqn.invars[0])
    n = len(eqn.outvars)
    merged = _merge([_collapse(s, _shape(v)) for v, s in zip(eqn.invars[:n], ins[:n])], in_shape)
    out = _map_axes(merged, _renumber_without(eqn.params[axes_param]), in_shape)
    return [out] * n
  return rule


def _along_axis(axis_param):
  """Ops along one axis (cumulative sums, sort): the field there spans the whole axis."""
  def rule(eqn, ins):
    in_shape = _shape(eqn.invars[0])
    axis = eqn.params[axis_param]
    merged = _merge([_collapse(s, in_shape) for s in ins], in_shape)
    out = _map_axes(merged, lambda a: None if a == axis else a, in_shape)
    return [out] * len(eqn.outvars)
  return rule


def _rule_rev(eqn, ins):
  in_shape = _shape(eqn.invars[0])
  out = {}
  for d, f in _collapse(ins[0], in_shape).items():
    if f.axis in eqn.params['dimensions']:
      f = Field(f.size, -f.jump, f.start + (in_shape[f.axis] - 1) * f.jump, f.axis)
    out[d] = f
  return [out]


def _rule_pad(eqn, ins):
  in_shape = _shape(eqn.invars[0])
  config = eqn.params['padding_config']
  out = {}
  for d, f in _collapse(ins[0], in_shape).items():
    if f.axis is not None:
      lo, _, interior = config[f.axis]
      j = f.jump / (interior + 1)
      f = Field(f.size, j, f.start - lo * j, f.axis)
    out[d] = f
  return [_merge([out, ins[1]], _shape(eqn.outvars[0]))]


def _sliced(state: State, starts, strides) -> State:
  return {d: f if f.axis is None else
          Field(f.size, f.jump * strides[f.axis], f.start + starts[f.axis] * f.jump, f.axis)
          for d, f in state.items()}


def _rule_slice(eqn, ins):
  (state,) = ins
  starts, limits = eqn.params['start_indices'], eqn.params['limit_indices']
  strides = eqn.params['strides'] or (1,) * len(starts)
  if isinstance(state, Stacked):
    a = state.axis
    items = state.items[starts[a]:limits[a]:strides[a]]
    return [Stacked(a, tuple(_sliced(s, starts, strides) for s in items))]
  return [_sliced(state, starts, strides)]


def _rule_dynamic_slice(eqn, ins):
  state, *index_states = ins
  in_shape, sizes = _shape(eqn.invars[0]), eqn.params['slice_sizes']
  starts = [jaxpr_walk.literal(v) for v in eqn.invars[1:1 + len(in_shape)]]
  if isinstance(state, Stacked):
    a = state.axis
    if starts[a] is None:
      state = _collapse(state, in_shape)
    else:
      s0 = min(max(int(starts[a]), 0), in_shape[a] - sizes[a])
      state = Stacked(a, state.items[s0:s0 + sizes[a]])
  out = _dynamic_sliced(state, starts, sizes, in_shape)
  shape = _shape(eqn.outvars[0])
  index_fields = [_all_covering(s, _shape(v)) for v, s in zip(eqn.invars[1:], index_states)]
  if isinstance(out, Stacked) and not any(index_fields):
    return [out]
  return [_merge([_collapse(out, shape)] + index_fields, shape)]


def _dynamic_sliced(state, starts, sizes, in_shape):
  if isinstance(state, Stacked):
    return Stacked(state.axis, tuple(_dynamic_sliced(s, starts, sizes, in_shape)
                                     for s in state.items))
  out = {}
  for d, f in state.items():
    if f.axis is not None:
      a, n, k = f.axis, in_shape[f.axis], sizes[f.axis]
      if starts[a] is not None or k == n:
        s0 = 0 if k == n else min(max(int(starts[a]), 0), n - k)
        f = Field(f.size, f.jump, f.start + s0 * f.jump, a)
      else:  # unknown offset: any of the n - k + 1 positions
        f = Field(f.size + (n - k) * abs(f.jump), f.jump, f.start + (n - k) / 2 * f.jump, a)
    out[d] = f
  return out


def _rule_concatenate(eqn, ins):
  dim, shape = eqn.params['dimension'], _shape(eqn.outvars[0])
  if any(isinstance(s, Stacked) and s.axis == dim for s in ins) or all(
      _shape(v)[dim] == 1 for v in eqn.invars):
    items = []
    for v, s in zip(eqn.invars, ins):
      items += list(s.items) if isinstance(s, Stacked) and s.axis == dim else (
          [_collapse(s, _shape(v))] * _shape(v)[dim])
    return [Stacked(dim, tuple(items))]
  return [_merge([_collapse(s, _shape(v)) for v, s in zip(eqn.invars, ins)], shape)]


def _rule_stack(eqn, ins):
  axis = eqn.params['axis']
  shape = _shape(eqn.outvars[0])
  axis = axis % len(shape)
  shift = lambda a: a + (a >= axis)
  return [Stacked(axis, tuple(_map_axes(_collapse(s, _shape(v)), shift, _shape(v))
                              for v, s in zip(eqn.invars, ins)))]


def _rule_unstack(eqn, ins):
  (state,), in_shape = ins, _shape(eqn.invars[0])
  axis = eqn.params['axis'] % len(in_shape)
  drop = _renumber_without([axis])
  if isinstance(state, Stacked) and state.axis == axis:
    return [_map_axes(s, drop, in_shape) for s in state.items]
  state = _collapse(state, in_shape)
  outs = []
  for i in range(len(eqn.outvars)):
    starts = [i if a == axis else 0 for a in range(len(in_shape))]
    outs.append(_map_axes(_sliced(state, starts, [1] * len(in_shape)), drop, in_shape))
  return outs


def _rule_split(eqn, ins):
  (state,), in_shape = ins, _shape(eqn.invars[0])
  axis, offset, outs = eqn.params['axis'] % len(in_shape), 0, []
  for size in eqn.params['sizes']:
    size = int(size)
    if isinstance(state, Stacked) and state.axis == axis:
      outs.append(Stacked(axis, state.items[offset:offset + size]))
    else:
      starts = [offset if a == axis else 0 for a in range(len(in_shape))]
      outs.append(_sliced(_collapse(state, in_shape), starts, [1] * len(in_shape)))
    offset += size
  return outs


def _rule_dot_general(eqn, ins):
  (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
  lhs_shape, rhs_shape = _shape(eqn.invars[0]), _shape(eqn.invars[1])
  lhs_free = [a for a in range(len(lhs_shape)) if a not in lc and a not in lb]
  rhs_free = [a for a in range(len(rhs_shape)) if a not in rc and a not in rb]

  def lhs_map(a):
    return None if a in lc else lb.index(a) if a in lb else len(lb) + lhs_free.index(a)

  def rhs_map(a):
    if a in rc:
      return None
    return rb.index(a) if a in rb else len(lb) + len(lhs_free) + rhs_free.index(a)

  lhs = _map_axes(_collapse(ins[0], lhs_shape), lhs_map, lhs_shape)
  rhs = _map_axes(_collapse(ins[1], rhs_shape), rhs_map, rhs_shape)
  return [_merge([lhs, rhs], _shape(eqn.outvars[0]))]


def _rule_scan(eqn, ins):
  p = eqn.params
  body, consts = jaxpr_walk.open_jaxpr(p['jaxpr'])
  nc, nk, length = p['num_consts'], p['num_carry'], p['length']
  carry = list(ins[nc:nc + nk])
  xs = [(v, s) for v, s in zip(eqn.invars[nc + nk:], ins[nc + nk:])]
  order = range(length - 1, -1, -1) if p['reverse'] else range(length)
  ys = [[None] * length for _ in eqn.outvars[nk:]]
  for step, i in enumerate(order):
    x_states = [_scan_slice(s, i, _shape(v)) for v, s in xs]
    outs = _eval_jaxpr(body, [{}] * len(consts), list(ins[:nc]) + carry + x_states)
    new_carry = outs[:nk]
    for k, y in enumerate(outs[nk:]):
      ys[k][i] = _map_axes(_collapse(y, _shape(body.outvars[nk + k])), lambda a: a + 1, ())
    if new_carry == carry and not any(isinstance(s, Stacked) for _, s in xs):
      for rest in list(order)[step + 1:]:
        for k in range(len(ys)):
          ys[k][rest] = ys[k][i]
      break
    carry = new_carry
  return carry + [Stacked(0, tuple(items)) for items in ys]


def _scan_slice(state, i, shape):
  """State of the i-th slice along axis 0 of a scanned-over array."""
  if isinstance(state, Stacked) and state.axis == 0:
    item = state.items[i]
  else:
    item = _collapse(state, shape)
  return _map_axes(item, _renumber_without([0]), shape)


_MAX_WHILE_STEPS = 1000


def _rule_while(eqn, ins):
  p = eqn.params
  cond, cond_consts = jaxpr_walk.open_jaxpr(p['cond_jaxpr'])
  body, body_consts = jaxpr_walk.open_jaxpr(p['body_jaxpr'])
  nc, nb = p['cond_nconsts'], p['body_nconsts']
  carry = [_collapse(s, _shape(v)) for v, s in zip(eqn.invars[nc + nb:], ins[nc + nb:])]
  trips = jaxpr_walk.while_trips(eqn)
  for step in range(_MAX_WHILE_STEPS if trips is None else trips):
    new = _eval_jaxpr(body, [{}] * len(body_consts), list(ins[nc:nc + nb]) + carry)
    new = [_collapse(s, _shape(v)) for v, s in zip(body.outvars, new)]
    if new == carry:
      break
    carry = new
  else:
    if trips is None:
      logging.warning('while loop: receptive fields still growing after %d steps; marked '
                      'unbounded.', _MAX_WHILE_STEPS)
      carry = [{d: dataclasses.replace(f, size=math.inf) for d, f in s.items()} for s in carry]
  pred = _eval_jaxpr(cond, [{}] * len(cond_consts), list(ins[:nc]) + carry)[0]
  return [_merge([s, pred], _shape(v)) for v, s in zip(eqn.outvars, carry)]


def _rule_cond(eqn, ins):
  index, *ops = ins
  outs = []
  for branch in eqn.params['branches']:
    jaxpr, consts = jaxpr_walk.open_jaxpr(branch)
    outs.append(_eval_jaxpr(jaxpr, [{}] * len(consts), ops))
  return [_merge([o[k] for o in outs] + [index], _shape(v)) for k, v in enumerate(eqn.outvars)]


_RULES = {
    'conv_general_dilated': _rule_conv,
    'reduce_window_sum': _rule_reduce_window,
    'reduce_window_max': _rule_reduce_window,
    'reduce_window_min': _rule_reduce_window,
    'reduce_window': _rule_reduce_window,
    'broadcast_in_dim': _rule_broadcast_in_dim,
    'reshape': _rule_reshape,
    'transpose': _rule_transpose,
    'squeeze': _rule_squeeze,
    'rev': _rule_rev,
    'pad': _rule_pad,
    'slice': _rule_slice,
    'dynamic_slice': _rule_dynamic_slice,
    'concatenate': _rule_concatenate,
    'stack': _rule_stack,
    'unstack': _rule_unstack,
    'split': _rule_split,
    'dot_general': _rule_dot_general,
    'reduce': _reduced('dimensions'),
    'sort': _along_axis('dimension'),
    'scan': _rule_scan,
    'while': _rule_while,
    'cond': _rule_cond,
    **{name: _reduced('axes') for name in ('reduce_sum', 'reduce_max', 'reduce_min',
                                           'reduce_prod', 'reduce_and', 'reduce_or',
                                           'reduce_xor', 'argmax', 'argmin')},
    **{name: _along_axis('axis') for name in ('cumsum', 'cumprod', 'cummax', 'cummin',
                                              'cumlogsumexp')},
    **{name: _rule_dense for name in ('gather', 'scatter', 'scatter-add',
                                      'dynamic_update_slice', 'fft')},
}


_STACK_AWARE = frozenset(['squeeze', 'slice', 'dynamic_slice', 'concatenate', 'unstack',
                          'split', 'scan', 'while', 'cond'])


def _apply(eqn, ins) -> list:
  name = eqn.primitive.name
  if name in _RULES:
    if name not in _STACK_AWARE:
      ins = [_collapse(s, _shape(v)) for v, s in zip(eqn.invars, ins)]
    return _RULES[name](eqn, ins)
  if (sub := jaxpr_walk.call_jaxpr(eqn)) is not None:
    jaxpr, consts = jaxpr_walk.open_jaxpr(sub)
    return _eval_jaxpr(jaxpr, [{}] * len(consts), ins)
  shapes = {_shape(v) for v in eqn.outvars}
  if len(shapes) == 1:
    return _rule_elementwise(eqn, ins)
  return _rule_dense(eqn, ins)


def _eval_jaxpr(jaxpr, const_states, in_states) -> list:
  """Propagates receptive-field states through an open jaxpr."""
  env = {}
  read = lambda v: {} if isinstance(v, jcore.Literal) else env.get(v, {})
  for v, s in zip(jaxpr.constvars, const_states):
    env[v] = s
  for v, s in zip(jaxpr.invars, in_states):
    env[v] = s
  for eqn in jaxpr.eqns:
    ins = [read(v) for v in eqn.invars]
    if any(ins):
      outs = _apply(eqn, ins)
    else:
      outs = [{}] * len(eqn.outvars)
    for v, s in zip(eqn.outvars, outs):
      env[v] = s
  return [read(v) for v in jaxpr.outvars]


def output_fields(fn: Callable, *args, spatial_argnums: Sequence[int] = (1,),
                  spatial_axes: Sequence[int] = (1, 2),
                  unstack: bool = False) -> list[tuple[Field | None, ...]]:
  """Receptive fields of the flattened outputs of ``fn(*args)`` in input pixels.

  Every array leaf of the arguments in ``spatial_argnums`` is an image on a common pixel grid
  whose axes ``spatial_axes`` are the input directions (by default NHWC rows, columns); other
  arguments (parameters) have no field. Returns, per output leaf, one Field per direction (None
  where the output does not depend on that direction). With ``unstack``, an output stacked along
  its first axis (jnp.stack, scan) gives one entry per index instead of their union.
  """
  closed = jax.make_jaxpr(fn)(*args)
  states = []
  for i, arg in enumerate(args):
    for _ in jax.tree.leaves(arg):
      states.append({d: Field(1., 1., 0., a) for d, a in enumerate(spatial_axes)}
                    if i in spatial_argnums else {})
  outs = _eval_jaxpr(closed.jaxpr, [{}] * len(closed.consts), states)
  result = []
  for v, s in zip(closed.jaxpr.outvars, outs):
    shape = tuple(v.aval.shape)
    if unstack and isinstance(s, Stacked) and s.axis == 0:
      items = [_map_axes(item, _renumber_without([0]), shape) for item in s.items]
    else:
      items = [_collapse(s, shape)]
    result += [tuple(item.get(d) for d in range(len(spatial_axes))) for item in items]
  return result


def receptive_fields(model, input_shape) -> list[tuple[Field | None, ...]]:
  """(rows, columns) Field of every stage's belief maps at this input size."""
  variables = abstract.abstract_variables(model, input_shape)
  inputs = abstract.model_inputs(model, input_shape)
  fn, stacked = abstract.stages_fn(model)
  return output_fields(fn, variables, *inputs, spatial_argnums=range(1, 1 + len(inputs)),
                       unstack=stacked)
