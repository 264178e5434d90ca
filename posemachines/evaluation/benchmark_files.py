"""The benchmarks' own files: LSP's ``joints.mat``, FLIC's ``examples.mat``, the CPM release's
``prediction_all`` files, MPII annotation and prediction files, and the JSON ``evaluate`` writes.

Scoring follows the release's benchmark rules (REFERENCE.md):

  lsp   ground truth: ``joints.mat`` of lsp_dataset.zip, 3 x 14 x 2000 (x, y, flag; 14 x 3 x 2000
        also read); test = images 1001-2000. Every joint of every test image counts (the flag is
        ignored). Normaliser: the ground truth's distance from the left shoulder to the right hip
        of that image. Table: PCK@0.2 per part group and the Mean over all 14 x 1000 joints.
  flic  ground truth: ``examples.mat`` of FLIC.zip; test = the examples with ``istest``, in file
        order. Of ``coords`` (2 x 29) the 11 labelled (non-NaN) columns are kept and the two eyes
        (the 9th and 10th of them) dropped: l-shoulder, l-elbow, l-wrist, r-shoulder, r-elbow,
        r-wrist, l-hip, r-hip, nose. Where the labelled right shoulder's x exceeds the left
        shoulder's, left and right are swapped (rows 1-8 become 4 5 6 1 2 3 8 7) to make the labels
        person-centric. Normaliser: that person-centric ground truth's distance from the left
        shoulder to the right hip. Table: PCK@0.2 of elbows and wrists, curves over 0-0.2.
  mpii  as posemachines/evaluation/mpii_files.py scores official annotation and prediction files.
``normaliser='prediction'`` scores LSP and FLIC by the predicted torso instead, as the release's
MATLAB code scores FLIC (REFERENCE.md: 97.54 / 94.98 rather than the paper's 97.59 / 95.03).

Predictions files: the release's layout (a variable ``prediction_all`` of shape P x 2 x N, the
dataset's native part order, one column per test image), MPII ``annolist`` files, and the JSON
that ``evaluate`` writes (eval.json of a model, the result of scoring files, or this module's
result): these are tables already computed, shown as they are. Every other file is refused with
``BadFile`` (``MissingData`` where the file is absent): one line naming the file, what it holds
and the layout expected.

Writing: ``write_prediction_all`` (LSP and FLIC, from per-person predictions) and
``write_mpii_submission`` (the file the MPII evaluation server takes: every test image of the
annotation file in its order, each person at its 1-based ``annorect`` position).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import numpy as np
import scipy.io

from posemachines.core import skeleton
from posemachines.core.errors import BadFile, MissingData
from posemachines.data import mpii_mat
from posemachines.evaluation import metrics, mpii_files


DATASETS = ('mpii', 'lsp', 'flic')
LSP_NUM_IMAGES = 2000
LSP_TEST = range(1001, 2001)          # 1-based image numbers of LSP's test images
FLIC_LABELLED = 11                    # labelled coords columns per FLIC example
FLIC_EYES = (8, 9)                    # 0-based, among the labelled columns
FLIC_SWAP = (3, 4, 5, 0, 1, 2, 7, 6)  # rows 1-8 become 4 5 6 1 2 3 8 7 (0-based here)

LSP_JOINTS_LAYOUT = ('a variable joints of shape 3 x 14 x 2000 (x, y, flag of the 14 LSP joints '
                     'of images 1-2000, as lsp_dataset.zip has it; 14 x 3 x 2000 also read)')
FLIC_EXAMPLES_LAYOUT = ('a struct array examples with coords (2 x 29, 11 columns labelled), '
                        'filepath and istest per example, as FLIC.zip has it')


def prediction_all_layout(dataset: str, count: int | str = 'N') -> str:
  parts = _parts(dataset)
  what = ('LSP test images 1001-2000' if dataset == 'lsp' else
          'FLIC test examples (istest) in file order')
  return (f'a variable prediction_all of shape {len(parts)} x 2 x {count} (x, y of the '
          f'{len(parts)} {dataset.upper()} parts in its order {", ".join(parts)}; one column per '
          f'{what}), or the JSON evaluate writes')


def _parts(dataset: str) -> tuple[str, ...]:
  if dataset == 'lsp':
    return skeleton.LSP.parts
  if dataset == 'flic':
    return skeleton.FLIC.parts
  if dataset == 'mpii':
    return skeleton.MPII.parts
  raise ValueError(f'Unknown dataset {dataset!r}; known: {", ".join(DATASETS)}')


# ------------------------------------------------------------------------------ reading --

_MATLAB_CLASS = {'float64': 'double', 'float32': 'single', 'bool': 'logical', 'str': 'char'}


def _describe(mat: dict) -> str:
  """The variables of a loaded .mat file, with shapes: 'joints (3x14x2000 double), ...'."""
  out = []
  for k in sorted(k for k in mat if not k.startswith('__')):
    v = mat[k]
    if isinstance(v, np.ndarray):
      kind = ('struct' if v.dtype.names else 'cell' if v.dtype == object else
              _MATLAB_CLASS.get(v.dtype.name, v.dtype.name))
      out.append(f'{k} ({"x".join(map(str, v.shape))} {kind})')
    else:
      out.append(f'{k} ({type(v).__name__})')
  return ', '.join(out) or 'no variables'


def load_mat(path: str, what: str, layout: str, **kw) -> dict:
  """scipy.io.loadmat, with BadFile naming ``path``, what it should be and ``layout``."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise MissingData(f'{path}: no such file (expected {what}: {layout})')
  try:
    return scipy.io.loadmat(path, **kw)
  except NotImplementedError:
    raise BadFile(f'{path} is a MATLAB v7.3 (HDF5) file; expected {what} saved as MATLAB v5/v7 '
                  f'(save(..., "-v7")): {layout}') from None
  except Exception as e:  # scipy raises ValueError, TypeError, OSError on other files
    raise BadFile(f'{path} is not a readable MATLAB .mat file ({type(e).__name__}: '
                  f'{str(e)[:80]}); expected {what}: {layout}') from None


