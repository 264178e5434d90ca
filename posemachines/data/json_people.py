"""``json_people``: people annotated in a JSON list in MPII's joint order, with bad input reported.

The annotation file is a JSON list with one record per person (the layout of the common MPII JSON
export); records that share an ``image`` are the people of one image:

  image             the image file, relative to ``image_dir`` (default: the annotation file's folder)
  joints            16 (x, y) pairs in MPII joint order, in pixels
  joints_vis        16 flags, 1 = annotated and visible (optional: then every joint with real
                    coordinates counts as visible)
  center            the person's centre (x, y), MPII's objpos
  scale             the person's height / 200 px
  joints_annotated  16 flags (optional), overrides the rule below
  head_box          [x1, y1, x2, y2] (optional), estimated as below when absent
  split             'train' or 'validation' (optional), default below

Labels. Without ``joints_annotated`` a joint is annotated when ``joints_vis`` is 1, or when
``joints_vis`` is 0 but the joint has real coordinates (finite, not negative, not (0, 0)): it is then
annotated but occluded. A joint is visible when annotated with ``joints_vis`` 1. Coordinates are
stored exactly as in the file (as float32), except that non-finite coordinates of unannotated joints
become MPII's "no label" marker (-1, -1).

Head box. Without ``head_box`` the box is an axis-aligned square centred between the head top and
the upper neck with side L / (0.6 sqrt 2), L being their distance, so that its head size
(0.6 x diagonal) equals L: PCKh's threshold is then a fraction of the head segment length, as the
MPII paper defines it.

Splits. A record without ``split`` goes by its image: images are numbered k = 0, 1, ... in the order
they first appear, and image k is in validation when floor((k + 1) f) > floor(k f) for the config's
``validation_fraction`` f, so that the people of an image stay together and every 1/f-th image is
held out.

Bad input. Every record is checked before anything is written; a record is skipped, counted in a
``SkipReport`` under a reason naming the record and file, when: it is not a well-formed record
('malformed record': wrong types, missing ``joints``, not 16 joints), an annotated joint, the
centre, the scale or the head box is NaN or infinite ('non-finite coordinate'), the scale is
missing or not positive ('bad scale'), the head box has no area ('zero-size head box') or cannot be
estimated ('no head box'), its centre or scale is implausible for its image ('implausible
centre': more than one image width or height outside the image; 'implausible scale': a person
height of 200 x scale under 8 px or over 4 times the image's larger side, so that the crop would
be all padding or a few pixels blown up), or its image is missing, truncated or corrupt
('missing image', 'corrupt image', 'unsupported image'). A record with an annotated keypoint
outside the image rectangle is kept unchanged (counted as 'keypoint outside image (kept)'). The
report is logged at the end of preparation and stored as ``skip_report.json`` in the data
directory (see ``skip_report``).
A missing or invalid annotation file raises before any work, as does a set whose every record is
skipped.
"""
from __future__ import annotations

import collections
from concurrent import futures
import dataclasses
import hashlib
import json
import math
import os
import re

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from posemachines.core import errors, skeleton
from posemachines.data import features as features_lib
from posemachines.data import local_builder
from posemachines.data import report as report_lib

REPORT_FILE = 'skip_report.json'
OUTSIDE = 'keypoint outside image (kept)'
MALFORMED = 'malformed record'
NON_FINITE = 'non-finite coordinate'
BAD_SCALE = 'bad scale'
ZERO_HEAD_BOX = 'zero-size head box'
NO_HEAD_BOX = 'no head box'
# Implausible people: a centre more than CENTER_MARGIN image widths (heights) outside the image,
# or a person height (200 x scale px) under MIN_PERSON_PX or over MAX_PERSON_FACTOR times the
# image's larger side.
CENTER_MARGIN = 1.0
MIN_PERSON_PX = 8.0
MAX_PERSON_FACTOR = 4.0
IMPLAUSIBLE_CENTER = ('implausible centre (more than one image width or height outside the '
                      'image)')
