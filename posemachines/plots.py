"""Pictures: predicted skeletons, and belief maps of every stage (PNG, matplotlib)."""
from __future__ import annotations

import os

import jax
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from posemachines import evaluate, skeleton  # noqa: E402

LEFT, RIGHT, CENTRE = '#1f77b4', '#d62728', '#2ca02c'


def part_colour(name: str) -> str:
  return LEFT if name.startswith('l_') else RIGHT if name.startswith('r_') else CENTRE


def draw_skeleton(ax, keypoints, skel: skeleton.Skeleton, annotated=None, style='-', size=12,
                  alpha=1.0):
  """Draws limbs (left blue, right red, centre green) and parts; [P, >=2] keypoints."""
  kp = np.asarray(keypoints)
  ok = np.ones(len(kp), bool) if annotated is None else np.asarray(annotated) > 0
  for a, b in skel.limb_indices:
    if ok[a] and ok[b]:
      name = skel.parts[b] if skel.parts[b][:2] in ('l_', 'r_') else skel.parts[a]
      ax.plot(kp[[a, b], 0], kp[[a, b], 1], style, color=part_colour(name), lw=2, alpha=alpha)
  for i, name in enumerate(skel.parts):
    if ok[i]:
      ax.scatter(kp[i, 0], kp[i, 1], s=size, c=part_colour(name), edgecolors='white',
                 linewidths=0.5, zorder=3, alpha=alpha)


def prediction_grid(images, predictions, truths, skel, path: str, titles=None):
  """Crops with predicted (solid) and true (dotted, faint) skeletons, in crop pixels."""
  n = len(images)
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis('off')
    if i >= n:
      continue
    ax.imshow(images[i])
    if truths is not None:
      draw_skeleton(ax, truths[i], skel, truths[i][:, 2], style=':', size=6, alpha=0.6)
    draw_skeleton(ax, predictions[i], skel)
    if titles:
      ax.set_title(titles[i], fontsize=8)
  fig.suptitle('final-stage prediction (solid) and ground truth (dotted); left blue, right red',
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def stage_panel(image, beliefs, part_names, skel, path: str, stride: int):
  """Rows: chosen parts; columns: every stage's belief map over the crop (like CPM Fig. 2)."""
  beliefs = np.asarray(beliefs)  # [T, H, W, C]
  num_stages = beliefs.shape[0]
  size = image.shape[0]
  fig, axes = plt.subplots(len(part_names), num_stages, squeeze=False,
                           figsize=(2.2 * num_stages, 2.2 * len(part_names)))
  extent = (-0.5, beliefs.shape[2] * stride - 0.5, beliefs.shape[1] * stride - 0.5, -0.5)
  for r, name in enumerate(part_names):
    p = skel.index(name)
    for t in range(num_stages):
      ax = axes[r, t]
      ax.imshow(image, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
      b = np.clip(beliefs[t, :, :, p], 0, 1)
      overlay = plt.get_cmap('inferno')(b)
      overlay[..., 3] = 0.85 * b / max(float(b.max()), 1e-6)  # opaque where the belief is high
      ax.imshow(overlay, extent=extent, interpolation='bilinear')
      ax.text(1, size * 0.06, f'max {float(b.max()):.2f}', color='white', fontsize=7)
      ax.set_xlim(-0.5, size - 0.5)
      ax.set_ylim(size - 0.5, -0.5)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(f'stage {t + 1}', fontsize=9)
      if t == 0:
        ax.set_ylabel(name, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def training_pictures(config, model, variables, workdir: str, parts=('r_wrist', 'l_wrist',
                                                                    'r_ankle', 'l_ankle')):
  """Writes pictures/predictions.png and pictures/stages_*.png for the first eval examples."""
  from posemachines import step
  from posemachines.data import pipeline
  out = os.path.join(workdir, 'pictures')
  os.makedirs(out, exist_ok=True)
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.eval_batch_size = config.num_pictures
  batch = next(iter(pipeline.as_numpy(pipeline.eval_dataset(cfg, num_examples=config.num_pictures))))
  x, c = step.model_inputs(batch['image'], config.data.crop_size, config.targets.center_sigma)
  beliefs = np.asarray(jax.jit(lambda p, x, c: model.apply(p, x, c))(variables, x, c))
  pred = np.asarray(evaluate.decode_peaks(beliefs[-1], model.stride))
  skel = skeleton.get(config.data.parts)
  prediction_grid(batch['image'], pred, batch['keypoints'], skel,
                  os.path.join(out, 'predictions.png'))
  parts = [p for p in parts if p in skel.parts]
  paths = []
  for i in range(min(2, len(batch['image']))):
    path = os.path.join(out, f'stages_{i}.png')
    stage_panel(batch['image'][i], beliefs[:, i], parts, skel, path, model.stride)
    paths.append(path)
  return [os.path.join(out, 'predictions.png')] + paths
