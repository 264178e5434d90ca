"""The device side of training: inputs, targets, loss, the train step and the eval step.

Pure functions of (state, batch); train.py jits them over the device mesh.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from posemachines import evaluate, losses, skeleton, targets


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


def model_inputs(images, crop_size: int, center_sigma: float):
  """uint8 crops -> (pixel / 256 - 0.5, center map at the crop centre) as the release feeds."""
  x = images.astype(jnp.float32) / 256.0 - 0.5
  half = (crop_size - 1) / 2.0
  center = jnp.full((images.shape[0], 2), half, jnp.float32)
  return x, targets.center_map(center, crop_size, crop_size, center_sigma)


def stage_targets(config, batch, num_stages: int, map_size: int, stride: int):
  """Ideal belief maps per stage [T, B, H, W, P+1]; stage 1 may also peak at other people."""
  t = config.targets
  main = targets.belief_maps(batch['keypoints'], map_size, map_size, stride, t.sigma)
  if not t.others_in_stage1 or batch['others'].shape[1] == 0:
    return jnp.broadcast_to(main, (num_stages,) + main.shape)
  first = targets.belief_maps(batch['keypoints'], map_size, map_size, stride, t.sigma,
                              others=batch['others'])
  return jnp.concatenate([first[None], jnp.broadcast_to(main, (num_stages - 1,) + main.shape)])


def stage_weights(config, num_stages: int):
  w = config.loss.get('stage_weights', None)
  if w:
    return jnp.asarray(w, jnp.float32)
  if config.loss.intermediate_supervision:
    return jnp.ones(num_stages)
  return jnp.zeros(num_stages).at[-1].set(1.0)


def cpm_objective(config, model, beliefs, batch):
  """Per-stage losses [T] of the CPM: the Euclidean loss against the ideal belief maps."""
  num_stages, _, map_size = beliefs.shape[:3]
  return losses.stage_losses(beliefs, stage_targets(config, batch, num_stages, map_size,
                                                    model.stride))


def heatmap_targets(config, model, batch, height: int, width: int):
  """The recurrent model's targets and loss weights [B, H, W, P (+ L)]: keypoint heatmaps, then
  limb heatmaps when the model predicts them, with the configured occlusion mode. A limb counts
  as occluded when either of its ends is."""
  t = config.targets
  kp = batch['keypoints']
  maps = targets.keypoint_heatmaps(kp, height, width, model.stride, t.keypoint_sigma, t.peak)
  occluded = (kp[..., 2] > 0) & (batch['visible'] <= 0)
  if model.num_limbs:
    limbs = skeleton.get(config.data.parts).limb_indices
    limb_maps = t.peak * targets.limb_heatmaps(kp, limbs, height, width, model.stride,
                                               t.limb_along, t.limb_across)
    maps = jnp.concatenate([maps, limb_maps], axis=-1)
    occluded = jnp.concatenate([occluded, jnp.logical_or(*targets.limb_ends(occluded, limbs,
                                                                             axis=-1))], -1)
  return losses.occlusion_targets(maps, occluded, config.loss.occlusion,
                                  t.foreground * t.peak)


def recurrent_objective(config, model, outputs, batch):
  """Per-iteration losses [1 + iterations] of the recurrent model: the weighted Euclidean loss
  after the feed-forward module and after every iteration."""
  tgt, weights = heatmap_targets(config, model, batch, *outputs.shape[2:4])
  return losses.stage_losses(outputs, tgt, weights)


OBJECTIVES = {'cpm': cpm_objective, 'recurrent': recurrent_objective}


def loss_fn(params, model_state, batch, rng, *, model, config, train: bool = True):
  """(total loss, (per-stage losses, updated model_state))."""
  x, c = model_inputs(batch['image'], config.data.crop_size, config.targets.center_sigma)
  mutable = list(model_state) if train and model_state else False
  out = model.apply({'params': params, **model_state}, x, c, train=train,
                    rngs={'dropout': rng}, mutable=mutable)
  beliefs, model_state = out if mutable else (out, model_state)
  per_stage = OBJECTIVES[config.model.name](config, model, beliefs, batch)
  total = losses.total_loss(per_stage, stage_weights=stage_weights(config, beliefs.shape[0]))
  return total, (per_stage, dict(model_state))


def train_step(state: TrainState, batch, rng, *, model, tx, config):
  rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(functools.partial(loss_fn, model=model, config=config),
                               has_aux=True)
  (loss, (per_stage, model_state)), grads = grad_fn(state.params, state.model_state, batch, rng)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                   model_state=model_state)
  if config.on_nan == 'skip':  # keep the old parameters, count the step
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new,
                       state.replace(step=state.step + 1))
  metrics = {'loss': loss, 'stage_loss': per_stage, 'grad_norm': grad_norm, 'finite': finite}
  return new, metrics


def part_beliefs(model, outputs):
  """A model's outputs as evaluate.decode_peaks reads them: P part maps, then a last channel it
  ignores. The CPM's beliefs (background last) as they are; the recurrent model's keypoint
  heatmaps (its limb heatmaps dropped) and a zero channel."""
  if not hasattr(model, 'keypoint_maps'):
    return outputs
  maps = model.keypoint_maps(outputs)
  return jnp.concatenate([maps, jnp.zeros_like(maps[..., :1])], axis=-1)


def eval_step(variables, batch, *, model, config):
  """Per-stage keypoints in image pixels (x, y, the map's maximum) and their distances to the
  ground truth."""
  x, c = model_inputs(batch['image'], config.data.crop_size, config.targets.center_sigma)
  beliefs = part_beliefs(model, model.apply(variables, x, c, train=False))
  pred = evaluate.predict_keypoints(beliefs, model.stride, batch['crop_to_image'])
  dist = jnp.linalg.norm(pred[..., :2] - batch['joints'][None, ..., :2], axis=-1)
  return {'pred': pred, 'dist': dist, 'annotated': batch['joints'][..., 2], 'norm': batch['norm'],
          'index': batch['index'], 'visible': batch.get('visible')}
