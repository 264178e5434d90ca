"""Visibility prediction (Belagiannis and Zisserman 2017, Fig. 7).

Every annotated part is ranked by the maximum response of its heatmap; visible parts are the
positives and occluded parts the negatives. The precision-recall curve runs over the distinct
scores from the highest down, and the average precision is the area under it as the sum of
precision x recall step (no interpolation).
"""
from __future__ import annotations

import numpy as np


def precision_recall(scores, positive):
  """(precision, recall, thresholds) at every distinct score, highest first: the parts with a
  score >= threshold are predicted visible. Tied scores enter together."""
  scores = np.asarray(scores, np.float64).ravel()
  positive = np.asarray(positive, bool).ravel()
  if scores.shape != positive.shape:
    raise ValueError(f'scores {scores.shape} and labels {positive.shape} differ in size')
  if not np.isfinite(scores).all():
    raise ValueError(f'{int((~np.isfinite(scores)).sum())} non-finite visibility scores')
  order = np.argsort(-scores, kind='stable')
  scores, positive = scores[order], positive[order]
  last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # end of each run of ties
  tp = np.cumsum(positive)[last]
  fp = (last + 1) - tp
  return tp / (tp + fp), tp / max(int(positive.sum()), 1), scores[last]


def average_precision(scores, positive) -> float:
  """Area under the precision-recall curve; nan without both positives and negatives."""
  positive = np.asarray(positive, bool)
  if positive.all() or not positive.any():
    return float('nan')
  precision, recall, _ = precision_recall(scores, positive)
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def has_labels(visible, annotated) -> bool:
  """Whether the annotated parts include both visible and occluded ones."""
  vis = np.asarray(visible)[np.asarray(annotated) > 0] > 0
  return bool(vis.any() and not vis.all())


def visibility_ap(scores, visible, annotated) -> dict:
  """AP of scores [N, P] at telling visible from occluded parts among the annotated ones
  ([N, P] flags), with the counts of each."""
  ann = np.asarray(annotated) > 0
  vis = np.asarray(visible)[ann] > 0
  return {'ap': average_precision(np.asarray(scores)[ann], vis), 'num_visible': int(vis.sum()),
          'num_occluded': int((~vis).sum())}


def draw_precision_recall(ax, curves: dict, title: str = 'visibility'):
  """Draws one precision-recall curve per entry of ``curves`` (label -> (scores, positive)) on
  a matplotlib axis, with its AP in the legend."""
  for label, (scores, positive) in curves.items():
    precision, recall, _ = precision_recall(scores, positive)
    ap = average_precision(scores, positive)
    ax.plot(np.r_[0.0, recall], np.r_[precision[0], precision],
            label=f'{label} (AP {100 * ap:.1f})')
  ax.set_xlabel('recall (visible parts)')
  ax.set_ylabel('precision')
  ax.set_xlim(0, 1)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='lower left')
  ax.set_title(title, fontsize=10)
