"""Pictures: predicted skeletons, and belief maps of every stage (PNG, matplotlib)."""
from __future__ import annotations


import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from posemachines.core import skeleton  # noqa: E402

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


def stage_panel(image, beliefs, part_names, skel, path: str, stride: int = 1, map_extent=None,
                points=None, titles=None):
  """Rows: chosen parts; columns: every stage's belief map over the image (like CPM Figs. 2, 7).

  ``beliefs`` [T, H, W, C]; by default map pixel (i, j) is centred on image pixel
  (j * stride + (stride - 1) / 2, ...); ``map_extent`` (left, right, bottom, top) overrides that.
  ``points`` [T, P, >=2], optional: each stage's decoded parts, marked with a cross.
  ``titles``: the columns' titles (default 'stage t').
  """
  beliefs = np.asarray(beliefs)  # [T, H, W, C]
  num_stages = beliefs.shape[0]
  height, width = image.shape[:2]
  fig, axes = plt.subplots(len(part_names), num_stages, squeeze=False,
                           figsize=(2.2 * num_stages * max(width / height, 0.5),
                                    2.2 * len(part_names)))
  extent = map_extent or (-0.5, beliefs.shape[2] * stride - 0.5, beliefs.shape[1] * stride - 0.5,
                          -0.5)
  for r, name in enumerate(part_names):
    p = skel.index(name)
    for t in range(num_stages):
      ax = axes[r, t]
      ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
      b = np.clip(beliefs[t, :, :, p], 0, 1)
      overlay = plt.get_cmap('inferno')(b)
      overlay[..., 3] = 0.85 * b / max(float(b.max()), 1e-6)  # opaque where the belief is high
      ax.imshow(overlay, extent=extent, interpolation='bilinear')
      if points is not None:
        ax.plot(points[t][p][0], points[t][p][1], 'c+', ms=8, mew=1.5)
      ax.text(0.02, 0.96, f'max {float(b.max()):.2f}', color='white', fontsize=7,
              transform=ax.transAxes, va='top')
      ax.set_xlim(-0.5, width - 0.5)
      ax.set_ylim(height - 0.5, -0.5)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(titles[t] if titles else f'stage {t + 1}', fontsize=9)
      if t == 0:
        ax.set_ylabel(name, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def limb_panel(image, limb_maps, target, path: str, stride: int, titles):
  """The body-part (limb) heatmaps, all limbs at once (their maximum) over a darkened grey crop:
  the target, then every output of the recurrent model. ``limb_maps`` [T, H, W, L] and
  ``target`` [H, W, L], both with mode 1."""
  maps = [np.asarray(target).max(-1)] + [m.max(-1) for m in np.asarray(limb_maps)]
  size = image.shape[0]
  fig, axes = plt.subplots(1, len(maps), squeeze=False, figsize=(2.2 * len(maps), 2.4))
  for ax, m, title in zip(axes[0], maps, ['target'] + list(titles)):
    ax.imshow(np.asarray(image).mean(-1), cmap='gray', vmin=0, vmax=600,
              extent=(-0.5, size - 0.5, size - 0.5, -0.5))
    b = np.clip(m, 0, 1)
    overlay = plt.get_cmap('inferno')(b)
    overlay[..., 3] = 0.85 * b / max(float(b.max()), 1e-6)
    ax.imshow(overlay, interpolation='bilinear',
              extent=(-0.5, m.shape[1] * stride - 0.5, m.shape[0] * stride - 0.5, -0.5))
    ax.text(0.02, 0.96, f'max {float(b.max()):.2f}', color='white', fontsize=7,
            transform=ax.transAxes, va='top')
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
  fig.suptitle('limb heatmaps (maximum over limbs)', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def pck_curves(stage_tables, path: str, title: str = ''):
  """PCK curves in the papers' style: detection rate against normalised distance, one panel per
  part group (and the mean), one line per output of the model (each table's ``output`` name);
  the legend gives each output's headline value."""
  curves = stage_tables[0]['curves']
  names = [k for k in curves if k != 'thresholds']
  names = (['Mean'] if 'Mean' in names else []) + [k for k in names if k != 'Mean']
  cols = min(len(names), 4)
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False)
  colours = plt.get_cmap('viridis')(np.linspace(0.0, 0.85, len(stage_tables)))
  x = np.asarray(curves['thresholds'])
  metric = stage_tables[0]['metric'].split('@')[0]
  for ax, name in zip(axes.flat, names):
    for t, tab in enumerate(stage_tables):
      y = 100 * np.asarray(tab['curves'][name], np.float64)
      at = tab['row'].get(name, np.nan)
      output = tab.get('output', f'stage {t + 1}')
      ax.plot(x, y, color=colours[t], lw=1.6,
              label=f'{output} ({100 * at:.1f})' if np.isfinite(at) else output)
    ax.set_title(name, fontsize=10)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_xlabel(f'normalised distance ({metric})', fontsize=8)
    ax.set_ylabel('detection rate, %', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc='best')
  for ax in list(axes.flat)[len(names):]:
    ax.axis('off')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
