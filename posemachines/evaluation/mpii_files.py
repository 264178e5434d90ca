"""Predictions in the official MPII formats, and scoring any predictions file against any
ground-truth file in the official annotation structure (posemachines/data/mpii_mat.py reads both).

Predictions file: a top-level ``annolist`` with one entry per image (``image.name``) and one
``annorect`` per person, holding ``annopoints.point`` with ``x``, ``y``, ``id`` (MPII joint ids
0-15) and ``score`` (the part's confidence), plus the person's ``objpos`` and ``scale`` as given.

Scoring (``score``): images are matched by position when both files list the same number of
images, otherwise by image name; people are matched in order within an image. A ground-truth
part without a label does not count; a labelled part that the prediction lacks counts as wrong.
Ground-truth people that cannot be scored are left out and counted by reason: no labelled part,
no head box, or no prediction (no matching person, or one without points).
"""
from __future__ import annotations

import collections

import numpy as np

from posemachines.evaluation import metrics
from posemachines.core import skeleton
from posemachines.data import features, mpii_mat

NO_POINTS = 'ground truth has no labelled part'
NO_HEAD_BOX = 'ground truth has no head box (no PCKh normaliser)'
NO_PREDICTION = 'no predicted person, or one without points'


def _grouped(image_ids, rows):
  """(name, [row, ...]) per image, in the order images first appear."""
  groups = collections.OrderedDict()
  for name, row in zip(image_ids, rows):
    groups.setdefault(name.decode() if isinstance(name, bytes) else str(name), []).append(row)
  return groups.items()


def prediction_images(image_ids, keypoints, parts: str, centers=None, scales=None) -> list[dict]:
  """Raw annolist entries (for ``mpii_mat.write_release``) from per-person predictions.

  ``keypoints`` [N, P, 3] (x, y, confidence) in image pixels in the ``parts`` order; parts that
  MPII lacks are dropped, MPII joints that ``parts`` lacks are left out of the person's points.
  """
  idx = skeleton.conversion(parts, skeleton.MPII)
  n = len(keypoints)
  centers = [None] * n if centers is None else centers
  scales = [None] * n if scales is None else scales
  images = []
  for name, people in _grouped(image_ids, zip(keypoints, centers, scales)):
    rects = []
    for kp, center, scale in people:
      points = [{'x': float(kp[i, 0]), 'y': float(kp[i, 1]), 'id': pid, 'score': float(kp[i, 2])}
                for pid, i in enumerate(idx) if i >= 0]
      rect = {'annopoints': {'point': points}}
      if center is not None:
        rect['objpos'] = {'x': float(center[0]), 'y': float(center[1])}
      if scale is not None:
        rect['scale'] = float(scale)
      rects.append(rect)
    images.append({'name': name, 'annorect': rects})
  return images


def ground_truth_images(image_ids, joints, visible, head_boxes, centers, scales):
  """``mpii_mat.ImageAnnotation``s from per-person labels in MPII order: joints [N, 16, 3]
  (x, y, labelled), visible [N, 16], head boxes [N, 4] (x1, y1, x2, y2), centres, scales."""
  images = []
  rows = zip(joints, visible, head_boxes, centers, scales)
  for i, (name, people) in enumerate(_grouped(image_ids, rows)):
    image = mpii_mat.ImageAnnotation(i + 1, name, [], img_train=0)
    for j, (jt, vis, box, center, scale) in enumerate(people):
      points = {pid: (float(jt[pid, 0]), float(jt[pid, 1]), bool(vis[pid]))
                for pid in range(len(jt)) if jt[pid, 2] > 0}
      image.people.append(mpii_mat.Person(j + 1, points, tuple(map(float, box)),
                                          tuple(map(float, center)), float(scale)))
    images.append(image)
  return images


def _match_images(gt, pred, gt_path, pred_path):
  if len(gt) == len(pred):
    return list(zip(gt, pred))
  by_name = {}
  for image in gt:
    if image.name in by_name:
      raise ValueError(f'{gt_path} and {pred_path} list {len(gt)} and {len(pred)} images, so '
                       f'images are matched by name, but {gt_path} repeats {image.name!r}')
    by_name[image.name] = image
  missing = [p.name for p in pred if p.name not in by_name]
  if missing:
    raise ValueError(f'{pred_path}: {len(missing)} predicted images are not in {gt_path} '
                     f'(first: {missing[0]!r})')
  return [(by_name[p.name], p) for p in pred]


def score(annotations: str, predictions: str) -> dict:
  """The MPII PCKh table of ``predictions`` against ``annotations`` (both official .mat files)."""
  gt = mpii_mat.load(annotations)
  pred = mpii_mat.load(predictions)
  num = mpii_mat.NUM_JOINTS
  dist, annotated, norm = [], [], []
  left_out = collections.Counter()
  for g_image, p_image in _match_images(gt, pred, annotations, predictions):
    for j, person in enumerate(g_image.people):
      guess = p_image.people[j] if j < len(p_image.people) else None
      if not person.points:
        left_out[NO_POINTS] += 1
      elif person.head_box is None or not features.head_size(person.head_box) > 0:
        left_out[NO_HEAD_BOX] += 1
      elif guess is None or not guess.points:
        left_out[NO_PREDICTION] += 1
      else:
        d = np.full(num, np.inf)
        a = np.zeros(num, bool)
        for pid, (x, y, _) in person.points.items():
          a[pid] = True
          if pid in guess.points:
            d[pid] = np.hypot(guess.points[pid][0] - x, guess.points[pid][1] - y)
        dist.append(d)
        annotated.append(a)
        norm.append(features.head_size(person.head_box))
  if not dist:
    raise ValueError(f'No person of {annotations} could be scored against {predictions}: '
                     f'{dict(left_out)}')
  table = metrics.mpii_table(np.stack(dist), np.stack(annotated), np.asarray(norm),
                             skeleton.MPII.parts)
  return {'annotations': annotations, 'predictions': predictions, 'num_people': len(dist),
          'left_out': dict(left_out), 'table': table}