@dataclasses.dataclass
class Truth:
  """A benchmark's test people: joints [N, P, 2] in ``parts`` order and per-person normalisers."""
  dataset: str
  path: str
  parts: tuple[str, ...]
  joints: np.ndarray
  norm: np.ndarray
  ids: list[str]                      # 'im1001' (LSP), 'example 17 (name.jpg)' (FLIC)
  swapped: np.ndarray | None = None   # FLIC: rows swapped to person-centric

  @property
  def num_people(self) -> int:
    return len(self.joints)


def read_lsp_joints(path: str) -> np.ndarray:
  """LSP's joints.mat -> float64 [2000, 14, 3] (x, y, flag), from either official layout."""
  mat = load_mat(path, "LSP's joints.mat", LSP_JOINTS_LAYOUT)
  if 'joints' not in mat:
    raise BadFile(f'{path} holds {_describe(mat)}; expected {LSP_JOINTS_LAYOUT}')
  joints = mat['joints']
  shape = 'x'.join(map(str, np.shape(joints)))
  if not (isinstance(joints, np.ndarray) and joints.dtype.kind in 'fiu' and joints.ndim == 3):
    raise BadFile(f'{path} holds joints of shape {shape} ({getattr(joints, "dtype", "?")}); '
                  f'expected {LSP_JOINTS_LAYOUT}')
  p = skeleton.LSP.num_parts
  if joints.shape[:2] == (3, p):
    joints = joints.transpose(2, 1, 0)
  elif joints.shape[:2] == (p, 3):
    joints = joints.transpose(2, 0, 1)
  else:
    raise BadFile(f'{path} holds joints of shape {shape}; expected {LSP_JOINTS_LAYOUT}')
  if len(joints) != LSP_NUM_IMAGES:
    hint = (' (LSP-extended\'s joints.mat, which has no test split)' if len(joints) == 10000
            else '')
    raise BadFile(f'{path} holds joints of {len(joints)} images{hint}; expected '
                  f'{LSP_JOINTS_LAYOUT}')
  return joints.astype(np.float64)


