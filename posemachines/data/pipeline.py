"""Host input pipeline: tf.data over a tfds split, one person-centric affine warp per example.

Per example: decode, then one affine warp image -> crop that normalises the person's size
(person height -> 200 * target_dist * crop height / 368 px), applies random scale, rotation, flip
and shift, and crops H x W (``crop_size`` x ``crop_width``, square by default) with grey padding.
The keypoints go through exactly the same transform; a flip swaps left and right parts. All
randomness is stateless, from (seed, epoch, example index), so a run is reproducible and resumes
exactly from its step.

Batches are dicts of numpy arrays (host-local part of the global batch):
  image      uint8 [B, H, W, 3]
  keypoints  float32 [B, P, 3]     x, y in crop pixels, annotated flag (model part order)
  visible    float32 [B, P]
  others     float32 [B, K, P, 3]  other people (zero-padded to K = max_others)
  eval only: crop_to_image float32 [B, 2, 3], joints float32 [B, P, 3] (image pixels),
             norm float32 [B], index int32 [B]
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from posemachines.core import crops
from posemachines.core import errors, skeleton
from posemachines.data import decode
from posemachines.data import registry

GREY = decode.GREY


@dataclasses.dataclass(frozen=True)
class Augment:
  crop_size: int | tuple[int, int]  # S (square) or (H, W); person size follows the height
  target_dist: float
  scale_min: float = 1.0
  scale_max: float = 1.0
  max_rotation: float = 0.0
  flip: bool = False
  max_shift: float = 0.0

  @classmethod
  def from_config(cls, data, train: bool):
    base = dict(crop_size=crops.from_config(data), target_dist=data.target_dist)
    if not train:
      return cls(**base)
    return cls(scale_min=data.scale_min, scale_max=data.scale_max, max_rotation=data.max_rotation,
               flip=data.flip, max_shift=data.max_shift, **base)


def example_seed(seed: int, epoch, index):
  """The stateless seed of one example's augmentation: a function of (seed, epoch, index)."""
  return tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64),
                   tf.cast(index, tf.int64)])


def affine_params(aug: Augment, rng_seed):
  """Random (scale multiplier, rotation in degrees, flip, shift x, shift y) for one example."""
  u = tf.random.stateless_uniform([5], rng_seed, dtype=tf.float32)
  mult = aug.scale_min + (aug.scale_max - aug.scale_min) * u[0]
  rot = aug.max_rotation * (2.0 * u[1] - 1.0)
  flip = tf.logical_and(tf.constant(aug.flip), u[2] < 0.5)
  shift = aug.max_shift * (2.0 * u[3:5] - 1.0)
  return mult, rot, flip, shift


def image_to_crop(aug: Augment, center, person_scale, mult, rot, flip, shift):
  """The 2x3 affine matrix taking image pixels to crop pixels (pixel centres at integers)."""
  height, width = crops.size_hw(aug.crop_size)
  s = (height / 368.0) * aug.target_dist / person_scale * mult
  theta = rot * (math.pi / 180.0)
  c, sn = tf.cos(theta) * s, tf.sin(theta) * s
  fx = tf.where(flip, -1.0, 1.0)
  m = tf.stack([tf.stack([fx * c, -fx * sn]), tf.stack([sn, c])])  # F R s
  t = tf.stack([(width - 1) / 2.0, (height - 1) / 2.0]) + shift - tf.linalg.matvec(m, center)
  return tf.concat([m, t[:, None]], axis=1)


def invert_affine(a):
  m, t = a[:, :2], a[:, 2]
  mi = tf.linalg.inv(m)
  return tf.concat([mi, -tf.linalg.matvec(mi, t)[:, None]], axis=1)


def apply_affine(a, points):
  """points [..., 2] -> a @ [x, y, 1]."""
  return tf.linalg.matvec(a[:, :2], points) + a[:, 2]


