"""The PyTorch peer is the same network as posemachines' CPM: parameter count, outputs and loss
gradients with the same weights. Run with ``python -m pytest benchmarks/`` (needs torch)."""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_cpm  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from posemachines import models
from posemachines.core import configs, skeleton  # noqa: E402  pylint: disable=g-import-not-at-top


def _small_config():
  c = configs.cpm_release(num_stages=3)
  c.model.update(dict(trunk_kernels=(5, 3, 3), trunk_widths=(8, 8, 8),
                      stage1_kernels=(3, 5, 1), stage1_widths=(8, 16, 16),
                      stage1_dropout=(False, False, False), stage_feature_width=8,
                      stage_kernels=(3, 3, 3, 1), stage_widths=(8, 8, 8, 8)))
  c.data.crop_size = 49   # odd: the ceil-mode pools' edge windows count
  return c


def _copy_params(flax_params, model):
  """Flax CPM params -> the torch model (HWIO kernels -> OIHW)."""
  def conv(mod, p):
    with torch.no_grad():
      mod.weight.copy_(torch.from_numpy(np.asarray(p['kernel']).transpose(3, 2, 0, 1).copy()))
      mod.bias.copy_(torch.from_numpy(np.asarray(p['bias'])))

  def trunk(mod, p):
    for i, c in enumerate(mod.convs):
      conv(c, p[f'conv{i + 1}'])

  s1 = flax_params['stage1']
  trunk(model.stage1.trunk, s1['trunk'])
  for i, c in enumerate(model.stage1.head):
    conv(c, s1[f'head{i + 1}'])
  conv(model.stage1.beliefs, s1['beliefs'])
  trunk(model.features, flax_params['features'])
  for t, stage in enumerate(model.later, start=2):
    p = flax_params[f'stage{t}']
    conv(stage.features, p['features'])
    for i, c in enumerate(stage.convs):
      conv(c, p[f'conv{i + 1}'])
    conv(stage.beliefs, p['beliefs'])


def test_released_parameter_count():
  c = configs.cpm_release(num_stages=6)
  model = torch_cpm.CPM(c.model, skeleton.get(c.data.parts).num_parts + 1)
  assert sum(p.numel() for p in model.parameters()) == 31_219_866


def test_same_outputs_and_gradients_as_posemachines():
  c = _small_config()
  size, parts = c.data.crop_size, skeleton.get(c.data.parts).num_parts
  fmodel = models.build(c)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
  cmap = rng.random((2, size, size, 1)).astype(np.float32)
  params = fmodel.init(jax.random.key(0), jnp.asarray(x), jnp.asarray(cmap))['params']
  params = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(1), a.shape),
                        params)  # non-zero biases too
  out = fmodel.apply({'params': params}, x, cmap)
  tmodel = torch_cpm.CPM(c.model, parts + 1)
  _copy_params(params, tmodel)
  tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  tc = torch.from_numpy(cmap.transpose(0, 3, 1, 2).copy())
  tout = tmodel(tx, tc)
  np.testing.assert_allclose(tout.detach().numpy().transpose(0, 1, 3, 4, 2), np.asarray(out),
                             rtol=1e-4, atol=1e-5)
  targets = rng.random(out.shape).astype(np.float32)

  def loss(p):
    b = fmodel.apply({'params': p}, x, cmap)
    return jnp.sum((b - targets) ** 2) / (2.0 * b.shape[1])

  g = jax.grad(loss)(params)
  tt = torch.from_numpy(targets.transpose(0, 1, 4, 2, 3).copy())
  torch_cpm.euclidean_loss(tout, tt).sum().backward()
  w = tmodel.later[-1].convs[0].weight.grad.numpy().transpose(2, 3, 1, 0)
  np.testing.assert_allclose(w, np.asarray(g['stage3']['conv1']['kernel']), rtol=1e-3,
                             atol=1e-4)
  w = tmodel.stage1.trunk.convs[0].weight.grad.numpy().transpose(2, 3, 1, 0)
  np.testing.assert_allclose(w, np.asarray(g['stage1']['trunk']['conv1']['kernel']), rtol=1e-3,
                             atol=1e-4)
