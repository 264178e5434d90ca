"""Tests for posemachines.summary: parameter counts, FLOPs, stage shapes and receptive fields.

Everything runs on abstract values (eval_shape / make_jaxpr) except the small hand-made models
whose fields are checked against input gradients.
"""
import dataclasses
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from posemachines import models
from posemachines.tools import abstract, flops, receptive_field
from posemachines.models import cpm, layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name):
  path = os.path.join(ROOT, 'experiments', f'{name}.py')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@functools.lru_cache(maxsize=None)
def _model(name):
  config = _config(name)
  return models.build(config), config.data.crop_size


@pytest.mark.parametrize('name,expected', [('cpm_mpii', 31_219_866), ('cpm_flic', 21_323_816)])
def test_parameter_counts(name, expected):
  model, size = _model(name)
  per_module = abstract.parameters_per_module(model, size)
  assert sum(per_module.values()) == expected
  assert abstract.count_parameters(model, size) == expected
  assert list(per_module)[:3] == ['features', 'stage1', 'stage2']


def test_stage_modules_mpii():
  model, size = _model('cpm_mpii')
  per_module = abstract.parameters_per_module(model, size)
  # x' trunk: three 9x9 convs (3 -> 128 -> 128 -> 128) with biases.
  assert per_module['features'] == 81 * 3 * 128 + 2 * 81 * 128 * 128 + 3 * 128
  # Stage t >= 2: 5x5 conv 128 -> 32, 11x11 convs 48 -> 128 -> 128 -> 128, 1x1 to 128 and 15.
  stage = (25 * 128 * 32 + 32 + 121 * 48 * 128 + 128 + 2 * (121 * 128 * 128 + 128)
           + 128 * 128 + 128 + 128 * 15 + 15)
  assert all(per_module[f'stage{t}'] == stage for t in range(2, 7))


@pytest.mark.parametrize('name,stages', [('cpm_mpii', 6), ('cpm_flic', 4)])
def test_stage_output_shapes(name, stages):
  model, size = _model(name)
  parts = 15 if name == 'cpm_mpii' else 10
  assert abstract.stage_output_shapes(model, size) == [(1, 46, 46, parts)] * stages


@pytest.mark.parametrize('name,gflops', [('cpm_mpii', 350.9), ('cpm_flic', 309.0)])
def test_forward_gflops(name, gflops):
  model, size = _model(name)
  counts = flops.forward_flops(model, size)
  assert abs(counts['conv_general_dilated'] / 1e9 - gflops) / gflops < 0.005
  assert 'dot_general' not in counts
  # The 1-channel center-map pooling is a window sum, not a convolution: negligible either way.
  assert counts['reduce_window_sum'] < 1e6


def test_conv_flops_by_hand():
  x = jax.ShapeDtypeStruct((2, 10, 12, 3), jnp.float32)
  k = jax.ShapeDtypeStruct((5, 5, 3, 8), jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  assert flops.conv_flops(conv, x, k) == 2 * (2 * 5 * 6 * 8) * (5 * 5 * 3)
  scanned = lambda x, k: jax.lax.scan(lambda c, _: (c, conv(c, k).sum()), x, None, length=7)
  assert flops.conv_flops(scanned, x, k) == 7 * flops.conv_flops(conv, x, k)
  looped = lambda x, k: jax.lax.while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, c[1] + conv(
      c[2], k).sum(), c[2]), (0, 0., x))
  assert flops.conv_flops(looped, x, k) == 4 * flops.conv_flops(conv, x, k)
  dense = lambda x, w: jnp.einsum('bhwc,cd->bhwd', x, w)
  w = jax.ShapeDtypeStruct((3, 4), jnp.float32)
  assert flops.conv_flops(dense, x, w) == 2 * (2 * 10 * 12 * 4) * 3