def lsp_truth(path: str) -> Truth:
  """LSP's test people (images 1001-2000) with their torso normalisers."""
  joints = read_lsp_joints(path)[LSP_TEST.start - 1:LSP_TEST.stop - 1, :, :2]
  bad = ~np.isfinite(joints).all((1, 2))
  if bad.any():
    raise BadFile(f'{path}: test image {LSP_TEST.start + int(np.argmax(bad))} has a coordinate '
                  f'that is not finite; expected {LSP_JOINTS_LAYOUT}')
  ls, rh = skeleton.LSP.index('l_shoulder'), skeleton.LSP.index('r_hip')
  norm = np.linalg.norm(joints[:, ls] - joints[:, rh], axis=-1)
  if not (norm > 0).all():
    i = int(np.argmin(norm > 0))
    raise BadFile(f'{path}: test image {LSP_TEST.start + i} has its left shoulder on its right '
                  'hip, so no torso size to normalise by')
  return Truth('lsp', os.fspath(path), skeleton.LSP.parts, joints, norm,
               [f'im{n:04d}' for n in LSP_TEST])


def _flic_examples(path: str) -> list:
  mat = load_mat(path, "FLIC's examples.mat", FLIC_EXAMPLES_LAYOUT, squeeze_me=True,
                 struct_as_record=False)
  examples = mat.get('examples')
  if examples is None:
    raise BadFile(f'{path} holds {_describe(mat)}; expected {FLIC_EXAMPLES_LAYOUT}')
  examples = list(np.atleast_1d(examples).ravel())
  if not examples or not all(hasattr(ex, '_fieldnames') for ex in examples):
    raise BadFile(f'{path}: examples is not a struct array; expected {FLIC_EXAMPLES_LAYOUT}')
  missing = [f for f in ('coords', 'istest') if f not in examples[0]._fieldnames]
  if missing:
    raise BadFile(f'{path}: examples has fields {", ".join(examples[0]._fieldnames)} (no '
                  f'{", ".join(missing)}); expected {FLIC_EXAMPLES_LAYOUT}')
  return examples


def _flag(value) -> bool:
  arr = np.asarray(value, dtype=np.float64).ravel()
  return bool(arr.size == 1 and arr[0] == 1)


def flic_person(coords, where: str) -> tuple[np.ndarray, bool]:
  """One example's coords (2 x 29) -> person-centric joints [9, 2] and whether rows were swapped."""
  coords = np.asarray(coords, np.float64)
  if coords.shape != (2, 29):
    raise BadFile(f'{where} has coords of shape {"x".join(map(str, coords.shape))}; expected '
                  f'{FLIC_EXAMPLES_LAYOUT}')
  labelled = np.isfinite(coords).all(0)
  if labelled.sum() != FLIC_LABELLED or (np.isfinite(coords).any(0) & ~labelled).any():
    raise BadFile(f'{where} has {int(labelled.sum())} labelled coords columns (x and y); the '
                  f'release\'s rule needs {FLIC_LABELLED}: expected {FLIC_EXAMPLES_LAYOUT}')
  xy = np.delete(coords[:, labelled].T, FLIC_EYES, axis=0)            # [9, 2]
  swapped = bool(xy[3, 0] > xy[0, 0])   # right shoulder's x exceeds the left shoulder's
  if swapped:
    xy[:8] = xy[list(FLIC_SWAP)]
  return xy, swapped


def flic_truth(path: str) -> Truth:
  """FLIC's test people (``istest``, file order), person-centric, with torso normalisers."""
  examples = _flic_examples(path)
  joints, swapped, ids = [], [], []
  for i, ex in enumerate(examples):
    if not _flag(getattr(ex, 'istest', 0)):
      continue
    name = getattr(ex, 'filepath', '')
    where = f'{path}: example {i + 1}' + (f' ({name})' if isinstance(name, str) and name else '')
    xy, sw = flic_person(ex.coords, where)
    joints.append(xy)
    swapped.append(sw)
    ids.append(f'example {i + 1}' + (f' ({name})' if isinstance(name, str) and name else ''))
  if not joints:
    raise BadFile(f'{path}: no example has istest set; expected {FLIC_EXAMPLES_LAYOUT}')
  joints = np.stack(joints)
  ls, rh = skeleton.FLIC.index('l_shoulder'), skeleton.FLIC.index('r_hip')
  norm = np.linalg.norm(joints[:, ls] - joints[:, rh], axis=-1)
  if not (norm > 0).all():
    raise BadFile(f'{path}: {ids[int(np.argmin(norm > 0))]} has its left shoulder on its right '
                  'hip, so no torso size to normalise by')
  return Truth('flic', os.fspath(path), skeleton.FLIC.parts, joints, norm, ids,
               np.asarray(swapped))


