"""Host input pipeline speed on one core: samples/s of decode + warp + batch, and decode alone.

  python -m posemachines.data.benchmark --dataset=mpii [--data_dir=...] [--manual_dir=...]
  python -m posemachines.data.benchmark --dataset=json_people \
      --annotations=tests/data/mpii_sample/test_mpii.json
  python -m posemachines.data.benchmark --images='photos/*.jpg' --resize=1280x720

The first ``--num_examples`` examples of the split (or the images of ``--images``, each a person
at the image centre spanning 80% of its height) are held in memory, so that disk reads are not
timed. Every tf.data stage then runs on one thread (a private one-thread pool, no intra-op
parallelism), so the figures are per host core. Reported, each with the full-image path for
comparison: the whole training pipeline (augmentation as configured, ``crop_size`` crops, batches
of ``batch_size``), and decoding alone: the whole image, and the crop's window at the DCT ratio
the fast path picks.
"""
from __future__ import annotations

import glob
import io
import json
import time

from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from posemachines.core import crops
from posemachines.core import errors
from posemachines.core import images
from posemachines.data import cli
from posemachines.data import decode
from posemachines.data import pipeline
from posemachines.data import registry


def _one_core(ds):
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = False
  return ds.with_options(options)


def _rate(ds, count: int, seconds: float) -> dict:
  """Items per wall-clock second and per CPU second of this process, after a warm-up element.

  The pipeline runs on one thread, so on an idle machine the two agree; where other work
  shares the cores, items per CPU second is the cost of one core's work.
  """
  it = iter(_one_core(ds).repeat())
  next(it)
  n, wall, cpu = 0, time.perf_counter(), time.process_time()
  while True:
    next(it)
    n += count
    elapsed = time.perf_counter() - wall
    if elapsed >= seconds:
      return {'wall': n / elapsed, 'cpu': n / max(time.process_time() - cpu, 1e-9)}


def examples_from_images(pattern: str, resize: str | None, parts: int = 16) -> list[dict]:
  """Raw examples of JPEG files: a person at the image centre, 80% of its height tall."""
  out = []
  for path in sorted(glob.glob(pattern)):
    with open(path, 'rb') as f:
      data = f.read()
    if resize:
      w, h = (int(v) for v in resize.split('x'))
      buf = io.BytesIO()
      images.to_rgb(Image.open(io.BytesIO(data))).resize((w, h), Image.BICUBIC).save(
          buf, format='JPEG', quality=90)
      data = buf.getvalue()
    h, w = tf.image.extract_jpeg_shape(data).numpy()[:2]
    out.append({'image': data, 'joints': np.zeros((parts, 2), np.float32),
                'joints_annotated': np.zeros(parts, bool), 'joints_visible': np.zeros(parts, bool),
                'center': np.array([w / 2, h / 2], np.float32),
                'scale': np.float32(0.8 * h / 200), 'norm': np.float32(1.0),
                'others': np.zeros((0, parts, 3), np.float32)})
  if not out:
    raise errors.MissingData(f'--images {pattern!r} matches no file')
  return out


def raw_examples(config, split: str, num: int) -> tuple[list[dict], str]:
  """The first ``num`` raw examples of the split (images undecoded) and their part order."""
  names = registry.dataset_names(config)
  ds, _, _, parts = pipeline._raw_split(config, split, 0, 1, names[0])
  return list(ds.take(num).as_numpy_iterator()), parts


def _dataset(examples: list[dict]):
  def gen():
    yield from examples
  first = examples[0]
  sig = {k: tf.TensorSpec(np.shape(v) if k != 'others' else (None,) + np.shape(v)[1:],
                          tf.as_dtype(np.asarray(v).dtype) if k != 'image' else tf.string)
         for k, v in first.items()}
  return tf.data.Dataset.from_generator(gen, output_signature=sig).cache()


def benchmark(config, examples: list[dict], parts: str, seconds: float = 5.0) -> dict:
  data = config.data
  raw = _dataset(examples)
  list(raw)  # fill the cache
  aug = pipeline.Augment.from_config(data, train=True)
  result = {'examples': len(examples), 'crop_size': data.crop_size,
            'crop': crops.describe(crops.from_config(data)), 'batch_size': config.batch_size}
  for fast in (True, False):
    fn = pipeline.make_transform_fn(aug, parts, data.parts, config.seed, data.max_others,
                                    train=True, fast_decode=fast)
    ds = raw.enumerate().map(lambda i, ex: fn(i, 0, ex)).batch(config.batch_size)
    key = 'pipeline_fast' if fast else 'pipeline_full_decode'
    result[key] = _rate(ds, config.batch_size, seconds)
  b = config.batch_size
  full = raw.map(lambda ex: tf.shape(decode.decode_full(ex['image'])))
  result['decode_full'] = _rate(full.batch(b), b, seconds)

  def window_only(i, ex):
    mult, rot, flip, shift = pipeline.affine_params(aug, pipeline.example_seed(0, 0, i))
    inv = pipeline.invert_affine(pipeline.image_to_crop(aug, ex['center'], ex['scale'], mult,
                                                        rot, flip, shift))
    return tf.shape(decode.decode_window(ex['image'], inv, aug.crop_size)[0])

  result['decode_window'] = _rate(raw.enumerate().map(window_only).batch(b), b, seconds)
  return result


def format_result(r: dict) -> str:
  rows = [('whole pipeline (decode + warp + batch), fast decode', 'pipeline_fast', 'samples'),
          ('whole pipeline, whole-image decode', 'pipeline_full_decode', 'samples'),
          ('decode alone, whole image', 'decode_full', 'images'),
          ("decode alone, the crop's window at the chosen ratio", 'decode_window', 'images')]
  lines = [f"host pipeline on one core: {r['examples']} examples held in memory, "
           f"{r['crop']} crops, batches of {r['batch_size']}",
           f"{'':54s} {'per wall s':>12s} {'per CPU s':>12s} {'CPU ms each':>12s}"]
  for title, key, unit in rows:
    v = r[key]
    lines.append(f"  {title:52s} {v['wall']:12.1f} {v['cpu']:12.1f} {1e3 / v['cpu']:12.2f}"
                 f"  {unit}/s/core")
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  config = cli.config_from_flags()
  if fl.batch_size:
    config.batch_size = fl.batch_size
  if fl.crop_size:
    config.data.crop_size = fl.crop_size
  if fl.images:
    examples, parts = examples_from_images(fl.images, fl.resize), 'mpii'
  else:
    examples, parts = raw_examples(config, fl.split, fl.num_examples)
  result = benchmark(config, examples, parts, fl.seconds)
  print(json.dumps(result) if fl.json else format_result(result))


def _define_flags():
  cli.define_flags()
  flags.DEFINE_integer('num_examples', 64, 'Examples held in memory and cycled.')
  flags.DEFINE_integer('batch_size', None, "Batch size (default: the config's, 16).")
  flags.DEFINE_integer('crop_size', None, "Crop size (default: the config's, 368).")
  flags.DEFINE_float('seconds', 5.0, 'Timed seconds per measurement.')
  flags.DEFINE_string('images', None, 'Glob of JPEG files to use instead of a dataset.')
  flags.DEFINE_string('resize', None, "Resize --images first, e.g. '1280x720' (JPEG q90).")
  flags.DEFINE_bool('json', False, 'Print one JSON object.')


if __name__ == '__main__':
  _define_flags()
  cli.run(main, 'posemachines.data.benchmark')
