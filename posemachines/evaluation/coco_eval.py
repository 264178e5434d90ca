"""COCO keypoint evaluation with the official tool: pycocotools' COCOeval, iouType 'keypoints'.

``score(annotations, results)`` scores a COCO keypoint results file (a JSON list of
{image_id, category_id, keypoints: 17 x (x, y, confidence), score}) against COCO's annotations
(person_keypoints_val2017.json): object keypoint similarity (OKS, with COCOeval's per-keypoint
sigmas and each person's area) matched by COCOeval at thresholds 0.50:0.05:0.95, giving AP, AP50,
AP75, APm, APl and AR, AR50, AR75, ARm, ARl (-1 where the annotations hold no person of that size,
as COCOeval reports). pycocotools' printing is captured; a file it cannot use raises
posemachines.core.errors' ``BadFile`` (``MissingData`` when absent), one line naming the file.

Top-down evaluation predicts every person box, then makes results as top-down methods do
(``results``):
  - on ground-truth boxes: the boxes of the annotations' people (the ``coco`` builder's examples),
    box score 1;
  - on detections (``load_detections``: a COCO results file of person boxes, category 1, with
    scores): each box gives a person centre and scale as the builder derives them from a
    ground-truth box (``detection_people``);
  - rescoring: a person's score is its box score x the mean confidence of its keypoints whose
    confidence exceeds ``RESCORE_THRESHOLD`` (0.2; 0 when none does);
  - OKS non-maximum suppression per image (``oks_nms``): people are taken in decreasing score, and
    every remaining person whose OKS with a kept one exceeds ``NMS_THRESHOLD`` (0.9) is dropped;
    the OKS of two predictions uses the mean of their areas (a detection's: its box's w x h).
Predictions in another part order than COCO's are converted (``to_coco17``): parts a model does
not predict are written at (0, 0) with confidence 0, so they count as misses in the OKS.

``evaluate(model, config, annotations, detections=None)`` does all of it for a model: the people
of a split of the ``coco`` dataset (ground-truth boxes), or the detections' boxes with their
images read from the manual directory, predicted through the multi-view merge (inference.py),
written as a results JSON and scored.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import os
from typing import Any

import numpy as np

from posemachines.core import skeleton
from posemachines.core.errors import BadFile, MissingData
from posemachines.data import coco as coco_data

_P = skeleton.COCO17.num_parts
PERSON_CATEGORY = coco_data.PERSON_CATEGORY
STAT_NAMES = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')
RESCORE_THRESHOLD = 0.2
NMS_THRESHOLD = 0.9




def _sigmas() -> np.ndarray:
  from pycocotools import cocoeval
  return np.asarray(cocoeval.Params(iouType='keypoints').kpt_oks_sigmas, np.float64)


SIGMAS = _sigmas()  # COCOeval's per-keypoint sigmas, in skeleton 'coco17' order


@contextlib.contextmanager
def _quiet():
  """Captures what pycocotools prints."""
  with contextlib.redirect_stdout(io.StringIO()):
    yield


def _name(source) -> str:
  return os.fspath(source) if isinstance(source, (str, os.PathLike)) else '<in memory>'


def _load(source, what: str):
  """A JSON document from a path (or the object itself)."""
  if not isinstance(source, (str, os.PathLike)):
    return copy.deepcopy(source)
  try:
    with open(source) as f:
      return json.load(f)
  except FileNotFoundError:
    raise MissingData(f'{os.fspath(source)}: no such {what} file') from None
  except (OSError, ValueError, UnicodeDecodeError) as e:
    raise BadFile(f'{os.fspath(source)}: not a readable JSON {what} file: '
                  f'{str(e).splitlines()[0]}') from None


def ground_truth(annotations):
  """A pycocotools COCO of an annotation file (path, or its loaded dict)."""
  from pycocotools import coco
  name = _name(annotations)
  doc = _load(annotations, 'annotation')
  if not isinstance(doc, dict) or not all(
      isinstance(doc.get(k), list) for k in ('images', 'annotations', 'categories')):
    raise BadFile(f'{name}: not a COCO annotation file (it needs "images", "annotations" and '
                  '"categories" lists)')
  for ann in doc['annotations']:
    if not isinstance(ann, dict) or not all(
        k in ann for k in ('id', 'image_id', 'category_id', 'keypoints', 'num_keypoints',
                           'iscrowd', 'area', 'bbox')):
      raise BadFile(f'{name}: annotation {str(ann)[:120]} lacks id, image_id, category_id, '
                    'keypoints, num_keypoints, iscrowd, area or bbox')
  gt = coco.COCO()
  gt.dataset = doc
  try:
    with _quiet():
      gt.createIndex()
  except (KeyError, TypeError) as e:
    raise BadFile(f'{name}: malformed COCO annotation file: {e!r}') from None
  return gt


def check_results(results, gt, name: str = '<in memory>') -> list[dict]:
  """The results of a keypoint results file, checked against the ground truth's images."""
  if not isinstance(results, list):
    raise BadFile(f'{name}: a COCO keypoint results file is a JSON list, got '
                  f'{type(results).__name__}')
  images = set(gt.getImgIds())
  for k, r in enumerate(results):
    ok = isinstance(r, dict) and all(k in r for k in ('image_id', 'keypoints', 'score'))
    kps = r.get('keypoints') if ok else None
    if not (ok and isinstance(kps, list) and len(kps) == 3 * _P and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in kps + [r['score']])):
      raise BadFile(f'{name}: result {k} is not {{image_id, keypoints: {3 * _P} finite numbers, '
                    f'score}}: {str(r)[:120]}')
    if r['image_id'] not in images:
      raise BadFile(f'{name}: result {k} is for image {r["image_id"]!r}, which the annotations '
                    'do not hold')
    r.setdefault('category_id', PERSON_CATEGORY)
  return results