IMPLAUSIBLE_SCALE = (f'implausible scale (person height 200 x scale under {MIN_PERSON_PX:g} px '
                     f'or over {MAX_PERSON_FACTOR:g} x the image\'s larger side)')

_P = skeleton.MPII.num_parts
_HEAD_TOP, _NECK = skeleton.MPII.index('head_top'), skeleton.MPII.index('neck')
_SPLITS = ('train', 'validation')
_ENCODING = 'jpeg'


class _Skip(Exception):
  """A record to leave out, with a SkipReport reason and a detail naming what is wrong."""

  def __init__(self, reason: str, detail: str):
    super().__init__(detail)
    self.reason = reason
    self.detail = detail


# ----------------------------------------------------------------------------------------------
# Reading and checking records
# ----------------------------------------------------------------------------------------------

def load_annotations(path: str | os.PathLike) -> list:
  """The records of the annotation file; raises FileNotFoundError / ValueError naming ``path``."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise errors.MissingData(f'annotation file not found: {path}')
  try:
    with open(path, 'rb') as f:
      records = json.loads(f.read())
  except (ValueError, UnicodeDecodeError) as e:
    raise errors.BadFile(f'annotation file {path} is not valid JSON: {e}') from e
  if not isinstance(records, list):
    raise errors.BadFile(f'annotation file {path} must hold a JSON list of person records, '
                     f'not a {type(records).__name__}')
  if not records:
    raise errors.BadFile(f'annotation file {path} holds no person records')
  return records


@dataclasses.dataclass
class _Person:
  """One parsed record (coordinates as float64, exactly as in the file)."""
  index: int
  image: str
  joints: np.ndarray     # [P, 2]
  annotated: np.ndarray  # bool [P]
  visible: np.ndarray    # bool [P]
  center: np.ndarray     # [2]
  scale: float | None
  head_box: np.ndarray | None
  split: str | None

  @property
  def name(self) -> str:
    return f'record {self.index} ({self.image})'

  def stored_joints(self) -> np.ndarray:
    """float32 [P, 2]: the file's coordinates; unannotated non-finite ones become (-1, -1)."""
    bad = ~self.annotated & ~np.isfinite(self.joints).all(1)
    return np.where(bad[:, None], -1.0, self.joints).astype(np.float32)

  def as_other(self) -> np.ndarray:
    """float32 [P, 3]: x, y, annotated, for the ``others`` of the people sharing its image."""
    finite = np.isfinite(self.joints).all(1)
    joints = np.where(finite[:, None], self.joints, -1.0)
    annotated = self.annotated & finite
    return np.concatenate([joints, annotated[:, None]], axis=1).astype(np.float32)


def _numbers(record: dict, field: str, shape: tuple, required: bool = True) -> np.ndarray | None:
  """``record[field]`` as a float64 array of ``shape``; None when absent and not required."""
  value = record.get(field)
  if value is None:
    if required:
      raise _Skip(MALFORMED, f'missing {field!r}')
    return None
  try:
    arr = np.array(value, dtype=object)
  except ValueError:
    raise _Skip(MALFORMED, f'{field!r} is not a {shape} array of numbers') from None
  if arr.shape != shape:
    raise _Skip(MALFORMED, f'{field!r} has shape {arr.shape}, expected {shape}')
  if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arr.flat):
    raise _Skip(MALFORMED, f'{field!r} holds values that are not numbers: {value!r}')
  return arr.astype(np.float64)


def _flags(record: dict, field: str) -> np.ndarray | None:
  values = _numbers(record, field, (_P,), required=False)
  if values is not None and not np.isin(values, (0, 1)).all():
    raise _Skip(MALFORMED, f'{field!r} must hold 0 or 1, got {record[field]!r}')
  return None if values is None else values.astype(bool)