def truth(dataset: str, path: str) -> Truth:
  if dataset == 'lsp':
    return lsp_truth(path)
  if dataset == 'flic':
    return flic_truth(path)
  raise ValueError('truth() reads lsp and flic; MPII files are scored by mpii_files.score')


def read_prediction_all(path: str, gt: Truth) -> np.ndarray:
  """A release-layout predictions file -> [N, P, 2] in the dataset's native part order."""
  layout = prediction_all_layout(gt.dataset, gt.num_people)
  mat = load_mat(path, f'{gt.dataset.upper()} predictions', layout)
  pred = mat.get('prediction_all')
  if pred is None:
    other = (' (an MPII annotation layout)' if 'RELEASE' in mat or 'annolist' in mat else '')
    raise BadFile(f'{path} holds {_describe(mat)}{other}; expected {layout}')
  if not (isinstance(pred, np.ndarray) and pred.dtype.kind in 'fiu'):
    raise BadFile(f'{path}: prediction_all is {_describe({"prediction_all": pred})}; expected '
                  f'{layout}')
  if pred.ndim == 2:   # MATLAB drops a trailing singleton: one test image
    pred = pred[..., None]
  shape = 'x'.join(map(str, pred.shape))
  p = len(gt.parts)
  if pred.ndim != 3 or pred.shape[:2] != (p, 2):
    raise BadFile(f'{path} holds prediction_all of shape {shape}; expected {layout}')
  if pred.shape[2] != gt.num_people:
    raise BadFile(f'{path} holds prediction_all of shape {shape}: {pred.shape[2]} columns for '
                  f'the {gt.num_people} test people of {gt.path}; expected {layout}')
  return pred.transpose(2, 0, 1).astype(np.float64)


# ------------------------------------------------------------------------------ scoring --

NORMALISERS = ('truth', 'prediction')


def score(gt: Truth, pred: np.ndarray, normaliser: str = 'truth') -> dict:
  """The benchmark table of predictions [N, P, 2] (native order; NaN = not predicted).

  ``normaliser``: 'truth' (the ground truth's torso, the papers' numbers) or 'prediction' (the
  predicted left shoulder to right hip, as the release's MATLAB code scores FLIC).
  """
  pred = np.asarray(pred, np.float64)
  if pred.shape != gt.joints.shape:
    raise ValueError(f'predictions of shape {pred.shape} for ground truth {gt.joints.shape}')
  if normaliser not in NORMALISERS:
    raise ValueError(f'normaliser must be one of {NORMALISERS}, got {normaliser!r}')
  norm = gt.norm
  if normaliser == 'prediction':
    ls, rh = gt.parts.index('l_shoulder'), gt.parts.index('r_hip')
    norm = np.linalg.norm(pred[:, ls] - pred[:, rh], axis=-1)
    norm = np.where(np.isfinite(norm), norm, 0.0)
  dist = np.linalg.norm(pred - gt.joints, axis=-1)
  dist = np.where(np.isfinite(dist), dist, np.inf)
  annotated = np.ones(dist.shape, bool)       # every part of every test person counts
  if normaliser == 'prediction':              # a zero predicted torso: every part a miss
    dist = np.where((norm > 0)[:, None], dist, np.inf)
    norm = np.where(norm > 0, norm, 1.0)
  return metrics.table(gt.dataset, dist, annotated, norm, gt.parts)


