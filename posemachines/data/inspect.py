"""Look at a dataset as training sees it, before spending accelerator days on it.

  python -m posemachines.data.inspect --dataset=mpii --split=train --out=grid.png \
      [--manual_dir=...] [--data_dir=...] [--config=experiments/cpm_mpii.py] [--num=8]

Prints each dataset's split sizes and the skip report of its preparation, and draws ``--num``
augmented crops per dataset (a mixture draws from each of its components): on the left the crop
with the skeleton in the model's part order (left parts blue, right red, centre green; occluded
parts hollow) and the other people's parts (small dots); on the right the ideal belief maps
(max over parts, every person's peaks as stage 1 sees them) and the center map's peak (cross).
"""
from __future__ import annotations

import json
import os

from absl import flags
import jax.numpy as jnp
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from posemachines.core import crops as crop_sizes  # noqa: E402
from posemachines.core import errors, skeleton  # noqa: E402
from posemachines.codec import targets  # noqa: E402
from posemachines.data import cli  # noqa: E402
from posemachines.data import manual  # noqa: E402
from posemachines.data import pipeline  # noqa: E402
from posemachines.data import registry  # noqa: E402
from posemachines.core import drawing  # noqa: E402

STRIDE = 8


def stored_report(builder) -> str | None:
  """The skip report stored with a prepared dataset, formatted, or None if it has none."""
  path = builder.data_path / manual.REPORT_FILE
  if not path.exists():
    return None
  return manual.skip_report(builder).format()


def describe(config) -> list[str]:
  """Per dataset: its split sizes, native part order, metric and skip report."""
  lines = []
  for name, b in registry.get_builders(config, registry.dataset_names(config)).items():
    sizes = ', '.join(f'{k} {v.num_examples}' for k, v in b.info.splits.items())
    lines.append(f'{name}: {sizes} (parts {registry.skeleton_name(b)}, metric '
                 f'{registry.metric_name(b)}) in {b.data_path}')
    report = stored_report(b)
    lines.append(report if report else '  (no skip report stored)')
  return lines


def samples(config, split: str, num: int, augment: bool = True, seed: int = 0,
            notes: list | None = None) -> list[dict]:
  """``num`` crops per dataset as training makes them, with keypoints in the model's order
  (fewer where a split holds fewer people; ``notes`` then gets a line saying so)."""
  data = config.data
  aug = pipeline.Augment.from_config(data, train=augment)
  out = []
  for name in registry.dataset_names(config):
    ds, n, _, parts = pipeline._raw_split(config, split, 0, 1, name)
    if n < num and notes is not None:
      notes.append(f'{name} {split} holds {n} people, fewer than --num={num}: drawing {n}')
    fn = pipeline.make_transform_fn(aug, data.parts, data.parts, seed, data.max_others,
                                    train=augment, fast_decode=data.fast_decode)
    ds = ds.shuffle(min(n, 256), seed=seed).take(num).enumerate()
    ds = ds.map(lambda i, ex, parts=parts: fn(i, 0, pipeline.to_model_example(
        ex, parts, data.parts)))
    for ex in ds.as_numpy_iterator():
      ex['dataset'] = name
      out.append(ex)
  return out


def draw_grid(config, crops: list[dict], path: str, title: str = "", dpi: int = 100) -> None:
  fig = grid_figure(config, crops, title)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def grid_figure(config, crops: list[dict], title: str = ""):
  """The crops (skeleton and other people) beside their target belief maps, four per row."""
  skel = skeleton.get(config.data.parts)
  h, w = crop_sizes.size_hw(crop_sizes.from_config(config.data))
  map_h, map_w = h // STRIDE, w // STRIDE
  cols = 2 * min(len(crops), 4)
  rows = -(-len(crops) // 4)
  fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for i, ex in enumerate(crops):
    left, right = axes[i // 4, 2 * (i % 4)], axes[i // 4, 2 * (i % 4) + 1]
    kp, others = ex['keypoints'], ex['others']
    left.imshow(ex['image'], extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for person in others:
      ok = person[:, 2] > 0
      left.scatter(person[ok, 0], person[ok, 1], s=4, c='yellow')
    drawing.draw_skeleton(left, kp, skel, kp[:, 2])
    hidden = (kp[:, 2] > 0) & (ex['visible'] == 0)
    left.scatter(kp[hidden, 0], kp[hidden, 1], s=40, facecolors='none', edgecolors='white',
                 linewidths=1.0, zorder=4)
    # The axes are the crop: parts outside it (other people's, or the person's own beyond the
    # border) are not drawn and do not widen the axes, which would shrink the crop.
    left.set_xlim(-0.5, w - 0.5)
    left.set_ylim(h - 0.5, -0.5)
    left.set_title(f"{ex['dataset']} #{i}", fontsize=8)
    beliefs = np.asarray(targets.belief_maps(jnp.asarray(kp), map_h, map_w, STRIDE,
                                             config.targets.sigma, others=jnp.asarray(others)))
    right.imshow(ex['image'], alpha=0.5, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    right.imshow(beliefs[..., :-1].max(-1), cmap='inferno', alpha=0.6, vmin=0, vmax=1,
                 extent=(-0.5, map_w * STRIDE - 0.5, map_h * STRIDE - 0.5, -0.5))
    right.plot([(w - 1) / 2], [(h - 1) / 2], 'c+', ms=10)
    right.set_xlim(-0.5, w - 0.5)
    right.set_ylim(h - 0.5, -0.5)
    right.set_title('belief maps (all people)', fontsize=8)
  fig.suptitle(title or 'left parts blue, right red; occluded parts circled; others yellow',
               fontsize=9)
  fig.tight_layout()
  return fig


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  if fl.num < 1:
    raise errors.BadFlag(f'--num={fl.num}: draw at least one crop')
  config = cli.config_from_flags()
  for line in describe(config):
    print(line)
  notes = []
  crops = samples(config, fl.split, fl.num, augment=fl.augment, seed=fl.seed, notes=notes)
  for line in notes:
    print(line)
  if fl.out:
    os.makedirs(os.path.dirname(os.path.abspath(fl.out)), exist_ok=True)
    draw_grid(config, crops, fl.out,
              f'{config.data.dataset} {fl.split}: {"augmented " if fl.augment else ""}crops in '
              f'{config.data.parts} order; left blue, right red; occluded circled; others '
              'yellow')
    print(f'wrote {fl.out}')
  stats = {'crops': len(crops), 'annotated_parts': round(float(np.mean(
      [c['keypoints'][:, 2].sum() for c in crops])), 2)}
  print(json.dumps(stats))


def _define_flags():
  cli.define_flags()
  flags.DEFINE_string('out', 'grid.png', 'PNG file to write.')
  flags.DEFINE_integer('num', 8, 'Crops per dataset.')
  flags.DEFINE_bool('augment', True, 'Augment as training does (else the evaluation crop).')
  flags.DEFINE_integer('seed', 0, 'Sampling and augmentation seed.')


if __name__ == '__main__':
  tf.config.set_visible_devices([], 'GPU')
  _define_flags()
  cli.run(main, 'posemachines.data.inspect')
