"""The benchmarks' accuracy measures: PCK, PCKh, their curves and AUC, and the papers' tables.

All functions take per-person, per-part distances ``dist`` [N, P] (pixels; inf or NaN where a part
was not predicted), the ground truth's ``annotated`` flags [N, P] (parts without a label do not
count) and a per-person normaliser ``norm`` [N]: the head size (0.6 x the head box diagonal) for
MPII's PCKh, the torso size for LSP's and FLIC's PCK. A part is correct when
``dist <= threshold * norm``.

Tables (``TABLES``), one per benchmark, each for one stage's distances:
  mpii  PCKh@0.5 of Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean (every annotated part
        except pelvis and thorax, weighted by counts), Mean@0.1, and the AUC of the Mean's curve
        over thresholds 0-0.5 (in % of the full area);
  lsp   PCK@0.2 of the same groups, and the Mean over every annotated part;
  flic  PCK@0.2 of elbows and wrists, with their curves over thresholds 0-0.2.

The groups follow the MPII evaluation toolkit (genTablePCK.m): each column averages its parts
with equal weights, left and right, and Head is the head top and the (upper) neck, so that every
part the Mean counts is in a column. The LSP table groups its parts the same way.
"""
from __future__ import annotations

import numpy as np

GROUPS = (('Head', ('head_top', 'neck')), ('Shoulder', ('r_shoulder', 'l_shoulder')),
          ('Elbow', ('r_elbow', 'l_elbow')), ('Wrist', ('r_wrist', 'l_wrist')),
          ('Hip', ('r_hip', 'l_hip')), ('Knee', ('r_knee', 'l_knee')),
          ('Ankle', ('r_ankle', 'l_ankle')))
EXCLUDED_FROM_MPII_MEAN = ('pelvis', 'thorax')
MPII_THRESHOLDS = np.round(np.arange(51) * 0.01, 2)   # 0, 0.01, ..., 0.5
PCK_THRESHOLDS = np.round(np.arange(21) * 0.01, 2)    # 0, 0.01, ..., 0.2


def _check(dist, annotated, norm):
  dist = np.asarray(dist, np.float64)
  annotated = np.asarray(annotated) > 0
  norm = np.asarray(norm, np.float64)
  if dist.shape != annotated.shape or dist.ndim != 2 or norm.shape != dist.shape[:1]:
    raise ValueError(f'dist {dist.shape}, annotated {annotated.shape} and norm {norm.shape} must '
                     'be [N, P], [N, P] and [N]')
  bad = annotated.any(1) & ~(norm > 0)
  if bad.any():
    raise ValueError(f'{int(bad.sum())} people with annotated parts have a normaliser that is not '
                     f'positive (first: person {int(np.argmax(bad))}, norm '
                     f'{norm[np.argmax(bad)]!r})')
  return dist, annotated, norm


def correct(dist, annotated, norm, thresholds):
  """[K, N, P] booleans: annotated and within threshold k x norm (NaN and inf are wrong)."""
  dist, annotated, norm = _check(dist, annotated, norm)
  t = np.asarray(thresholds, np.float64)[:, None, None]
  with np.errstate(invalid='ignore'):
    return (dist[None] <= t * norm[None, :, None]) & annotated[None]


def pck(dist, annotated, norm, threshold: float = 0.5):
  """Per-part PCK [P] (NaN for parts never annotated) and the overall PCK over annotated parts."""
  per_part, total = pck_curve(dist, annotated, norm, [threshold])
  return per_part[0], float(total[0])


def pck_curve(dist, annotated, norm, thresholds, mask=None):
  """PCK at every threshold: per part [K, P] and over the parts in ``mask`` [K] (default all)."""
  ok = correct(dist, annotated, norm, thresholds)
  annotated = np.asarray(annotated) > 0
  counts = annotated.sum(0)
  with np.errstate(invalid='ignore', divide='ignore'):
    per_part = np.where(counts > 0, ok.sum(1) / counts, np.nan)
  mask = np.ones(annotated.shape[1], bool) if mask is None else np.asarray(mask, bool)
  total = ok[:, :, mask].sum((1, 2)) / max(int(annotated[:, mask].sum()), 1)
  return per_part, total


def auc(thresholds, curve) -> float:
  """Area under a PCK curve with thresholds rescaled to [0, 1] (trapezoids): 1 = always correct."""
  t = np.asarray(thresholds, np.float64)
  x = (t - t[0]) / (t[-1] - t[0])
  y = np.asarray(curve, np.float64)
  return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


LOST_BELOW = 5.0     # PCKh@0.5 (%) on a part below which an output has lost it ...
LOST_OVERALL = 30.0  # ... while it reaches this much on all parts


