"""Pose prediction on photos and videos:
``python -m posemachines.predict --model=ART_OR_WORKDIR IMAGES_OR_FOLDERS_OR_VIDEOS --out=DIR``.

Per image, under ``--out``: NAME.json (every part's x, y in image pixels and its confidence, the
maximum of its merged belief map; every stage's keypoints), NAME_overlay.png (the skeleton over
the photo: left parts blue, right red, centre green; parts below ``--min_confidence`` hollow and
their limbs left out) and, with ``--stage_parts=r_wrist,l_ankle``, NAME_stages.png (every stage's
belief maps for those parts over the photo). Per video (GIF; other formats with imageio and its
ffmpeg plugin installed): NAME/frame_00000.json, ... and NAME_annotated.gif (or .mp4).

Where the person is: by default centred in the image, about 85% of its height tall (MPII scale =
0.85 x height / 200). ``--locations=FILE.json`` gives it per file name:
``{"photo.jpg": {"center": [x, y], "scale": 2.3}, "other.png": {"box": [x1, y1, x2, y2]}}``
(a box's centre, and scale = its larger side / 200; for a model trained on COCO, the box grown to
the model's aspect ratio and padded, as posemachines/data/coco.py derives a person's scale from
its box). Inference merges several scales around that
and their mirror images (``--scales``, ``--flip``), as evaluation does.
"""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

from posemachines.evaluation import inference
from posemachines.core import drawing, images
from posemachines.codec import keypoints
from posemachines.data import coco

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_EXTS = ('.gif', '.mp4', '.avi', '.mov', '.mkv', '.webm')
DEFAULT_HEIGHT_FRACTION = 0.85


def collect_inputs(paths):
  """Files to predict on (folders expanded, sorted): [(path, 'image' | 'video')]."""
  out = []
  for path in paths:
    if os.path.isdir(path):
      names = sorted(os.listdir(path))
      out.extend(collect_inputs([os.path.join(path, n) for n in names
                                 if n.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)]))
    elif not os.path.isfile(path):
      raise FileNotFoundError(f'No such image, video or folder: {path}')
    elif path.lower().endswith(VIDEO_EXTS):
      out.append((path, 'video'))
    elif path.lower().endswith(IMAGE_EXTS):
      out.append((path, 'image'))
    else:
      raise ValueError(f'{path}: not an image ({", ".join(IMAGE_EXTS)}) or a video '
                       f'({", ".join(VIDEO_EXTS)})')
  return out


def read_image(path: str) -> np.ndarray:
  """uint8 [H, W, 3], whatever the file's mode (core/images.py); BadFile when unreadable."""
  return images.read(path)


def read_video(path: str):
  """(frames [N, H, W, 3] uint8, seconds per frame)."""
  if path.lower().endswith('.gif'):
    try:
      with Image.open(path) as im:
        frames = [images.to_rgb_array(f) for f in ImageSequence.Iterator(im)]
        return np.stack(frames), im.info.get('duration', 100) / 1000.0
    except Exception as e:
      raise ValueError(f'{path} is not a readable GIF: {e}') from e
  try:
    import imageio.v3 as iio
  except ImportError:
    raise ValueError(f'{path}: reading this video format needs imageio with its ffmpeg plugin '
                     '(pip install imageio imageio-ffmpeg, or the "video" extra); GIFs work '
                     'without it') from None
  meta = iio.immeta(path)
  return np.asarray(iio.imread(path)), 1.0 / float(meta.get('fps', 25.0))


def read_locations(path: str | None) -> dict:
  if not path:
    return {}
  with open(path) as f:
    try:
      table = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is not valid JSON: {e}') from e
  if not isinstance(table, dict):
    raise ValueError(f'{path} must hold an object mapping file names to locations')
  return table


def box_location(model: inference.Model):
  """How a box [x1, y1, x2, y2] becomes (centre, scale) for ``model``: as the coco builder does
  for a model evaluated on COCO, else None (the box's centre and larger side / 200)."""
  data = (model.config or {}).get('data', {})
  dataset = data.get('eval_dataset') or str(data.get('dataset', '')).split('+')[0]
  if dataset != 'coco':
    return None
  aspect = data.get('coco_aspect_ratio') or coco.ASPECT_RATIO
  padding = data.get('coco_padding') or coco.PADDING
  return lambda x1, y1, x2, y2: coco.box_center_scale((x1, y1, x2 - x1, y2 - y1), aspect, padding)


def person_location(shape, given=None, where: str = '', from_box=None):
  """(center [2], scale, how) for an image of ``shape``: given (center and scale, or a box) or
  the default (centred, DEFAULT_HEIGHT_FRACTION of the image height). ``from_box`` (see
  ``box_location``) turns a box into a centre and scale."""
  height, width = shape[:2]
  if given is None:
    return (np.array([(width - 1) / 2, (height - 1) / 2], np.float32),
            DEFAULT_HEIGHT_FRACTION * height / 200.0, 'default')
  try:
    if 'box' in given:
      x1, y1, x2, y2 = (float(v) for v in given['box'])
      if from_box is not None:
        center, scale = from_box(x1, y1, x2, y2)
        center = [float(v) for v in center]
      else:
        center, scale = [(x1 + x2) / 2, (y1 + y2) / 2], max(x2 - x1, y2 - y1) / 200.0
    else:
      center, scale = [float(v) for v in given['center']], float(given['scale'])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f'{where}: a location is {{"center": [x, y], "scale": s}} or '
                     f'{{"box": [x1, y1, x2, y2]}}, got {given!r}') from e
  if len(center) != 2 or not np.isfinite(center).all() or not (np.isfinite(scale) and scale > 0):
    raise ValueError(f'{where}: bad location {given!r} (centre must be 2 finite numbers, '
                     'scale > 0)')
  return np.asarray(center, np.float32), scale, 'given'


