"""``mpii``: MPII Human Pose (Andriluka et al. 2014) from the official archives.

Splits (one example per person, as the CPM release trained):
  train       people of ``img_train == 1`` images with keypoints, minus the validation people
  validation  the standard 2,958 people of Tompson et al. (``mpii_tompson_validation.json``:
              1-based [annolist index, annorect index] pairs)
  test        people of ``img_train == 0`` images: objpos and scale only, no keypoints (norm 0)

Per person: joints in MPII order (ids 0-15), ``objpos`` as the centre, ``scale`` (height / 200 px),
the head box and its head size (0.6 x diagonal) as the PCKh normaliser, and every other person of
the image with keypoints in ``others`` (stage 1 is supervised with all of them).

Messy annotations (see mpii_mat.py) are decided here, each counted in the skip report:
  kept:    fewer than 16 points (missing joints unannotated); ``is_visible`` missing, empty or
           unreadable (visible, as the release read it) or a string ('0' / '1' read as numbers);
           a point with an id out of range, a repeated id or no finite coordinate (that point
           dropped); keypoints outside the image
  skipped: a person without keypoints (train / validation), without objpos or a positive scale,
           without a head box or with a zero-size one; every person of an image that is missing,
           truncated or corrupt, or has no name
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.resources
import json

import numpy as np
import tensorflow_datasets as tfds

from posemachines.data import features as features_lib
from posemachines.data import manual
from posemachines.data import mpii_mat
from posemachines.data import report as report_lib

_P = mpii_mat.NUM_JOINTS
_ENCODING = 'jpeg'
ANNOTATION_ZIP = 'mpii_human_pose_v1_u12_2.zip'
ANNOTATION_MAT = 'mpii_human_pose_v1_u12_1.mat'
IMAGES_TAR = 'mpii_human_pose_v1.tar.gz'

NO_KEYPOINTS = 'no keypoints'
NO_CENTER = 'no objpos or scale'
NO_HEAD_BOX = 'no head box'
ZERO_HEAD_BOX = 'zero-size head box'
NO_IMAGE_NAME = 'image name missing'
FEWER_POINTS = f'fewer than {_P} points (kept, missing joints unannotated)'
OUTSIDE = 'keypoint outside image (kept)'
VALIDATION_MISSING = 'validation pair not in the annotations'
_VISIBILITY_NOTES = (mpii_mat.VISIBLE_MISSING, mpii_mat.VISIBLE_EMPTY, mpii_mat.VISIBLE_BAD)

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Register at http://human-pose.mpi-inf.mpg.de/ and download into the manual directory
(--config.data.manual_dir, default <data_dir>/downloads/manual), optionally in a subfolder mpii/:
  {IMAGES_TAR}   the images (12.9 GB; read as it is, or extracted to images/)
  {ANNOTATION_ZIP}  the annotations (read as it is, or extracted: {ANNOTATION_MAT})
"""


def validation_pairs(path: str | None = None) -> set[tuple[int, int]]:
  """The standard validation people as 1-based (image index, person index) pairs."""
  if path:
    with open(path) as f:
      data = json.load(f)
  else:
    text = importlib.resources.files('posemachines.data').joinpath(
        'mpii_tompson_validation.json').read_text()
    data = json.loads(text)
  persons = data['persons'] if isinstance(data, dict) else data
  return {(int(i), int(p)) for i, p in persons}


@dataclasses.dataclass
class Entry:
  """One person to write: its image, record, the other people of the image, and report notes."""
  image: mpii_mat.ImageAnnotation
  person: mpii_mat.Person
  others: np.ndarray  # float32 [K, P, 3]
  notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  @property
  def key(self) -> str:
    return f'{self.image.index}_{self.person.index}'

  @property
  def name(self) -> str:
    return f'image {self.image.index} ({self.image.name}) person {self.person.index}'


def _as_other(person: mpii_mat.Person) -> np.ndarray:
  out = np.zeros((_P, 3), np.float32)
  out[:, :2] = -1.0
  for pid, (x, y, _) in person.points.items():
    out[pid] = (x, y, 1.0)
  return out


def _check(person: mpii_mat.Person, labelled: bool, where: str,
           report: report_lib.SkipReport) -> list[tuple[str, str]] | None:
  """The report notes of ``person`` if it becomes an example, else None (skip in ``report``)."""
  if labelled and not person.points:
    report.skip(NO_KEYPOINTS, where)
    return None
  if person.objpos is None or person.scale is None or person.scale <= 0:
    report.skip(NO_CENTER, f'{where}: objpos {person.objpos}, scale {person.scale}')
    return None
  if labelled:
    if person.head_box is None:
      report.skip(NO_HEAD_BOX, where)
      return None
    x1, y1, x2, y2 = person.head_box
    if x2 <= x1 or y2 <= y1:
      report.skip(ZERO_HEAD_BOX, f'{where}: head box {list(person.head_box)}')
      return None
  notes = []
  for note in dict.fromkeys(person.notes):  # each note once per person
    text = f'{note} (kept as visible)' if note in _VISIBILITY_NOTES else (
        f'{note} (kept, read as a number)' if note == mpii_mat.VISIBLE_STRING else note)
    notes.append((text, where))
  if labelled and len(person.points) < _P:
    notes.append((FEWER_POINTS, f'{where}: {len(person.points)} points'))
  return notes


