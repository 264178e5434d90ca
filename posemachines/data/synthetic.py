"""``synthetic_people``: procedurally drawn people with MPII's 16 joints, generated locally.

Every image shows one primary, fully annotated capsule figure in a random articulated pose over a
cluttered background. The figure's left and right limbs look alike; only global cues tell them
apart: a figure facing the camera (three in four do) has a face and marks on the front of its
torso (its left limbs appear on the image's right), a figure facing away shows plain hair and a
plain back (its left limbs appear on the image's left). Occluders hide some joints
(``joints_visible`` False), a second figure may stand beside the primary one (its joints go into
``others``) and stray limb-like segments add distractions, so that a model has to use context, as
with real photographs.

Examples are a pure function of (seed, split, index): ``render_example`` draws one, and the
``SyntheticPeople`` builder stores a whole split without downloading anything.
"""
from __future__ import annotations

import dataclasses
import io
import math

from etils import epath
import numpy as np
from PIL import Image, ImageDraw
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import features as features_lib
from posemachines.data import local_builder

_SS = 2  # supersampling factor of the drawing canvas
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}
_J = {name: i for i, name in enumerate(skeleton.MPII_PARTS)}

# Body proportions in units of the standing height (head top to ankle).
_NECK_LEN = 0.06       # thorax to upper neck
_UPPER_ARM, _FOREARM, _HAND = 0.165, 0.145, 0.05
_THIGH, _SHIN, _FOOT = 0.235, 0.235, 0.05
_WIDTH = {'upper_arm': (0.032, 0.026), 'forearm': (0.025, 0.019), 'thigh': (0.048, 0.036),
          'shin': (0.034, 0.026), 'neck': (0.026, 0.026)}  # radii at the two ends

# Most people in photographs face the camera; the rest show their backs, and only the whole figure
# (face or hair, front or back of the torso) says which of its limbs are left and right.
_FACING_CAMERA = 0.75

_SKIN_TONES = np.array([[255, 224, 196], [241, 194, 125], [224, 172, 105], [198, 134, 66],
                        [141, 85, 36], [92, 58, 30]], np.float32)


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------

def _unit(angle: float) -> np.ndarray:
  """Unit vector at ``angle`` radians from straight down, turning towards +x."""
  return np.array([math.sin(angle), math.cos(angle)])


def _foreshorten(rng) -> float:
  """A segment's projected length factor: sometimes it points partly towards the camera."""
  return rng.uniform(0.7, 1.0) if rng.random() < 0.3 else 1.0


def _limbs(rng, j: dict, extras: dict, s: str, sign: float, thigh: float, shin: float) -> None:
  """Adds the arm and leg on side ``s`` (``sign`` is its x direction in the neutral pose)."""
  # Angles are from straight down, positive away from the body's midline.
  a1 = rng.uniform(1.7, 3.0) if rng.random() < 0.25 else rng.uniform(-0.35, 1.75)
  a2 = a1 + float(np.clip(rng.normal(0, 1.0), -2.5, 2.5))
  b1 = rng.uniform(-0.25, 0.8) if rng.random() < 0.85 else rng.uniform(0.8, 1.4)
  b2 = b1 + float(np.clip(rng.normal(-0.5 * b1, 0.4), -1.2, 1.2))
  d1, d2, e1, e2 = (_unit(sign * x) for x in (a1, a2, b1, b2))
  j[s + 'elbow'] = j[s + 'shoulder'] + _UPPER_ARM * _foreshorten(rng) * d1
  j[s + 'wrist'] = j[s + 'elbow'] + _FOREARM * _foreshorten(rng) * d2
  j[s + 'knee'] = j[s + 'hip'] + thigh * _foreshorten(rng) * e1
  j[s + 'ankle'] = j[s + 'knee'] + shin * _foreshorten(rng) * e2
  extras[s + 'hand'] = j[s + 'wrist'] + _HAND * d2
  extras[s + 'toe'] = j[s + 'ankle'] + _FOOT * _unit(sign * rng.uniform(0.6, 1.4))


