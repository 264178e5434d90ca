"""posemachines/models/ops.py: hand-written backward passes equal JAX's own; the CPM's 'custom'
and 'flax' layers and its rematerialisation modes give the same parameters, outputs and
gradients."""
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from posemachines.models import layers, ops
from tests.conftest import tiny_cpm


@pytest.mark.parametrize('relu', [False, True])
@pytest.mark.parametrize('shape', [(2, 9, 9, 3), (2, 10, 11, 3), (1, 8, 7, 2)])
def test_pool_gradient_equals_select_and_scatter(relu, shape):
  # Small integers: many ties inside windows (the first maximum in raster order takes the
  # gradient) and, with the ReLU, windows whose maximum is 0 (no gradient).
  x = jnp.asarray(np.random.default_rng(0).integers(-2, 3, shape).astype(np.float32))
  pads = [layers.ceil_pool_padding(shape[a], 3, 2) for a in (1, 2)]

  def ref(x):
    return nn.max_pool(jax.nn.relu(x) if relu else x, (3, 3), (2, 2), padding=pads)

  def new(x):
    return (ops.relu_max_pool if relu else ops.max_pool)(x, 3, 2, pads)

  y0, vjp0 = jax.vjp(ref, x)
  y1, vjp1 = jax.jit(lambda x: jax.vjp(new, x))(x)
  np.testing.assert_array_equal(y0, y1)
  g = jnp.asarray(np.random.default_rng(1).standard_normal(y0.shape).astype(np.float32))
  np.testing.assert_allclose(vjp1(g)[0], vjp0(g)[0], rtol=0, atol=1e-6)


# Every form of each gradient, each with an odd kernel with and without the ReLU, and 1x1.
FORMS = [('transpose', 'transpose', 3, False), ('conv', 'conv', 5, True), ('conv', 'swap', 3, True),
         ('transpose', 'rows', 5, False), ('conv', 'transpose', 1, True), ('conv', 'conv', 1, False)]


@pytest.mark.parametrize('input_grad,weight_grad,k,relu', FORMS)
def test_conv_forms_equal_autodiff(input_grad, weight_grad, k, relu):
  rng = np.random.default_rng(k)
  x = jnp.asarray(rng.standard_normal((2, 9, 8, 3)).astype(np.float32))
  w = jnp.asarray(rng.standard_normal((k, k, 3, 5)).astype(np.float32))
  b = jnp.asarray(rng.standard_normal(5).astype(np.float32))
  pads = ((k // 2, k // 2),) * 2

  def ref(x, w, b):
    y = lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=ops.NHWC) + b
    return jax.nn.relu(y) if relu else y

  forms = ops.ConvForms(input_grad, weight_grad)
  y0, vjp0 = jax.vjp(ref, x, w, b)
  y1, vjp1 = jax.vjp(lambda x, w, b: ops.conv(x, w, b, pads, relu, forms), x, w, b)
  np.testing.assert_allclose(y1, y0, rtol=1e-6, atol=1e-6)
  g = jnp.asarray(rng.standard_normal(y0.shape).astype(np.float32))
  for a, e in zip(vjp1(g), vjp0(g)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_every_form_is_tested():
  assert {f[0] for f in FORMS} == set(ops.INPUT_GRAD_FORMS)
  assert {f[1] for f in FORMS} == set(ops.WEIGHT_GRAD_FORMS)


def test_unknown_forms_are_refused():
  with pytest.raises(ValueError, match='weight-gradient'):
    ops.conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2)), jnp.ones(2), ((1, 1), (1, 1)),
             forms=ops.ConvForms(weight_grad='nope'))


def _tiny(**kw):
  return tiny_cpm(**{'trunk_widths': (4, 6), **kw})


def _loss_and_grads(model, variables, x, c, train=True):
  def loss(params):
    out = model.apply({**variables, 'params': params}, x, c, train=train,
                      rngs={'dropout': jax.random.key(3)},
                      mutable=['batch_stats'] if 'batch_stats' in variables else False)
    out = out[0] if isinstance(out, tuple) else out
    return jnp.sum((out - 0.1) ** 2), out
  return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables['params'])


@pytest.mark.parametrize('batch_norm', [False, True])
def test_custom_layers_equal_flax_layers(batch_norm):
  x = jax.random.normal(jax.random.key(0), (2, 29, 29, 3))   # odd: ceil-mode edge windows
  c = jax.random.uniform(jax.random.key(1), (2, 29, 29, 1))
  flax_model = _tiny(layers='flax', batch_norm=batch_norm)
  custom_model = _tiny(layers='custom', batch_norm=batch_norm)
  variables = flax_model.init(jax.random.key(2), x, c)
  assert (jax.tree.map(jnp.shape, custom_model.init(jax.random.key(2), x, c))
          == jax.tree.map(jnp.shape, variables))
  (l0, out0), g0 = _loss_and_grads(flax_model, variables, x, c)
  (l1, out1), g1 = _loss_and_grads(custom_model, variables, x, c)
  np.testing.assert_allclose(out1, out0, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(l1, l0, rtol=1e-5)
  for a, e in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('remat,batch_norm', [('stage', False), ('stage', True),
                                              ('block', False)])
def test_remat_changes_nothing_but_memory(remat, batch_norm):
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  c = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  base = _tiny(batch_norm=batch_norm)
  variables = base.init(jax.random.key(2), x, c)
  model = _tiny(remat=remat, batch_norm=batch_norm)
  assert (jax.tree.map(jnp.shape, model.init(jax.random.key(2), x, c))
          == jax.tree.map(jnp.shape, variables))
  (l0, out0), g0 = _loss_and_grads(base, variables, x, c)   # dropout on: same masks
  (l1, out1), g1 = _loss_and_grads(model, variables, x, c)
  np.testing.assert_allclose(out1, out0, rtol=1e-6, atol=1e-7)
  for a, e in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)


def test_unknown_layers_and_remat_are_refused():
  x, c = jnp.ones((1, 16, 16, 3)), jnp.ones((1, 16, 16, 1))
  for kw, match in (({'layers': 'nope'}, 'model.layers'), ({'remat': 'nope'}, 'model.remat')):
    with pytest.raises(ValueError, match=match):
      _tiny(**kw).init(jax.random.key(0), x, c)


def test_stage_remat_recomputes_after_xla_optimises():
  # XLA's CPU backend drops jax.checkpoint's optimization barriers and merges a plain
  # recomputation back into the forward pass; the fenced one must survive: the compiled
  # gradient recomputes the trunks' and later stages' forward convolutions.
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  c = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  variables = _tiny().init(jax.random.key(2), x, c)

  def flops(model):
    def loss(p):
      return jnp.sum(model.apply({'params': p}, x, c, train=True,
                                 rngs={'dropout': jax.random.key(3)}) ** 2)
    cost = jax.jit(jax.grad(loss)).lower(variables['params']).compile().cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)['flops']

  assert flops(_tiny(remat='stage')) > 1.2 * flops(_tiny())