def test_receptive_fields_released_cpm():
  """By hand, along one axis (k = kernel, j = jump before the layer, field += (k - 1) * j):
    trunk  9x9 (j1) 9, pool 3/2 11, 9x9 (j2) 27, pool 31, 9x9 (j4) 63, pool 71       -> jump 8
    stage 1: 5x5 (j8) 103, 9x9 (j8) 167, 1x1, 1x1                                     = 167
    stage 2: union of b_1 (167), x' + 5x5 (103) and the 9/8-pooled center map (9) = 167;
             then 11x11 x3 (j8) adds 3 * 10 * 8 = 240                                 = 407
    stage t: 167 + 240 (t - 1)                                                          = 647, ...
  """
  model, size = _model('cpm_mpii')
  fields = receptive_field.receptive_fields(model, size)
  assert len(fields) == 6
  for t, (rows, cols) in enumerate(fields):
    assert (rows.axis, cols.axis) == (1, 2)
    assert rows == dataclasses.replace(cols, axis=1)
    assert rows.size == 167 + 240 * t
    assert rows.stride == 8
    # Ceil-mode pools pad on the right only: each moves the first field centre by its jump.
    assert rows.start == 1 + 2 + 4
  assert [f[0].size for f in fields[:3]] == [167, 407, 647]


def test_receptive_fields_tiny_cpm():
  """1 or 2 stages, trunk = one 3x3 conv + 3/2 ceil max-pool, no stage-1 head convs.

  stage 1: 3x3 -> 3 px; pool 3/2 -> 3 + 2 = 5 px, jump 2, first centre (3 - 1) / 2 = 1.
  stage 2: x' (5) + 3x3 at jump 2 -> 9; b_1: 5; center map pooled 3/2: 3 -> union 9,
           then 3x3 at jump 2 -> 13 px.
  """
  kw = dict(num_outputs=3, trunk_kernels=(3,), trunk_widths=(4,), trunk_pools=(True,),
            stage1_kernels=(), stage1_widths=(), stage1_dropout=(), stage_feature_kernel=3,
            stage_feature_width=2, stage_kernels=(3, 1), stage_widths=(4, 4), dropout_rate=0.)
  one = receptive_field.receptive_fields(cpm.CPM(num_stages=1, **kw), 17)
  assert one == [(receptive_field.Field(5, 2, 1, 1), receptive_field.Field(5, 2, 1, 2))]
  two = receptive_field.receptive_fields(cpm.CPM(num_stages=2, **kw), (17, 21))
  assert [f[0].size for f in two] == [5, 13]
  assert [f[0].stride for f in two] == [2, 2]
  assert abstract.stage_output_shapes(cpm.CPM(num_stages=2, **kw), (17, 21)) == [(1, 8, 10, 3)] * 2


def test_receptive_fields_through_stacked_call():
  """__call__ stacks the stages; unstacking its output gives the same per-stage fields."""
  model, size = _model('cpm_flic')
  variables = abstract.abstract_variables(model, size)
  inputs = abstract.model_inputs(model, size)
  stacked = receptive_field.output_fields(model.apply, variables, *inputs, spatial_argnums=(1, 2),
                                  unstack=True)
  assert stacked == receptive_field.receptive_fields(model, size)
  union, = receptive_field.output_fields(model.apply, variables, *inputs, spatial_argnums=(1, 2))
  assert union == tuple(dataclasses.replace(f, axis=f.axis + 1) for f in stacked[-1])


def _empirical_rows(fn, shape, row):
  """Input rows that output element (0, row, row, 0) depends on, from the gradient."""
  x = jnp.ones(shape)
  grad = jax.grad(lambda x: fn(x)[0, row, row, 0])(x)
  rows = np.nonzero(np.abs(np.asarray(grad)).sum(axis=(0, 2, 3)))[0]
  return rows.min(), rows.max()