def _pose(rng: np.random.Generator) -> tuple[dict, dict]:
  """A random articulated pose in units of the standing height, pelvis at the origin, y down.

  Returns the joints keyed by generic names, with ``+``/``-`` prefixes for the limbs on the image's
  right (+x) and left (-x) in the neutral pose, and the hands, feet and head shape for drawing.
  """
  head_h = rng.uniform(0.165, 0.2)
  legs = rng.uniform(0.95, 1.05)
  thigh, shin = _THIGH * legs, _SHIN * legs
  torso_len = 1.0 - head_h - _NECK_LEN - thigh - shin
  lean = float(np.clip(rng.normal(0, 0.14), -0.45, 0.45))
  up = -_unit(lean)  # pelvis -> thorax
  side = np.array([-up[1], up[0]])  # towards +x for an upright torso
  thorax = torso_len * up
  head_dir = -_unit(lean + float(np.clip(rng.normal(0, 0.15), -0.4, 0.4)))
  neck = thorax + _NECK_LEN * head_dir
  j = {'pelvis': np.zeros(2), 'thorax': thorax, 'neck': neck,
       'head_top': neck + head_h * head_dir}
  shoulder_w, hip_w = rng.uniform(0.1, 0.13), rng.uniform(0.06, 0.08)
  extras = {}
  for s, sign in (('+', 1.0), ('-', -1.0)):
    j[s + 'shoulder'] = thorax + sign * shoulder_w * side
    j[s + 'hip'] = sign * hip_w * side
    _limbs(rng, j, extras, s, sign, thigh, shin)
  spin = float(np.clip(rng.normal(0, 0.08), -0.3, 0.3))
  rot = np.array([[math.cos(spin), -math.sin(spin)], [math.sin(spin), math.cos(spin)]])
  j = {k: rot @ v for k, v in j.items()}
  extras = {k: rot @ v for k, v in extras.items()}
  extras['head_h'] = head_h
  extras['head_w'] = head_h * rng.uniform(0.72, 0.85)
  return j, extras


def _label(generic: dict, facing_camera: bool) -> np.ndarray:
  """MPII-ordered [16, 2] joints: the person's left is on the image's right when facing us."""
  left, right = ('+', '-') if facing_camera else ('-', '+')
  out = np.zeros((16, 2))
  for name, i in _J.items():
    if name.startswith('l_'):
      out[i] = generic[left + name[2:]]
    elif name.startswith('r_'):
      out[i] = generic[right + name[2:]]
    else:
      out[i] = generic[name]
  return out


def _head_ellipse(fig: dict) -> tuple[np.ndarray, np.ndarray, float, float]:
  """Centre, axis (neck -> head top), half length and half width of the head ellipse."""
  neck, top = fig['j']['neck'], fig['j']['head_top']
  axis = (top - neck) / max(np.linalg.norm(top - neck), 1e-6)
  return (neck + top) / 2, axis, fig['head_h'] / 2, fig['head_w'] / 2


def _head_box(fig: dict) -> np.ndarray:
  """Tight x1, y1, x2, y2 box of the (rotated) head ellipse."""
  c, ax, a, b = _head_ellipse(fig)
  ex = math.hypot(a * ax[0], b * ax[1])
  ey = math.hypot(a * ax[1], b * ax[0])
  return np.array([c[0] - ex, c[1] - ey, c[0] + ex, c[1] + ey])


def _scaled(pose: tuple[dict, dict], height: float) -> dict:
  """A pose scaled to ``height`` pixels, its pelvis at the origin."""
  joints, extras = pose
  fig = {k: v * height for k, v in extras.items()}
  fig['j'] = {k: v * height for k, v in joints.items()}
  fig['height'] = height
  return fig


def _extent(fig: dict) -> tuple[np.ndarray, np.ndarray]:
  """The figure's bounding box (lower and upper corners) with a little margin."""
  pts = np.array(list(fig['j'].values()) + [fig[k] for k in ('+hand', '-hand', '+toe', '-toe')])
  box = _head_box(fig)
  lo = np.minimum(pts.min(0), box[:2]) - 0.04 * fig['height']
  hi = np.maximum(pts.max(0), box[2:]) + 0.04 * fig['height']
  return lo, hi


def _shift(fig: dict, delta: np.ndarray) -> dict:
  out = {k: (v + delta if isinstance(v, np.ndarray) else v) for k, v in fig.items()}
  out['j'] = {k: v + delta for k, v in fig['j'].items()}
  return out


def _primary(rng, size: int) -> dict:
  """The primary figure, scaled and positioned mostly inside the image."""
  height = rng.uniform(0.45, 0.85) * size
  fig = _scaled(_pose(rng), height)
  lo, hi = _extent(fig)
  margin = -0.08 * size if rng.random() < 0.12 else -0.02 * size
  delta = np.zeros(2)
  for d in range(2):
    a, b = margin - lo[d], size - margin - hi[d]
    delta[d] = rng.uniform(a, b) if a < b else (a + b) / 2
  return _shift(fig, delta)