def warp_image(image, crop_to_image, crop_size):
  """Bilinear warp with grey padding; output pixel (x, y) samples the image at A (x, y, 1)."""
  return decode.warp(image, crop_to_image, crop_size)


def _part_conversion(src: str, dst: str):
  idx = skeleton.conversion(src, dst)
  return tf.constant(np.maximum(idx, 0)), tf.constant(idx >= 0)


def to_model_parts(joints, annotated, src: str, dst: str):
  """[..., Pd, 2] + [..., Pd] -> [..., Pm, 3] (x, y, annotated) in the model's part order."""
  idx, present = _part_conversion(src, dst)
  xy = tf.gather(joints, idx, axis=-2)
  ann = tf.logical_and(tf.gather(annotated, idx, axis=-1), present)
  return tf.concat([xy, tf.cast(ann, tf.float32)[..., None]], axis=-1)


def make_transform_fn(aug: Augment, src_parts: str, model_parts: str, seed: int, max_others: int,
                      train: bool, fast_decode: bool = True):
  """The per-example map: (index, epoch, raw tfds example) -> augmented crop and keypoints.

  With ``fast_decode`` a JPEG is decoded only where, and only as finely as, the crop needs it
  (posemachines/data/decode.py); otherwise the whole image is decoded.
  """
  flip_perm = tf.constant(skeleton.get(model_parts).flip_permutation)

  def fn(index, epoch, ex):
    if train:
      mult, rot, flip, shift = affine_params(aug, example_seed(seed, epoch, index))
    else:
      mult, rot, flip, shift = 1.0, 0.0, tf.constant(False), tf.zeros([2])
    fwd = image_to_crop(aug, ex['center'], ex['scale'], mult, rot, flip, shift)
    inv = invert_affine(fwd)
    crop = decode.decode_warp(ex['image'], inv, aug.crop_size, fast=fast_decode)

    kp = to_model_parts(ex['joints'], ex['joints_annotated'], src_parts, model_parts)
    vis = tf.cast(tf.gather(ex['joints_visible'], _part_conversion(src_parts, model_parts)[0]),
                  tf.float32) * kp[:, 2]
    others = ex['others'][:max_others]
    others = to_model_parts(others[..., :2], others[..., 2] > 0, src_parts, model_parts)
    moved = tf.concat([apply_affine(fwd, kp[:, :2]), kp[:, 2:]], axis=-1)
    others = tf.concat([apply_affine(fwd, others[..., :2]), others[..., 2:]], axis=-1)
    moved = tf.where(flip, tf.gather(moved, flip_perm), moved)
    vis = tf.where(flip, tf.gather(vis, flip_perm), vis)
    others = tf.where(flip, tf.gather(others, flip_perm, axis=1), others)
    others = tf.pad(others, [[0, max_others - tf.shape(others)[0]], [0, 0], [0, 0]])
    out = {'image': crop, 'keypoints': moved, 'visible': vis,
           'others': tf.ensure_shape(others, [max_others, None, 3])}
    if not train:
      out.update(crop_to_image=inv, joints=kp, norm=ex['norm'],
                 index=tf.cast(index, tf.int32))
    return out

  return fn


_FIELDS = ('image', 'joints', 'joints_annotated', 'joints_visible', 'center', 'scale', 'norm',
           'others')


def _split_size(builder, split: str) -> int:
  info = builder.info
  if split not in info.splits:
    raise errors.BadFlag(f'{info.name} has no split {split!r}; it has {", ".join(info.splits)}')
  return info.splits[split].num_examples


