"""Reading and writing MPII Human Pose annotation files (MATLAB v5 .mat).

The official file holds a struct ``RELEASE`` with ``annolist`` (one entry per image: ``image.name``
and ``annorect``, one entry per person: head box ``x1, y1, x2, y2``, ``annopoints.point(k)`` with
``x, y, id, is_visible``, ``scale`` = person height / 200 px, ``objpos.x / .y``), ``img_train`` and
``single_person``. Prediction and ground-truth files used for scoring often hold a top-level
``annolist`` alone; ``load`` accepts both.

The annotations are messy, and ``load`` turns them into plain records without guessing:

  - ``annorect`` may be empty, a single struct or a struct array; ``annopoints`` may be empty or
    missing, and ``point`` a single struct (one point) or an array;
  - a point may lack ``is_visible``, or hold it empty, as a number or as a string ('0' / '1');
  - a point id may be out of 0..15, repeated, or not an integer, and a coordinate may be empty,
    non-numeric or not finite;
  - head box, ``objpos`` and ``scale`` may be missing or empty.

Each person keeps its 1-based position in ``annorect`` (``Person.index``), so that the standard
validation split's [image index, person index] pairs address it even when earlier rects are empty.
What was dropped or unusual is listed in ``Person.notes`` / ``ImageAnnotation.notes`` (short reason
strings, see the constants below), for the caller to count.

``write_release`` writes official-format files (for tests and for predictions to submit).
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
from typing import Any, Iterable

import numpy as np
import scipy.io

NUM_JOINTS = 16

# Notes (reasons) attached to people and images while reading.
ID_OUT_OF_RANGE = 'point id out of range (point dropped)'
BAD_ID = 'point id not an integer (point dropped)'
DUPLICATE_ID = 'repeated point id (later point dropped)'
BAD_COORDINATE = 'point coordinate missing or not finite (point dropped)'
VISIBLE_MISSING = 'is_visible missing'
VISIBLE_EMPTY = 'is_visible empty'
VISIBLE_STRING = 'is_visible a string'
VISIBLE_BAD = 'is_visible unreadable'
BAD_HEAD_BOX = 'head box not finite (ignored)'
NO_NAME = 'image name missing'


@dataclasses.dataclass
class Person:
  """One ``annorect`` entry: ``points`` maps joint id -> (x, y, visible or None when unknown)."""
  index: int                                    # 1-based position in the image's annorect
  points: dict[int, tuple[float, float, bool | None]]
  head_box: tuple[float, float, float, float] | None
  objpos: tuple[float, float] | None
  scale: float | None
  notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ImageAnnotation:
  """One ``annolist`` entry with its ``img_train`` flag and ``single_person`` list, if given."""
  index: int                                    # 1-based position in annolist
  name: str
  people: list[Person]
  img_train: int | None = None
  single_person: tuple[int, ...] = ()
  notes: list[str] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def _items(value) -> list:
  """A MATLAB struct array / cell / scalar loaded with squeeze_me as a Python list."""
  if value is None:
    return []
  if isinstance(value, np.ndarray):
    if value.dtype == object or value.dtype.names:
      return list(value.ravel())
    return list(value.ravel()) if value.size else []
  return [value]


def _field(struct, name: str, default=None):
  names = getattr(struct, '_fieldnames', None)
  if names is None or name not in names:
    return default
  return getattr(struct, name)


def _is_empty(value) -> bool:
  return value is None or (isinstance(value, np.ndarray) and value.size == 0) or (
      isinstance(value, str) and not value.strip())


def _number(value) -> float | None:
  """A finite float from a MATLAB scalar (number, 1-element array or numeric string), else None."""
  if _is_empty(value):
    return None
  if isinstance(value, np.ndarray):
    if value.size != 1:
      return None
    value = value.ravel()[0]
  if isinstance(value, (str, bytes)):
    try:
      value = float(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
      return None
  try:
    out = float(value)
  except (TypeError, ValueError):
    return None
  return out if math.isfinite(out) else None


def _visible(point, notes: list[str]) -> bool | None:
  """``is_visible`` as a bool, or None when missing, empty or unreadable (noted in ``notes``)."""
  names = getattr(point, '_fieldnames', None) or ()
  if 'is_visible' not in names:
    notes.append(VISIBLE_MISSING)
    return None
  value = point.is_visible
  if _is_empty(value):
    notes.append(VISIBLE_EMPTY)
    return None
  if isinstance(value, (str, bytes)):
    notes.append(VISIBLE_STRING)
  number = _number(value)
  if number is None:
    notes.append(VISIBLE_BAD)
    return None
  return number != 0


def _person(index: int, rect) -> Person:
  notes: list[str] = []
  points: dict[int, tuple[float, float, bool | None]] = {}
  annopoints = _field(rect, 'annopoints')
  raw_points = [] if _is_empty(annopoints) else _items(_field(_items(annopoints)[0], 'point'))
  for point in raw_points:
    x, y = _number(_field(point, 'x')), _number(_field(point, 'y'))
    pid = _number(_field(point, 'id'))
    if pid is None or pid != int(pid):
      notes.append(BAD_ID)
      continue
    pid = int(pid)
    if not 0 <= pid < NUM_JOINTS:
      notes.append(ID_OUT_OF_RANGE)
      continue
    if pid in points:
      notes.append(DUPLICATE_ID)
      continue
    if x is None or y is None:
      notes.append(BAD_COORDINATE)
      continue
    points[pid] = (x, y, _visible(point, notes))

  box = tuple(_number(_field(rect, k)) for k in ('x1', 'y1', 'x2', 'y2'))
  present = [not _is_empty(_field(rect, k)) for k in ('x1', 'y1', 'x2', 'y2')]
  if any(v is None for v in box):
    if all(present):
      notes.append(BAD_HEAD_BOX)
    box = None
  objpos = _field(rect, 'objpos')
  center = None
  if not _is_empty(objpos):
    objpos = _items(objpos)[0]
    cx, cy = _number(_field(objpos, 'x')), _number(_field(objpos, 'y'))
    center = None if cx is None or cy is None else (cx, cy)
  return Person(index, points, box, center, _number(_field(rect, 'scale')), notes)


def _image(index: int, entry, img_train, single_person) -> ImageAnnotation:
  notes = []
  image = _field(entry, 'image')
  name = _field(_items(image)[0], 'name') if not _is_empty(image) else None
  if not isinstance(name, str) or not name.strip():
    notes.append(NO_NAME)
    name = ''
  rects = _field(entry, 'annorect')
  rects = [] if _is_empty(rects) else _items(rects)
  people = [_person(j + 1, rect) for j, rect in enumerate(rects)]
  train = _number(img_train)
  single = tuple(int(v) for v in (_number(s) for s in _items(single_person)) if v is not None)
  return ImageAnnotation(index, name.strip(), people, None if train is None else int(train),
                         single, notes)


def load(source: str | os.PathLike | bytes, where: str | None = None) -> list[ImageAnnotation]:
  """The images of an MPII annotation file (path or file contents), in annolist order.

  The file holds either a struct ``RELEASE`` (with ``annolist``, ``img_train``, ``single_person``)
  or a top-level ``annolist``. Raises FileNotFoundError / ValueError naming the file (or
  ``where``, for contents) when it is missing, not a MATLAB v5 file, or holds neither.
  """
  if where is None:
    where = '<bytes>' if isinstance(source, bytes) else os.fspath(source)
  if not isinstance(source, bytes) and not os.path.isfile(source):
    raise FileNotFoundError(f'MPII annotation file not found: {where}')
  try:
    mat = scipy.io.loadmat(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source),
                           squeeze_me=True, struct_as_record=False)
  except NotImplementedError as e:  # MATLAB v7.3 (HDF5)
    raise ValueError(f'{where}: MATLAB v7.3 files are not supported; save it with -v7') from e
  except Exception as e:  # scipy raises ValueError, TypeError, OSError on garbage
    raise ValueError(f'{where} is not a readable MATLAB .mat file: {e}') from e
  return parse(mat, where)


def parse(mat: dict, where: str = '<mat>') -> list[ImageAnnotation]:
  """As ``load``, for a dict from ``scipy.io.loadmat(..., squeeze_me=True,
  struct_as_record=False)``."""
  release = mat.get('RELEASE')
  if release is not None:
    annolist = _field(release, 'annolist')
    if annolist is None:
      raise ValueError(f'{where}: RELEASE has no annolist (fields: '
                       f'{getattr(release, "_fieldnames", None)})')
    img_train = _items(_field(release, 'img_train'))
    single = _field(release, 'single_person')
    single = _items(single) if single is not None else []
  elif 'annolist' in mat:
    annolist, img_train, single = mat['annolist'], [], []
  else:
    keys = sorted(k for k in mat if not k.startswith('__'))
    raise ValueError(f'{where} holds neither RELEASE nor annolist (variables: {keys})')
  entries = _items(annolist)
  if img_train and len(img_train) != len(entries):
    raise ValueError(f'{where}: img_train has {len(img_train)} entries for '
                     f'{len(entries)} images')
  out = []
  for i, entry in enumerate(entries):
    out.append(_image(i + 1, entry, img_train[i] if img_train else None,
                      single[i] if i < len(single) else None))
  return out


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

_EMPTY = np.zeros((0, 0))


def _mat_value(value):
  """A Python value as savemat wants it: None -> [], dict -> struct, list of dicts -> struct array."""
  if value is None:
    return _EMPTY
  if isinstance(value, dict):
    return _struct_array([value])
  if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
    return _struct_array(list(value))
  if isinstance(value, str):
    return value
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  if isinstance(value, (int, float, np.integer, np.floating)):
    return float(value)
  return value


def _struct_array(items: list[dict]) -> np.ndarray:
  """A 1 x N struct array; fields are the union of the items' keys, absent ones left empty."""
  names = []
  for item in items:
    names.extend(k for k in item if k not in names)
  if not names or not items:
    return _EMPTY
  out = np.empty((1, len(items)), dtype=[(n, 'O') for n in names])
  for j, item in enumerate(items):
    out[0, j] = tuple(_mat_value(item.get(n)) if n in item else _EMPTY for n in names)
  return out