def _distractor(rng, size: int, primary: dict) -> dict:
  """A second figure beside the primary one, partly visible, at its own scale."""
  height = primary['height'] * rng.uniform(0.6, 1.15)
  fig = _scaled(_pose(rng), height)
  lo, hi = _extent(fig)
  plo, phi = _extent(primary)
  gap = rng.uniform(-0.08, 0.06) * size
  if rng.random() < 0.5:
    dx = phi[0] + gap - lo[0]
    dx = min(dx, size - 0.3 * (hi[0] - lo[0]) - lo[0])
  else:
    dx = plo[0] - gap - hi[0]
    dx = max(dx, 0.3 * (hi[0] - lo[0]) - hi[0])
  dy = phi[1] - hi[1] + rng.uniform(-0.15, 0.1) * size
  return _shift(fig, np.array([dx, dy]))


# ----------------------------------------------------------------------------------------------
# Appearance
# ----------------------------------------------------------------------------------------------

def _colour(rng) -> np.ndarray:
  return rng.uniform(0, 255, 3)


def _far_colour(rng, avoid: list[np.ndarray], min_dist: float = 80.0) -> np.ndarray:
  """A random colour at least ``min_dist`` from those in ``avoid`` (or the farthest of 12 tries)."""
  best, best_d = None, -1.0
  for _ in range(12):
    c = _colour(rng)
    d = min(float(np.linalg.norm(c - a)) for a in avoid) if avoid else 1e9
    if d >= min_dist:
      return c
    if d > best_d:
      best, best_d = c, d
  return best


def _appearance(rng, bg_mean: np.ndarray) -> dict:
  """Clothing, skin and hair colours and a clothing texture, contrasting with the background."""
  if rng.random() < 0.75:
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(0, 12, 3)
  else:
    skin = _colour(rng)
  shirt = _far_colour(rng, [bg_mean, skin])
  trousers = _far_colour(rng, [bg_mean, shirt], 60.0)
  hair = _far_colour(rng, [skin], 110.0)
  feature = skin * 0.25 if skin.mean() > 110 else np.minimum(skin + 140, 255)
  mark = _far_colour(rng, [shirt], 120.0)
  colours = {'skin': skin, 'shirt': shirt, 'trousers': trousers, 'hair': hair,
             'feature': feature, 'mark': mark, 'shoes': _colour(rng) * 0.5}
  return {**{k: _rgb(v) for k, v in colours.items()}, 'long_sleeves': rng.random() < 0.5,
          'mark_kind': int(rng.integers(3)), 'texture': _texture_params(rng)}


def _texture_params(rng) -> dict:
  kind = rng.choice(['none', 'stripes', 'checker', 'blotch'], p=[0.3, 0.35, 0.15, 0.2])
  return {'kind': str(kind), 'angle': rng.uniform(0, math.pi), 'period': rng.uniform(4, 12),
          'phase': rng.uniform(0, 2 * math.pi), 'amp': rng.uniform(0.12, 0.3),
          'seed': int(rng.integers(2**31))}


def _pattern(params: dict, box: tuple[int, int, int, int], scale: float) -> np.ndarray | None:
  """The pattern in [-1, 1] over the canvas box (x0, y0, x1, y1), ``scale`` canvas pixels per
  image pixel; None for untextured."""
  kind = params['kind']
  if kind == 'none':
    return None
  x0, y0, x1, y1 = box
  xx = np.arange(x0, x1, dtype=np.float32)[None, :] / scale
  yy = np.arange(y0, y1, dtype=np.float32)[:, None] / scale
  if kind == 'stripes':
    t = xx * math.cos(params['angle']) + yy * math.sin(params['angle'])
    return np.sin(2 * math.pi * t / params['period'] + params['phase'])
  if kind == 'checker':
    p = params['period']
    return ((np.floor(xx / p) + np.floor(yy / p)) % 2) * 2 - 1
  small = np.random.default_rng(params['seed']).uniform(0, 255, (6, 6)).astype(np.uint8)
  period = params['period'] * scale * 4  # blotches of about four stripe periods
  blotch = Image.fromarray(small).resize((int(6 * period),) * 2, Image.BILINEAR)
  blotch = np.asarray(blotch, np.float32)
  return np.take(np.take(blotch, np.arange(y0, y1) % blotch.shape[0], 0),
                 np.arange(x0, x1) % blotch.shape[1], 1) / 127.5 - 1


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------