def _raw_split(config, split: str, process_index: int = 0, process_count: int = 1,
               name: str | None = None, limit: int = -1):
  """This host's share of a split (images undecoded), its size, start and native part order.

  The first ``limit`` examples (all if ``limit`` <= 0) are cut into contiguous shares of n // P
  or n // P + 1 examples, one per process.
  """
  builder = registry.get_builder(config, name)
  num = _split_size(builder, split)
  n = min(num, limit) if limit > 0 else num
  if n < process_count:
    raise ValueError(f'split {split!r} of {builder.info.name} has {n} examples, fewer than the '
                     f'{process_count} processes reading it')
  shares = [n // process_count + (p < n % process_count) for p in range(process_count)]
  start = sum(shares[:process_index])
  stop = start + shares[process_index]
  # No tfds auto-cache (it caches small splits, then warns when a stream stops mid-split):
  # config.data.cache decides, in _stream.
  ds = builder.as_dataset(split=f'{split}[{start}:{stop}]', shuffle_files=False,
                          decoders={'image': tfds.decode.SkipDecoding()},
                          read_config=tfds.ReadConfig(try_autocache=False))
  ds = ds.map(lambda ex: {k: ex[k] for k in _FIELDS})
  return ds, stop - start, start, registry.skeleton_name(builder)


def to_model_example(ex, src: str, dst: str):
  """A raw example with its parts (and its other people's) in the ``dst`` part order."""
  if src == dst:
    return ex
  idx, present = _part_conversion(src, dst)
  kp = to_model_parts(ex['joints'], ex['joints_annotated'], src, dst)
  others = to_model_parts(ex['others'][..., :2], ex['others'][..., 2] > 0, src, dst)
  visible = tf.logical_and(tf.gather(ex['joints_visible'], idx), present)
  return dict(ex, joints=kp[:, :2], joints_annotated=kp[:, 2] > 0, joints_visible=visible,
              others=others)


def _filled_cache(ds):
  """``ds`` cached in memory, the cache filled now by one pass (encoded images are small).

  A cache that an iterator leaves half-read is thrown away (with a warning), and a training
  stream stops mid-epoch whenever the run ends; filled first, every epoch reads the memory copy.
  """
  ds = ds.cache()
  ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
  return ds


def _stream(config, ds, n: int, start: int, first: int, component: int = 0):
  """(index, epoch, example) from position ``first`` of the endless stream of a split.

  Epoch e is the split shuffled with a seed of (config.seed, e, component); indices of component
  c are offset by c * 2**32, so that augmentation seeds differ between a mixture's components.
  """
  if config.data.cache:
    ds = _filled_cache(ds)
  ds = ds.enumerate(start=start)
  buffer = min(n, config.data.shuffle_buffer)
  first_epoch, skip = divmod(first, n)

  def epoch_ds(epoch):
    seed = tf.cast(config.seed, tf.int64) * 1_000_003 + epoch + component * 7_919
    return ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).map(
        lambda i, ex: (i + component * 2 ** 32, epoch, ex))

  return tf.data.Dataset.range(first_epoch, 2 ** 40).flat_map(epoch_ds).skip(skip)


def mixture_pattern(weights, period: int = 1000) -> np.ndarray:
  """A fixed cycle of component ids in which component c appears about weights[c] x period
  times, spread evenly (smooth weighted round robin)."""
  weights = np.asarray(weights, np.float64)
  credit = np.zeros_like(weights)
  out = np.zeros(period, np.int64)
  for k in range(period):
    credit += weights
    out[k] = int(np.argmax(credit))
    credit[out[k]] -= 1.0
  return out


