"""Evaluating a model on a dataset split as the benchmarks score it.

For every person of the split, the belief maps of several views (scale multipliers 0.7-1.3 around
the dataset's person scale, and their mirror images) are merged in image space and decoded to
keypoints in image pixels (inference.py), for every stage; the stages are then scored with the
dataset's benchmark table (metrics.py): MPII PCKh, LSP PCK@0.2 or FLIC elbows and wrists.
"""
from __future__ import annotations

import time

from absl import logging
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tqdm

from posemachines.core import errors
from posemachines.data import pipeline, registry
from posemachines.evaluation import inference, metrics


NO_LABELLED_PARTS = 'no labelled parts'


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
  builder = registry.get_builder(config)
  if split not in builder.info.splits:
    raise errors.BadFlag(f'{builder.info.name} has no split {split!r}; it has '
                         f'{", ".join(sorted(builder.info.splits))} (--split)')
  src = registry.skeleton_name(builder)
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={'image': tfds.decode.SkipDecoding()},
                          read_config=tfds.ReadConfig(try_autocache=False))
  if num_examples > 0:
    ds = ds.take(num_examples)

  def fn(ex):
    crops, crop_to_image = inference.view_crops(ex['image'], ex['center'], ex['scale'], model,
                                                view_list, encoded=True,
                                                fast_decode=config.data.fast_decode)
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
    names = model.output_names
    result['stages'] = [dict(metrics.table(kind, dist[t], joints[..., 2], truth['norm'],
                                           model.skeleton.parts), output=names[t])
                        for t in range(len(pred))]
  else:
    result['note'] = NO_LABELLED_PARTS
    logging.warning('Split %r has no labelled parts: predictions only, no accuracy.', split)
  return result, pred, truth, src