class _Canvas:
  """A supersampled RGB canvas that takes coordinates in output-image pixels.

  While ``mask`` is set (an 'L' ImageDraw), every shape is also drawn there, with 255 for shapes
  drawn with ``cloth=True`` and 0 otherwise, which yields the visible clothes of a figure.
  """

  def __init__(self, size: int, base: np.ndarray):
    self.size, self.n = size, size * _SS
    self.img = Image.fromarray(base)
    self.draw = ImageDraw.Draw(self.img)
    self.mask: ImageDraw.ImageDraw | None = None

  @staticmethod
  def pt(p) -> tuple[float, float]:
    return ((p[0] + 0.5) * _SS - 0.5, (p[1] + 0.5) * _SS - 0.5)

  def _targets(self, fill, cloth: bool):
    yield self.draw, _rgb(fill)
    if self.mask is not None:
      yield self.mask, 255 if cloth else 0

  def disc(self, p, r: float, fill, cloth: bool = False) -> None:
    x, y = self.pt(p)
    r = max(r * _SS, 0.5)
    for draw, f in self._targets(fill, cloth):
      draw.ellipse([x - r, y - r, x + r, y + r], fill=f)

  def polygon(self, pts, fill, cloth: bool = False) -> None:
    xy = [self.pt(p) for p in pts]
    for draw, f in self._targets(fill, cloth):
      draw.polygon(xy, fill=f)

  def capsule(self, p0, p1, r0: float, r1: float, fill, cloth: bool = False) -> None:
    """A segment with round ends of radii ``r0`` and ``r1`` (a tapered limb)."""
    x0, y0, x1, y1 = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    length = math.hypot(x1 - x0, y1 - y0)
    if length > 1e-6:
      nx, ny = (y0 - y1) / length, (x1 - x0) / length
      self.polygon([(x0 + nx * r0, y0 + ny * r0), (x1 + nx * r1, y1 + ny * r1),
                    (x1 - nx * r1, y1 - ny * r1), (x0 - nx * r0, y0 - ny * r0)], fill, cloth)
    self.disc((x0, y0), r0, fill, cloth)
    self.disc((x1, y1), r1, fill, cloth)

  def ellipse(self, c, axis, a: float, b: float, fill, top: float | None = None) -> None:
    """A rotated ellipse; with ``top`` only its cap beyond ``top`` x a along the axis."""
    if top is None:
      t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    else:
      lim = math.acos(top)
      t = np.linspace(-lim, lim, 16)
    n = np.array([-axis[1], axis[0]])
    pts = c + np.outer(np.cos(t) * a, axis) + np.outer(np.sin(t) * b, n)
    self.polygon(pts, fill)


def _rgb(c) -> int | tuple[int, int, int]:
  """A PIL fill: an int for a scalar, an RGB tuple otherwise, clipped to 0-255."""
  if isinstance(c, tuple):
    return c
  if np.ndim(c) == 0:
    return int(min(max(c, 0), 255))
  return tuple(int(min(max(v, 0), 255)) for v in c[:3])


def _background(rng, size: int) -> tuple[np.ndarray, np.ndarray]:
  """A random two-colour linear gradient at canvas size, and its mean colour."""
  c0, c1 = _colour(rng), _colour(rng)
  ang = rng.uniform(0, 2 * math.pi)
  ramp = np.linspace(-1, 1, 8)
  t = ramp[None, :] * math.cos(ang) + ramp[:, None] * math.sin(ang)
  t = t / (abs(math.cos(ang)) + abs(math.sin(ang))) * 0.5 + 0.5  # 0 to 1 across the image
  small = Image.fromarray(np.clip(c0 + (c1 - c0) * t[..., None], 0, 255).astype(np.uint8))
  grad = small.resize((size, size), Image.BILINEAR).resize((size * _SS,) * 2, Image.NEAREST)
  return np.asarray(grad), (c0 + c1) / 2


def _clutter(rng, canvas: _Canvas) -> None:
  """Random rectangles, ellipses, polygons and lines over the background."""
  s = canvas.size
  for _ in range(int(rng.integers(3, 12))):
    kind = rng.integers(4)
    c = rng.uniform(-0.1, 1.1, 2) * s
    r = rng.uniform(0.03, 0.3, 2) * s
    col = _colour(rng)
    if kind == 0:
      canvas.polygon([c - r, (c[0] + r[0], c[1] - r[1]), c + r, (c[0] - r[0], c[1] + r[1])], col)
    elif kind == 1:
      canvas.ellipse(c, _unit(rng.uniform(0, math.pi)), r[0], r[1], col)
    elif kind == 2:
      canvas.polygon(c + rng.uniform(-1, 1, (int(rng.integers(3, 6)), 2)) * r, col)
    else:
      p1 = c + rng.uniform(-0.5, 0.5, 2) * s
      w = rng.uniform(0.003, 0.02) * s
      canvas.capsule(c, p1, w, w, col)


