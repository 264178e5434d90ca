"""Part sets, flip pairs, limbs and conversions between the datasets' part orders.

Every dataset stores its keypoints in its own native order (MPII 16, LSP 14, FLIC 9, COCO 17).
Models predict
in a model order (usually ``cpm14``, the released CPM's order). ``conversion(src, dst)`` gives, for
each part of ``dst``, the index of the same part in ``src`` (or -1 when ``src`` lacks it).
"""
from __future__ import annotations

import dataclasses
import numpy as np


@dataclasses.dataclass(frozen=True)
class Skeleton:
  """A named, ordered part set with its left/right pairs and limbs (pairs of part names)."""
  name: str
  parts: tuple[str, ...]
  limbs: tuple[tuple[str, str], ...]

  @property
  def num_parts(self) -> int:
    return len(self.parts)

  def index(self, part: str) -> int:
    return self.parts.index(part)

  @property
  def flip_permutation(self) -> np.ndarray:
    """perm[i] = index of the part that part i becomes after a horizontal flip."""
    perm = []
    for p in self.parts:
      if p.startswith('r_'):
        perm.append(self.index('l_' + p[2:]))
      elif p.startswith('l_'):
        perm.append(self.index('r_' + p[2:]))
      else:
        perm.append(self.index(p))
    return np.asarray(perm, np.int32)

  @property
  def limb_indices(self) -> np.ndarray:
    return np.asarray([(self.index(a), self.index(b)) for a, b in self.limbs], np.int32)

  def is_left(self, part: str) -> bool:
    return part.startswith('l_')


_ALL_LIMBS = (
    ('head_top', 'neck'), ('neck', 'thorax'), ('thorax', 'pelvis'),
    ('neck', 'r_shoulder'), ('r_shoulder', 'r_elbow'), ('r_elbow', 'r_wrist'),
    ('neck', 'l_shoulder'), ('l_shoulder', 'l_elbow'), ('l_elbow', 'l_wrist'),
    ('pelvis', 'r_hip'), ('r_hip', 'r_knee'), ('r_knee', 'r_ankle'),
    ('pelvis', 'l_hip'), ('l_hip', 'l_knee'), ('l_knee', 'l_ankle'),
    # For part sets without thorax/pelvis: shoulders to hips.
    ('r_shoulder', 'r_hip'), ('l_shoulder', 'l_hip'),
    ('nose', 'r_shoulder'), ('nose', 'l_shoulder'),
)

# MPII joint ids 0-15 ("neck" is MPII's upper neck).
MPII_PARTS = ('r_ankle', 'r_knee', 'r_hip', 'l_hip', 'l_knee', 'l_ankle', 'pelvis', 'thorax',
              'neck', 'head_top', 'r_wrist', 'r_elbow', 'r_shoulder', 'l_shoulder', 'l_elbow',
              'l_wrist')
# The released CPM's output order for MPII and LSP (background channel appended by the model).
CPM14_PARTS = ('head_top', 'neck', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_shoulder', 'l_elbow',
               'l_wrist', 'r_hip', 'r_knee', 'r_ankle', 'l_hip', 'l_knee', 'l_ankle')
LSP_PARTS = ('r_ankle', 'r_knee', 'r_hip', 'l_hip', 'l_knee', 'l_ankle', 'r_wrist', 'r_elbow',
             'r_shoulder', 'l_shoulder', 'l_elbow', 'l_wrist', 'neck', 'head_top')
FLIC_PARTS = ('l_shoulder', 'l_elbow', 'l_wrist', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_hip',
              'r_hip', 'nose')
# COCO keypoints, in the order of COCO's annotation files (keypoint k is at 3k, 3k+1, 3k+2). Its
# body joints share the names (and so the conversions) of the other sets; its nose is FLIC's nose;
# its eyes and ears have no counterpart elsewhere, nor have MPII's head top, neck, thorax, pelvis.
COCO17_PARTS = ('nose', 'l_eye', 'r_eye', 'l_ear', 'r_ear', 'l_shoulder', 'r_shoulder', 'l_elbow',
                'r_elbow', 'l_wrist', 'r_wrist', 'l_hip', 'r_hip', 'l_knee', 'r_knee', 'l_ankle',
                'r_ankle')
# COCO's own 19 links (its person category's ``skeleton``), as part names.
COCO17_LIMBS = (
    ('l_ankle', 'l_knee'), ('l_knee', 'l_hip'), ('r_ankle', 'r_knee'), ('r_knee', 'r_hip'),
    ('l_hip', 'r_hip'), ('l_shoulder', 'l_hip'), ('r_shoulder', 'r_hip'),
    ('l_shoulder', 'r_shoulder'), ('l_shoulder', 'l_elbow'), ('r_shoulder', 'r_elbow'),
    ('l_elbow', 'l_wrist'), ('r_elbow', 'r_wrist'), ('l_eye', 'r_eye'), ('nose', 'l_eye'),
    ('nose', 'r_eye'), ('l_eye', 'l_ear'), ('r_eye', 'r_ear'), ('l_ear', 'l_shoulder'),
    ('r_ear', 'r_shoulder'))


def _make(name, parts):
  limbs = [l for l in _ALL_LIMBS if l[0] in parts and l[1] in parts]
  if 'thorax' in parts:  # the torso goes through thorax and pelvis, not shoulder to hip
    limbs = [l for l in limbs if l not in (('r_shoulder', 'r_hip'), ('l_shoulder', 'l_hip'))]
  return Skeleton(name, tuple(parts), tuple(limbs))


MPII = _make('mpii', MPII_PARTS)
CPM14 = _make('cpm14', CPM14_PARTS)
LSP = _make('lsp', LSP_PARTS)
FLIC = _make('flic', FLIC_PARTS)
COCO17 = Skeleton('coco17', COCO17_PARTS, COCO17_LIMBS)

SKELETONS = {s.name: s for s in (MPII, CPM14, LSP, FLIC, COCO17)}


def get(name: str) -> Skeleton:
  try:
    return SKELETONS[name]
  except KeyError:
    raise ValueError(f'Unknown skeleton {name!r}; known: {sorted(SKELETONS)}') from None


def conversion(src: str | Skeleton, dst: str | Skeleton) -> np.ndarray:
  """For each part of ``dst``, its index in ``src``, or -1 if ``src`` does not have it."""
  src = get(src) if isinstance(src, str) else src
  dst = get(dst) if isinstance(dst, str) else dst
  return np.asarray([src.parts.index(p) if p in src.parts else -1 for p in dst.parts], np.int32)


def convert(values: np.ndarray, src, dst, axis: int = -2, fill=0.0) -> np.ndarray:
  """Reorders the part axis of ``values`` from ``src`` order to ``dst`` order.

  ``axis`` is the part axis (-2 for [..., P, C] arrays, -1 for [..., P]). Parts that ``src`` lacks
  are filled with ``fill``, so their annotated flag comes out 0.
  """
  idx = conversion(src, dst)
  out = np.take(np.asarray(values), np.maximum(idx, 0), axis=axis)
  if (idx < 0).any():
    sl = [slice(None)] * out.ndim
    sl[axis] = idx < 0
    out[tuple(sl)] = fill
  return out