def person_to_raw(person: Person) -> dict:
  """The annorect fields of ``person`` (unknown visibility is written empty)."""
  rect: dict[str, Any] = {}
  if person.head_box is not None:
    rect.update(zip(('x1', 'y1', 'x2', 'y2'), person.head_box))
  if person.points:
    rect['annopoints'] = {'point': [
        {'x': x, 'y': y, 'id': pid, 'is_visible': None if vis is None else int(vis)}
        for pid, (x, y, vis) in person.points.items()]}
  rect['scale'] = person.scale
  rect['objpos'] = None if person.objpos is None else {'x': person.objpos[0],
                                                       'y': person.objpos[1]}
  return rect


def image_to_raw(image: ImageAnnotation) -> dict:
  return {'name': image.name, 'img_train': image.img_train,
          'single_person': list(image.single_person),
          'annorect': [person_to_raw(p) for p in image.people]}


def write_release(path: str | os.PathLike, images: Iterable[ImageAnnotation | dict],
                  top: str = 'RELEASE') -> None:
  """Writes an official-format annotation file (MATLAB v5).

  ``images`` are ``ImageAnnotation``s or raw dicts ``{'name', 'annorect': [rect, ...],
  'img_train' (optional), 'single_person' (optional)}``, where a rect is a dict of annorect
  fields written verbatim (``annopoints`` as ``{'point': [point dicts]}``, ``objpos`` as a dict);
  None is written as an empty matrix, a string as a char array, and a field absent from every
  point of a person is absent from its struct array: so every messy case of the real file can be
  built. ``top`` is 'RELEASE' (the official layout) or 'annolist' (a top-level annolist only).
  """
  raws = [image_to_raw(im) if isinstance(im, ImageAnnotation) else im for im in images]
  annolist = np.empty((1, len(raws)), dtype=[('image', 'O'), ('annorect', 'O')])
  for i, raw in enumerate(raws):
    rects = raw.get('annorect') or []
    annolist[0, i] = (_struct_array([{'name': raw['name']}]),
                      _struct_array(rects) if rects else _EMPTY)
  if top == 'annolist':
    scipy.io.savemat(os.fspath(path), {'annolist': annolist})
    return
  if top != 'RELEASE':
    raise ValueError(f"top must be 'RELEASE' or 'annolist', got {top!r}")
  img_train = np.array([[float(r.get('img_train') or 0) for r in raws]])
  single = np.empty((len(raws), 1), dtype=object)
  for i, raw in enumerate(raws):
    ids = raw.get('single_person') or []
    single[i, 0] = np.array(ids, np.float64).reshape(-1, 1) if ids else _EMPTY
  release = np.empty((1, 1), dtype=[('annolist', 'O'), ('img_train', 'O'), ('version', 'O'),
                                    ('single_person', 'O')])
  release[0, 0] = (annolist, img_train, '1.2', single)
  scipy.io.savemat(os.fspath(path), {'RELEASE': release})