def _conv(x, k, stride=1, padding='SAME', rhs_dilation=1, lhs_dilation=1):
  kernel = jnp.ones((k, k, x.shape[-1], 2))
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      lhs_dilation=(lhs_dilation,) * 2,
                                      rhs_dilation=(rhs_dilation,) * 2,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('fn', [
    lambda x: _conv(layers.avg_pool_ceil(_conv(x, 3), 3, 2), 3, rhs_dilation=2),
    lambda x: _conv(_conv(x, 4, stride=2, padding=((1, 2), (1, 2))), 5, stride=3),
    lambda x: nn.avg_pool(_conv(jnp.pad(x, ((0, 0), (3, 0), (3, 0), (0, 0))), 3), (4, 4), (2, 2)),
    lambda x: jnp.concatenate(
        [_conv(x, 7), jnp.pad(_conv(x[:, 2:, 2:], 3), ((0, 0), (0, 2), (0, 2), (0, 0)))], -1),
    lambda x: jax.lax.rev(_conv(jax.lax.rev(x, (1, 2)), 5, stride=2), (1, 2)),
])
def test_receptive_field_matches_gradient(fn):
  shape = (1, 64, 64, 1)
  (rows, cols), = receptive_field.output_fields(fn, jax.ShapeDtypeStruct(shape, jnp.float32),
                                        spatial_argnums=(0,))
  assert rows == dataclasses.replace(cols, axis=rows.axis)
  row = 5
  centre = rows.start + row * rows.jump
  lo, hi = _empirical_rows(fn, shape, row)
  assert (lo, hi) == (centre - (rows.size - 1) / 2, centre + (rows.size - 1) / 2)


@pytest.mark.parametrize('k,s', [(4, 2), (3, 2), (5, 3)])
def test_receptive_field_transposed_conv(k, s):
  """Each output of a transposed conv sees only the inputs its taps land on: at most ceil(k/s)."""
  fn = lambda x: jax.lax.conv_transpose(x, jnp.ones((k, k, 1, 1)), (s, s), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  shape = (1, 16, 16, 1)
  (rows, _), = receptive_field.output_fields(fn, jax.ShapeDtypeStruct(shape, jnp.float32),
                                     spatial_argnums=(0,))
  assert rows.size == math.ceil(k / s) and rows.stride == 1 / s
  widths = [np.subtract(*_empirical_rows(fn, shape, row)[::-1]) + 1 for row in range(8, 8 + s)]
  assert max(widths) == rows.size


class _Recurrent(nn.Module):
  """Applies one shared 3x3 conv T times with lax.scan and returns every step's output."""
  steps: int = 4

  @nn.compact
  def stages(self, x):
    kernel = self.param('kernel', nn.initializers.ones, (3, 3, 1, 1))

    def step(h, _):
      h = nn.relu(jax.lax.conv_general_dilated(h, kernel, (1, 1), 'SAME',
                                               dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
      return h, h

    _, ys = jax.lax.scan(step, x, None, length=self.steps)
    return list(ys)


def test_recurrent_scan_model():
  model = _Recurrent()
  x = jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, method='stages'), jax.random.key(0), x)
  fn = functools.partial(model.apply, method='stages')
  fields = receptive_field.output_fields(fn, variables, x)
  assert [f[0].size for f in fields] == [3, 5, 7, 9]
  assert flops.conv_flops(fn, variables, x) == 4 * 2 * 32 * 32 * 9


def test_cli_json():
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(
      [sys.executable, '-m', 'posemachines.summary', '--config=experiments/cpm_mpii.py',
       '--json'], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
  s = json.loads(out)
  assert s['parameters'] == 31_219_866
  assert s['input_size'] == [368, 368]
  assert math.isclose(s['gflops_forward'], 350.9, rel_tol=5e-3)
  assert [st['receptive_field_px'] for st in s['stages']] == [167, 407, 647, 887, 1127, 1367]
  assert {st['stride'] for st in s['stages']} == {8}
  assert s['stages'][0]['output_shape'] == [1, 46, 46, 15]
  assert sum(s['parameters_per_module'].values()) == s['parameters']


def test_cli_overrides():
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(
      [sys.executable, '-m', 'posemachines.summary', '--config=experiments/default.py',
       '--config.model.num_stages=2', '--config.data.crop_size=64', '--json'],
      cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
  s = json.loads(out)
  assert s['input_size'] == [64, 64]
  assert [st['stage'] for st in s['stages']] == [1, 2]
  assert s['stages'][0]['output_shape'] == [1, 16, 16, 15]
