"""``coco``: COCO keypoints 2017 (Lin et al. 2014) from the official files.

Splits (one example per person instance):
  train       person_keypoints_train2017.json with the images of train2017.zip (or train2017/)
  validation  person_keypoints_val2017.json with the images of val2017.zip (or val2017/)
The annotation files are read from ``annotations_trainval2017.zip`` as it is or extracted; the
image zips are read member by member, never extracted. A split whose annotation file or images are
absent is left out (the images' absence is counted in the skip report); test-dev has no keypoints.

An example is a person that is not a crowd and has at least one labelled keypoint, in COCO's
order (skeleton 'coco17'). Visibility: COCO's v = 0 (not labelled) is unannotated (joints -1, -1);
v = 1 (labelled, hidden) is annotated and not visible; v = 2 is annotated and visible. Besides the
fields of every builder (features.py) an example has ``box`` (x, y, w, h: COCO's box clipped to
the image), ``area`` (COCO's segment area, the OKS's object scale squared), ``coco_image_id`` and
``annotation_id``. ``others`` holds the image's other non-crowd people with labelled keypoints.
``norm`` is sqrt(area), the length that scales OKS distances; metric 'oks' (score with
posemachines/evaluation/coco_eval.py).

Centre and scale from the box, as top-down pose methods do: the centre is the (clipped) box's
centre; the box is grown about it to the input's aspect ratio (width / height: the builder
config's ``aspect_ratio``, from ``config.data.coco_aspect_ratio``, default 3 : 4 as 256 x 192 and
384 x 288 crops) and its height multiplied by ``padding`` (``config.data.coco_padding``, 1.25).
``scale`` is that padded height / 200, the project's convention (MPII's person height / 200 px).
The pipeline resizes an image by (crop height / 368) x target_dist / scale, so the padded box's
height becomes crop height x target_dist x 200 / 368 px: with ``TARGET_DIST`` = 368 / 200 it fills
the crop's height exactly (and, being grown to the crop's aspect ratio, its width), as top-down
methods crop; a smaller target_dist leaves a margin. On a square crop the 3 : 4 box fills the
height and three quarters of the width (config 'square' grows boxes to 1 : 1 instead).

Messy annotations, each counted in the skip report:
  kept:    a box reaching outside the image (clipped to it); keypoints outside the image; a point
           with a visibility other than 0, 1, 2 or without finite coordinates (that point
           dropped); an area that is not positive (the clipped box's area used); an image whose
           decoded size differs from its record (boxes clipped to the decoded size)
  skipped: a crowd; a person without labelled keypoints; a box of zero width or height, or not
           finite; a box entirely outside its image; an annotation whose image id has no image
           record, or whose record has no file name; a repeated annotation id; a malformed record;
           a category other than person; every person of a missing, truncated or corrupt image
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os

import numpy as np
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import features as features_lib
from posemachines.data import manual
from posemachines.data import report as report_lib

_S = skeleton.COCO17
_P = _S.num_parts
_ENCODING = 'jpeg'
PERSON_CATEGORY = 1
ASPECT_RATIO = 192 / 256
PADDING = 1.25
TARGET_DIST = 368 / 200  # the padded box fills the crop's height
ANNOTATION_ZIP = 'annotations_trainval2017.zip'
SPLITS = {'train': 'train2017', 'validation': 'val2017'}

# COCO's keypoint names (its category's ``keypoints``) in skeleton 'coco17' order.
KEYPOINT_NAMES = tuple(p.replace('l_', 'left_', 1) if p.startswith('l_') else
                       p.replace('r_', 'right_', 1) if p.startswith('r_') else p
                       for p in _S.parts)

CROWD = 'crowd'
NO_KEYPOINTS = 'no labelled keypoints'
ZERO_BOX = 'zero-size or non-finite box'
BOX_OUTSIDE = 'box outside the image'
UNKNOWN_IMAGE = 'image id without an image record'
NO_FILE_NAME = 'image record without a file name'
DUPLICATE_ID = 'repeated annotation id'
MALFORMED = 'malformed annotation'
NOT_PERSON = 'category other than person'
NO_IMAGE_SET = 'annotations without their images (split left out)'
CLIPPED = 'box clipped to the image (kept)'
OUTSIDE = 'keypoint outside image (kept)'
BAD_VISIBILITY = 'visibility not 0, 1 or 2 (point dropped)'
NON_FINITE = 'labelled point without finite coordinates (point dropped)'
AREA_FROM_BOX = 'area not positive (box area used, kept)'
SIZE_MISMATCH = 'decoded image size differs from its record (kept)'

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download from https://cocodataset.org/#download into the manual directory
(--config.data.manual_dir, default <data_dir>/downloads/manual), optionally in a subfolder coco/:
  {ANNOTATION_ZIP}  the annotations (read as it is, or extracted:
                                annotations/person_keypoints_train2017.json, ..._val2017.json)
  train2017.zip, val2017.zip    the images (read as they are, or extracted to train2017/, val2017/)
Either split may be left out (val2017 alone is enough to evaluate).
"""