def train_dataset(config, process_index: int = 0, process_count: int = 1, start_step: int = 0):
  """An endless stream of augmented local batches, beginning at global step ``start_step``.

  The global stream is the same for any number of processes: epoch e is the whole split shuffled
  with a seed of (config.seed, e), example k is augmented with a seed of (config.seed, e, k), and
  global batch s is the stream's examples [s * B, (s + 1) * B). Process p keeps the contiguous
  slice [p * B / P, (p + 1) * B / P) of every global batch and decodes and augments only those
  examples (every process reads the split's encoded records). A run resumed at step s reads
  exactly the batches an uninterrupted run reads from step s on, and 2 processes read the same
  global batches as 1. For a mixture ('mpii+lsp_extended') each component is such a stream,
  converted to the model's part order, and the examples are drawn from them in a fixed cycle of
  ``mixture_pattern(weights)``, so the mixture resumes exactly too.
  """
  data = config.data
  if config.batch_size % process_count:
    raise ValueError(f'batch_size {config.batch_size} is not divisible by the {process_count} '
                     'processes')
  batch = config.batch_size // process_count
  first = start_step * config.batch_size
  aug = Augment.from_config(data, train=True)
  fast = data.fast_decode
  names = registry.dataset_names(config)
  if len(names) == 1:
    ds, n, start, src_parts = _raw_split(config, data.train_split, name=names[0])
    out = _stream(config, ds, n, start, first)
  else:
    shards = [_raw_split(config, data.train_split, name=name) for name in names]
    weights = registry.mixture_weights(config, [n for _, n, _, _ in shards])
    pattern = mixture_pattern(weights)
    cycles, rem = divmod(first, len(pattern))
    streams = []
    for c, (ds, n, start, parts) in enumerate(shards):
      done = cycles * int((pattern == c).sum()) + int((pattern[:rem] == c).sum())
      ds = ds.map(lambda ex, parts=parts: to_model_example(ex, parts, data.parts))
      streams.append(_stream(config, ds, n, start, done, component=c))
    choice = tf.data.Dataset.from_tensor_slices(pattern).repeat().skip(rem)
    out = tf.data.Dataset.choose_from_datasets(streams, choice)
    src_parts = data.parts
  if process_count > 1:  # this process's slice of each global batch, before any decoding
    lo = process_index * batch
    mine = lambda k, x: tf.logical_and(k % config.batch_size >= lo,
                                       k % config.batch_size < lo + batch)
    out = out.enumerate().filter(mine).map(lambda k, x: x)
  fn = make_transform_fn(aug, src_parts, data.parts, config.seed, data.max_others, train=True,
                         fast_decode=fast)
  out = out.map(fn, num_parallel_calls=_parallel(data), deterministic=True)
  return out.batch(batch, drop_remainder=True).prefetch(data.prefetch)


def eval_dataset(config, process_index: int = 0, process_count: int = 1,
                 num_examples: int = -1):
  """This process's share of the eval split (its first ``num_examples`` if > 0), un-augmented.

  The n examples are split into contiguous shares of n // P or n // P + 1, one per process, and
  every share is padded to the same number of full batches with copies of an example whose
  ``index`` is -1, so every process runs the same number of identical-shape steps.
  """
  data = config.data
  if config.eval_batch_size % process_count:
    raise ValueError(f'eval_batch_size {config.eval_batch_size} is not divisible by the '
                     f'{process_count} processes')
  batch = config.eval_batch_size // process_count
  ds, _, start, src_parts = _raw_split(config, data.eval_split, process_index, process_count,
                                       limit=num_examples)
  num = _split_size(registry.get_builder(config), data.eval_split)
  n = min(num, num_examples) if num_examples > 0 else num
  largest = -(-n // process_count)
  padded = -(-largest // batch) * batch  # every share padded to the largest, in full batches
  fn = make_transform_fn(Augment.from_config(data, train=False), src_parts, data.parts,
                         config.seed, data.max_others, train=False,
                         fast_decode=data.fast_decode)
  ds = ds.enumerate(start=start)
  filler = ds.take(1).map(lambda i, ex: (tf.constant(-1, tf.int64), ex)).repeat()
  ds = ds.concatenate(filler).take(padded)
  ds = ds.map(lambda i, ex: fn(i, 0, ex), num_parallel_calls=_parallel(data), deterministic=True)
  return ds.batch(batch, drop_remainder=True).prefetch(data.prefetch)


def _parallel(data):
  return tf.data.AUTOTUNE if data.num_parallel_calls < 0 else data.num_parallel_calls


def as_numpy(ds):
  return tfds.as_numpy(ds)