def _parse(index: int, record) -> _Person:
  """The record as a _Person; raises _Skip('malformed record') when its fields are unusable."""
  if not isinstance(record, dict):
    raise _Skip(MALFORMED, f'a {type(record).__name__}, not an object')
  image = record.get('image')
  if not isinstance(image, str) or not image:
    raise _Skip(MALFORMED, f"'image' must be a file name, got {image!r}")
  joints = _numbers(record, 'joints', (_P, 2))
  vis, annotated = _flags(record, 'joints_vis'), _flags(record, 'joints_annotated')
  center = _numbers(record, 'center', (2,))
  scale = _numbers(record, 'scale', (), required=False)
  head_box = _numbers(record, 'head_box', (4,), required=False)
  split = record.get('split')
  if split is not None and split not in _SPLITS:
    raise _Skip(MALFORMED, f"'split' must be one of {_SPLITS}, got {split!r}")
  with np.errstate(invalid='ignore'):
    real = np.isfinite(joints).all(1) & (joints >= 0).all(1) & (joints != 0).any(1)
  vis = real if vis is None else vis
  annotated = (vis | real) if annotated is None else annotated
  return _Person(index, image, joints, annotated, annotated & vis, center,
                 None if scale is None else float(scale), head_box, split)


def estimate_head_box(joints: np.ndarray) -> np.ndarray:
  """The square head box whose head size (0.6 x diagonal) is the head-top to upper-neck length."""
  top, neck = np.asarray(joints, np.float64)[[_HEAD_TOP, _NECK]]
  half = np.hypot(*(top - neck)) / (0.6 * math.sqrt(2)) / 2
  mid = (top + neck) / 2
  return np.concatenate([mid - half, mid + half])


def _head_box(person: _Person) -> np.ndarray:
  """The person's head box after the coordinate, scale and box checks (raises _Skip)."""
  bad = [f'{skeleton.MPII.parts[i]} {person.joints[i].tolist()}'
         for i in np.flatnonzero(person.annotated & ~np.isfinite(person.joints).all(1))]
  for field, value in (('center', person.center), ('scale', person.scale),
                       ('head_box', person.head_box)):
    if value is not None and not np.isfinite(value).all():
      bad.append(f'{field} {np.asarray(value).tolist()}')
  if bad:
    raise _Skip(NON_FINITE, ', '.join(bad))
  if person.scale is None or person.scale <= 0:
    raise _Skip(BAD_SCALE, f'scale {person.scale}')
  box = person.head_box
  if box is None:
    if not person.annotated[[_HEAD_TOP, _NECK]].all():
      raise _Skip(NO_HEAD_BOX, 'no head_box, and head top or neck not annotated')
    box = estimate_head_box(person.joints)
  if box[2] <= box[0] or box[3] <= box[1]:
    raise _Skip(ZERO_HEAD_BOX, f'head box {box.tolist()}')
  return box


def _implausible(person: _Person, height: int, width: int) -> tuple[str, str] | None:
  """(reason, detail) when the centre or scale cannot be the person's in an image of this size
  (its crop would be all padding, or a few pixels of the image blown up), else None."""
  cx, cy = person.center
  if not (-CENTER_MARGIN * width <= cx <= (1 + CENTER_MARGIN) * width
          and -CENTER_MARGIN * height <= cy <= (1 + CENTER_MARGIN) * height):
    return IMPLAUSIBLE_CENTER, f'center {person.center.tolist()} for a {width}x{height} image'
  tall = 200.0 * person.scale
  if not MIN_PERSON_PX <= tall <= MAX_PERSON_FACTOR * max(width, height):
    return IMPLAUSIBLE_SCALE, (f'scale {person.scale:g} (a person {tall:g} px tall) for a '
                               f'{width}x{height} image')
  return None


def _outside(person: _Person, height: int, width: int) -> list[str]:
  """The annotated joints outside the image rectangle [0, width] x [0, height]."""
  x, y = person.joints[:, 0], person.joints[:, 1]
  out = person.annotated & ((x < 0) | (y < 0) | (x > width) | (y > height))
  return [f'{skeleton.MPII.parts[i]} {person.joints[i].tolist()}' for i in np.flatnonzero(out)]