def annotation_file(split: str) -> str:
  return f'person_keypoints_{SPLITS[split]}.json'


def find_annotations(manual_dir: str, split: str) -> tuple[manual.Archive, str] | None:
  """The archive holding ``split``'s annotation file and its member prefix, or None. As
  ``manual.locate``, but an annotation zip that lacks this split is no error (the other split may
  be all it holds)."""
  marker = annotation_file(split)
  bases = [os.path.join(manual_dir, 'coco'), manual_dir]
  for base in bases:
    path = os.path.join(base, ANNOTATION_ZIP)
    if os.path.isfile(path):
      archive = manual.open_archive(path)
      prefix = archive.find(marker)
      if prefix is not None:
        return archive, prefix
  for base in bases:
    if os.path.isdir(base):
      folder = manual.FolderArchive(base)
      prefix = folder.find(marker)
      if prefix is not None:
        return folder, prefix
  return None


def find_images(manual_dir: str, split: str) -> tuple[manual.Archive, str] | None:
  """The archive holding ``split``'s images (``{train,val}2017.zip`` or its folder) and the prefix
  of its image files, or None."""
  folder = SPLITS[split]
  try:
    archive, prefix = manual.locate(manual_dir, 'coco', (f'{folder}.zip',), f'{folder}/',
                                    MANUAL_DOWNLOAD_INSTRUCTIONS)
  except FileNotFoundError:
    return None
  return archive, prefix + f'{folder}/'


def box_center_scale(box, aspect_ratio: float = ASPECT_RATIO,
                     padding: float = PADDING) -> tuple[np.ndarray, float]:
  """A box (x, y, w, h) -> its centre (x, y) and scale (padded height / 200; see the module
  docstring). The box is grown about its centre to ``aspect_ratio`` (width / height)."""
  x, y, w, h = (float(v) for v in box)
  center = np.array([x + w / 2, y + h / 2], np.float32)
  height = max(h, w / aspect_ratio)
  return center, height * padding / 200.0


def clip_box(box, width: int, height: int) -> np.ndarray:
  """(x, y, w, h) clipped to the image [0, width] x [0, height] (w or h 0 when outside)."""
  x, y, w, h = (float(v) for v in box)
  x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
  x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
  return np.array([x1, y1, x2 - x1, y2 - y1], np.float32)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  id: int
  file_name: str
  width: int
  height: int


@dataclasses.dataclass
class Person:
  """One annotation that can become an example (before its image is read)."""
  id: int
  image: ImageRecord
  joints: np.ndarray     # float32 [P, 2], -1 where unlabelled
  annotated: np.ndarray  # bool [P]
  visible: np.ndarray    # bool [P]
  box: np.ndarray        # float32 [4], COCO's (x, y, w, h)
  area: float            # COCO's, <= 0 when it gives none
  notes: list[str]

  @property
  def name(self) -> str:
    return f'annotation {self.id} (image {self.image.id}, {self.image.file_name})'