class Predictor:
  """One model with its test-time views, compiled once."""

  def __init__(self, model: inference.Model, scales=inference.DEFAULT_SCALES, flip: bool = True):
    self.model = model
    self.view_list = inference.views(scales, flip)
    self.fn, self.merge = inference.predict_fn(model, self.view_list)

  def __call__(self, image, center, scale):
    """Keypoints [T, P, 3] in image pixels, merged maps [T, Gy, Gx, C], grid_to_image [2, 3]."""
    import tensorflow as tf
    crops, crop_to_image = inference.view_crops(tf.constant(image), center, scale, self.model,
                                                self.view_list)
    crop_to_image = crop_to_image.numpy()
    kp, merged = self.fn(crops.numpy()[None], crop_to_image[None])
    grid_to_image = np.asarray(keypoints.compose(crop_to_image, self.merge.grid_to_crop))
    return np.asarray(kp)[:, 0], np.asarray(merged)[:, 0], grid_to_image


def record(path, image, center, scale, how, keypoints, model) -> dict:
  skel = model.skeleton
  final = keypoints[-1]
  return {'image': path, 'width': int(image.shape[1]), 'height': int(image.shape[0]),
          'center': [float(v) for v in center], 'scale': float(scale), 'location': how,
          'model': model.source,
          'parts': {name: {'x': float(final[i, 0]), 'y': float(final[i, 1]),
                           'confidence': float(final[i, 2])} for i, name in enumerate(skel.parts)},
          'stages': [[[float(v) for v in p] for p in kp] for kp in keypoints]}


def _rgb(hex_colour):
  return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def draw_overlay(image, keypoints, skel, min_confidence: float) -> np.ndarray:
  """The skeleton drawn on a copy of ``image``: [P, 3] keypoints (x, y, confidence)."""
  im = Image.fromarray(image)
  draw = ImageDraw.Draw(im)
  size = max(image.shape[:2])
  width, radius = max(2, round(size / 200)), max(3, round(size / 120))
  ok = keypoints[:, 2] >= min_confidence
  for a, b in skel.limb_indices:
    if ok[a] and ok[b]:
      name = skel.parts[b] if skel.parts[b][:2] in ('l_', 'r_') else skel.parts[a]
      draw.line([tuple(keypoints[a, :2]), tuple(keypoints[b, :2])],
                fill=_rgb(drawing.part_colour(name)), width=width)
  for i, name in enumerate(skel.parts):
    x, y = keypoints[i, :2]
    box = [x - radius, y - radius, x + radius, y + radius]
    colour = _rgb(drawing.part_colour(name))
    draw.ellipse(box, fill=colour if ok[i] else None, outline=(255, 255, 255) if ok[i] else colour,
                 width=max(1, width // 2))
  return np.asarray(im)


def _location_for(path, locations):
  given = locations.get(os.path.basename(path), locations.get(path))
  return given


def predict_image(predictor, path, out, locations, min_confidence, stage_parts=()):
  image = read_image(path)
  center, scale, how = person_location(image.shape, _location_for(path, locations), path,
                                       box_location(predictor.model))
  keypoints, merged, grid_to_image = predictor(image, center, scale)
  stem = os.path.join(out, os.path.splitext(os.path.basename(path))[0])
  rec = record(path, image, center, scale, how, keypoints, predictor.model)
  with open(stem + '.json', 'w') as f:
    json.dump(rec, f, indent=2)
  skel = predictor.model.skeleton
  Image.fromarray(draw_overlay(image, keypoints[-1], skel, min_confidence)).save(
      stem + '_overlay.png')
  if stage_parts:
    a, tx, ty = grid_to_image[0, 0], grid_to_image[0, 2], grid_to_image[1, 2]
    gy, gx = merged.shape[1:3]
    extent = (tx - a / 2, tx + a * (gx - 0.5), ty + a * (gy - 0.5), ty - a / 2)
    drawing.stage_panel(image, merged, stage_parts, skel, stem + '_stages.png',
                      map_extent=extent, points=keypoints)
  return rec


def predict_video(predictor, path, out, locations, min_confidence, max_frames: int = -1):
  frames, seconds = read_video(path)
  if max_frames > 0:
    frames = frames[:max_frames]
  name = os.path.splitext(os.path.basename(path))[0]
  folder = os.path.join(out, name)
  os.makedirs(folder, exist_ok=True)
  given = _location_for(path, locations)
  drawn = []
  for k, frame in enumerate(frames):
    center, scale, how = person_location(frame.shape, given, path, box_location(predictor.model))
    keypoints, _, _ = predictor(frame, center, scale)
    rec = record(f'{path}#{k}', frame, center, scale, how, keypoints, predictor.model)
    with open(os.path.join(folder, f'frame_{k:05d}.json'), 'w') as f:
      json.dump(rec, f, indent=2)
    drawn.append(draw_overlay(frame, keypoints[-1], predictor.model.skeleton, min_confidence))
  return write_video(drawn, seconds, os.path.join(out, name + '_annotated'), path)


def write_video(frames, seconds: float, stem: str, source: str) -> str:
  """An animated GIF (always available), or .mp4 when the input was not a GIF and imageio is."""
  if not source.lower().endswith('.gif'):
    try:
      import imageio.v3 as iio
      iio.imwrite(stem + '.mp4', np.stack(frames), fps=1.0 / seconds)
      return stem + '.mp4'
    except ImportError:
      pass
  stills = [Image.fromarray(f) for f in frames]
  stills[0].save(stem + '.gif', save_all=True, append_images=stills[1:],
                 duration=int(round(seconds * 1000)), loop=0)
  return stem + '.gif'
