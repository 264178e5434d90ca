"""``python -m posemachines.evaluate``: evaluation as the benchmarks score it.

  python -m posemachines.evaluate --model=MODEL [--dataset=D --split=S --mat_dir=DIR]
  python -m posemachines.evaluate --model=MODEL --json_people=people.json \
      [--image_dir=DIR --validation_fraction=F]
  python -m posemachines.evaluate --dataset=mpii|lsp|flic --annotations=GT \
      --predictions=P1[,P2,...] [--names=A,B] [--json] [--out=DIR]

The first evaluates a model (an exported artifact or a training workdir) on a dataset split
(evaluation/runner.py), the second on your own people from a JSON list (the json_people
dataset; a model trained on json_people finds its list in its config); the third scores
prediction files in the layouts their owners distribute against a benchmark's ground truth, side
by side (evaluation/benchmark_files.py).
Flags and the entry point only.
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags

from posemachines.core import errors, logs, validate
from posemachines.data import manual, registry
from posemachines.evaluation import benchmark_files, coco_eval, metrics
from posemachines.tools import loading
from posemachines.evaluation import runner
from posemachines.tools import evaluate as evaluate_lib


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
  flags.DEFINE_string('mat_dir', None, "Also write the final stage's predictions in the dataset's "
                      'own format here: LSP/FLIC prediction_all, the MPII test-server file '
                      '(--split=test, with --annotations), else an MPII annolist .mat.')
  flags.DEFINE_string('annotations', None, "The dataset's ground-truth file as distributed: MPII "
                      '.mat (RELEASE or annolist), LSP joints.mat, FLIC examples.mat or COCO '
                      'person_keypoints_*.json (with --predictions, or with --model for --mat_dir '
                      'and COCO). Not the JSON list of json_people: that is --json_people.')
  flags.DEFINE_string('detections', None, 'COCO: person boxes in the results format (a detector\'s '
                      'output) to evaluate on, instead of the ground-truth boxes.')
  flags.DEFINE_float('min_detection_score', 0.0, 'COCO: detections below this score are dropped.')
  flags.DEFINE_string('json_people', None, 'With --model: evaluate on the people of this JSON '
                      'list (the json_people dataset; sets --dataset=json_people). Default for a '
                      "model trained on json_people: its config's data.annotations.")
  flags.DEFINE_string('image_dir', None, 'json_people: the folder its image paths are relative '
                      "to (default: as in the model's config, else the JSON list's folder).")
  flags.DEFINE_float('validation_fraction', None, 'json_people: the fraction of images held out '
                     'as its validation split where records name no split (default: as in the '
                     "model's config; 1: every image).")
  flags.DEFINE_list('predictions', [], 'Prediction files to score against --annotations: '
                    'prediction_all .mat (LSP, FLIC), MPII annolist .mat, the eval.json that '
                    'evaluate writes, or COCO keypoint results JSON.')
  flags.DEFINE_list('names', [], 'A name for each --predictions file (default: file names).')
  flags.DEFINE_bool('json', False, 'With --predictions: print JSON.')


def _score_coco_files(fl):
  rows = []
  for i, path in enumerate(fl.predictions):
    stats = coco_eval.score(fl.annotations, path)
    rows.append({'name': fl.names[i] if fl.names else os.path.basename(path), 'path': path,
                 'stats': stats})
  if fl.json:
    print(json.dumps({'dataset': 'coco', 'annotations': fl.annotations, 'files': rows}, indent=2))
    return
  for row in rows:
    print(f"{row['name']} against {fl.annotations} (OKS, COCOeval)")
    print(coco_eval.format_table(row['stats']))


def _score_files(fl):
  dataset = fl.dataset or 'mpii'
  if dataset == 'coco':
    return _score_coco_files(fl)
  if dataset not in benchmark_files.DATASETS:
    raise errors.BadFlag(f'--dataset={dataset}: prediction files are scored for '
                         f'{", ".join(benchmark_files.DATASETS)}')
  if fl.names and len(fl.names) != len(fl.predictions):
    raise errors.BadFlag(f'--names has {len(fl.names)} names for {len(fl.predictions)} '
                         '--predictions files')
  result = benchmark_files.score_files(dataset, fl.annotations, fl.predictions,
                                       names=fl.names or None)
  for entry in result['files']:
    for warning in entry.get('warnings', []):
      print(f'posemachines.evaluate: warning: {warning}', file=sys.stderr)
  if fl.out:
    benchmark_files.write_outputs(result, fl.out)
  if fl.json:
    print(json.dumps(result, indent=2))
  else:
    print(benchmark_files.markdown(result))
    if fl.out:
      print(f'Written to {fl.out}')


def _write_mat(fl, model, result, pred, truth, src, split):
  """The final stage's predictions in the dataset's own format under --mat_dir."""
  dataset = result['dataset']
  if dataset == 'lsp':
    path = os.path.join(fl.mat_dir, 'LSP_prediction.mat')
    benchmark_files.write_prediction_all(path, benchmark_files.lsp_prediction_all(
        truth['image_id'], pred[-1], model.parts))
  elif dataset == 'flic':
    if not fl.annotations:
      raise errors.BadFlag('--mat_dir for FLIC needs --annotations=examples.mat (the order of '
                           'the test examples)')
    path = os.path.join(fl.mat_dir, 'FLIC_prediction.mat')
    benchmark_files.write_prediction_all(path, benchmark_files.flic_prediction_all(
        fl.annotations, truth['image_id'], truth['center'], pred[-1], model.parts))
  elif dataset == 'mpii' and split == 'test':
    if not fl.annotations:
      raise errors.BadFlag('--mat_dir for the MPII test split needs --annotations='
                           'mpii_human_pose_v1_u12_1.mat (the order of the test people)')
    path = os.path.join(fl.mat_dir, 'pred_keypoints_mpii.mat')
    benchmark_files.write_mpii_submission(path, fl.annotations, truth['image_id'], pred[-1],
                                          model.parts, centers=truth['center'])
  else:
    evaluate_lib.write_mat(pred, truth, src, model.parts, fl.mat_dir)
    path = os.path.join(fl.mat_dir, 'predictions.mat')
  print(f'Predictions written to {path}')


def _json_people_flags(fl, config):
  """--json_people, --image_dir and --validation_fraction into ``config.data``."""
  if fl.json_people:
    if fl.dataset and fl.dataset != 'json_people':
      raise errors.BadFlag(f'--json_people names a json_people dataset, but --dataset='
                           f'{fl.dataset}: leave --dataset out, or give --dataset=json_people')
    config.data.dataset = config.data.eval_dataset = 'json_people'
    config.data.annotations = os.path.abspath(fl.json_people)
    config.data.image_dir = ''
  name = registry.eval_dataset_name(config)
  given = [f for f, v in (('--image_dir', fl.image_dir),
                          ('--validation_fraction', fl.validation_fraction)) if v is not None]
  if name != 'json_people':
    if given:
      verb = 'applies' if len(given) == 1 else 'apply'
      raise errors.BadFlag(f'{" and ".join(given)} {verb} to json_people, but the evaluation '
                           f'dataset is {name!r}: give --json_people=FILE')
    return
  if not fl.json_people and fl.annotations and fl.annotations.lower().endswith('.json'):
    raise errors.BadFlag(f'--annotations={fl.annotations}: the JSON list of a json_people '
                         f'dataset is given as --json_people={fl.annotations} (--annotations '
                         "names a benchmark's ground-truth .mat)")
  if fl.image_dir is not None:
    config.data.image_dir = os.path.abspath(fl.image_dir)
  if fl.validation_fraction is not None:
    config.data.validation_fraction = fl.validation_fraction


def _check_split(config, split):
  builder = registry.get_builder(config)
  if split in builder.info.splits:
    return
  have = ', '.join(sorted(builder.info.splits))
  if registry.eval_dataset_name(config) == 'json_people':
    raise errors.BadFlag(
        f'json_people {config.data.annotations} has no split {split!r} (it has {have}): give '
        '--split=train, or --validation_fraction (1 to hold out every image), or mark '
        f'records\' split ("split": "{split}")')
  raise errors.BadFlag(f'{builder.info.name} has no split {split!r}; it has {have}: give --split')


def _check_flags(fl):
  """errors.BadFlag, one line per bad flag, before the model is loaded."""
  bad = []
  if fl.batch_size < 1:
    bad.append(f'--batch_size={fl.batch_size}: must be >= 1')
  if fl.num_examples == 0 or fl.num_examples < -1:
    bad.append(f'--num_examples={fl.num_examples}: must be >= 1 (or -1: the whole split)')
  try:
    if not all(float(s) > 0 for s in fl.scales):
      bad.append(f'--scales={",".join(fl.scales)}: every scale must be > 0')
  except ValueError:
    bad.append(f'--scales={",".join(fl.scales)}: must be numbers')
  if fl.grid_stride is not None and not fl.grid_stride > 0:
    bad.append(f'--grid_stride={fl.grid_stride}: must be > 0')
  if fl.dataset and fl.dataset not in validate.DATASETS:
    bad.append(f'--dataset={fl.dataset}: must be one of {", ".join(validate.DATASETS)}')
  if len(bad) == 1:
    raise errors.BadFlag(bad[0])
  if bad:
    raise errors.BadFlag(f'{len(bad)} flags are bad:\n  ' + '\n  '.join(bad))


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  if fl.predictions:
    if not fl.annotations:
      raise errors.BadFlag('--predictions needs --annotations=GROUND_TRUTH to score against')
    if fl.model:
      raise errors.BadFlag('give --model (evaluate a model) or --predictions (score files), '
                           'not both')
    return _score_files(fl)
  if not fl.model:
    if fl.json_people:
      raise errors.BadFlag('--json_people evaluates a model: give --model=ARTIFACT_OR_WORKDIR')
    raise errors.BadFlag('Give --model=ARTIFACT_OR_WORKDIR, or --annotations and --predictions')
  _check_flags(fl)
  import ml_collections
  model = loading.load(fl.model)
  config = ml_collections.ConfigDict(model.config)
  with config.unlocked():
    if fl.dataset:
      config.data.dataset = fl.dataset
      config.data.eval_dataset = fl.dataset
    if fl.manual_dir:
      config.data.manual_dir = fl.manual_dir
    if fl.data_dir:
      config.data.data_dir = fl.data_dir
    _json_people_flags(fl, config)
  split = fl.split or config.data.eval_split
  scales = [float(s) for s in fl.scales]
  if config.data.dataset == 'coco':
    return _evaluate_coco(fl, model, config, split, scales)
  with manual.manual_dir_flag('--manual_dir'):  # a missing dataset names this command's flag
    _check_split(config, split)
    result, pred, truth, src = runner.run(model, config, split, scales, fl.flip, fl.table,
                                          fl.num_examples, fl.batch_size, fl.grid_stride)
  out = fl.out or os.path.join(fl.model, f'eval_{result["dataset"]}_{split}')
  evaluate_lib.write_outputs(result, out)
  if fl.mat_dir:
    os.makedirs(fl.mat_dir, exist_ok=True)
    _write_mat(fl, model, result, pred, truth, src, split)
  if result['stages']:
    print(metrics.markdown(result['stages'], f'{result["dataset"]} {split}, '
                                             f'{result["num_people"]} people'))
  else:
    print(f'{result["dataset"]} {split}: no labelled parts, so no accuracy (predictions only)')
  print(f'{result["num_people"]} people in {result["seconds"]:.1f} s; written to {out}')


def _evaluate_coco(fl, model, config, split, scales):
  """COCO keypoint AP through COCOeval, on ground-truth boxes or on --detections."""
  if not fl.annotations:
    raise errors.BadFlag('--dataset=coco needs --annotations=person_keypoints_SPLIT2017.json')
  out = fl.out or os.path.join(fl.model, f'eval_coco_{split}')
  os.makedirs(out, exist_ok=True)
  result = coco_eval.evaluate(model, config, fl.annotations, detections=fl.detections, split=split,
                              scales=scales, flip=fl.flip, batch_size=fl.batch_size,
                              out=os.path.join(out, 'keypoints_results.json'),
                              min_detection_score=fl.min_detection_score,
                              grid_stride=fl.grid_stride)
  result = {k: v for k, v in result.items() if k != 'results'}
  with open(os.path.join(out, 'eval.json'), 'w') as f:
    json.dump({'model': model.source, 'dataset': 'coco', 'split': split, **result}, f, indent=2)
  print(f"COCO {split}, {result['num_people']} people on {result['boxes']} boxes")
  print(coco_eval.format_table(result['stats']))
  print(f'Written to {out}')


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'posemachines.evaluate')
