"""Predictions in the official MPII formats, and scoring any predictions file against any
ground-truth file in the official annotation structure (posemachines/data/mpii_mat.py reads both).

Predictions file: a top-level ``annolist`` with one entry per image (``image.name``) and one
``annorect`` per person, holding ``annopoints.point`` with ``x``, ``y``, ``id`` (MPII joint ids
0-15) and ``score`` (the part's confidence), plus the person's ``objpos`` and ``scale`` as given.

Scoring (``score``), as the benchmark counts: every ground-truth person counts. Images are
matched by name when both files name every image (a predicted image the ground truth lacks, or a
repeated name, is an error; images listed in another order are matched by name, with a warning),
by position when neither names them; people are matched in order within an image. A ground-truth
part without a label does not count; a labelled part that the prediction lacks counts as wrong,
and so does every part of a person the predictions lack (its image missing, fewer people
predicted, or a person without points): such people are counted under ``missed``. Only
ground-truth people that cannot be scored at all are left out, counted by reason: no labelled
part, or no head box (no PCKh normaliser).
"""
from __future__ import annotations

import collections

import numpy as np

from posemachines.evaluation import metrics
from posemachines.core import errors, skeleton
from posemachines.data import features, mpii_mat

NO_POINTS = 'ground truth has no labelled part'
NO_HEAD_BOX = 'ground truth has no head box (no PCKh normaliser)'
NO_PREDICTION = 'no predicted person, or one without points'
NO_IMAGE = 'image not in the predictions'


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


class Unmatched(errors.BadFile):
  """Files that are each readable but cannot be scored together (images that do not match,
  nobody to score)."""


def _repeated(names) -> str | None:
  seen = set()
  for name in names:
    if name in seen:
      return name
    seen.add(name)
  return None


def match_images(gt, pred, gt_path: str, pred_path: str):
  """([(ground-truth image, predicted image or None)] for every ground-truth image, warnings).

  By name when both files name every image: a predicted image that the ground truth lacks, or a
  name repeated in either file, is an error; ground-truth images without a prediction are paired
  with None; predicted images at other positions than their ground truth are matched by name, with
  a warning saying so. By position when neither file names its images (same number of images
  required). Anything else (some names missing) is an error.
  """
  gt_named = all(image.name for image in gt)
  pred_named = all(image.name for image in pred)
  if gt_named and pred_named:
    if [g.name for g in gt] == [p.name for p in pred]:
      return list(zip(gt, pred)), []
    for images, path in ((gt, gt_path), (pred, pred_path)):
      twice = _repeated(image.name for image in images)
      if twice is not None:
        raise Unmatched(f'{path} lists image {twice!r} twice, so the images of {pred_path} '
                             f'cannot be matched to those of {gt_path} by name')
    by_name = {image.name: image for image in pred}
    known = {image.name for image in gt}
    unknown = [p.name for p in pred if p.name not in known]
    if unknown:
      raise Unmatched(f'{pred_path}: {len(unknown)} predicted images are not in {gt_path} '
                           f'(first: {unknown[0]!r}); is it the right ground truth?')
    warnings = []
    absent = len(gt) - len(pred)
    if absent:
      warnings.append(
          f'{pred_path} lists {len(pred)} of the {len(gt)} images of {gt_path} (matched by '
          f'name); every person of the {absent} images it lacks counts as wrong')
    else:
      moved = [(i, p.name) for i, p in enumerate(pred) if gt[i].name != p.name]
      i, name = moved[0]
      warnings.append(
          f'{pred_path}: {len(moved)} of its {len(pred)} images are not at the position of the '
          f'same image in {gt_path} (first: {name!r} at position {i + 1}, where {gt_path} has '
          f'{gt[i].name!r}); images were matched by name, not by position')
    return [(g, by_name.get(g.name)) for g in gt], warnings
  if not gt_named and not pred_named and len(gt) == len(pred):
    return list(zip(gt, pred)), [f'{gt_path} and {pred_path} do not name their images: '
                                 'matched by position']
  unnamed = [(path, sum(not image.name for image in images), len(images))
             for images, path in ((gt, gt_path), (pred, pred_path))]
  raise Unmatched(
      'images cannot be matched: ' + '; '.join(f'{path} leaves {n} of {total} images unnamed'
                                                for path, n, total in unnamed)
      + (f'; and they list {len(gt)} and {len(pred)} images' if len(gt) != len(pred) else '')
      + ' (name every image in both, or none in either with the same number of images)')


def _load(path: str):
  try:
    return mpii_mat.load(path)
  except FileNotFoundError as e:
    raise errors.MissingData(str(e)) from e
  except ValueError as e:
    raise errors.BadFile(str(e)) from e


def score(annotations: str, predictions: str) -> dict:
  """The MPII PCKh table of ``predictions`` against ``annotations`` (both official .mat files).

  Every ground-truth person with a labelled part and a head box counts, as in the benchmark: one
  that ``predictions`` lacks (its image missing, fewer people, or a person without points) has
  every labelled part wrong, and is counted under ``missed``. ``warnings`` says how the images
  were matched when that is not plain (see ``match_images``).
  """
  gt = _load(annotations)
  pred = _load(predictions)
  pairs, warnings = match_images(gt, pred, annotations, predictions)
  num = mpii_mat.NUM_JOINTS
  dist, annotated, norm = [], [], []
  left_out, missed = collections.Counter(), collections.Counter()
  for g_image, p_image in pairs:
    for j, person in enumerate(g_image.people):
      if p_image is None:
        guess, why = None, NO_IMAGE
      else:
        guess = p_image.people[j] if j < len(p_image.people) else None
        why = NO_PREDICTION
      if not person.points:
        left_out[NO_POINTS] += 1
        continue
      if person.head_box is None or not features.head_size(person.head_box) > 0:
        left_out[NO_HEAD_BOX] += 1
        continue
      d = np.full(num, np.inf)
      a = np.zeros(num, bool)
      if guess is None or not guess.points:
        missed[why] += 1
      for pid, (x, y, _) in person.points.items():
        a[pid] = True
        if guess is not None and pid in guess.points:
          d[pid] = np.hypot(guess.points[pid][0] - x, guess.points[pid][1] - y)
      dist.append(d)
      annotated.append(a)
      norm.append(features.head_size(person.head_box))
  if not dist:
    raise Unmatched(f'No person of {annotations} can be scored (each needs a labelled part '
                         f'and a head box): {dict(left_out)}')
  if not sum(missed.values()) < len(dist):
    warnings.append(f'{predictions} predicts none of the {len(dist)} people of {annotations}: '
                    'every part counts as wrong')
  table = metrics.mpii_table(np.stack(dist), np.stack(annotated), np.asarray(norm),
                             skeleton.MPII.parts)
  return {'annotations': annotations, 'predictions': predictions, 'num_people': len(dist),
          'missed': dict(missed), 'left_out': dict(left_out), 'warnings': warnings,
          'table': table}