# ----------------------------------------------------------------------------------------------
# Planning a build: which records become which examples
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Entry:
  """A record that passed every check, ready to become an example."""
  person: _Person
  head_box: np.ndarray
  others: np.ndarray  # float32 [K, P, 3]


def _is_validation(k: int, fraction: float) -> bool:
  return math.floor((k + 1) * fraction) > math.floor(k * fraction)


def _inspect_all(paths: list[str]) -> dict:
  """path -> ImageInfo, or the BadImage it raised; images are decoded in parallel."""
  def inspect(path):
    try:
      return report_lib.inspect_image(path)
    except report_lib.BadImage as e:
      return e
  with futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
    return dict(zip(paths, pool.map(inspect, paths)))


def plan(records: list, image_dir: str, validation_fraction: float,
         report: report_lib.SkipReport) -> dict[str, dict[str, list[_Entry]]]:
  """split -> image -> the entries of that image, in record order; skips go into ``report``."""
  people = []
  for index, record in enumerate(records):
    try:
      people.append(_parse(index, record))
    except _Skip as s:
      report.skip(s.reason, f'record {index}: {s.detail}')
  by_image = collections.defaultdict(list)
  for person in people:
    by_image[person.image].append(person)
  image_split = {image: 'validation' if _is_validation(k, validation_fraction) else 'train'
                 for k, image in enumerate(by_image)}

  checked = []
  for person in people:
    try:
      checked.append((person, _head_box(person)))
    except _Skip as s:
      report.skip(s.reason, f'{person.name}: {s.detail}')
  images = _inspect_all(sorted({os.path.join(image_dir, p.image) for p, _ in checked}))

  out = {split: collections.defaultdict(list) for split in _SPLITS}
  for person, box in checked:
    info = images[os.path.join(image_dir, person.image)]
    if isinstance(info, report_lib.BadImage):
      report.skip(info.reason, f'record {person.index}: {info.path}: {info.detail}')
      continue
    implausible = _implausible(person, info.height, info.width)
    if implausible:
      report.skip(implausible[0], f'{person.name}: {implausible[1]}')
      continue
    outside = _outside(person, info.height, info.width)
    if outside:
      report.keep(OUTSIDE, f'{person.name}: {", ".join(outside)} outside '
                           f'{info.width}x{info.height}')
    others = [q.as_other() for q in by_image[person.image] if q.index != person.index]
    others = np.stack(others) if others else np.zeros((0, _P, 3), np.float32)
    split = person.split or image_split[person.image]
    out[split][person.image].append(_Entry(person, box, others))
  return {split: dict(groups) for split, groups in out.items()}


def _example(entry: _Entry, encoded: bytes) -> dict:
  p = entry.person
  return {
      'image': encoded,
      'image_id': p.image,
      'joints': p.stored_joints(),
      'joints_annotated': p.annotated,
      'joints_visible': p.visible,
      'center': p.center.astype(np.float32),
      'scale': np.float32(p.scale),
      'head_box': entry.head_box.astype(np.float32),
      'norm': np.float32(features_lib.head_size(entry.head_box)),
      'others': entry.others,
  }


# ----------------------------------------------------------------------------------------------
# The tensorflow-datasets builder
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class JsonPeopleConfig(tfds.core.BuilderConfig):
  """The annotation file, the image folder and the default validation fraction."""
  annotations: str = ''
  image_dir: str = ''
  validation_fraction: float = 0.0


