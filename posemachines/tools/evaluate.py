"""What ``python -m posemachines.evaluate`` writes: eval.json, eval.md and curves.png (PCK curves
per stage) of an evaluation (evaluation/runner.py), and the predictions (and the split's ground
truth) as MPII .mat files.
"""
from __future__ import annotations

import json
import os

from posemachines.core import drawing
from posemachines.data import mpii_mat
from posemachines.evaluation import metrics, mpii_files


def write_outputs(result, out: str):
  """eval.json, eval.md and curves.png under ``out``."""
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'eval.json'), 'w') as f:
    json.dump(result, f, indent=2)
  if not result['stages']:
    return
  title = f'{result["dataset"]} {result["split"]}, {result["num_people"]} people'
  with open(os.path.join(out, 'eval.md'), 'w') as f:
    f.write(metrics.markdown(result['stages'], title))
  drawing.pck_curves(result['stages'], os.path.join(out, 'curves.png'), title)


def write_mat(pred, truth, src: str, parts: str, mat_dir: str):
  """predictions.mat (final stage) and, where the dataset is in MPII order, annotations.mat."""
  os.makedirs(mat_dir, exist_ok=True)
  ids = truth['image_id']
  mpii_mat.write_release(os.path.join(mat_dir, 'predictions.mat'),
                         mpii_files.prediction_images(ids, pred[-1], parts, truth['center'],
                                                        truth['scale']), top='annolist')
  if src == 'mpii':
    mpii_mat.write_release(os.path.join(mat_dir, 'annotations.mat'),
                           mpii_files.ground_truth_images(
                               ids, truth['native'], truth['visible'], truth['head_box'],
                               truth['center'], truth['scale']))


# --------------------------------------------------------------------------------- CLI --