def images_from_people(records: list[dict], img_train: int = 1) -> list[ImageAnnotation]:
  """``ImageAnnotation``s from MPII-style JSON person records (``image``, ``joints``,
  ``joints_vis``, ``center``, ``scale``, optional ``head_box``), grouped by image in order.

  Joints with ``joints_vis`` 0 and no real coordinates (negative or (0, 0)) are left out; a missing
  head box is the square whose head size (0.6 x diagonal) is the head-top to upper-neck length.
  """
  by_name: dict[str, ImageAnnotation] = {}
  for record in records:
    name = record['image']
    image = by_name.setdefault(name, ImageAnnotation(len(by_name) + 1, name, [], img_train))
    points = {}
    for pid, ((x, y), vis) in enumerate(zip(record['joints'], record['joints_vis'])):
      if vis or (x >= 0 and y >= 0 and (x, y) != (0, 0)):
        points[pid] = (float(x), float(y), bool(vis))
    box = record.get('head_box')
    if box is None:
      top, neck = np.asarray(record['joints'], np.float64)[[9, 8]]
      half = np.hypot(*(top - neck)) / (0.6 * math.sqrt(2)) / 2
      mid = (top + neck) / 2
      box = [mid[0] - half, mid[1] - half, mid[0] + half, mid[1] + half]
    image.people.append(Person(len(image.people) + 1, points, tuple(float(v) for v in box),
                               tuple(float(v) for v in record['center']),
                               float(record['scale'])))
  return list(by_name.values())