def lost_parts(stage: dict, below: float = LOST_BELOW,
               overall: float = LOST_OVERALL) -> list[str]:
  """The parts an output has given up on: PCKh@0.5 below ``below`` % on the part while the
  output reaches ``overall`` % or more on all parts (``stage``: an output of an evaluation
  result, with 'pck@0.5' and 'per_part' as fractions). In a model whose prediction maps end in
  a ReLU (the recurrent model) that is a map whose ReLU died in training: zero, or nearly, on
  every crop; it does not recover."""
  if 100 * stage['pck@0.5'] < overall:
    return []
  return [p for p, v in (stage.get('per_part') or {}).items()
          if v is not None and 100 * v < below]


def groups(per_part, parts, names=GROUPS):
  """Left and right averaged per group: {group: value} for the groups the part set has."""
  out = {}
  for group, members in names:
    idx = [parts.index(m) for m in members if m in parts]
    values = [per_part[..., i] for i in idx]
    if values:
      with np.errstate(invalid='ignore'):
        out[group] = np.nanmean(np.stack(values), axis=0) if len(values) > 1 else values[0]
  return out


def _floats(d):
  return {k: (float(v) if np.ndim(v) == 0 else [float(x) for x in v]) for k, v in d.items()}


def mpii_table(dist, annotated, norm, parts):
  """MPII PCKh: groups at 0.5, Mean, Mean@0.1, AUC (0-0.5), per-part values and the curves."""
  mask = [p not in EXCLUDED_FROM_MPII_MEAN for p in parts]
  per_part, total = pck_curve(dist, annotated, norm, MPII_THRESHOLDS, mask)
  at = lambda a: int(np.argmin(np.abs(MPII_THRESHOLDS - a)))
  row = {k: v[at(0.5)] for k, v in groups(per_part, parts).items()}
  row.update({'Mean': total[at(0.5)], 'Mean@0.1': total[at(0.1)],
              'AUC': auc(MPII_THRESHOLDS, total)})
  return {'metric': 'PCKh@0.5', 'columns': list(row), 'row': _floats(row),
          'per_part': dict(zip(parts, map(float, per_part[at(0.5)]))),
          'curves': {'thresholds': MPII_THRESHOLDS.tolist(), 'Mean': total.tolist(),
                     **_floats(groups(per_part, parts))}}


def lsp_table(dist, annotated, norm, parts):
  """LSP PCK@0.2 (torso-normalised): groups, the Mean over every annotated part, and curves."""
  per_part, total = pck_curve(dist, annotated, norm, PCK_THRESHOLDS)
  row = {k: v[-1] for k, v in groups(per_part, parts).items()}
  row['Mean'] = total[-1]
  return {'metric': 'PCK@0.2', 'columns': list(row), 'row': _floats(row),
          'per_part': dict(zip(parts, map(float, per_part[-1]))),
          'curves': {'thresholds': PCK_THRESHOLDS.tolist(), 'Mean': total.tolist(),
                     **_floats(groups(per_part, parts))}}


def flic_table(dist, annotated, norm, parts):
  """FLIC PCK of elbows and wrists (torso-normalised) at 0.2, with their curves over 0-0.2."""
  per_part, _ = pck_curve(dist, annotated, norm, PCK_THRESHOLDS)
  keep = [g for g in GROUPS if g[0] in ('Elbow', 'Wrist')]
  curves = groups(per_part, parts, keep)
  if not curves:
    raise ValueError(f'the FLIC table needs elbows or wrists; parts are {parts}')
  row = {k: v[-1] for k, v in curves.items()}
  return {'metric': 'PCK@0.2', 'columns': list(row), 'row': _floats(row),
          'per_part': dict(zip(parts, map(float, per_part[-1]))),
          'curves': {'thresholds': PCK_THRESHOLDS.tolist(), **_floats(curves)}}


TABLES = {'mpii': mpii_table, 'lsp': lsp_table, 'flic': flic_table}


def table(kind: str, dist, annotated, norm, parts):
  try:
    fn = TABLES[kind]
  except KeyError:
    raise ValueError(f'Unknown table {kind!r}; known: {sorted(TABLES)}') from None
  return fn(dist, annotated, norm, tuple(parts))


def markdown(stage_tables, title: str = '', header: str | None = None, rows=None) -> str:
  """One markdown table, values in %: a row per output of the model (named by each table's
  ``output``, e.g. 'stage 2' or 'iteration 1', else numbered), or per ``rows`` name."""
  cols = stage_tables[0]['columns']
  metric = stage_tables[0]['metric']
  if rows is None:
    named = all('output' in tab for tab in stage_tables)
    rows = [tab['output'] if named else t + 1 for t, tab in enumerate(stage_tables)]
    header = header or ('output' if named else 'stage')
  lines = [f'**{title}** ({metric}, %)' if title else f'({metric}, %)', '',
           f'| {header or "stage"} | ' + ' | '.join(cols) + ' |', '|---|' + '---|' * len(cols)]
  for t, tab in enumerate(stage_tables):
    vals = ['-' if not np.isfinite(tab['row'][c]) else f'{100 * tab["row"][c]:.1f}' for c in cols]
    lines.append(f'| {rows[t]} | ' + ' | '.join(vals) + ' |')
  return '\n'.join(lines) + '\n'
