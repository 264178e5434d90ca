"""The device side of training: the train state, the train step and the eval step.

Pure functions of (state, batch); training/loop.py jits them over the device mesh.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from posemachines.codec import keypoints
from posemachines.core import crops
from posemachines.objectives import per_model


@flax.struct.dataclass
class TrainState:
  """step, trained ``params``, optimizer state, and ``model_state``: the model's other variable
  collections (BatchNorm's ``batch_stats``; empty for models without any)."""
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any

  @property
  def variables(self):
    """The variables dict that ``model.apply`` takes."""
    return {'params': self.params, **self.model_state}


def split_variables(variables):
  """``model.init`` output -> (params, model_state)."""
  variables = dict(variables)
  return variables.pop('params'), variables


def train_step(state: TrainState, batch, rng, *, model, tx, config):
  rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(functools.partial(per_model.loss_fn, model=model, config=config),
                               has_aux=True)
  (loss, (per_stage, model_state)), grads = grad_fn(state.params, state.model_state, batch, rng)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                   model_state=model_state)
  if config.on_nan == 'skip':  # keep the old parameters, count the step
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new,
                       state.replace(step=state.step + 1))
  metrics = {'loss': loss, 'stage_loss': per_stage, 'grad_norm': grad_norm, 'finite': finite}
  return new, metrics


def eval_step(variables, batch, *, model, config):
  """Per-stage keypoints in image pixels (x, y, the map's maximum) and their distances to the
  ground truth."""
  x, c = per_model.model_inputs(batch['image'], crops.from_config(config.data),
                              config.targets.center_sigma)
  beliefs = per_model.part_beliefs(model, model.apply(variables, x, c, train=False))
  pred = keypoints.predict_keypoints(beliefs, model.stride, batch['crop_to_image'])
  dist = jnp.linalg.norm(pred[..., :2] - batch['joints'][None, ..., :2], axis=-1)
  return {'pred': pred, 'dist': dist, 'annotated': batch['joints'][..., 2], 'norm': batch['norm'],
          'index': batch['index'], 'visible': batch.get('visible')}
