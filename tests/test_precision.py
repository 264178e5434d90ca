"""Mixed precision (config.precision='bf16'): bfloat16 computation, float32 parameters, optimizer
state and loss; it trains the tiny model (10 steps on one batch), and one step's loss stays as
close to float32's as bfloat16's 8-bit significand allows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from posemachines.objectives import per_model
from posemachines.tools import benchmark
from posemachines.training import loop as train
from tests.conftest import tiny_config

# bfloat16 keeps 8 significant bits (7 stored + the implicit one): round-to-nearest makes a
# relative error of at most 2^-8 per rounding.
BF16_UNIT_ROUNDOFF = 2.0 ** -8


def _build(config):
  mesh = train.make_mesh(jax.devices()[:1])
  built = train.build(config, mesh)
  batch = train.shard_batch(benchmark.fake_batch(config, config.batch_size), mesh)
  return built.model, built.state, built.train_step, batch


@pytest.fixture(scope='module')
def built(tfds_dir):
  """(config, model, initial state, jitted step, batch) for 'fp32' and 'bf16', built once."""
  out = {}
  for precision in ('fp32', 'bf16'):
    config = tiny_config(tfds_dir, precision=precision)
    out[precision] = (config, *_build(config))
  return out


def _copy(state):
  return jax.tree.map(jnp.copy, state)   # the step donates its state


def _rounding_depth(config) -> int:
  """Roundings to bfloat16 on the CPM's longest path: the input, then every conv's output
  (stage 1's head, then every later stage on top of the features trunk)."""
  m = config.model
  stage1 = len(m.trunk_kernels) + len(m.stage1_kernels) + 1
  later = len(m.trunk_kernels) + (m.num_stages - 1) * (1 + len(m.stage_kernels) + 1)
  return 1 + max(stage1, later)


def test_bf16_computes_in_bfloat16_and_keeps_float32_state(built):
  config, model, state, step_fn, batch = built['bf16']
  assert model.dtype == jnp.bfloat16
  assert {a.dtype for a in jax.tree.leaves((state.params, state.opt_state))
          if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype('float32')}
  x, c = per_model.model_inputs(batch['image'], config.data.crop_size,
                               config.targets.center_sigma)
  text = str(jax.make_jaxpr(lambda p: model.apply({'params': p}, x, c))(state.params))
  assert 'conv_general_dilated' in text and 'bf16[' in text
  out = jax.eval_shape(lambda p: model.apply({'params': p}, x, c), state.params)
  assert out.dtype == jnp.float32   # beliefs (and so the loss) in float32
  new, metrics = step_fn(_copy(state), batch, jax.random.key(0))
  assert new.params['stage1']['beliefs']['kernel'].dtype == jnp.float32
  assert metrics['loss'].dtype == jnp.float32


def test_bf16_trains_the_tiny_model(built):
  _, _, state, step_fn, batch = built['bf16']
  state, losses = _copy(state), []
  for _ in range(10):
    state, metrics = step_fn(state, batch, jax.random.key(0))
    losses.append(float(metrics['loss']))
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses


def test_one_bf16_step_loss_is_close_to_fp32(built):
  config, model32, state, step32, batch = built['fp32']
  _, _, _, step16, _ = built['bf16']
  # The same float32 parameters and batch.
  _, m32 = step32(_copy(state), batch, jax.random.key(0))
  _, m16 = step16(_copy(state), batch, jax.random.key(0))
  loss32, loss16 = float(m32['loss']), float(m16['loss'])
  # Tolerance from bfloat16's significand: each of the D roundings on the longest path adds a
  # relative error of at most u = 2^-8 to the beliefs b (first order: |db| <= D u |b|), so the
  # Euclidean loss sum (b - t)^2 moves by at most 2 D u sum |b| |b - t|, i.e. relative to it by
  # 2 D u ||b|| / ||b - t|| (Cauchy-Schwarz), measured on the float32 beliefs.
  x, c = per_model.model_inputs(batch['image'], config.data.crop_size,
                               config.targets.center_sigma)
  beliefs = model32.apply({'params': state.params}, x, c)
  targets = per_model.stage_targets(config, batch, beliefs.shape[0], beliefs.shape[2],
                                   model32.stride)
  depth = _rounding_depth(config)
  rtol = 2 * depth * BF16_UNIT_ROUNDOFF * float(
      jnp.linalg.norm(beliefs) / jnp.linalg.norm(beliefs - targets))
  assert 0 < rtol < 0.5
  assert abs(loss16 - loss32) <= rtol * abs(loss32), (loss16, loss32, rtol)
  assert loss16 != loss32   # the bf16 step did compute in bfloat16
