"""Each model's inputs, targets and loss weights, and its loss: pure functions of a batch.

The CPM is supervised with ideal belief maps after every stage (stage 1 may also peak at the other
people of the image); the recurrent model with keypoint (and limb) heatmaps after the feed-forward
module and every iteration, weighted by foreground and background and by the occlusion mode.
"""
from __future__ import annotations

import jax.numpy as jnp

from posemachines.codec import targets
from posemachines.core import crops
from posemachines.core import skeleton
from posemachines.objectives import losses


def model_inputs(images, crop_size, center_sigma: float):
  """uint8 crops [B, H, W, 3] -> (pixel / 256 - 0.5, center map at the crop centre) as the
  release feeds; ``crop_size`` is S (square) or (H, W)."""
  x = images.astype(jnp.float32) / 256.0 - 0.5
  h, w = crops.size_hw(crop_size)
  center = jnp.broadcast_to(jnp.array([(w - 1) / 2.0, (h - 1) / 2.0], jnp.float32),
                            (images.shape[0], 2))
  return x, targets.center_map(center, h, w, center_sigma)


def stage_targets(config, batch, num_stages: int, map_size, stride: int):
  """Ideal belief maps per stage [T, B, H, W, P+1] (``map_size``: S or (H, W)); stage 1 may
  also peak at other people."""
  t = config.targets
  map_h, map_w = crops.size_hw(map_size)
  main = targets.belief_maps(batch['keypoints'], map_h, map_w, stride, t.sigma)
  if not t.others_in_stage1 or batch['others'].shape[1] == 0:
    return jnp.broadcast_to(main, (num_stages,) + main.shape)
  first = targets.belief_maps(batch['keypoints'], map_h, map_w, stride, t.sigma,
                              others=batch['others'])
  return jnp.concatenate([first[None], jnp.broadcast_to(main, (num_stages - 1,) + main.shape)])


def stage_weights(config, num_stages: int):
  w = config.loss.stage_weights
  if w:
    return jnp.asarray(w, jnp.float32)
  if config.loss.intermediate_supervision:
    return jnp.ones(num_stages)
  return jnp.zeros(num_stages).at[-1].set(1.0)


def cpm_objective(config, model, beliefs, batch):
  """Per-stage losses [T] of the CPM: the Euclidean loss against the ideal belief maps."""
  num_stages, _, map_h, map_w = beliefs.shape[:4]
  return losses.stage_losses(beliefs, stage_targets(config, batch, num_stages, (map_h, map_w),
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
  x, c = model_inputs(batch['image'], crops.from_config(config.data),
                      config.targets.center_sigma)
  mutable = list(model_state) if train and model_state else False
  out = model.apply({'params': params, **model_state}, x, c, train=train,
                    rngs={'dropout': rng}, mutable=mutable)
  beliefs, model_state = out if mutable else (out, model_state)
  per_stage = OBJECTIVES[config.model.name](config, model, beliefs, batch)
  total = losses.total_loss(per_stage, stage_weights=stage_weights(config, beliefs.shape[0]))
  return total, (per_stage, dict(model_state))


def part_beliefs(model, outputs):
  """A model's outputs as keypoints.decode_peaks reads them: P part maps, then a last channel it
  ignores. The CPM's beliefs (background last) as they are; the recurrent model's keypoint
  heatmaps (its limb heatmaps dropped) and a zero channel."""
  if not hasattr(model, 'keypoint_maps'):
    return outputs
  maps = model.keypoint_maps(outputs)
  return jnp.concatenate([maps, jnp.zeros_like(maps[..., :1])], axis=-1)