def score(annotations_json, results_json) -> dict[str, float]:
  """COCOeval's keypoint stats of a results file against an annotation file (paths, or loaded
  objects): {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}."""
  from pycocotools import coco, cocoeval
  gt = ground_truth(annotations_json)
  name = _name(results_json)
  results = check_results(_load(results_json, 'results'), gt, name)
  try:
    with _quiet():
      if results:
        dt = gt.loadRes(results)
      else:  # loadRes cannot take an empty list
        dt = coco.COCO()
        dt.dataset = {'images': gt.dataset['images'], 'annotations': [],
                      'categories': copy.deepcopy(gt.dataset['categories'])}
        dt.createIndex()
      ev = cocoeval.COCOeval(gt, dt, iouType='keypoints')
      ev.evaluate()
      ev.accumulate()
      ev.summarize()
  except (KeyError, TypeError, ValueError, IndexError, AssertionError) as e:
    raise BadFile(f'{_name(annotations_json)} with {name}: COCOeval failed: {e!r}') from None
  return {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}


def format_table(stats: dict[str, float]) -> str:
  """A markdown table of ``score``'s stats (in %)."""
  head = '| ' + ' | '.join(STAT_NAMES) + ' |'
  rule = '|' + '---|' * len(STAT_NAMES)
  row = '| ' + ' | '.join('-' if stats[k] < 0 else f'{100 * stats[k]:.1f}'
                          for k in STAT_NAMES) + ' |'
  return '\n'.join([head, rule, row])


# ------------------------------------------------------------------ OKS, rescoring, NMS --

def oks(pred, truth, area, labelled=None, sigmas=SIGMAS) -> np.ndarray:
  """OKS [N, M] of predictions [N, P, >=2] against people [M, P, >=2] of areas [M]: the mean,
  over each person's ``labelled`` parts ([M, P], default all), of
  exp(-d^2 / (2 area (2 sigma)^2)), as COCOeval computes it."""
  pred = np.asarray(pred, np.float64)[..., :2]
  truth = np.asarray(truth, np.float64)[..., :2]
  area = np.asarray(area, np.float64).reshape(-1)
  mask = (np.ones(truth.shape[:2], bool) if labelled is None else np.asarray(labelled, bool))
  d2 = ((pred[:, None] - truth[None]) ** 2).sum(-1)                 # [N, M, P]
  e = d2 / ((2 * np.asarray(sigmas)) ** 2) / (area[None, :, None] + np.spacing(1)) / 2
  k = np.exp(-e) * mask[None]
  return k.sum(-1) / np.maximum(mask.sum(-1), 1)[None]


