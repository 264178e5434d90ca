"""``flic``: Frames Labeled In Cinema (Sapp and Taskar 2013) from FLIC.zip.

``examples.mat`` holds a struct array ``examples``: ``coords`` (2 x 29, x and y of 29 slots, only
11 filled: shoulders, elbows, wrists, hips, eyes, nose; NaN elsewhere), ``filepath`` (under
images/), ``imgdims``, ``torsobox`` [x1 y1 x2 y2], ``istrain``, ``istest``: 3,987 train and 1,016
test people.

Parts: the 9 of skeleton 'flic' (shoulders, elbows, wrists, hips, nose); the eyes are dropped.
FLIC's labels are observer-centric (left and right as seen in the image). As the CPM release did,
they are made person-centric by assuming the person faces the camera: when the labelled right
shoulder lies right of the labelled left shoulder in the image, every left/right pair is swapped.

Person centre and scale from the torso box, as the release: centre ((x1 + x2) / 2,
0.7 y1 + 0.3 y2), scale 0.011 x torso-box height. Normaliser (PCK@0.2): the torso size, the
distance between the labelled left shoulder and right hip as FLIC's labels give them (the MODEC
definition, unchanged by the left/right swap). Other people of the same frame go in ``others``.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import math
import os

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import features as features_lib
from posemachines.data import manual
from posemachines.data import report as report_lib

_S = skeleton.FLIC
_P = _S.num_parts
_ENCODING = 'jpeg'
NUM_SLOTS = 29
# The coords slot (0-based) of each FLIC part, in skeleton 'flic' order.
SLOTS = {'l_shoulder': 0, 'l_elbow': 1, 'l_wrist': 2, 'r_shoulder': 3, 'r_elbow': 4,
         'r_wrist': 5, 'l_hip': 6, 'r_hip': 9, 'nose': 16}
_SLOTS = np.array([SLOTS[p] for p in _S.parts])
SCALE_PER_TORSO_PX = 0.011

SWAPPED = 'observer-centric labels swapped to person-centric (kept)'
NO_SHOULDERS = 'a shoulder unlabelled: left/right kept as labelled'
MISSING_PART = 'part unlabelled (kept unannotated)'
BAD_TORSO_BOX = 'bad torso box'
NO_TORSO = 'no torso size (left shoulder or right hip unlabelled, or equal)'
NO_SPLIT = 'neither istrain nor istest'
BAD_RECORD = 'malformed example'
OUTSIDE = 'keypoint outside image (kept)'

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download FLIC.zip (https://bensapp.github.io/flic-dataset.html) into the manual directory
(--config.data.manual_dir, default <data_dir>/downloads/manual), optionally in a subfolder flic/;
it is read as it is, or extracted (examples.mat and images/).
"""


def _number(value) -> float:
  arr = np.asarray(value, dtype=np.float64).ravel()
  return float(arr[0]) if arr.size == 1 else math.nan


@dataclasses.dataclass
class Person:
  index: int               # 1-based position in examples
  image: str
  split: str
  joints: np.ndarray       # float32 [P, 2], person-centric
  annotated: np.ndarray    # bool [P]
  center: np.ndarray
  scale: float
  norm: float
  notes: list[str]

  def as_other(self) -> np.ndarray:
    return np.concatenate([self.joints, self.annotated[:, None]], 1).astype(np.float32)


def parse(index: int, ex) -> Person:
  """One ``examples`` entry as a Person; raises ValueError(reason, detail) when unusable."""
  coords = np.asarray(getattr(ex, 'coords', None), dtype=np.float64)
  path = getattr(ex, 'filepath', None)
  if coords.shape != (2, NUM_SLOTS) or not isinstance(path, str) or not path:
    raise ValueError(BAD_RECORD, f'coords shape {coords.shape}, filepath {path!r}')
  istrain, istest = (_number(getattr(ex, k, math.nan)) for k in ('istrain', 'istest'))
  if (istrain == 1) == (istest == 1):
    raise ValueError(NO_SPLIT, f'istrain {istrain}, istest {istest}')
  xy = coords.T[_SLOTS]
  annotated = np.isfinite(xy).all(1)
  notes = [MISSING_PART] if not annotated.all() else []
  a, b = _S.index('l_shoulder'), _S.index('r_hip')
  norm = float(np.hypot(*(xy[a] - xy[b]))) if annotated[[a, b]].all() else math.nan
  if not norm > 0:
    raise ValueError(NO_TORSO, f'left shoulder {xy[a].tolist()}, right hip {xy[b].tolist()}')
  ls, rs = _S.index('l_shoulder'), _S.index('r_shoulder')
  if not annotated[[ls, rs]].all():
    notes.append(NO_SHOULDERS)
  elif xy[rs, 0] > xy[ls, 0]:
    perm = _S.flip_permutation
    xy, annotated = xy[perm], annotated[perm]
    notes.append(SWAPPED)
  box = np.asarray(getattr(ex, 'torsobox', None), dtype=np.float64).ravel()
  if box.shape != (4,) or not np.isfinite(box).all() or box[3] <= box[1] or box[2] <= box[0]:
    raise ValueError(BAD_TORSO_BOX, f'torsobox {box.tolist()}')
  center = np.array([(box[0] + box[2]) / 2, 0.7 * box[1] + 0.3 * box[3]])
  joints = np.where(annotated[:, None], xy, -1.0).astype(np.float32)
  return Person(index, path, 'train' if istrain == 1 else 'test', joints, annotated,
                center, SCALE_PER_TORSO_PX * (box[3] - box[1]), norm, notes)


