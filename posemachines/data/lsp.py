"""``lsp`` and ``lsp_extended``: Leeds Sports Pose (Johnson and Everingham 2010, 2011).

Both hold one person per image, 14 joints in LSP order (skeleton 'lsp'), in ``joints.mat``:
  lsp            lsp_dataset.zip: images/im0001.jpg ... im2000.jpg, joints 3 x 14 x 2000
                 (x, y, flag), flag 1 = OCCLUDED; the first 1,000 train, the last 1,000 test
  lsp_extended   lspet_dataset.zip: images/im00001.jpg ... im10000.jpg, joints 14 x 3 x 10000,
                 flag 1 = VISIBLE; all train

Labels. A joint is annotated when its coordinates are finite and not both <= 0 (the datasets'
marker for no label); visibility comes from the flag with each dataset's meaning.

Person centre and scale, as the CPM release derived them (its MPII-like unit: the crop is resized
by target_dist / scale with target_dist = 41/35):
  - centre: the image centre for LSP (its images are cropped around the person); the middle of
    the visible joints' bounding box for LSP-extended (not tightly cropped);
  - scale for training: from the joints. Each limb's length is divided by the dataset's median
    ratio of that limb to the neck-head length; the 75th percentile of a person's visible limbs,
    divided by 35 px, is the scale, enlarged where needed so that the visible joints span at most
    368 - 64 px after normalisation;
  - scale for LSP's test split: from the image height alone (target_dist 0.8 at 368 px), as the
    release tested, since a test person's joints are unknown at test time.
Normaliser (PCK@0.2): the torso size, the distance from the left shoulder to the right hip.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import features as features_lib
from posemachines.data import manual
from posemachines.data import report as report_lib

_S = skeleton.LSP
_P = _S.num_parts
_ENCODING = 'jpeg'
TARGET_DIST = 41 / 35
TEST_TARGET_DIST = 0.8
BOX, MARGIN = 368, 64
LIMB_UNIT = 35.0
# Limbs for the scale, ending with the reference (neck to head top).
LIMBS = (('r_ankle', 'r_knee'), ('r_knee', 'r_hip'), ('l_ankle', 'l_knee'), ('l_knee', 'l_hip'),
         ('r_wrist', 'r_elbow'), ('r_elbow', 'r_shoulder'), ('l_wrist', 'l_elbow'),
         ('l_elbow', 'l_shoulder'), ('r_hip', 'r_shoulder'), ('l_hip', 'l_shoulder'),
         ('r_shoulder', 'neck'), ('l_shoulder', 'neck'), ('neck', 'head_top'))
_LIMBS = np.array([(_S.index(a), _S.index(b)) for a, b in LIMBS])
_TORSO = (_S.index('l_shoulder'), _S.index('r_hip'))

NO_KEYPOINTS = 'no keypoints'
NO_TORSO = 'no torso size (left shoulder or right hip unannotated, or equal)'
BAD_FLAG = 'visibility flag not 0 or 1 (kept as occluded)'
UNLABELLED = 'joint without coordinates (kept unannotated)'
SCALE_FROM_IMAGE = 'no visible limbs: scale from the image height (kept)'
SQUEEZED = 'scale enlarged so the joints fit the crop (kept)'
OUTSIDE = 'keypoint outside image (kept)'


def read_joints(data: bytes, where: str) -> np.ndarray:
  """joints.mat contents -> float64 [N, 14, 3] (x, y, flag); either official layout is accepted."""
  try:
    mat = scipy.io.loadmat(io.BytesIO(data))
  except Exception as e:
    raise ValueError(f'{where} is not a readable MATLAB .mat file: {e}') from e
  if 'joints' not in mat:
    raise ValueError(f'{where} holds no joints (variables: '
                     f'{sorted(k for k in mat if not k.startswith("__"))})')
  joints = np.asarray(mat['joints'], np.float64)
  if joints.ndim == 2:
    joints = joints[..., None]
  if joints.ndim != 3:
    raise ValueError(f'{where}: joints have shape {joints.shape}, expected 3 x 14 x N or '
                     f'14 x 3 x N')
  if joints.shape[:2] == (3, _P):
    return joints.transpose(2, 1, 0)
  if joints.shape[:2] == (_P, 3):
    return joints.transpose(2, 0, 1)
  raise ValueError(f'{where}: joints have shape {joints.shape}, expected 3 x 14 x N or 14 x 3 x N')


@dataclasses.dataclass
class Person:
  index: int              # 1-based, as in the image names
  image: str
  joints: np.ndarray      # float32 [P, 2]
  annotated: np.ndarray   # bool [P]
  visible: np.ndarray     # bool [P]
  center: np.ndarray | None
  scale: float | None     # None: from the image height
  norm: float
  notes: list[str]


def labels(raw: np.ndarray, visible_flag: float):
  """[P, 3] (x, y, flag) -> joints [P, 2], annotated [P], visible [P], and notes."""
  xy, flag = raw[:, :2], raw[:, 2]
  with np.errstate(invalid='ignore'):
    annotated = np.isfinite(xy).all(1) & ~((xy[:, 0] <= 0) & (xy[:, 1] <= 0))
  notes = []
  if not np.isin(flag[annotated], (0, 1)).all():
    notes.append(BAD_FLAG)
  visible = annotated & (flag == visible_flag)
  if (~annotated).any():
    notes.append(UNLABELLED)
  joints = np.where(annotated[:, None], xy, -1.0).astype(np.float32)
  return joints, annotated, visible, notes


def limb_lengths(joints: np.ndarray, visible: np.ndarray):
  """[..., P, 2], [..., P] -> limb lengths [..., L] and whether both ends are visible."""
  d = joints[..., _LIMBS[:, 0], :] - joints[..., _LIMBS[:, 1], :]
  return np.hypot(d[..., 0], d[..., 1]), visible[..., _LIMBS[:, 0]] & visible[..., _LIMBS[:, 1]]


def limb_ratios(joints: np.ndarray, visible: np.ndarray) -> np.ndarray:
  """Median over people of each limb's length / the neck-head length (NaN without data)."""
  length, ok = limb_lengths(joints, visible)
  ref, ref_ok = length[:, -1], ok[:, -1] & (length[:, -1] > 0)
  out = np.full(len(LIMBS), np.nan)
  for k in range(len(LIMBS)):
    both = ok[:, k] & ref_ok
    if both.any():
      out[k] = np.median(length[both, k] / ref[both])
  return out


