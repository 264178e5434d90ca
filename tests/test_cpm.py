"""The CPM: released parameter counts, Caffe ceil pooling, stage loop, dropout."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from posemachines.models import cpm, layers
from tests.conftest import tiny_cpm


def _count(model, size=368):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)),
                          jnp.zeros((1, size, size, 1)))
  return sum(x.size for x in jax.tree.leaves(shapes))


def test_released_parameter_counts():
  assert _count(cpm.CPM(num_stages=6, num_outputs=15)) == 31_219_866
  assert _count(cpm.CPM(num_stages=4, num_outputs=10)) == 21_323_816


@pytest.mark.parametrize('size,expected', [(368, 184), (184, 92), (92, 46), (7, 3), (8, 4)])
def test_ceil_max_pool_sizes(size, expected):
  out = layers.max_pool_ceil(jnp.zeros((1, size, size, 1)))
  assert out.shape[1:3] == (expected, expected)


def test_ceil_pool_takes_the_edge_pixels():
  # 8 -> 4 with Caffe's ceil mode: the last window covers the last column only partly.
  x = jnp.zeros((1, 8, 8, 1)).at[0, 7, 7, 0].set(5.0)
  assert float(layers.max_pool_ceil(x)[0, 3, 3, 0]) == 5.0
  avg = layers.avg_pool_ceil(jnp.ones((1, 368, 368, 1)), 9, 8)
  assert avg.shape == (1, 46, 46, 1)
  np.testing.assert_allclose(avg, 1.0, rtol=1e-6)  # edge windows average only what they cover


def test_stage_loop_returns_every_stage_and_each_stage_has_own_weights():
  m = tiny_cpm()
  x, c = jnp.ones((2, 32, 32, 3)), jnp.ones((2, 32, 32, 1))
  params = m.init(jax.random.key(0), x, c)
  assert sorted(params['params']) == ['features', 'stage1', 'stage2', 'stage3']
  out = m.apply(params, x, c)
  assert out.shape == (3, 2, 8, 8, 5)
  stages = m.apply(params, x, c, method='stages')
  np.testing.assert_array_equal(out, jnp.stack(stages))
  assert not np.allclose(out[1], out[2])
  # Stage t's input is stage t-1's output: changing stage 2's weights changes stage 3 only.
  p2 = jax.tree_util.tree_map_with_path(
      lambda path, v: v * 2 if 'stage2' in jax.tree_util.keystr(path) else v, params)
  out2 = m.apply(p2, x, c)
  np.testing.assert_array_equal(out2[0], out[0])
  assert not np.allclose(out2[2], out[2])


def test_center_map_is_required_and_used():
  m = tiny_cpm()
  x = jnp.ones((1, 32, 32, 3))
  params = m.init(jax.random.key(0), x, jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(ValueError, match='center map'):
    m.apply(params, x)
  a = m.apply(params, x, jnp.zeros((1, 32, 32, 1)))
  b = m.apply(params, x, jnp.ones((1, 32, 32, 1)))
  np.testing.assert_array_equal(a[0], b[0])  # stage 1 sees only the image
  assert not np.allclose(a[1], b[1])
  m1 = tiny_cpm(use_center_map=False)
  p1 = m1.init(jax.random.key(0), x)
  assert m1.apply(p1, x).shape == (3, 1, 8, 8, 5)


def test_dropout_only_when_training():
  m = tiny_cpm(dropout_rate=0.5)
  x, c = jnp.ones((1, 32, 32, 3)), jnp.ones((1, 32, 32, 1))
  params = m.init(jax.random.key(0), x, c)
  e1, e2 = m.apply(params, x, c), m.apply(params, x, c)
  np.testing.assert_array_equal(e1, e2)
  t1 = m.apply(params, x, c, train=True, rngs={'dropout': jax.random.key(1)})
  t2 = m.apply(params, x, c, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(t1, t2)


def test_batch_norm_trains_on_batch_statistics_and_evaluates_with_running_averages():
  m = tiny_cpm(batch_norm=True, stage1_dropout=(False, False))
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3)) * 3 + 1
  c = jnp.ones((4, 32, 32, 1))
  variables = m.init(jax.random.key(0), x, c)
  stats = variables['batch_stats']
  assert 'conv1_bn' in stats['stage1']['trunk']
  assert 'bias' not in variables['params']['stage1']['trunk']['conv1']  # BN's offset replaces it
  out, updated = m.apply(variables, x, c, train=True, mutable=['batch_stats'])
  mean0 = stats['stage1']['trunk']['conv1_bn']['mean']
  mean1 = updated['batch_stats']['stage1']['trunk']['conv1_bn']['mean']
  assert not np.allclose(mean0, mean1)  # running averages move towards the batch's statistics
  # Evaluation uses the running averages: one example's output does not depend on its batch.
  alone = m.apply(variables, x[:1], c[:1])
  together = m.apply(variables, x, c)
  np.testing.assert_allclose(alone[:, 0], together[:, 0], rtol=1e-5, atol=1e-5)
  trained_alone = m.apply(variables, x[:1], c[:1], train=True, mutable=['batch_stats'])[0]
  assert not np.allclose(trained_alone[:, 0], out[:, 0], atol=1e-3)