class JsonPeople(local_builder.LocalBuilder):
  """People annotated in a JSON list of MPII-style records, bad records skipped and reported."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  # Where tfds looks for a checksums file; set directly so that no package-resource lookup is needed.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features_lib.features(_P, encoding=_ENCODING),
        metadata=tfds.core.MetadataDict(skeleton='mpii', metric='pckh'),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is local
    cfg = self.builder_config
    if not isinstance(cfg, JsonPeopleConfig) or not cfg.annotations:
      raise ValueError('json_people needs a JsonPeopleConfig naming the annotation file; '
                       'see json_people.builder()')
    records = _check_inputs(cfg.annotations, cfg.image_dir)
    self._report = report_lib.SkipReport(f'json_people {cfg.annotations}')
    groups = plan(records, cfg.image_dir, cfg.validation_fraction, self._report)
    if not any(groups.values()):
      raise errors.BadFile(f'every record of {cfg.annotations} was skipped:\n'
                           f'{self._report.format()}')
    return {split: self._generate_examples(g) for split, g in groups.items() if g}

  def _generate_examples(self, groups: dict[str, list[_Entry]]):
    for image, entries in groups.items():
      encoded, _ = report_lib.read_image(os.path.join(self.builder_config.image_dir, image),
                                         _ENCODING)
      for entry in entries:
        ex = _example(entry, encoded)
        features_lib.check_example(ex, _P, entry.person.name)
        self._report.kept()
        yield entry.person.index, ex

  def _download_and_prepare(self, dl_manager, download_config):
    super()._download_and_prepare(dl_manager, download_config)
    (self.data_path / REPORT_FILE).write_text(json.dumps(self._report.summary(), indent=2))
    self._report.log()


def _check_inputs(annotations: str, image_dir: str) -> list:
  records = load_annotations(annotations)
  if not os.path.isdir(image_dir):
    raise errors.MissingData(f'image folder not found: {image_dir} (images of {annotations})')
  return records


def skip_report(b: JsonPeople) -> report_lib.SkipReport:
  """The SkipReport stored when ``b`` was prepared."""
  path = b.data_path / REPORT_FILE
  if not path.exists():
    raise FileNotFoundError(f'no skip report at {path}: is the dataset prepared?')
  return report_lib.SkipReport.from_summary(json.loads(path.read_text()))


def config_name(annotations: str, image_dir: str, validation_fraction: float) -> str:
  """The annotation file's stem and a hash of the paths, the fraction and the file's contents.

  Hashing the contents too means an edited annotation file gets a fresh dataset, not a stale one.
  """
  digest = hashlib.sha256(json.dumps([annotations, image_dir, validation_fraction]).encode())
  with open(annotations, 'rb') as f:
    digest.update(f.read())
  stem = re.sub(r'[^a-z0-9]+', '_', os.path.splitext(os.path.basename(annotations))[0].lower())
  return f'{stem.strip("_") or "people"}_{digest.hexdigest()[:12]}'


def make_config(annotations: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                validation_fraction: float = 0.0) -> JsonPeopleConfig:
  """The config for an annotation file (absolute paths; images default to the file's folder)."""
  annotations = os.path.abspath(os.fspath(annotations))
  image_dir = os.path.abspath(os.fspath(image_dir or os.path.dirname(annotations)))
  if not 0.0 <= validation_fraction <= 1.0:
    raise errors.BadFlag(f'validation_fraction must be in [0, 1], got {validation_fraction}')
  _check_inputs(annotations, image_dir)
  return JsonPeopleConfig(
      name=config_name(annotations, image_dir, float(validation_fraction)),
      description=f'{annotations}, images in {image_dir}, '
                  f'validation fraction {validation_fraction}',
      annotations=annotations, image_dir=image_dir,
      validation_fraction=float(validation_fraction))


def builder(annotations: str | os.PathLike, data_dir: str | os.PathLike,
            image_dir: str | os.PathLike | None = None,
            validation_fraction: float = 0.0) -> JsonPeople:
  """A prepared ``json_people`` builder for the annotation file (prepared on first use)."""
  b = JsonPeople(data_dir=os.fspath(data_dir),
                 config=make_config(annotations, image_dir, validation_fraction))
  if not b.is_prepared():
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return b
