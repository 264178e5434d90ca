"""Mixed precision (config.precision='bf16'): bfloat16 computation, float32 parameters, optimizer
state and loss; it trains the tiny model, and one step's loss stays as close to float32's as
bfloat16's 8-bit significand allows."""
import jax
import jax.numpy as jnp
import numpy as np

from posemachines import benchmark, models, train
from posemachines import step as step_lib
from tests.conftest import tiny_config

# bfloat16 keeps 8 significant bits (7 stored + the implicit one): round-to-nearest makes a
# relative error of at most 2^-8 per rounding.
BF16_UNIT_ROUNDOFF = 2.0 ** -8


def _build(config):
  mesh = train.make_mesh(jax.devices()[:1])
  model, _, state, _, step_fn, _ = train.build(config, mesh)
  batch = train.shard_batch(benchmark.fake_batch(config, config.batch_size), mesh)
  return model, state, step_fn, batch


def _rounding_depth(config) -> int:
  """Roundings to bfloat16 on the CPM's longest path: the input, then every conv's output
  (stage 1's head, then every later stage on top of the features trunk)."""
  m = config.model
  stage1 = len(m.trunk_kernels) + len(m.stage1_kernels) + 1
  later = len(m.trunk_kernels) + (m.num_stages - 1) * (1 + len(m.stage_kernels) + 1)
  return 1 + max(stage1, later)


def test_bf16_computes_in_bfloat16_and_keeps_float32_state(tfds_dir):
  config = tiny_config(tfds_dir, precision='bf16')
  model, state, step_fn, batch = _build(config)
  assert model.dtype == jnp.bfloat16
  assert {a.dtype for a in jax.tree.leaves((state.params, state.opt_state))
          if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype('float32')}
  x, c = step_lib.model_inputs(batch['image'], config.data.crop_size,
                               config.targets.center_sigma)
  jaxpr = jax.make_jaxpr(lambda p: model.apply({'params': p}, x, c))(state.params)
  text = str(jaxpr)
  assert 'conv_general_dilated' in text and 'bf16[' in text
  out = jax.eval_shape(lambda p: model.apply({'params': p}, x, c), state.params)
  assert out.dtype == jnp.float32   # beliefs (and so the loss) in float32
  new, metrics = step_fn(state, batch, jax.random.key(0))
  assert new.params['stage1']['beliefs']['kernel'].dtype == jnp.float32
  assert metrics['loss'].dtype == jnp.float32


def test_bf16_trains_the_tiny_model(tfds_dir, tmp_path):
  # The whole loop (data, checkpoints, evaluation) runs in bf16 ...
  config = tiny_config(tfds_dir, precision='bf16')
  state, result = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == config.num_train_steps
  assert all(np.isfinite(s['pck@0.5']) for s in result['stages'])
  # ... and its steps reduce the loss: 10 steps on one batch.
  _, state, step_fn, batch = _build(config)
  losses = []
  for _ in range(10):
    state, metrics = step_fn(state, batch, jax.random.key(0))
    losses.append(float(metrics['loss']))
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses


def test_one_bf16_step_loss_is_close_to_fp32(tfds_dir):
  config = tiny_config(tfds_dir)
  model32, state, step32, batch = _build(config)
  bf16 = tiny_config(tfds_dir, precision='bf16')
  model16, _, step16, _ = _build(bf16)
  # The same float32 parameters (step_fn donates its state: a copy for each).
  copy = lambda s: jax.tree.map(jnp.copy, s)
  _, m32 = step32(copy(state), batch, jax.random.key(0))
  _, m16 = step16(copy(state), batch, jax.random.key(0))
  loss32, loss16 = float(m32['loss']), float(m16['loss'])
  # Tolerance from bfloat16's significand: each of the D roundings on the longest path adds a
  # relative error of at most u = 2^-8 to the beliefs b (first order: |db| <= D u |b|), so the
  # Euclidean loss sum (b - t)^2 moves by at most 2 D u sum |b| |b - t|, i.e. relative to it by
  # 2 D u ||b|| / ||b - t|| (Cauchy-Schwarz), measured on the float32 beliefs.
  x, c = step_lib.model_inputs(batch['image'], config.data.crop_size,
                               config.targets.center_sigma)
  beliefs = model32.apply({'params': state.params}, x, c)
  targets = step_lib.stage_targets(config, batch, beliefs.shape[0], beliefs.shape[2],
                                   model32.stride)
  depth = _rounding_depth(config)
  rtol = 2 * depth * BF16_UNIT_ROUNDOFF * float(
      jnp.linalg.norm(beliefs) / jnp.linalg.norm(beliefs - targets))
  assert 0 < rtol < 0.5
  assert abs(loss16 - loss32) <= rtol * abs(loss32), (loss16, loss32, rtol)
  # Not trivially equal: the bf16 step did compute in bfloat16.
  assert loss16 != loss32