def _json_tables(path: str, dataset: str) -> list[tuple[str, dict]]:
  """(name, table) of every method a JSON result file holds."""
  expected = (f'the JSON evaluate writes (eval.json of a {dataset.upper()} evaluation, or the '
              'result of scoring files) or a .mat predictions file')
  try:
    with open(path) as f:
      doc = json.load(f)
  except FileNotFoundError:
    raise MissingData(f'{path}: no such file (expected {expected})') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BadFile(f'{path} is not valid JSON ({str(e)[:60]}); expected {expected}') from None
  base = os.path.splitext(os.path.basename(path))[0]
  found = []
  if isinstance(doc, dict) and isinstance(doc.get('files'), list):          # score_files
    found = [(f.get('name') or base, f.get('table')) for f in doc['files'] if isinstance(f, dict)]
    kind = doc.get('dataset')
  elif isinstance(doc, dict) and isinstance(doc.get('stages'), list) and doc['stages']:  # eval.json
    found = [(base, doc['stages'][-1])]
    kind = doc.get('table')
  elif isinstance(doc, dict) and isinstance(doc.get('table'), dict):         # scored MPII files
    found = [(base, doc['table'])]
    kind = 'mpii' if doc['table'].get('metric') == 'PCKh@0.5' else None
  else:
    keys = sorted(doc)[:6] if isinstance(doc, dict) else type(doc).__name__
    raise BadFile(f'{path} holds JSON with keys {keys} and no benchmark table; expected '
                  f'{expected}')
  for name, tab in found:
    if not (isinstance(tab, dict) and {'metric', 'columns', 'row'} <= set(tab)):
      raise BadFile(f'{path}: the table of {name!r} lacks metric, columns or row; expected '
                    f'{expected}')
    ok = {'mpii': tab['metric'] == 'PCKh@0.5',
          'lsp': tab['metric'] == 'PCK@0.2' and 'Mean' in tab['columns'],
          'flic': tab['metric'] == 'PCK@0.2' and set(tab['columns']) <= {'Elbow', 'Wrist'}}
    if (kind and kind != dataset) or not ok[dataset]:
      raise BadFile(f'{path} holds a {kind or "different"} table ({tab["metric"]} of '
                    f'{", ".join(tab["columns"])}), not {dataset.upper()}\'s; expected {expected}')
  return found


def _mpii_table(annotations: str, path: str) -> dict:
  layout = ('an MPII annotation or predictions file: RELEASE or a top-level annolist, '
            'annorect(j).annopoints.point(k) with x, y, id')
  try:
    mat = scipy.io.whosmat(path)
  except FileNotFoundError:
    raise MissingData(f'{path}: no such file (expected {layout})') from None
  except Exception:  # not a .mat: let load() say so below
    mat = []
  names = [m[0] for m in mat]
  if 'prediction_all' in names:
    raise BadFile(f'{path} holds prediction_all (the LSP/FLIC layout); expected {layout}')
  try:
    res = mpii_files.score(annotations, path)
  except mpii_files.Unmatched:   # both files readable; the message says what does not match
    raise
  except FileNotFoundError as e:
    raise MissingData(f'{e}; expected {layout}') from None
  except ValueError as e:
    raise BadFile(f'{e}; expected {layout}') from None
  return res


