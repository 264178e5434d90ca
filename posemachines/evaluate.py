"""``python -m posemachines.evaluate``: evaluation as the benchmarks score it: ``python -m posemachines.evaluate --model=MODEL``
(an exported artifact or a training workdir).

Flags and the entry point; the work is done in posemachines/tools/evaluate.py.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

from posemachines.core import errors
from posemachines.evaluation import metrics, mpii_files
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
  flags.DEFINE_string('mat_dir', None, 'Also write predictions.mat (and annotations.mat) here.')
  flags.DEFINE_string('annotations', None, 'Ground-truth MPII .mat file to score against.')
  flags.DEFINE_string('predictions', None, 'MPII .mat predictions file to score.')
  flags.DEFINE_bool('json', False, 'With --annotations/--predictions: print JSON.')


def _score_files(fl):
  result = mpii_files.score(fl.annotations, fl.predictions)
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
  split = fl.split or config.data.eval_split
  result, pred, truth, src = runner.run(model, config, split, [float(s) for s in fl.scales], fl.flip,
                                 fl.table, fl.num_examples, fl.batch_size, fl.grid_stride)
  out = fl.out or os.path.join(fl.model, f'eval_{result["dataset"]}_{split}')
  evaluate_lib.write_outputs(result, out)
  if fl.mat_dir:
    evaluate_lib.write_mat(pred, truth, src, model.parts, fl.mat_dir)
  if result['stages']:
    print(metrics.markdown(result['stages'], f'{result["dataset"]} {split}, '
                                             f'{result["num_people"]} people'))
  print(f'{result["num_people"]} people in {result["seconds"]:.1f} s; written to {out}')


if __name__ == '__main__':
  define_flags()
  app.run(errors.exit_on_user_error(main, 'posemachines.evaluate'))