def _number(value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f'not a number: {value!r}')
  return float(value)


def read_annotations(data: bytes, where: str) -> tuple[dict[int, ImageRecord], list]:
  """A person_keypoints_*.json's contents -> its image records by id, and its annotations."""
  try:
    doc = json.loads(data)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f'{where} is not a JSON file: {e}') from e
  if not isinstance(doc, dict) or not isinstance(doc.get('annotations'), list) or not isinstance(
      doc.get('images'), list):
    raise ValueError(f'{where} is not a COCO annotation file (no "images" and "annotations" '
                     'lists)')
  for cat in doc.get('categories') or []:
    if isinstance(cat, dict) and cat.get('id') == PERSON_CATEGORY and cat.get('keypoints'):
      if tuple(cat['keypoints']) != KEYPOINT_NAMES:
        raise ValueError(f'{where}: the person category\'s keypoints {cat["keypoints"]} are not '
                         f'COCO\'s 17 ({", ".join(KEYPOINT_NAMES)})')
  images = {}
  for rec in doc['images']:
    try:
      image_id = int(rec['id'])
      size = int(rec.get('width') or 0), int(rec.get('height') or 0)
      images[image_id] = ImageRecord(image_id, str(rec.get('file_name') or ''), *size)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
      raise ValueError(f'{where}: malformed image record {str(rec)[:200]}: {e!r}') from e
  return images, doc['annotations']


def parse_keypoints(flat) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
  """COCO's 51 numbers -> joints [P, 2], annotated [P], visible [P] and notes."""
  values = np.asarray([_number(v) for v in flat], np.float64).reshape(_P, 3)
  xy, v = values[:, :2], values[:, 2]
  notes = []
  known = np.isin(v, (0, 1, 2))
  if not known.all():
    notes.append(BAD_VISIBILITY)
  labelled = known & (v > 0)
  finite = np.isfinite(xy).all(1)
  if (labelled & ~finite).any():
    notes.append(NON_FINITE)
  annotated = labelled & finite
  joints = np.where(annotated[:, None], xy, -1.0).astype(np.float32)
  return joints, annotated, annotated & (v == 2), notes


def parse_person(ann, images: dict[int, ImageRecord], report: report_lib.SkipReport,
                 where: str) -> Person | None:
  """The Person of one annotation record, or None (the reason counted in ``report``)."""
  if not isinstance(ann, dict):
    report.skip(MALFORMED, f'{where}: {str(ann)[:100]}')
    return None
  label = f'annotation {ann.get("id")} (image {ann.get("image_id")})'
  try:
    ann_id, image_id = int(ann['id']), int(ann['image_id'])
    if ann.get('category_id', PERSON_CATEGORY) != PERSON_CATEGORY:
      report.skip(NOT_PERSON, f'{label}: category {ann.get("category_id")}')
      return None
    if ann.get('iscrowd'):
      report.skip(CROWD, label)
      return None
    flat = ann.get('keypoints') or [0] * (3 * _P)
    if len(flat) != 3 * _P:
      raise ValueError(f'{len(flat)} keypoint numbers, expected {3 * _P}')
    joints, annotated, visible, notes = parse_keypoints(flat)
    box = np.asarray([_number(v) for v in ann['bbox']], np.float64)
    if box.shape != (4,):
      raise ValueError(f'bbox {ann["bbox"]} is not x, y, w, h')
    area = _number(ann.get('area', 0.0))
  except (KeyError, TypeError, ValueError) as e:
    report.skip(MALFORMED, f'{label}: {e!r}')
    return None
  if image_id not in images:
    report.skip(UNKNOWN_IMAGE, label)
    return None
  image = images[image_id]
  label = f'annotation {ann_id} (image {image_id}, {image.file_name or "?"})'
  if not image.file_name:
    report.skip(NO_FILE_NAME, label)
    return None
  if not annotated.any():
    report.skip(NO_KEYPOINTS, label)
    return None
  if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
    report.skip(ZERO_BOX, f'{label}: bbox {box.tolist()}')
    return None
  return Person(ann_id, image, joints, annotated, visible, box.astype(np.float32),
                area if math.isfinite(area) else 0.0, notes)