def _stray_limbs(rng, canvas: _Canvas, height: float) -> None:
  """Limb-like segments (arm or leg pieces, sometimes with a hand) that belong to nobody."""
  for _ in range(int(rng.integers(1, 4))):
    col, col2 = _colour(rng), _colour(rng)
    p0 = rng.uniform(0, canvas.size, 2)
    kind = 'upper_arm' if rng.random() < 0.5 else 'thigh'
    length = (_UPPER_ARM if kind == 'upper_arm' else _THIGH) * height
    p1 = p0 + length * _unit(rng.uniform(0, 2 * math.pi))
    r0, r1 = (w * height for w in _WIDTH[kind])
    canvas.capsule(p0, p1, r0, r1, col)
    if rng.random() < 0.5:
      lower = 'forearm' if kind == 'upper_arm' else 'shin'
      p2 = p1 + length * 0.9 * _unit(rng.uniform(0, 2 * math.pi))
      q0, q1 = (w * height for w in _WIDTH[lower])
      canvas.capsule(p1, p2, q0, q1, col2)


def _draw_figure(canvas: _Canvas, fig: dict, look: dict, facing_camera: bool) -> None:
  """Draws a figure back to front: legs, torso, arms, head."""
  w = {k: (a * fig['height'], b * fig['height']) for k, (a, b) in _WIDTH.items()}
  _draw_legs(canvas, fig, look, w)
  up, side = _draw_torso(canvas, fig, look, w)
  if facing_camera:
    _front_mark(canvas, fig, look, up, side)
  _draw_arms(canvas, fig, look, w)
  _draw_head(canvas, fig, look, facing_camera)


def _draw_legs(canvas: _Canvas, fig: dict, look: dict, w: dict) -> None:
  j = fig['j']
  for s in '+-':
    r = w['shin'][1]
    canvas.capsule(j[s + 'ankle'], fig[s + 'toe'], r * 0.9, r * 0.8, look['shoes'])
  for s in '+-':
    canvas.capsule(j[s + 'hip'], j[s + 'knee'], *w['thigh'], look['trousers'], cloth=True)
    canvas.capsule(j[s + 'knee'], j[s + 'ankle'], *w['shin'], look['trousers'], cloth=True)


def _draw_torso(canvas: _Canvas, fig: dict, look: dict, w: dict) -> tuple[np.ndarray, np.ndarray]:
  """Hips (trousers), the shirt polygon between shoulders and hips, and the neck.

  Returns the torso's up direction and the side direction towards the ``+`` limbs."""
  j, h = fig['j'], fig['height']
  up = j['thorax'] - j['pelvis']
  up = up / max(np.linalg.norm(up), 1e-6)
  side = np.array([-up[1], up[0]])
  half_hips = np.linalg.norm(j['+hip'] - j['-hip']) / 2 + w['thigh'][0]
  canvas.polygon([j['+hip'] + side * w['thigh'][0] - up * 0.02 * h,
                  j['-hip'] - side * w['thigh'][0] - up * 0.02 * h,
                  j['pelvis'] - side * half_hips + up * 0.07 * h,
                  j['pelvis'] + side * half_hips + up * 0.07 * h], look['trousers'], cloth=True)
  canvas.polygon([j['-shoulder'] + (up * 0.035 - side * 0.01) * h,
                  j['+shoulder'] + (up * 0.035 + side * 0.01) * h,
                  j['+shoulder'] + (side * 0.02 - up * 0.04) * h,
                  j['+hip'] + (side * 0.02 + up * 0.04) * h,
                  j['-hip'] + (-side * 0.02 + up * 0.04) * h,
                  j['-shoulder'] + (-side * 0.02 - up * 0.04) * h], look['shirt'], cloth=True)
  canvas.capsule(j['thorax'], j['neck'], *w['neck'], look['skin'])
  return up, side


def _draw_arms(canvas: _Canvas, fig: dict, look: dict, w: dict) -> None:
  j = fig['j']
  sleeve = look['long_sleeves']
  for s in '+-':
    canvas.capsule(j[s + 'shoulder'], j[s + 'elbow'], *w['upper_arm'], look['shirt'], cloth=True)
    canvas.capsule(j[s + 'elbow'], j[s + 'wrist'], *w['forearm'],
                   look['shirt'] if sleeve else look['skin'], cloth=sleeve)
    r = w['forearm'][1]
    canvas.capsule(j[s + 'wrist'], fig[s + 'hand'], r * 1.15, r * 1.35, look['skin'])


