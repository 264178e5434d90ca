"""``python -m posemachines.predict``: pose prediction on photos and videos:
``python -m posemachines.predict --model=ART_OR_WORKDIR IMAGES_OR_FOLDERS_OR_VIDEOS --out=DIR``.

There is no person detector: the person is assumed centred in the image and about 85% of its
height tall, unless ``--locations`` gives its centre and scale or its box, per file:

  echo '{"nadal.png": {"box": [250, 40, 400, 330]}, "singer.jpg": {"center": [540, 900],
         "scale": 4.2}}' > locations.json
  python -m posemachines.predict --model=workdirs/default nadal.png singer.jpg \\
      --locations=locations.json --out=predictions

Flags and the entry point; the work (output names, checks, warnings) is done in
posemachines/tools/predict.py, whose docstring says what is written.
"""
from __future__ import annotations

import os
import sys

from absl import flags
import numpy as np

from posemachines.core import errors, logs
from posemachines.evaluation import inference
from posemachines.tools import loading
from posemachines.tools import predict as predict_lib

PROGRAM = 'posemachines.predict'


def define_flags():
  flags.DEFINE_string('model', None, 'An exported artifact directory or a training workdir.',
                      required=True)
  flags.DEFINE_string('out', 'predictions', 'Output directory.')
  flags.DEFINE_string(
      'locations', None,
      'Where the person is, per input (without it the person is assumed centred, about 85% of '
      'the image height tall): a JSON object mapping a file name (or path as given) to '
      '{"center": [x, y], "scale": height/200} or {"box": [x1, y1, x2, y2]} in image pixels, '
      'e.g. {"nadal.png": {"box": [250, 40, 400, 330]}}. Every key must match an input.')
  flags.DEFINE_list('stage_parts', [], 'Parts whose belief maps of every stage are drawn.')
  flags.DEFINE_list('scales', [str(s) for s in inference.DEFAULT_SCALES], 'Scale multipliers.')
  flags.DEFINE_bool('flip', True, 'Also merge the mirrored views.')
  flags.DEFINE_float('min_confidence', 0.1,
                     'Parts below this confidence (0-1: the belief-map maximum over the '
                     "model's target peak, for every model) are drawn hollow, without limbs; "
                     'more than half the parts below it is warned of.')
  flags.DEFINE_integer('max_frames', -1, 'Frames per video (-1: all).')


def _warn(path, warnings):
  if warnings:
    print(f'{PROGRAM}: warning: {path}: ' + '; '.join(warnings), file=sys.stderr)


def main(argv):
  fl = flags.FLAGS
  inputs = predict_lib.collect_inputs(argv[1:])
  if not inputs:
    raise errors.BadFlag('no images, folders or videos to predict on: name them after the '
                         'flags (python -m posemachines.predict --model=DIR photo.jpg ...)')
  predict_lib.check_video_support(inputs)
  names = predict_lib.output_names([path for path, _ in inputs])
  locations = predict_lib.read_locations(fl.locations)
  predict_lib.check_locations(inputs, locations, fl.locations)
  model = loading.load(fl.model)
  bad = [p for p in fl.stage_parts if p not in model.skeleton.parts]
  if bad:
    raise errors.BadFlag(f'--stage_parts {bad} not in the model\'s parts {model.skeleton.parts}')
  predictor = predict_lib.Predictor(model, [float(s) for s in fl.scales], fl.flip)
  os.makedirs(fl.out, exist_ok=True)
  skipped = []
  for path, kind in inputs:
    try:
      if kind == 'image':
        rec = predict_lib.predict_image(predictor, path, fl.out, locations, fl.min_confidence,
                                        fl.stage_parts, names[path], fl.locations)
        conf = np.mean([p['confidence'] for p in rec['parts'].values()])
        print(f'{path}: mean confidence {conf:.2f} -> {names[path]}.json')
        _warn(path, rec['warnings'])
      else:
        video, warnings = predict_lib.predict_video(predictor, path, fl.out, locations,
                                                    fl.min_confidence, fl.max_frames,
                                                    names[path], fl.locations)
        print(f'{path}: {video}')
        _warn(path, warnings)
    except errors.UserError as e:  # an unreadable file: skipped, counted, the rest goes on
      skipped.append(path)
      print(f'{PROGRAM}: skipped {path}: {e}', file=sys.stderr)
  done = len(inputs) - len(skipped)
  print(f'Written to {fl.out}: {done} of {len(inputs)} inputs')
  if skipped:
    raise errors.BadFile(f'{len(skipped)} of {len(inputs)} inputs skipped (unreadable): '
                         f'{", ".join(skipped)}; the other {done} are in {fl.out}')


if __name__ == '__main__':
  define_flags()
  logs.run(main, PROGRAM)