def plan(images: dict[int, ImageRecord], annotations: list,
         report: report_lib.SkipReport, where: str) -> list[Person]:
  """The people of one split that can become examples (the others counted in ``report``)."""
  people, seen = [], set()
  for k, ann in enumerate(annotations):
    person = parse_person(ann, images, report, f'{where} annotation #{k}')
    if person is None:
      continue
    if person.id in seen:
      report.skip(DUPLICATE_ID, person.name)
      continue
    seen.add(person.id)
    people.append(person)
  return people


def others_of(person: Person, group: list[Person]) -> np.ndarray:
  """The other people of ``person``'s image as float32 [K, P, 3] (x, y, annotated)."""
  rows = [np.concatenate([q.joints, q.annotated[:, None].astype(np.float32)], axis=1)
          for q in group if q is not person]
  return np.stack(rows).astype(np.float32) if rows else np.zeros((0, _P, 3), np.float32)


def example(person: Person, encoded: bytes, height: int, width: int, others: np.ndarray,
            aspect_ratio: float, padding: float, report: report_lib.SkipReport) -> dict | None:
  """The example of ``person`` in its decoded image, or None (reason counted in ``report``)."""
  box = clip_box(person.box, width, height)
  if not (box[2] > 0 and box[3] > 0):
    report.skip(BOX_OUTSIDE, f'{person.name}: bbox {person.box.tolist()}, image {width}x{height}')
    return None
  if not np.allclose(box, person.box):
    report.keep(CLIPPED, f'{person.name}: bbox {person.box.tolist()}, image {width}x{height}')
  if (person.image.width, person.image.height) != (width, height):
    report.keep(SIZE_MISMATCH, f'{person.name}: record {person.image.width}x'
                f'{person.image.height}, decoded {width}x{height}')
  area = person.area
  if not area > 0:
    area = float(box[2] * box[3])
    report.keep(AREA_FROM_BOX, person.name)
  x, y = person.joints[:, 0], person.joints[:, 1]
  if (person.annotated & ((x < 0) | (y < 0) | (x > width) | (y > height))).any():
    report.keep(OUTSIDE, f'{person.name}: image {width}x{height}')
  for note in person.notes:
    report.keep(note, person.name)
  center, scale = box_center_scale(box, aspect_ratio, padding)
  return {
      'image': encoded,
      'image_id': person.image.file_name,
      'joints': person.joints,
      'joints_annotated': person.annotated,
      'joints_visible': person.visible,
      'center': center,
      'scale': np.float32(scale),
      'head_box': np.zeros(4, np.float32),
      'norm': np.float32(math.sqrt(area)),
      'others': others,
      'box': box,
      'area': np.float32(area),
      'coco_image_id': np.int64(person.image.id),
      'annotation_id': np.int64(person.id),
  }


def features(encoding: str = _ENCODING) -> tfds.features.FeaturesDict:
  """Every builder's features plus COCO's box, area and ids."""
  base = dict(features_lib.features(_P, encoding=encoding))
  base.update({
      'box': tfds.features.Tensor(shape=(4,), dtype=np.float32),
      'area': tfds.features.Tensor(shape=(), dtype=np.float32),
      'coco_image_id': tfds.features.Tensor(shape=(), dtype=np.int64),
      'annotation_id': tfds.features.Tensor(shape=(), dtype=np.int64),
  })
  return tfds.features.FeaturesDict(base)


@dataclasses.dataclass(eq=False)
class CocoConfig(tfds.core.BuilderConfig):
  """``aspect_ratio``: the crop's width / height that boxes are grown to; ``padding``: the factor
  on the grown box's height."""
  aspect_ratio: float = ASPECT_RATIO
  padding: float = PADDING