def load(data: bytes, where: str) -> list:
  try:
    mat = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)
  except Exception as e:
    raise ValueError(f'{where} is not a readable MATLAB .mat file: {e}') from e
  if 'examples' not in mat:
    raise ValueError(f'{where} holds no examples (variables: '
                     f'{sorted(k for k in mat if not k.startswith("__"))})')
  examples = mat['examples']
  return list(np.atleast_1d(examples).ravel())


def write_examples(path: str | os.PathLike, examples: list[dict]) -> None:
  """Writes an official-format examples.mat; each dict holds the struct's fields."""
  names = []
  for ex in examples:
    names.extend(k for k in ex if k not in names)
  out = np.empty((1, len(examples)), dtype=[(n, 'O') for n in names])
  for j, ex in enumerate(examples):
    out[0, j] = tuple(ex.get(n, np.zeros((0, 0))) for n in names)
  scipy.io.savemat(os.fspath(path), {'examples': out})


class Flic(manual.ManualBuilder, skip_registration=True):
  """FLIC from FLIC.zip in the manual directory, labels made person-centric."""

  name = 'flic'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  DOWNLOAD = 'download FLIC.zip from https://bensapp.github.io/flic-dataset.html'
  # Named apart from tfds' own 'flic' configs ('small', 'full'), whose data differ.
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name='person_centric',
                                             description='Person-centric labels, 9 parts.')]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=features_lib.features(_P, encoding=_ENCODING),
        homepage='https://bensapp.github.io/flic-dataset.html',
        metadata=tfds.core.MetadataDict(skeleton='flic', metric='pck'))

  def _split_generators(self, dl_manager):
    self._archive, prefix = manual.locate(str(dl_manager.manual_dir), 'flic',
                                          ('FLIC.zip', 'FLIC-full.zip'), 'examples.mat',
                                          self.DOWNLOAD)
    where = self._archive.describe(prefix + 'examples.mat')
    examples = load(self._archive.read(prefix + 'examples.mat'), where)
    self._prefix = prefix + 'images/'
    self._report = report_lib.SkipReport(f'flic {where}')
    people = []
    for i, ex in enumerate(examples):
      try:
        people.append(parse(i + 1, ex))
      except ValueError as e:
        reason, detail = e.args if len(e.args) == 2 else (BAD_RECORD, str(e))
        self._report.skip(reason, f'example {i + 1}: {detail}')
    by_image = collections.defaultdict(list)
    for p in people:
      by_image[p.image].append(p)
    splits = {'train': [], 'test': []}
    for p in people:
      splits[p.split].append(p)
    if not people:
      raise ValueError(f'{where}: no example can be used:\n{self._report.format()}')
    return {s: self._generate_examples(group, by_image) for s, group in splits.items() if group}

  def _generate_examples(self, people: list[Person], by_image: dict):
    mine = collections.defaultdict(list)
    for p in people:
      mine[self._prefix + p.image].append(p)
    for name, result in manual.decoded(self._archive, sorted(mine), _ENCODING):
      if isinstance(result, report_lib.BadImage):
        for p in mine[name]:
          self._report.skip(result.reason, f'example {p.index}: {result.detail}')
        continue
      encoded, (height, width) = result
      for p in mine[name]:
        where = f'example {p.index} ({p.image})'
        others = [q.as_other() for q in by_image[p.image] if q is not p]
        ex = {
            'image': encoded, 'image_id': p.image, 'joints': p.joints,
            'joints_annotated': p.annotated, 'joints_visible': p.annotated,
            'center': p.center.astype(np.float32), 'scale': np.float32(p.scale),
            'head_box': np.zeros(4, np.float32), 'norm': np.float32(p.norm),
            'others': np.stack(others) if others else np.zeros((0, _P, 3), np.float32),
        }
        x, y = p.joints[:, 0], p.joints[:, 1]
        if (p.annotated & ((x < 0) | (y < 0) | (x > width) | (y > height))).any():
          self._report.keep(OUTSIDE, f'{where}: image {width}x{height}')
        for note in p.notes:
          self._report.keep(note, where)
        features_lib.check_example(ex, _P, where)
        self._report.kept()
        yield p.index, ex


def builder(data_dir: str, manual_dir: str | None = None) -> Flic:
  """A prepared ``flic`` builder (prepared from ``manual_dir`` on first use)."""
  return manual.prepare(Flic(data_dir=data_dir), manual_dir)