def score_files(dataset: str, annotations: str, predictions, names=None,
                normaliser: str = 'truth') -> dict:
  """Every predictions file against the benchmark's ground truth ``annotations``.

  Returns {'dataset', 'annotations', 'num_people', 'normaliser', 'files': [{'name', 'path',
  'format', 'table'}]} in the order given (MPII files also with 'num_people', 'missed' and
  'left_out' by reason, and 'warnings': see mpii_files.score); ``names`` (default: the file names) label the methods; ``normaliser`` as for
  ``score`` (LSP and FLIC prediction_all files only).
  """
  _parts(dataset)
  predictions = [predictions] if isinstance(predictions, str) else list(predictions)
  if names is not None and len(names) != len(predictions):
    raise ValueError(f'{len(names)} names for {len(predictions)} predictions files')
  gt = truth(dataset, annotations) if dataset != 'mpii' else None
  files, num_people = [], gt.num_people if gt else None
  for i, path in enumerate(predictions):
    base = os.path.splitext(os.path.basename(path))[0]
    if path.lower().endswith('.json'):
      tables = _json_tables(path, dataset)
      for j, (name, tab) in enumerate(tables):
        label = names[i] if names is not None and len(tables) == 1 else name
        files.append({'name': label, 'path': path, 'format': 'json', 'table': tab})
      continue
    entry = {'name': names[i] if names is not None else base, 'path': path}
    if dataset == 'mpii':
      res = _mpii_table(annotations, path)
      num_people = res['num_people']
      entry.update(format='annolist', table=res['table'], num_people=res['num_people'],
                   missed=res['missed'], left_out=res['left_out'], warnings=res['warnings'])
    else:
      entry.update(format='prediction_all',
                   table=score(gt, read_prediction_all(path, gt), normaliser))
    files.append(entry)
  result = {'dataset': dataset, 'annotations': os.fspath(annotations), 'num_people': num_people,
            'normaliser': normaliser if dataset != 'mpii' else 'head size', 'files': files}
  if gt is not None and gt.swapped is not None:
    result['swapped_to_person_centric'] = int(gt.swapped.sum())
  return result


def _pct(v) -> str:
  return '-' if v is None or not np.isfinite(v) else f'{100 * v:.2f}'


def markdown(result: dict) -> str:
  """Every file's benchmark table side by side (a row per file, values in % with two decimals as
  the papers give them), then the per-part values (a column per file)."""
  files = result['files']
  title = (f'{result["dataset"].upper()} against {result["annotations"]}'
           + (f', {result["num_people"]} test people' if result.get('num_people') else ''))
  cols = files[0]['table']['columns']
  metric = files[0]['table']['metric']
  lines = [f'**{title}** ({metric}, %)', '', '| predictions | ' + ' | '.join(cols) + ' |',
           '|---|' + '---|' * len(cols)]
  for f in files:
    lines.append(f'| {f["name"]} | ' + ' | '.join(_pct(f['table']['row'].get(c)) for c in cols)
                 + ' |')
  for f in files:
    for key, what in (('missed', 'counted as wrong'), ('left_out', 'left out')):
      for reason, count in f.get(key, {}).items():
        of = f' of {f["num_people"]}' if key == 'missed' else ''
        lines.append(f'{f["name"]}: {what}: {count}{of} people ({reason})')
  parts = list(files[0]['table'].get('per_part', {}))
  with_parts = [f for f in files if f['table'].get('per_part')]
  if parts and with_parts:
    lines += ['', f'per part ({metric}, %)', '',
              '| part | ' + ' | '.join(f['name'] for f in with_parts) + ' |',
              '|---|' + '---|' * len(with_parts)]
    for p in parts:
      lines.append(f'| {p} | ' + ' | '.join(_pct(f['table']['per_part'].get(p))
                                             for f in with_parts) + ' |')
  return '\n'.join(lines) + '\n'