class Coco(manual.ManualBuilder, skip_registration=True):
  """COCO keypoints 2017 from the official files in the manual directory."""

  name = 'coco'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  DOWNLOAD = (f'download {ANNOTATION_ZIP} and val2017.zip (and train2017.zip to train) from '
              'https://cocodataset.org/#download')
  BUILDER_CONFIGS = [
      CocoConfig(name='default', description='Boxes grown to 3 : 4 (256 x 192, 384 x 288 crops).'),
      CocoConfig(name='square', aspect_ratio=1.0, description='Boxes grown to 1 : 1.'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features(),
        homepage='https://cocodataset.org/#keypoints-2017',
        metadata=tfds.core.MetadataDict(skeleton='coco17', metric='oks'))

  def _split_generators(self, dl_manager):
    manual_dir = str(dl_manager.manual_dir)
    self._report = report_lib.SkipReport(f'coco {manual_dir}')
    out, found = {}, []
    for split, folder in SPLITS.items():
      marker = annotation_file(split)
      located = find_annotations(manual_dir, split)
      if located is None:
        continue
      notes, prefix = located
      where = notes.describe(prefix + marker)
      found.append(where)
      images, annotations = read_annotations(notes.read(prefix + marker), where)
      located = find_images(manual_dir, split)
      if located is None:
        self._report.skip(NO_IMAGE_SET, f'{where}: no {folder}.zip nor {folder}/')
        continue
      people = plan(images, annotations, self._report, where)
      if people:
        out[split] = self._generate_examples(people, *located)
    if not found:
      raise manual.MissingDataset([('coco', f'no {annotation_file("train")} nor '
                                    f'{annotation_file("validation")} in {manual_dir} (or its '
                                    f'coco/); {self.DOWNLOAD}')])
    if not out:
      raise ValueError(f'coco: no person can be used from {", ".join(found)}:\n'
                       f'{self._report.format()}')
    return out

  def _generate_examples(self, people: list[Person], archive: manual.Archive, prefix: str):
    by_image = collections.defaultdict(list)
    for person in people:
      by_image[prefix + person.image.file_name].append(person)
    config = self.builder_config
    for name, result in manual.decoded(archive, sorted(by_image), _ENCODING):
      group = by_image[name]
      if isinstance(result, report_lib.BadImage):
        for person in group:
          self._report.skip(result.reason, f'{person.name}: {result.detail}')
        continue
      encoded, (height, width) = result
      for person in group:
        ex = example(person, encoded, height, width, others_of(person, group),
                     config.aspect_ratio, config.padding, self._report)
        if ex is None:
          continue
        features_lib.check_example(ex, _P, person.name)
        self._report.kept()
        yield person.id, ex


def make_config(aspect_ratio: float = ASPECT_RATIO, padding: float = PADDING) -> CocoConfig:
  """The predefined config with these settings, or a new one named after them."""
  for config in Coco.BUILDER_CONFIGS:
    if math.isclose(config.aspect_ratio, aspect_ratio) and math.isclose(config.padding, padding):
      return config
  if not (aspect_ratio > 0 and padding > 0):
    raise ValueError(f'coco: aspect_ratio {aspect_ratio} and padding {padding} must be positive')
  return CocoConfig(name=f'aspect_{aspect_ratio:.4g}_padding_{padding:.4g}',
                    aspect_ratio=float(aspect_ratio), padding=float(padding),
                    description=f'Boxes grown to aspect ratio {aspect_ratio:.4g} and padded by '
                                f'{padding:.4g}.')


def builder(data_dir: str, manual_dir: str | None = None, aspect_ratio: float = ASPECT_RATIO,
            padding: float = PADDING) -> Coco:
  """A prepared ``coco`` builder (prepared from ``manual_dir`` on first use)."""
  b = Coco(data_dir=data_dir, config=make_config(aspect_ratio, padding))
  return manual.prepare(b, manual_dir)
