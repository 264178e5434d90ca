"""Evaluation as the benchmarks score it: ``python -m posemachines.evaluate --model=MODEL``
(an exported artifact or a training workdir).

For every person of a dataset split, the belief maps of several views (scale multipliers 0.7-1.3
around the dataset's person scale, and their mirror images) are merged in image space and decoded
to keypoints in image pixels (posemachines/inference.py), for every stage. The stages are then
scored with the dataset's benchmark table (posemachines/metrics.py): MPII PCKh, LSP PCK@0.2 or
FLIC elbows and wrists. Written to ``--out``: eval.json, eval.md and curves.png (PCK curves per
stage); with ``--mat_dir``, the predictions (and the split's ground truth) as MPII .mat files.

Scoring official MPII files: ``python -m posemachines.evaluate --annotations=GT.mat
--predictions=PRED.mat [--json]`` (see posemachines/mpii_results.py).

This module also keeps the decoding helpers the training loop uses.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging
import jax
import numpy as np

from posemachines import metrics, mpii_results
from posemachines.inference import decode_peaks, predict_keypoints, to_image  # noqa: F401
from posemachines.metrics import pck  # noqa: F401


def distances(pred, gt):
  """Euclidean distances [..., P] between predicted and true (x, y)."""
  return np.linalg.norm(np.asarray(pred)[..., :2] - np.asarray(gt)[..., :2], axis=-1)


def default_table(dataset_skeleton: str, metric: str) -> str:
  """The benchmark table of a dataset: by its part set (LSP, FLIC), else by its metric."""
  if dataset_skeleton in ('lsp', 'flic'):
    return dataset_skeleton
  return 'mpii' if metric == 'pckh' else 'lsp'


def split_examples(config, model, view_list, split: str, num_examples: int, batch_size: int):
  """tf.data batches of one split: every person's view crops and its ground truth.

  Returns (batches, the dataset's name, its native part order, its metric name).
  """
  import tensorflow as tf
  import tensorflow_datasets as tfds
  from posemachines import inference
  from posemachines.data import pipeline, registry
  builder = registry.get_builder(config)
  if split not in builder.info.splits:
    raise ValueError(f'{builder.info.name} has no split {split!r}; it has '
                     f'{sorted(builder.info.splits)}')
  src = registry.skeleton_name(builder)
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={'image': tfds.decode.SkipDecoding()})
  if num_examples > 0:
    ds = ds.take(num_examples)

  def fn(ex):
    crops, crop_to_image = inference.view_crops(ex['image'], ex['center'], ex['scale'], model,
                                                view_list, encoded=True,
                                                fast_decode=config.data.get('fast_decode', True))
    return {'crops': crops, 'crop_to_image': crop_to_image,
            'joints': pipeline.to_model_parts(ex['joints'], ex['joints_annotated'], src,
                                              model.parts),
            'native': tf.concat([ex['joints'],
                                 tf.cast(ex['joints_annotated'], tf.float32)[:, None]], axis=-1),
            'visible': ex['joints_visible'], 'norm': ex['norm'], 'head_box': ex['head_box'],
            'center': ex['center'], 'scale': ex['scale'], 'image_id': ex['image_id']}

  ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return (ds.batch(batch_size).prefetch(2), registry.eval_dataset_name(config), src,
          registry.metric_name(builder))


def run(model, config, split: str, scales=None, flip: bool = True, table: str | None = None,
        num_examples: int = -1, batch_size: int = 8, grid_stride: float | None = None):
  """Predicts every person of ``split`` and scores every stage. Returns a dict (see eval.json)."""
  import tqdm
  from posemachines import inference
  view_list = inference.views(inference.DEFAULT_SCALES if scales is None else scales, flip)
  fn, merge = inference.predict_fn(model, view_list, grid_stride)
  ds, dataset, src, metric = split_examples(config, model, view_list, split, num_examples,
                                            batch_size)
  keep = ('joints', 'native', 'visible', 'norm', 'head_box', 'center', 'scale', 'image_id')
  preds, truth = [], {k: [] for k in keep}
  t0 = time.time()
  with tqdm.tqdm(desc=f'evaluate {split}', unit='person', dynamic_ncols=True) as bar:
    for batch in ds.as_numpy_iterator():
      pred, _ = fn(batch['crops'], batch['crop_to_image'])
      preds.append(np.asarray(jax.device_get(pred)))
      for k in keep:
        truth[k].append(batch[k])
      bar.update(len(batch['norm']))
  seconds = time.time() - t0
  if not preds:
    raise ValueError(f'split {split!r} of {dataset} is empty')
  pred = np.concatenate(preds, axis=1)                               # [T, N, P, 3]
  truth = {k: np.concatenate(v) for k, v in truth.items()}
  joints = truth['joints']
  kind = table or default_table(src, metric)
  result = {'model': model.source, 'dataset': dataset, 'split': split,
            'num_people': int(pred.shape[1]), 'table': kind,
            'views': [{'scale': m, 'flip': f} for m, f in view_list],
            'grid_stride': merge.grid_stride, 'seconds': seconds, 'stages': []}
  if (joints[..., 2] > 0).any():
    dist = distances(pred, joints[None])
    result['stages'] = [metrics.table(kind, dist[t], joints[..., 2], truth['norm'],
                                      model.skeleton.parts) for t in range(len(pred))]
  else:
    logging.warning('Split %r has no labelled parts: predictions only, no accuracy.', split)
  return result, pred, truth, src


def write_outputs(result, out: str):
  """eval.json, eval.md and curves.png under ``out``."""
  from posemachines import plots
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'eval.json'), 'w') as f:
    json.dump(result, f, indent=2)
  if not result['stages']:
    return
  title = f'{result["dataset"]} {result["split"]}, {result["num_people"]} people'
  with open(os.path.join(out, 'eval.md'), 'w') as f:
    f.write(metrics.markdown(result['stages'], title))
  plots.pck_curves(result['stages'], os.path.join(out, 'curves.png'), title)


def write_mat(pred, truth, src: str, parts: str, mat_dir: str):
  """predictions.mat (final stage) and, where the dataset is in MPII order, annotations.mat."""
  from posemachines.data import mpii_mat
  os.makedirs(mat_dir, exist_ok=True)
  ids = truth['image_id']
  mpii_mat.write_release(os.path.join(mat_dir, 'predictions.mat'),
                         mpii_results.prediction_images(ids, pred[-1], parts, truth['center'],
                                                        truth['scale']), top='annolist')
  if src == 'mpii':
    mpii_mat.write_release(os.path.join(mat_dir, 'annotations.mat'),
                           mpii_results.ground_truth_images(
                               ids, truth['native'], truth['visible'], truth['head_box'],
                               truth['center'], truth['scale']))


# --------------------------------------------------------------------------------- CLI --

def define_flags():
  flags.DEFINE_string('model', None, 'An exported artifact directory or a training workdir.')
  flags.DEFINE_string('split', None, "Dataset split (default: the config's eval_split).")
  flags.DEFINE_string('dataset', None, "Dataset (default: the model's training config).")
  flags.DEFINE_string('data_dir', None, 'tfds data directory (default: as in the config).')
  flags.DEFINE_string('manual_dir', None, 'Where the dataset\'s downloaded files are (real '
                      'datasets are prepared from them on first use).')
  flags.DEFINE_integer('num_examples', -1, 'People to evaluate (-1: the whole split).')
  flags.DEFINE_list('scales', [str(s) for s in (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)],
                    'Scale multipliers around the dataset\'s person scale.')
  flags.DEFINE_bool('flip', True, 'Also merge the mirrored views (left and right swapped).')
  flags.DEFINE_enum('table', None, sorted(metrics.TABLES), 'Benchmark table (default: by dataset).')
  flags.DEFINE_integer('batch_size', 8, 'People per step (each gives 2 x len(scales) crops).')
  flags.DEFINE_float('grid_stride', None, 'Merge grid spacing in crop pixels (default: stride/2).')
  flags.DEFINE_string('out', None, 'Output directory (default: MODEL/eval_DATASET_SPLIT).')
  flags.DEFINE_string('mat_dir', None, 'Also write predictions.mat (and annotations.mat) here.')
  flags.DEFINE_string('annotations', None, 'Ground-truth MPII .mat file to score against.')
  flags.DEFINE_string('predictions', None, 'MPII .mat predictions file to score.')
  flags.DEFINE_bool('json', False, 'With --annotations/--predictions: print JSON.')


def _score_files(fl):
  result = mpii_results.score(fl.annotations, fl.predictions)
  if fl.json:
    print(json.dumps(result, indent=2))
    return
  print(metrics.markdown([result['table']], f'{fl.predictions} against {fl.annotations}, '
                                            f'{result["num_people"]} people',
                         header='predictions', rows=[os.path.basename(fl.predictions)]))
  for reason, count in result['left_out'].items():
    print(f'left out: {count} people ({reason})')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  fl = flags.FLAGS
  if fl.annotations or fl.predictions:
    if not (fl.annotations and fl.predictions):
      raise app.UsageError('--annotations and --predictions go together')
    return _score_files(fl)
  if not fl.model:
    raise app.UsageError('Give --model=ARTIFACT_OR_WORKDIR, or --annotations and --predictions')
  import ml_collections
  from posemachines import inference
  model = inference.load(fl.model)
  config = ml_collections.ConfigDict(model.config)
  with config.unlocked():
    if fl.dataset:
      config.data.dataset = fl.dataset
      config.data.eval_dataset = fl.dataset
    if fl.manual_dir:
      config.data.manual_dir = fl.manual_dir
    if fl.data_dir:
      config.data.data_dir = fl.data_dir
  split = fl.split or config.data.eval_split
  result, pred, truth, src = run(model, config, split, [float(s) for s in fl.scales], fl.flip,
                                 fl.table, fl.num_examples, fl.batch_size, fl.grid_stride)
  out = fl.out or os.path.join(fl.model, f'eval_{result["dataset"]}_{split}')
  write_outputs(result, out)
  if fl.mat_dir:
    write_mat(pred, truth, src, model.parts, fl.mat_dir)
  if result['stages']:
    print(metrics.markdown(result['stages'], f'{result["dataset"]} {split}, '
                                             f'{result["num_people"]} people'))
  print(f'{result["num_people"]} people in {result["seconds"]:.1f} s; written to {out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