def plan(images: list[mpii_mat.ImageAnnotation], validation: set[tuple[int, int]],
         report: report_lib.SkipReport) -> dict[str, list[Entry]]:
  """split -> the people to write; people left out go in ``report`` (the notes of the people
  written are recorded when they are written, once their image has been read)."""
  out = {'train': [], 'validation': [], 'test': []}
  seen = set()
  for image in images:
    for person in image.people:
      pair = (image.index, person.index)
      seen.add(pair)
      if image.img_train == 0:
        split = 'test'
      elif pair in validation:
        split = 'validation'
      else:
        split = 'train'
      where = f'image {image.index} ({image.name or "?"}) person {person.index}'
      if not image.name:
        report.skip(NO_IMAGE_NAME, where)
        continue
      notes = _check(person, split != 'test', where, report)
      if notes is None:
        continue
      others = [_as_other(q) for q in image.people if q is not person and q.points]
      others = np.stack(others) if others else np.zeros((0, _P, 3), np.float32)
      out[split].append(Entry(image, person, others, notes))
  for pair in sorted(validation - seen):
    report.keep(VALIDATION_MISSING, f'image {pair[0]} person {pair[1]}')
  return out


def example(entry: Entry, encoded: bytes) -> dict:
  person = entry.person
  joints = np.full((_P, 2), -1.0, np.float32)
  annotated = np.zeros(_P, bool)
  visible = np.zeros(_P, bool)
  for pid, (x, y, vis) in person.points.items():
    joints[pid] = (x, y)
    annotated[pid] = True
    visible[pid] = True if vis is None else vis
  box = np.asarray(person.head_box or (0.0, 0.0, 0.0, 0.0), np.float32)
  return {
      'image': encoded,
      'image_id': entry.image.name,
      'joints': joints,
      'joints_annotated': annotated,
      'joints_visible': visible,
      'center': np.asarray(person.objpos, np.float32),
      'scale': np.float32(person.scale),
      'head_box': box,
      'norm': np.float32(features_lib.head_size(box) if annotated.any() else 0.0),
      'others': entry.others,
  }


def outside(joints: np.ndarray, annotated: np.ndarray, height: int, width: int) -> bool:
  x, y = joints[:, 0], joints[:, 1]
  return bool((annotated & ((x < 0) | (y < 0) | (x > width) | (y > height))).any())


@dataclasses.dataclass(eq=False)
class MpiiConfig(tfds.core.BuilderConfig):
  """``validation_file``: a JSON list of [image, person] pairs (default: the standard one)."""
  validation_file: str = ''


class Mpii(manual.ManualBuilder, skip_registration=True):
  """MPII Human Pose from the official archives in the manual directory."""

  name = 'mpii'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  DOWNLOAD = (f'register at http://human-pose.mpi-inf.mpg.de/ and download {IMAGES_TAR} and '
              f'{ANNOTATION_ZIP}')
  BUILDER_CONFIGS = [MpiiConfig(name='default', description='The standard validation split.')]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=features_lib.features(_P, encoding=_ENCODING),
        homepage='http://human-pose.mpi-inf.mpg.de/',
        metadata=tfds.core.MetadataDict(skeleton='mpii', metric='pckh'))

  def _split_generators(self, dl_manager):
    manual_dir = str(dl_manager.manual_dir)
    notes, prefix = manual.locate(manual_dir, 'mpii', (ANNOTATION_ZIP,), ANNOTATION_MAT,
                                  self.DOWNLOAD)
    where = notes.describe(prefix + ANNOTATION_MAT)
    images = mpii_mat.load(notes.read(prefix + ANNOTATION_MAT), where=where)
    self._images, self._image_prefix = manual.locate(
        manual_dir, 'mpii', (IMAGES_TAR, 'mpii_human_pose_v1.tar'), 'images/', self.DOWNLOAD)
    self._image_prefix += 'images/'
    self._report = report_lib.SkipReport(f'mpii {where}')
    groups = plan(images, validation_pairs(self.builder_config.validation_file or None),
                  self._report)
    if not any(groups.values()):
      raise ValueError(f'{where}: no person can be used:\n{self._report.format()}')
    return {split: self._generate_examples(entries) for split, entries in groups.items()
            if entries}

  def _generate_examples(self, entries: list[Entry]):
    by_image = collections.defaultdict(list)
    for entry in entries:
      by_image[self._image_prefix + entry.image.name].append(entry)
    for name, result in manual.decoded(self._images, sorted(by_image), _ENCODING):
      group = by_image[name]
      if isinstance(result, report_lib.BadImage):
        for entry in group:
          self._report.skip(result.reason, f'{entry.name}: {result.detail}')
        continue
      encoded, (height, width) = result
      for entry in group:
        ex = example(entry, encoded)
        if outside(ex['joints'], ex['joints_annotated'], height, width):
          self._report.keep(OUTSIDE, f'{entry.name}: image {width}x{height}')
        features_lib.check_example(ex, _P, entry.name)
        for note, where in entry.notes:
          self._report.keep(note, where)
        self._report.kept()
        yield entry.key, ex


def make_config(validation_file: str = '') -> MpiiConfig:
  if not validation_file:
    return Mpii.BUILDER_CONFIGS[0]
  with open(validation_file, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:12]
  return MpiiConfig(name=f'validation_{digest}', validation_file=validation_file,
                    description=f'validation people from {validation_file}')


def builder(data_dir: str, manual_dir: str | None = None, validation_file: str = '') -> Mpii:
  """A prepared ``mpii`` builder (prepared from ``manual_dir`` on first use)."""
  b = Mpii(data_dir=data_dir, config=make_config(validation_file))
  return manual.prepare(b, manual_dir)