def _front_mark(canvas: _Canvas, fig: dict, look: dict, up, side) -> None:
  """The cues on the front of the torso: a V neckline, a chest emblem and a belt buckle.

  Each is a few pixels across in the default 96x96 crops, where a standing figure is about 80 px
  tall (the buttons they replace were under one pixel).
  """
  j, h = fig['j'], fig['height']
  t = j['thorax']
  canvas.polygon([t + (up * 0.03 - side * 0.06) * h, t + (up * 0.03 + side * 0.06) * h,
                  t - up * 0.11 * h], look['skin'])
  chest = t + (j['pelvis'] - t) * 0.45
  if look['mark_kind'] == 0:
    canvas.disc(chest, 0.06 * h, look['mark'])
  elif look['mark_kind'] == 1:
    a, b = side * 0.055 * h, up * 0.03 * h
    canvas.polygon([chest - a - b, chest + a - b, chest + a + b, chest - a + b], look['mark'])
  else:
    r = 0.065 * h
    canvas.polygon([chest + up * r, chest + side * r, chest - up * r, chest - side * r],
                   look['mark'])
  canvas.disc(j['pelvis'] + up * 0.05 * h, 0.025 * h, look['mark'])


def _draw_head(canvas: _Canvas, fig: dict, look: dict, facing_camera: bool) -> None:
  """Head ellipse: a face under a hair cap when facing the camera, all hair when facing away."""
  c, ax, a, b = _head_ellipse(fig)
  if not facing_camera:
    canvas.ellipse(c, ax, a, b, look['hair'])
    return
  canvas.ellipse(c, ax, a, b, look['skin'])
  canvas.ellipse(c, ax, a, b, look['hair'], top=0.45)
  n = np.array([-ax[1], ax[0]])
  eye_r = 0.14 * b
  for s in (-1, 1):
    canvas.disc(c + ax * 0.12 * a + n * s * 0.4 * b, eye_r, look['feature'])
  canvas.disc(c - ax * 0.18 * a, eye_r * 0.7, look['feature'])
  m = c - ax * 0.52 * a
  canvas.capsule(m - n * 0.3 * b, m + n * 0.3 * b, eye_r * 0.5, eye_r * 0.5, look['feature'])


def _figure(rng, canvas: _Canvas, fig: dict, bg_mean: np.ndarray, facing_camera: bool) -> None:
  """Draws a figure in random clothes, then textures its clothes."""
  look = _appearance(rng, bg_mean)
  if look['texture']['kind'] == 'none':
    _draw_figure(canvas, fig, look, facing_camera)
    return
  mask = Image.new('L', (canvas.n, canvas.n), 0)
  canvas.mask = ImageDraw.Draw(mask)
  _draw_figure(canvas, fig, look, facing_camera)
  canvas.mask = None
  _apply_texture(canvas, mask, look['texture'])


def _apply_texture(canvas: _Canvas, mask: Image.Image, params: dict) -> None:
  """Modulates the canvas brightness by the pattern where ``mask`` is set."""
  box = mask.getbbox()
  pattern = None if box is None else _pattern(params, box, _SS)
  if pattern is None:
    return
  region = np.asarray(canvas.img.crop(box), np.float32)
  m = np.asarray(mask.crop(box), np.float32)[..., None] * (params['amp'] / 255.0)
  region *= 1 + pattern[..., None] * m
  canvas.img.paste(Image.fromarray(np.clip(region, 0, 255).astype(np.uint8)), box[:2])


# How much is occluded: the chance that an image has occluders, how many (low, high + 1) and
# their half-sizes (x the figure's height). 'light' (the default) hides about 6% of the annotated
# parts; 'heavy' puts 2-3 occluders in nine images in ten and hides about 28%, so that how
# occluded parts are trained matters (the recurrent model's occlusion modes, visibility).
OCCLUSION = {'light': {'chance': 0.35, 'count': (1, 3), 'size': (0.06, 0.2)},
             'heavy': {'chance': 0.9, 'count': (2, 4), 'size': (0.07, 0.22)}}