def rescore(keypoints, box_scores=None, threshold: float = RESCORE_THRESHOLD) -> np.ndarray:
  """Box score x the mean keypoint confidence above ``threshold`` (0 where none is): [N]."""
  conf = np.asarray(keypoints, np.float64)[..., 2]
  above = conf > threshold
  mean = np.where(above.any(-1), (conf * above).sum(-1) / np.maximum(above.sum(-1), 1), 0.0)
  box = np.ones(len(conf)) if box_scores is None else np.asarray(box_scores, np.float64)
  return box * mean


def oks_nms(keypoints, scores, areas, threshold: float = NMS_THRESHOLD,
            sigmas=SIGMAS) -> np.ndarray:
  """Indices kept by OKS non-maximum suppression of one image's people, best first: a person is
  dropped when its OKS with a kept, higher-scored one exceeds ``threshold`` (the OKS of two
  predictions over all parts, with the mean of their areas)."""
  kp = np.asarray(keypoints, np.float64)[..., :2]
  areas = np.asarray(areas, np.float64)
  order = list(np.argsort(-np.asarray(scores, np.float64), kind='stable'))
  keep = []
  while order:
    i, rest = order[0], np.asarray(order[1:], np.int64)
    keep.append(int(i))
    if not len(rest):
      break
    d2 = ((kp[rest] - kp[i]) ** 2).sum(-1)                           # [R, P]
    scale = (areas[rest] + areas[i])[:, None] / 2 + np.spacing(1)
    sim = np.exp(-d2 / ((2 * np.asarray(sigmas)) ** 2) / scale / 2).mean(-1)
    order = [int(j) for j in rest[sim <= threshold]]
  return np.asarray(keep, np.int64)


def to_coco17(keypoints, parts: str = 'coco17') -> np.ndarray:
  """[..., P, 3] (x, y, confidence) in ``parts`` order -> [..., 17, 3] in COCO's order; parts
  that ``parts`` lacks are (0, 0) with confidence 0."""
  return skeleton.convert(np.asarray(keypoints, np.float64), parts, 'coco17', axis=-2, fill=0.0)


def results(keypoints, image_ids, box_scores=None, areas=None, parts: str = 'coco17',
            rescore_threshold: float | None = RESCORE_THRESHOLD,
            nms_threshold: float | None = NMS_THRESHOLD) -> list[dict]:
  """COCO keypoint results of N people: keypoints [N, P, 3] (x, y, confidence, image pixels, in
  ``parts`` order), their images' COCO ids [N], box scores [N] (default 1: ground-truth boxes)
  and box areas [N] (for the NMS). Rescored unless ``rescore_threshold`` is None (the score is
  then the box score) and OKS-NMS'd per image unless ``nms_threshold`` is None."""
  kp = to_coco17(keypoints, parts)
  n = len(kp)
  image_ids = np.asarray(image_ids).reshape(-1)
  if len(image_ids) != n:
    raise ValueError(f'{n} people but {len(image_ids)} image ids')
  boxes = np.ones(n) if box_scores is None else np.asarray(box_scores, np.float64)
  scores = boxes if rescore_threshold is None else rescore(kp, boxes, rescore_threshold)
  keep = np.arange(n)
  if nms_threshold is not None and n:
    if areas is None:
      raise ValueError('OKS NMS needs each person\'s box area')
    areas = np.asarray(areas, np.float64)
    keep = []
    for image in np.unique(image_ids):
      idx = np.flatnonzero(image_ids == image)
      keep.extend(idx[oks_nms(kp[idx], scores[idx], areas[idx], nms_threshold)])
    keep = np.sort(np.asarray(keep, np.int64))
  return [{'image_id': int(image_ids[i]), 'category_id': PERSON_CATEGORY,
           'keypoints': [round(float(v), 3) for v in kp[i].reshape(-1)],
           'score': float(scores[i])} for i in keep]