def joint_scale(joints: np.ndarray, visible: np.ndarray, ratios: np.ndarray):
  """The release's training scale from the visible joints, and whether it was enlarged to fit;
  (None, False) without a visible limb."""
  length, ok = limb_lengths(joints, visible)
  ok &= np.isfinite(ratios) & (ratios > 0)
  if not ok.any():
    return None, False
  dist = np.quantile(length[ok] / ratios[ok], 0.75, method='hazen')
  if not dist > 0:
    return None, False
  resize = TARGET_DIST / (dist / LIMB_UNIT)
  pts = joints[visible]
  span = pts.max(0) - pts.min(0)
  with np.errstate(divide='ignore'):
    fit = np.min(np.where(span > 0, (BOX - MARGIN) / span, np.inf))
  squeezed = fit < resize
  return TARGET_DIST / min(resize, fit), bool(squeezed)


def image_scale(height: int) -> float:
  """The release's LSP test scale: the image height at ``TEST_TARGET_DIST`` in a 368 px box."""
  return TARGET_DIST * height / (BOX * TEST_TARGET_DIST)


class _LeedsBuilder(manual.ManualBuilder, skip_registration=True):
  """Shared code of ``lsp`` and ``lsp_extended``."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  ARCHIVES: tuple[str, ...] = ()
  IMAGE_PATTERN = ''
  VISIBLE_FLAG = 1.0
  CENTER_FROM_IMAGE = False

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=features_lib.features(_P, encoding=_ENCODING),
        homepage='http://sam.johnson.io/research/lsp.html',
        metadata=tfds.core.MetadataDict(skeleton='lsp', metric='pck'))

  def _splits(self, n: int) -> dict[str, range]:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    self._archive, prefix = manual.locate(str(dl_manager.manual_dir), self.name, self.ARCHIVES,
                                          'joints.mat', self.DOWNLOAD)
    where = self._archive.describe(prefix + 'joints.mat')
    raw = read_joints(self._archive.read(prefix + 'joints.mat'), where)
    self._report = report_lib.SkipReport(f'{self.name} {where}')
    splits = self._splits(len(raw))
    parsed = [labels(r, self.VISIBLE_FLAG) for r in raw]
    joints = np.stack([p[0] for p in parsed])
    visible = np.stack([p[2] for p in parsed])
    ratios = limb_ratios(joints[splits['train']], visible[splits['train']])
    out = {}
    for split, indices in splits.items():
      people = []
      for i in indices:
        person = self._person(i, parsed[i], ratios, test=split == 'test',
                              image=prefix + self.IMAGE_PATTERN % (i + 1))
        if person is not None:
          people.append(person)
      out[split] = self._generate_examples(people)
    return out

  def _person(self, i: int, parsed, ratios, test: bool, image: str) -> Person | None:
    joints, annotated, visible, notes = parsed
    where = f'person {i + 1} ({image})'
    if not annotated.any():
      self._report.skip(NO_KEYPOINTS, where)
      return None
    a, b = _TORSO
    norm = float(np.hypot(*(joints[a] - joints[b]))) if annotated[[a, b]].all() else 0.0
    if not norm > 0:
      self._report.skip(NO_TORSO, where)
      return None
    center = None
    if not self.CENTER_FROM_IMAGE:
      pts = joints[visible] if visible.any() else joints[annotated]
      center = (pts.min(0) + pts.max(0)) / 2
    scale = None
    if not test:
      scale, squeezed = joint_scale(joints, visible, ratios)
      if squeezed:
        notes = notes + [SQUEEZED]
      if scale is None:
        notes = notes + [SCALE_FROM_IMAGE]
    return Person(i + 1, image, joints, annotated, visible, center, scale, norm, notes)

  def _generate_examples(self, people: list[Person]):
    by_name = {p.image: p for p in people}
    for name, result in manual.decoded(self._archive, list(by_name), _ENCODING):
      person = by_name[name]
      where = f'person {person.index} ({self._archive.describe(name)})'
      if isinstance(result, report_lib.BadImage):
        self._report.skip(result.reason, f'person {person.index}: {result.detail}')
        continue
      encoded, (height, width) = result
      center = person.center if person.center is not None else np.array([width, height]) / 2
      scale = person.scale if person.scale is not None else image_scale(height)
      ex = {
          'image': encoded, 'image_id': name.rsplit('/', 1)[-1],
          'joints': person.joints, 'joints_annotated': person.annotated,
          'joints_visible': person.visible,
          'center': np.asarray(center, np.float32), 'scale': np.float32(scale),
          'head_box': np.zeros(4, np.float32), 'norm': np.float32(person.norm),
          'others': np.zeros((0, _P, 3), np.float32),
      }
      x, y = person.joints[:, 0], person.joints[:, 1]
      if (person.annotated & ((x < 0) | (y < 0) | (x > width) | (y > height))).any():
        self._report.keep(OUTSIDE, f'{where}: image {width}x{height}')
      for note in person.notes:
        self._report.keep(note, where)
      features_lib.check_example(ex, _P, where)
      self._report.kept()
      yield person.index, ex


class Lsp(_LeedsBuilder, skip_registration=True):
  """LSP: the first 1,000 people train, the last 1,000 test."""

  name = 'lsp'
  ARCHIVES = ('lsp_dataset.zip', 'lsp_dataset_original.zip')
  DOWNLOAD = 'download lsp_dataset.zip from http://sam.johnson.io/research/lsp.html'
  IMAGE_PATTERN = 'images/im%04d.jpg'
  VISIBLE_FLAG = 0.0  # LSP's flag is 1 for an occluded joint
  CENTER_FROM_IMAGE = True
  NUM_TRAIN, NUM_PEOPLE = 1000, 2000
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download lsp_dataset.zip (http://sam.johnson.io/research/lsp.html) into the manual directory
(--config.data.manual_dir, default <data_dir>/downloads/manual), optionally in a subfolder lsp/;
it is read as it is, or extracted (joints.mat and images/).
"""

  def _splits(self, n):
    if n != self.NUM_PEOPLE:
      raise ValueError(f'lsp: joints.mat holds {n} people, expected {self.NUM_PEOPLE} '
                       f'({self.NUM_TRAIN} train, then the test people)')
    return {'train': range(self.NUM_TRAIN), 'test': range(self.NUM_TRAIN, n)}


class LspExtended(_LeedsBuilder, skip_registration=True):
  """LSP-extended: 10,000 training people."""

  name = 'lsp_extended'
  ARCHIVES = ('lspet_dataset.zip',)
  DOWNLOAD = 'download lspet_dataset.zip from http://sam.johnson.io/research/lspet.html'
  IMAGE_PATTERN = 'images/im%05d.jpg'
  VISIBLE_FLAG = 1.0
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download lspet_dataset.zip (http://sam.johnson.io/research/lspet.html) into the manual directory
(--config.data.manual_dir, default <data_dir>/downloads/manual), optionally in a subfolder
lsp_extended/; it is read as it is, or extracted (joints.mat and images/).
"""

  def _splits(self, n):
    return {'train': range(n)}


def builder(name: str, data_dir: str, manual_dir: str | None = None):
  """A prepared ``lsp`` or ``lsp_extended`` builder (prepared from ``manual_dir`` on first use)."""
  if name == 'lsp':
    b = Lsp(data_dir=data_dir)
  elif name == 'lsp_extended':
    b = LspExtended(data_dir=data_dir)
  else:
    raise ValueError(f'not an LSP dataset: {name!r}')
  return manual.prepare(b, manual_dir)