def _occluders(rng, canvas: _Canvas, fig: dict, level: dict) -> tuple[int, np.ndarray, np.ndarray]:
  """Pastes textured shapes over the figure; returns their count, coverage and paint."""
  n = canvas.n
  shapes = _Canvas(canvas.size, np.zeros((n, n), np.uint8))
  count = int(rng.integers(*level['count']))
  h = fig['height']
  names = list(fig['j'])
  for _ in range(count):
    c = fig['j'][names[rng.integers(len(names))]] + rng.normal(0, 0.06 * h, 2)
    r = rng.uniform(*level['size'], 2) * h
    ax = _unit(rng.uniform(0, math.pi))
    if rng.random() < 0.5:
      nrm = np.array([-ax[1], ax[0]])
      shapes.polygon([c + ax * r[0] + nrm * r[1], c + ax * r[0] - nrm * r[1],
                      c - ax * r[0] - nrm * r[1], c - ax * r[0] + nrm * r[1]], 255)
    else:
      shapes.ellipse(c, ax, r[0], r[1], 255)
  c0, c1 = _colour(rng), _colour(rng)
  params = _texture_params(rng)
  paint = Image.new('RGB', (n, n), _rgb(c0))
  box = shapes.img.getbbox()
  if box is not None:
    pattern = _pattern(params, box, _SS)
    if pattern is not None:
      t = (pattern > 0)[..., None]
      paint.paste(Image.fromarray((c0 + (c1 - c0) * t).astype(np.uint8)), box[:2])
    canvas.img.paste(paint, (0, 0), shapes.img)
  coverage = np.asarray(shapes.img.reduce(_SS), np.float32) / 255.0
  return count, coverage, np.asarray(paint.reduce(_SS), np.float32)


def _visible(joints: np.ndarray, coverage: np.ndarray | None) -> np.ndarray:
  """A joint is hidden when the occluders cover at least half of the pixel it lies in."""
  vis = np.ones(len(joints), bool)
  if coverage is None:
    return vis
  size = coverage.shape[0]
  for i, (x, y) in enumerate(joints):
    c, r = int(round(float(x))), int(round(float(y)))
    if 0 <= r < size and 0 <= c < size:
      vis[i] = coverage[r, c] < 0.5
  return vis


# ----------------------------------------------------------------------------------------------
# Examples
# ----------------------------------------------------------------------------------------------

def _person_box(joints: np.ndarray) -> tuple[np.ndarray, float]:
  """MPII-style centre (objpos) and scale (padded height / 200) of a person."""
  top = joints[_J['head_top'], 1]
  bottom = max(joints[_J['l_ankle'], 1], joints[_J['r_ankle'], 1])
  height = max(bottom - top, 0.3 * np.ptp(joints[:, 1]) + 1.0)
  cx = (joints[_J['thorax'], 0] + joints[_J['pelvis'], 0]) / 2
  return np.array([cx, (top + bottom) / 2], np.float32), float(height * 1.1 / 200)


def _render(rng: np.random.Generator, size: int, occlusion: str = 'light'
            ) -> tuple[np.ndarray, dict, dict]:
  """Draws one image; returns it (uint8), its annotations and debugging information."""
  level = OCCLUSION[occlusion]
  base, bg_mean = _background(rng, size)
  canvas = _Canvas(size, base)
  _clutter(rng, canvas)
  fig = _primary(rng, size)
  facing_camera = bool(rng.random() < _FACING_CAMERA)
  if rng.random() < 0.3:
    _stray_limbs(rng, canvas, fig['height'] * rng.uniform(0.7, 1.1))
  others = np.zeros((0, 16, 3), np.float32)
  if rng.random() < 0.35:
    others = _second_person(rng, canvas, fig, bg_mean)
  _figure(rng, canvas, fig, bg_mean, facing_camera)
  count, coverage, paint = 0, None, None
  if rng.random() < level['chance']:
    count, coverage, paint = _occluders(rng, canvas, fig, level)
  image = _finish(rng, canvas)
  ann = _annotations(_label(fig['j'], facing_camera), _head_box(fig), coverage, others)
  debug = {'facing_camera': facing_camera, 'num_occluders': count,
           'occluder_coverage': coverage, 'occluder_paint': paint}
  return image, ann, debug


def _second_person(rng, canvas: _Canvas, fig: dict, bg_mean: np.ndarray) -> np.ndarray:
  """Draws a distractor figure; returns its joints as ``others`` ([1, 16, 3], all annotated)."""
  second = _distractor(rng, canvas.size, fig)
  facing_camera = bool(rng.random() < _FACING_CAMERA)
  _figure(rng, canvas, second, bg_mean, facing_camera)
  xy = _label(second['j'], facing_camera)
  return np.concatenate([xy, np.ones((16, 1))], 1)[None].astype(np.float32)