def write_results(path: str, results_list: list[dict]) -> None:
  """Writes a COCO keypoint results JSON."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(results_list, f)


# ------------------------------------------------------------------------- detections --

@dataclasses.dataclass(frozen=True)
class DetectedPerson:
  """One detected person box to predict: its image, box (clipped to the image), score, and the
  centre and scale the ``coco`` builder would give a ground-truth box."""
  image_id: int
  file_name: str
  box: np.ndarray      # float32 [4], x, y, w, h
  score: float
  center: np.ndarray   # float32 [2]
  scale: float
  area: float          # the box's w x h, for the OKS NMS


def load_detections(detections, min_score: float = 0.0) -> list[dict]:
  """The person boxes (category 1, score >= ``min_score``) of a COCO results file of boxes."""
  name = _name(detections)
  data = _load(detections, 'detections')
  if not isinstance(data, list):
    raise BadFile(f'{name}: a COCO detections file is a JSON list of {{image_id, category_id, '
                  f'bbox, score}}, got {type(data).__name__}')
  out = []
  for k, d in enumerate(data):
    try:
      box = [float(v) for v in d['bbox']]
      ok = len(box) == 4 and all(math.isfinite(v) for v in box) and math.isfinite(
          float(d['score']))
      image_id = d['image_id']
    except (KeyError, TypeError, ValueError):
      ok = False
    if not ok:
      raise BadFile(f'{name}: detection {k} is not {{image_id, category_id, bbox: x y w h, '
                    f'score}}: {str(d)[:120]}')
    if d.get('category_id', PERSON_CATEGORY) == PERSON_CATEGORY and d['score'] >= min_score:
      out.append({'image_id': image_id, 'bbox': box, 'score': float(d['score'])})
  return out


def detection_people(detections: list[dict], gt, aspect_ratio: float = coco_data.ASPECT_RATIO,
                     padding: float = coco_data.PADDING, name: str = 'detections'
                     ) -> list[DetectedPerson]:
  """The people to predict for detections of the ground truth's images (a COCO from
  ``ground_truth``): boxes clipped to their images; boxes outside them, or of no size, dropped."""
  out = []
  for d in detections:
    if d['image_id'] not in gt.imgs:
      raise BadFile(f'{name}: a detection is for image {d["image_id"]!r}, which the annotations '
                    'do not hold')
    image = gt.imgs[d['image_id']]
    box = coco_data.clip_box(d['bbox'], image['width'], image['height'])
    if not (box[2] > 0 and box[3] > 0):
      continue
    center, scale = coco_data.box_center_scale(box, aspect_ratio, padding)
    out.append(DetectedPerson(int(d['image_id']), image['file_name'], box, d['score'], center,
                              float(scale), float(box[2] * box[3])))
  return out


def score_predictions(annotations_json, keypoints, image_ids, box_scores=None, areas=None,
                      parts: str = 'coco17', out: str | None = None) -> dict[str, Any]:
  """Results of predicted people (see ``results``), written to ``out`` when given, and scored."""
  res = results(keypoints, image_ids, box_scores, areas, parts)
  if out:
    write_results(out, res)
  return score(annotations_json, res)


# ----------------------------------------------------------------- evaluating a model --

def _predict(model, ds, view_list, batch_size: int, fast_decode: bool,
             grid_stride: float | None) -> np.ndarray:
  """The final stage's keypoints [N, P, 3] (image pixels, model part order) of the people of
  ``ds`` (a tf.data of {'image': encoded bytes, 'center', 'scale'}), merged over ``view_list``."""
  import tensorflow as tf
  import jax
  from posemachines.evaluation import inference
  fn, _ = inference.predict_fn(model, view_list, grid_stride)

  def crops(ex):
    c, a = inference.view_crops(ex['image'], ex['center'], ex['scale'], model, view_list,
                                encoded=True, fast_decode=fast_decode)
    return {'crops': c, 'crop_to_image': a}

  ds = ds.map(crops, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  out = []
  for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
    pred, _ = fn(batch['crops'], batch['crop_to_image'])
    out.append(np.asarray(jax.device_get(pred))[-1])
  p = model.skeleton.num_parts
  return np.concatenate(out) if out else np.zeros((0, p, 3), np.float32)


def _ground_truth_box_people(config, split: str):
  """The split's examples (ground-truth boxes) as a tf.data of image, centre and scale, with
  their COCO image ids and areas."""
  import tensorflow_datasets as tfds
  from posemachines.data import registry
  builder = registry.get_builder(config)
  if registry.skeleton_name(builder) != 'coco17':
    raise ValueError(f'COCO evaluation needs the coco dataset, not {builder.info.name} '
                     '(set config.data.dataset / eval_dataset to coco)')
  if split not in builder.info.splits:
    raise ValueError(f'{builder.info.name} has no split {split!r}; it has '
                     f'{sorted(builder.info.splits)}')
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={'image': tfds.decode.SkipDecoding()})
  side = [(int(i), float(a)) for i, a in
          ds.map(lambda ex: (ex['coco_image_id'], ex['area'])).as_numpy_iterator()]
  ids = np.array([i for i, _ in side], np.int64)
  areas = np.array([a for _, a in side], np.float64)
  people = ds.map(lambda ex: {'image': ex['image'], 'center': ex['center'],
                              'scale': ex['scale']})
  return people, ids, areas


def _detected_people(config, split: str, people: list[DetectedPerson]):
  """Detected people whose image can be read, as a tf.data of image, centre and scale, with
  those people, and the count of the others by reason."""
  import tensorflow as tf
  from posemachines.data import manual, registry
  from posemachines.data import report as report_lib
  manual_dir = os.path.expanduser(config.data.manual_dir or
                                  manual.default_manual_dir(registry.data_dir(config)))
  located = coco_data.find_images(manual_dir, split)
  if located is None:
    raise MissingData(f'coco: no {coco_data.SPLITS[split]}.zip nor {coco_data.SPLITS[split]}/ '
                      f'in {manual_dir} (or its coco/)')
  archive, prefix = located
  by_image: dict[str, list[int]] = {}
  for k, person in enumerate(people):
    by_image.setdefault(prefix + person.file_name, []).append(k)
  order, skipped, images = [], {}, {}
  for name, result in manual.decoded(archive, sorted(by_image)):
    if isinstance(result, report_lib.BadImage):
      skipped[result.reason] = skipped.get(result.reason, 0) + len(by_image[name])
      continue
    images[name] = result[0]
    order.extend(by_image[name])
  kept = [people[k] for k in order]

  def gen():
    for person in kept:
      yield {'image': images[prefix + person.file_name], 'center': person.center,
             'scale': np.float32(person.scale)}

  sig = {'image': tf.TensorSpec([], tf.string), 'center': tf.TensorSpec([2], tf.float32),
         'scale': tf.TensorSpec([], tf.float32)}
  return tf.data.Dataset.from_generator(gen, output_signature=sig), kept, skipped


def evaluate(model, config, annotations, detections=None, split: str | None = None,
             scales=None, flip: bool = True, batch_size: int = 8, out: str | None = None,
             min_detection_score: float = 0.0, grid_stride: float | None = None) -> dict:
  """COCO's keypoint AP of ``model`` (an inference.Model) on a split of the ``coco`` dataset:
  on its ground-truth boxes, or on the person boxes of a ``detections`` results file (their
  images read from the manual directory). The predictions are rescored, OKS-NMS'd and written
  as a keypoint results JSON to ``out`` (when given), then scored against ``annotations``.

  Returns {'stats': score()'s dict, 'boxes': 'ground truth' or the detections file,
  'num_people', 'num_results', 'skipped' (people left out, by reason), 'results'}.
  """
  from posemachines.evaluation import inference
  split = split or config.data.eval_split
  view_list = inference.views(inference.DEFAULT_SCALES if scales is None else scales, flip)
  gt = ground_truth(annotations)
  skipped = {}
  if detections is None:
    ds, ids, areas = _ground_truth_box_people(config, split)
    box_scores = None
  else:
    people = detection_people(load_detections(detections, min_detection_score), gt,
                              config.data.coco_aspect_ratio, config.data.coco_padding,
                              _name(detections))
    ds, people, skipped = _detected_people(config, split, people)
    ids = np.array([p.image_id for p in people], np.int64)
    areas = np.array([p.area for p in people], np.float64)
    box_scores = np.array([p.score for p in people], np.float64)
  pred = _predict(model, ds, view_list, batch_size, config.data.fast_decode, grid_stride)
  res = results(pred, ids, box_scores, areas, parts=model.parts)
  if out:
    write_results(out, res)
  stats = score(annotations, out if out else res)
  return {'stats': stats, 'boxes': 'ground truth' if detections is None else _name(detections),
          'num_people': int(len(pred)), 'num_results': len(res), 'skipped': skipped,
          'results': out}
