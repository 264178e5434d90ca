"""Pictures at the end of training: predicted skeletons and every stage's belief maps on
validation crops, and the limb heatmaps of models that predict them."""
from __future__ import annotations

import os

import jax
import numpy as np

from posemachines.codec import keypoints
from posemachines.core import crops, drawing, skeleton
from posemachines.data import pipeline
from posemachines.objectives import per_model


def training_pictures(config, model, variables, workdir: str, parts=('r_wrist', 'l_wrist',
                                                                    'r_ankle', 'l_ankle')):
  """Writes pictures/predictions.png, pictures/stages_*.png and, for models with limb heatmaps,
  pictures/limbs_*.png for the first eval examples."""
  out = os.path.join(workdir, 'pictures')
  os.makedirs(out, exist_ok=True)
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.eval_batch_size = config.num_pictures
  batch = next(iter(pipeline.as_numpy(pipeline.eval_dataset(cfg, num_examples=config.num_pictures))))
  x, c = per_model.model_inputs(batch['image'], crops.from_config(config.data),
                              config.targets.center_sigma)
  outputs = jax.jit(lambda p, x, c: model.apply(p, x, c))(variables, x, c)
  peak = config.targets.peak  # the recurrent model's heatmaps peak at 12
  beliefs = np.asarray(per_model.part_beliefs(model, outputs)) / peak
  titles = model.output_names
  pred = np.asarray(keypoints.decode_peaks(beliefs[-1], model.stride))
  skel = skeleton.get(config.data.parts)
  drawing.prediction_grid(batch['image'], pred, batch['keypoints'], skel,
                  os.path.join(out, 'predictions.png'))
  parts = [p for p in parts if p in skel.parts]
  paths = []
  for i in range(min(2, len(batch['image']))):
    path = os.path.join(out, f'stages_{i}.png')
    drawing.stage_panel(batch['image'][i], beliefs[:, i], parts, skel, path, model.stride, titles=titles)
    paths.append(path)
  if getattr(model, 'num_limbs', 0):
    target, _ = per_model.heatmap_targets(config, model, batch, *outputs.shape[2:4])
    target = np.asarray(model.limb_maps(target)) / peak
    for i in range(min(2, len(batch['image']))):
      path = os.path.join(out, f'limbs_{i}.png')
      drawing.limb_panel(batch['image'][i], np.asarray(model.limb_maps(outputs[:, i])) / peak, target[i],
                 path, model.stride, titles)
      paths.append(path)
  return [os.path.join(out, 'predictions.png')] + paths