def _finish(rng, canvas: _Canvas) -> np.ndarray:
  """Downsamples the canvas and adds sensor noise (uniform, standard deviation up to 8)."""
  img = np.asarray(canvas.img.reduce(_SS), np.float32)
  spread = np.float32(rng.uniform(0, 8) * math.sqrt(12))
  img += (rng.random(img.shape, np.float32) - np.float32(0.5)) * spread
  return np.clip(img, 0, 255).astype(np.uint8)


def _annotations(joints: np.ndarray, head_box: np.ndarray, coverage: np.ndarray | None,
                 others: np.ndarray) -> dict:
  joints = joints.astype(np.float32)
  head_box = head_box.astype(np.float32)
  center, scale = _person_box(joints)
  return {
      'joints': joints,
      'joints_annotated': np.ones(16, bool),
      'joints_visible': _visible(joints, coverage),
      'center': center,
      'scale': np.float32(scale),
      'head_box': head_box,
      'norm': np.float32(features_lib.head_size(head_box)),
      'others': others,
  }


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
  return np.random.default_rng([seed, _SPLIT_IDS[split], index])


def render_example(seed: int, split: str, index: int, image_size: int,
                   occlusion: str = 'light') -> dict:
  """The example ``index`` of ``split``: the features dict with ``image`` as uint8 [S, S, 3].
  (``occlusion``: a key of OCCLUSION; 'light' draws what version 1.1.0 drew.)"""
  image, ann, _ = _render(_rng(seed, split, index), image_size, occlusion)
  return {'image': image, 'image_id': f'synthetic_{split}_{index:06d}', **ann}


# ----------------------------------------------------------------------------------------------
# The tensorflow-datasets builder
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class SyntheticPeopleConfig(tfds.core.BuilderConfig):
  """Image size, split sizes, seed and occlusion level of a generated set."""
  image_size: int = 160
  num_train: int = 4000
  num_validation: int = 500
  seed: int = 0
  occlusion: str = 'light'


class SyntheticPeople(local_builder.LocalBuilder):
  """Synthetic capsule people with MPII's 16 joints, drawn locally from a seed."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Larger facing cues (V neckline, chest emblem, belt buckle); three '
                            'in four figures face the camera.'}
  BUILDER_CONFIGS = [SyntheticPeopleConfig(name='default')]
  _MADE: dict = {}   # the configs ``builder`` made, by name (sizes and seed are in the name)
  # Where tfds looks for a checksums file, set directly so that no package-resource lookup runs.
  code_path = epath.Path(__file__)

  @classmethod
  def get_builder_config(cls, name, version=None):
    """A config made by ``builder`` counts as one of ours (tfds would warn about a custom
    configuration every time a set is opened)."""
    return cls._MADE.get(name) or super().get_builder_config(name, version)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features_lib.features(16, encoding='jpeg'),
        metadata=tfds.core.MetadataDict(skeleton='mpii', metric='pckh'),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    cfg = self.builder_config
    sizes = {'train': cfg.num_train, 'validation': cfg.num_validation}
    return {split: self._generate_examples(split, n) for split, n in sizes.items() if n > 0}

  def _generate_examples(self, split: str, count: int):
    cfg = self.builder_config
    for index in range(count):
      ex = render_example(cfg.seed, split, index, cfg.image_size, cfg.occlusion)
      ex['image'] = _jpeg(ex['image'])
      yield ex['image_id'], ex


def _jpeg(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='JPEG', quality=95, subsampling=0)
  return buf.getvalue()


def config_name(image_size: int, num_train: int, num_validation: int, seed: int,
                occlusion: str = 'light') -> str:
  return (f's{image_size}_t{num_train}_v{num_validation}_seed{seed}'
          + ('' if occlusion == 'light' else f'_occlusion-{occlusion}'))


def builder(data_dir: str, image_size: int = 160, num_train: int = 4000,
            num_validation: int = 500, seed: int = 0, occlusion: str = 'light') -> SyntheticPeople:
  """A prepared ``synthetic_people`` builder for these settings (generated on first use)."""
  if occlusion not in OCCLUSION:
    raise ValueError(f'occlusion must be one of {", ".join(OCCLUSION)}, got {occlusion!r}')
  name = config_name(image_size, num_train, num_validation, seed, occlusion)
  cfg = SyntheticPeople._MADE.setdefault(name, SyntheticPeopleConfig(  # noqa: SLF001
      name=name,
      description=f'{image_size}px images, {num_train} train / {num_validation} validation, '
                  f'seed {seed}, {occlusion} occlusion',
      image_size=image_size, num_train=num_train, num_validation=num_validation, seed=seed,
      occlusion=occlusion))
  b = SyntheticPeople(data_dir=data_dir, config=cfg)
  if not b.is_prepared():
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return b
