"""optax set-up: the release's per-layer learning-rate multipliers and frozen stages."""
import jax
import jax.numpy as jnp
import numpy as np

from posemachines import models
from posemachines.core import configs
from posemachines.training import optim
from posemachines.training.step import split_variables


def _params():
  config = configs.cpm_small()
  model = models.build(config)
  x, c = jnp.zeros((1, 96, 96, 3)), jnp.zeros((1, 96, 96, 1))
  params, _ = split_variables(model.init(jax.random.key(0), x, c))
  return config, params


def test_release_multipliers_stage1_5x_biases_2x():
  config, params = _params()
  o = configs.cpm_release().optim
  m = optim.lr_multipliers(params, o)
  assert m['stage1']['trunk']['conv1']['kernel'] == 5.0
  assert m['stage1']['trunk']['conv1']['bias'] == 10.0
  assert m['stage2']['conv1']['kernel'] == 1.0
  assert m['stage2']['conv1']['bias'] == 2.0
  assert m['features']['conv1']['kernel'] == 1.0


def test_sgd_step_applies_multipliers_and_frozen_stages_do_not_move():
  config, params = _params()
  o = configs.cpm_release().optim
  o.weight_decay = 0.0
  o.momentum = 0.0
  tx, sched = optim.make(o, params, 10, frozen=('stage2',))
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  lr = float(sched(0))
  np.testing.assert_allclose(updates['stage1']['trunk']['conv1']['kernel'], -5 * lr, rtol=1e-6)
  np.testing.assert_allclose(updates['stage1']['trunk']['conv1']['bias'], -10 * lr, rtol=1e-6)
  np.testing.assert_allclose(updates['stage3']['conv1']['kernel'], -lr, rtol=1e-6)
  assert all(float(jnp.abs(u).max()) == 0.0 for u in jax.tree.leaves(updates['stage2']))