def plot_curves(result: dict, path: str, title: str | None = None) -> None:
  """One figure: a panel per part group (and the Mean), one PCK curve per file (method)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  files = [f for f in result['files'] if f['table'].get('curves')]
  if not files:
    raise ValueError('no table with curves to draw')
  curves = files[0]['table']['curves']
  names = [k for k in curves if k != 'thresholds']
  names = (['Mean'] if 'Mean' in names else []) + [k for k in names if k != 'Mean']
  cols = min(len(names), 4)
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False)
  colours = plt.get_cmap('tab10')(np.arange(len(files)) % 10)
  metric = files[0]['table']['metric'].split('@')[0]
  for ax, name in zip(axes.flat, names):
    for f, colour in zip(files, colours):
      c = f['table']['curves']
      if name not in c:
        continue
      at = f['table']['row'].get(name, math.nan)
      label = f'{f["name"]} ({100 * at:.2f})' if np.isfinite(at) else f['name']
      ax.plot(c['thresholds'], 100 * np.asarray(c[name], np.float64), color=colour, lw=1.6,
              label=label)
    ax.set_title(name, fontsize=10)
    ax.set_xlim(curves['thresholds'][0], curves['thresholds'][-1])
    ax.set_ylim(0, 102)  # a curve at 100% stays visible above the frame
    ax.grid(alpha=0.3)
    ax.set_xlabel(f'normalised distance ({metric})', fontsize=8)
    ax.set_ylabel('detection rate, %', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc='lower right')
  for ax in list(axes.flat)[len(names):]:
    ax.axis('off')
  fig.suptitle(title or f'{result["dataset"].upper()}: {files[0]["table"]["metric"]}',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_outputs(result: dict, out: str) -> dict:
  """scores.json, scores.md and curves.png under ``out``; returns their paths."""
  os.makedirs(out, exist_ok=True)
  paths = {k: os.path.join(out, n) for k, n in
           (('json', 'scores.json'), ('markdown', 'scores.md'), ('curves', 'curves.png'))}
  with open(paths['json'], 'w') as f:
    json.dump(result, f, indent=2)
  with open(paths['markdown'], 'w') as f:
    f.write(markdown(result))
  plot_curves(result, paths['curves'])
  return paths


# ------------------------------------------------------------------------------ writing --

def write_prediction_all(path: str, prediction_all) -> None:
  """A release-layout file: ``prediction_all`` P x 2 x N (MATLAB v5)."""
  arr = np.asarray(prediction_all, np.float64)
  if arr.ndim != 3 or arr.shape[1] != 2:
    raise ValueError(f'prediction_all must be P x 2 x N, got shape {arr.shape}')
  scipy.io.savemat(os.fspath(path), {'prediction_all': arr})


def _native(keypoints, parts: str, dataset: str) -> np.ndarray:
  """[N, P_model, >=2] in ``parts`` order -> [N, P_dataset, 2] (NaN where the model lacks one)."""
  kp = np.asarray(keypoints, np.float64)[..., :2]
  idx = skeleton.conversion(parts, dataset)
  out = np.take(kp, np.maximum(idx, 0), axis=-2)
  out[..., idx < 0, :] = np.nan
  return out


def lsp_prediction_all(image_ids, keypoints, parts: str) -> np.ndarray:
  """LSP's 14 x 2 x 1000 array from per-person predictions of test images (ids 'im1234.jpg',
  any order). Images without a prediction are NaN (scored as misses)."""
  kp = _native(keypoints, parts, 'lsp')
  out = np.full((len(LSP_TEST), skeleton.LSP.num_parts, 2), np.nan)
  seen = set()
  for name, k in zip(image_ids, kp):
    name = name.decode() if isinstance(name, bytes) else str(name)
    m = re.fullmatch(r'(?:.*/)?im(\d{4})(?:\.\w+)?', name)
    n = int(m.group(1)) if m else -1
    if n not in LSP_TEST:
      raise ValueError(f'{name!r} is not an LSP test image (im1001 ... im2000)')
    if n in seen:
      raise ValueError(f'two predictions for the LSP test image {name!r}')
    seen.add(n)
    out[n - LSP_TEST.start] = k
  return out.transpose(1, 2, 0)


def flic_prediction_all(examples: str, image_ids, centers, keypoints, parts: str) -> np.ndarray:
  """FLIC's 9 x 2 x N_test array from per-person predictions, each located in ``examples`` by its
  image (filepath) and person centre (the torso box's, as the builder computes it)."""
  exs = _flic_examples(examples)
  tests = [(i, ex) for i, ex in enumerate(exs) if _flag(getattr(ex, 'istest', 0))]
  by_image = {}
  for col, (i, ex) in enumerate(tests):
    box = np.asarray(getattr(ex, 'torsobox', np.full(4, np.nan)), np.float64).ravel()
    centre = (np.array([(box[0] + box[2]) / 2, 0.7 * box[1] + 0.3 * box[3]]) if box.size == 4
              else np.full(2, np.nan))
    by_image.setdefault(str(getattr(ex, 'filepath', '')), []).append((col, centre))
  kp = _native(keypoints, parts, 'flic')
  out = np.full((len(tests), skeleton.FLIC.num_parts, 2), np.nan)
  for name, centre, k in zip(image_ids, np.asarray(centers, np.float64), kp):
    name = name.decode() if isinstance(name, bytes) else str(name)
    cands = [col for col, c in by_image.get(name, []) if np.allclose(c, centre, atol=0.5)]
    if len(cands) != 1:
      raise BadFile(f'{examples}: {len(cands)} test examples of {name!r} have their centre at '
                    f'{np.round(centre, 1).tolist()} (expected exactly one)')
    out[cands[0]] = k
  return out.transpose(1, 2, 0)


def write_mpii_submission(path: str, annotations: str, image_ids, keypoints, parts: str,
                          centers=None, positions=None) -> dict:
  """The MPII test-server file: a variable ``pred``, the annolist of every test image
  (``img_train == 0``) of ``annotations`` in its order, each person at its 1-based ``annorect``
  position with its ``objpos`` and ``scale`` as given, predicted people with
  ``annopoints.point`` (x, y, id; MPII joints the model lacks are left out).

  Each predicted person is placed by ``positions`` (1-based [annolist index, annorect index]
  pairs) or else by its image name and centre (``centers``, the annotation's ``objpos``).
  Returns counts: test images, test people, people predicted.
  """
  try:
    images = mpii_mat.load(annotations)
  except FileNotFoundError as e:
    raise MissingData(f'{e}; expected the official MPII annotation file (RELEASE with annolist '
                      'and img_train)') from None
  except ValueError as e:
    raise BadFile(f'{e}; expected the official MPII annotation file (RELEASE with annolist and '
                  'img_train)') from None
  tests = [im for im in images if im.img_train == 0]
  if not tests:
    raise BadFile(f'{annotations} has no test image (img_train == 0); expected the official '
                  'annotation file (RELEASE with img_train)')
  by_index = {im.index: im for im in tests}
  by_name = {}
  for im in tests:
    by_name.setdefault(im.name, []).append(im)
  kp = np.asarray(keypoints, np.float64)
  idx = skeleton.conversion(parts, skeleton.MPII)
  placed: dict[tuple[int, int], np.ndarray] = {}
  for n in range(len(kp)):
    if positions is not None:
      a, r = (int(v) for v in positions[n])
      image = by_index.get(a)
      if image is None or not 1 <= r <= len(image.people):
        raise BadFile(f'{annotations}: no test person at annolist {a}, annorect {r}')
    else:
      name = image_ids[n].decode() if isinstance(image_ids[n], bytes) else str(image_ids[n])
      centre = np.asarray(centers[n], np.float64)
      cands = [(im, p.index) for im in by_name.get(name, []) for p in im.people
               if p.objpos is not None and np.allclose(p.objpos, centre, atol=0.5)]
      if len(cands) != 1:
        raise BadFile(f'{annotations}: {len(cands)} test people of image {name!r} have objpos '
                      f'{np.round(centre, 1).tolist()} (expected exactly one)')
      image, r = cands[0]
      a = image.index
    if (a, r) in placed:
      raise ValueError(f'two predictions for annolist {a}, annorect {r}')
    placed[(a, r)] = kp[n]
  raws = []
  for image in tests:
    rects = []
    for person in image.people:
      rect = {}
      if person.objpos is not None:
        rect['objpos'] = {'x': person.objpos[0], 'y': person.objpos[1]}
      rect['scale'] = person.scale
      guess = placed.get((image.index, person.index))
      if guess is not None:
        rect['annopoints'] = {'point': [
            {'x': float(guess[i, 0]), 'y': float(guess[i, 1]), 'id': pid}
            for pid, i in enumerate(idx) if i >= 0 and np.isfinite(guess[i, :2]).all()]}
      rects.append(rect)
    raws.append({'name': image.name, 'annorect': rects})
  annolist = np.empty((1, len(raws)), dtype=[('image', 'O'), ('annorect', 'O')])
  for i, raw in enumerate(raws):
    annolist[0, i] = (mpii_mat._struct_array([{'name': raw['name']}]),
                      mpii_mat._struct_array(raw['annorect']) if raw['annorect']
                      else mpii_mat._EMPTY)
  scipy.io.savemat(os.fspath(path), {'pred': annolist})
  return {'test_images': len(tests), 'test_people': sum(len(im.people) for im in tests),
          'predicted': len(placed)}
