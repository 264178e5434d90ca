"""``python -m posemachines.predict``: pose prediction on photos and videos:
``python -m posemachines.predict --model=ART_OR_WORKDIR IMAGES_OR_FOLDERS_OR_VIDEOS --out=DIR``.

Flags and the entry point; the work is done in posemachines/tools/predict.py.
"""
from __future__ import annotations

import os

from absl import app, flags
import numpy as np

from posemachines.core import errors
from posemachines.evaluation import inference
from posemachines.tools import loading
from posemachines.tools import predict as predict_lib


def define_flags():
  flags.DEFINE_string('model', None, 'An exported artifact directory or a training workdir.',
                      required=True)
  flags.DEFINE_string('out', 'predictions', 'Output directory.')
  flags.DEFINE_string('locations', None, 'JSON: file name -> {center, scale} or {box}.')
  flags.DEFINE_list('stage_parts', [], 'Parts whose belief maps of every stage are drawn.')
  flags.DEFINE_list('scales', [str(s) for s in inference.DEFAULT_SCALES], 'Scale multipliers.')
  flags.DEFINE_bool('flip', True, 'Also merge the mirrored views.')
  flags.DEFINE_float('min_confidence', 0.1, 'Parts below this are drawn hollow, without limbs.')
  flags.DEFINE_integer('max_frames', -1, 'Frames per video (-1: all).')


def main(argv):
  fl = flags.FLAGS
  inputs = predict_lib.collect_inputs(argv[1:])
  if not inputs:
    raise app.UsageError('Give images, folders or videos to predict on.')
  model = loading.load(fl.model)
  bad = [p for p in fl.stage_parts if p not in model.skeleton.parts]
  if bad:
    raise app.UsageError(f'--stage_parts {bad} not in the model\'s parts {model.skeleton.parts}')
  locations = predict_lib.read_locations(fl.locations)
  predictor = predict_lib.Predictor(model, [float(s) for s in fl.scales], fl.flip)
  os.makedirs(fl.out, exist_ok=True)
  for path, kind in inputs:
    if kind == 'image':
      rec = predict_lib.predict_image(predictor, path, fl.out, locations, fl.min_confidence,
                          fl.stage_parts)
      conf = np.mean([p['confidence'] for p in rec['parts'].values()])
      print(f'{path}: mean confidence {conf:.2f}')
    else:
      video = predict_lib.predict_video(predictor, path, fl.out, locations, fl.min_confidence,
                            fl.max_frames)
      print(f'{path}: {video}')
  print(f'Written to {fl.out}')


if __name__ == '__main__':
  define_flags()
  app.run(errors.exit_on_user_error(main, 'posemachines.predict'))
