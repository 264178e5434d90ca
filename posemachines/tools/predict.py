"""Pose prediction on photos and videos:
``python -m posemachines.predict --model=ART_OR_WORKDIR IMAGES_OR_FOLDERS_OR_VIDEOS --out=DIR``.

Per image, under ``--out``: NAME.json (every part's x, y in image pixels and its confidence; every
stage's keypoints), NAME_overlay.png (the skeleton over the photo: left parts blue, right red,
centre green; parts below ``--min_confidence`` hollow and their limbs left out) and, with
``--stage_parts=r_wrist,l_ankle``, NAME_stages.png (every stage's belief maps for those parts over
the photo). Per video (GIF; other formats with imageio and its ffmpeg plugin installed):
NAME/frame_00000.json, ... and NAME_annotated.gif (or .mp4).

Output names. NAME is the input's file name without its extension (photo.jpg -> photo.json).
Inputs that share that name are told apart, all of them, by their extension and, where that is
not enough, by as many of their parent folders as it takes: x.jpg and x.png -> x_jpg.json and
x_png.json; a/person.jpg and b/person.jpg -> a_person.json and b_person.json. No output
overwrites another's (an input given twice is predicted once).

Where the person is. There is no person detector: the person is assumed to be centred in the
image and about 85% of its height tall (MPII scale = 0.85 x height / 200) unless
``--locations=FILE.json`` says where it is, per file name (or path as given):
``{"photo.jpg": {"center": [x, y], "scale": 2.3}, "other.png": {"box": [x1, y1, x2, y2]}}``
(a box is top-left then bottom-right in image pixels; its centre, and scale = its larger side /
200; for a model trained on COCO, the box grown to the model's aspect ratio and padded, as
posemachines/data/coco.py derives a person's scale from its box). A person away from the centre without a location gets a skeleton in the middle of the
image; predict warns when the peaks are weak (more than half the parts below
``--min_confidence``) or the skeleton spans under a quarter of the person height the crop assumes.
Before anything is predicted, every location is checked: a box with x2 <= x1 or y2 <= y1, a box
or person wholly outside its image, and a key that matches no input are errors naming the key
and the value. Inference merges several scales around the location and their mirror images
(``--scales``, ``--flip``), as evaluation does.

Confidence: the maximum of a part's merged belief map divided by the model's target peak
(config ``targets.peak``: 1 for the CPM, about 12 for the recurrent model's heatmaps), so that
0-1 and ``--min_confidence`` mean the same for both models.

Unreadable inputs. A file that cannot be read as an image or video is skipped, said on stderr and
counted; the others are predicted, and the run then ends with an error line naming the skipped
files (exit status 2).
"""
from __future__ import annotations

import collections
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

from posemachines.evaluation import inference
from posemachines.core import drawing, errors, images
from posemachines.codec import keypoints
from posemachines.data import coco

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_EXTS = ('.gif', '.mp4', '.avi', '.mov', '.mkv', '.webm')
DEFAULT_HEIGHT_FRACTION = 0.85
# Warnings: more than this fraction of the parts below --min_confidence; a skeleton whose larger
# extent is under this fraction of the person height (200 x scale px) that the crop assumes.
WEAK_FRACTION = 0.5
SMALL_FRACTION = 0.25
LOCATION_HINT = ('the person is assumed centred and about 85% of the image height tall; give '
                 'its box or centre and scale with --locations, e.g. '
                 '{"photo.jpg": {"box": [x1, y1, x2, y2]}}')


def collect_inputs(paths):
  """Files to predict on (folders expanded to the images and videos inside, sorted; a file given
  twice kept once): [(path, 'image' | 'video')]."""
  out, seen = [], set()
  for path in paths:
    if os.path.isdir(path):
      names = sorted(os.listdir(path))
      found = collect_inputs([os.path.join(path, n) for n in names
                              if n.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)
                              and os.path.isfile(os.path.join(path, n))])
    elif not os.path.isfile(path):
      raise errors.MissingData(f'No such image, video or folder: {path}')
    elif path.lower().endswith(VIDEO_EXTS):
      found = [(path, 'video')]
    elif path.lower().endswith(IMAGE_EXTS):
      found = [(path, 'image')]
    else:
      raise errors.BadFlag(f'{path}: not an image ({", ".join(IMAGE_EXTS)}) or a video '
                           f'({", ".join(VIDEO_EXTS)})')
    for item in found:
      real = os.path.realpath(item[0])
      if real not in seen:
        seen.add(real)
        out.append(item)
  return out


VIDEO_EXTRA = ('needs imageio with its ffmpeg plugin: pip install "posemachines[video]" (in a '
               'checkout: pip install -e ".[video]"); GIFs work without it')


def _video_reader():
  """imageio.v3 with its ffmpeg plugin, or None when the "video" extra is not installed."""
  try:
    import imageio.v3 as iio
    import imageio_ffmpeg  # noqa: F401  (the plugin imageio reads .mp4 and others with)
  except ImportError:
    return None
  return iio


def check_video_support(inputs) -> None:
  """Before any work: videos other than GIFs need the "video" extra (all of them named)."""
  videos = [p for p, kind in inputs if kind == 'video' and not p.lower().endswith('.gif')]
  if videos and _video_reader() is None:
    raise errors.MissingData(f'{", ".join(videos)}: reading this video format {VIDEO_EXTRA}')


def _name_parts(path):
  """(parent folder names, outermost first; stem; extension without the dot)."""
  folders = os.path.normpath(os.path.abspath(path)).split(os.sep)[:-1]
  stem, ext = os.path.splitext(os.path.basename(path))
  return [f for f in folders if f], stem, ext.lstrip('.').lower()


def _candidate(path, depth: int, with_ext: bool) -> str:
  folders, stem, ext = _name_parts(path)
  name = '_'.join(folders[len(folders) - depth:] + [stem]) if depth else stem
  return f'{name}_{ext}' if with_ext and ext else name


def output_names(paths) -> dict[str, str]:
  """path -> the NAME its outputs are written under (unique; see the module docstring)."""
  names = {path: _candidate(path, 0, False) for path in paths}
  for _ in range(len(paths) + 1):
    groups = collections.defaultdict(list)
    for path, name in names.items():
      groups[name].append(path)
    clashes = [group for group in groups.values() if len(group) > 1]
    if not clashes:
      return names
    for group in clashes:
      depth = max(len(_name_parts(p)[0]) for p in group)
      for d, with_ext in [(d, e) for d in range(depth + 1) for e in (False, True)][1:]:
        tried = {p: _candidate(p, d, with_ext) for p in group}
        if len(set(tried.values())) == len(group):
          names.update(tried)
          break
      else:
        raise errors.BadFlag(f'inputs {group} cannot be given distinct output names')
  raise errors.BadFlag(f'inputs {sorted(paths)} cannot be given distinct output names')


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
      raise errors.BadFile(f'{path} is not a readable GIF: {e}') from e
  iio = _video_reader()
  if iio is None:
    raise errors.MissingData(f'{path}: reading this video format {VIDEO_EXTRA}')
  try:
    meta = iio.immeta(path)
    frames = np.asarray(iio.imread(path))
  except Exception as e:  # imageio raises OSError, ValueError, RuntimeError, ...
    raise errors.BadFile(f'{path} is not a readable video: {e}') from e
  return frames, 1.0 / float(meta.get('fps', 25.0))


def read_locations(path: str | None) -> dict:
  if not path:
    return {}
  if not os.path.isfile(path):
    raise errors.MissingData(f'--locations file not found: {path}')
  with open(path) as f:
    try:
      table = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.BadFile(f'{path} is not valid JSON: {e}') from e
  if not isinstance(table, dict):
    raise errors.BadFile(f'{path} must hold an object mapping file names to locations')
  return table


def location_key(path: str, locations: dict) -> str | None:
  """The key of ``locations`` that names ``path``: the path as given (or the same file by
  another spelling), else its file name."""
  if path in locations:
    return path
  real = os.path.realpath(path)
  for key in locations:
    if os.path.realpath(key) == real and os.path.sep in key:
      return key
  name = os.path.basename(path)
  return name if name in locations else None


def unmatched_locations(paths, locations: dict, where: str) -> None:
  """Raises BadFlag naming every key of ``locations`` that matches none of ``paths``."""
  used = {location_key(p, locations) for p in paths}
  unknown = [k for k in locations if k not in used]
  if unknown:
    shown = ', '.join(f'{k!r}: {json.dumps(locations[k])}' for k in unknown[:5])
    more = f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''
    raise errors.BadFlag(
        f'--locations {where}: {len(unknown)} keys match no input file ({shown}{more}); a key '
        'is an input\'s file name or its path as given')


def _json(value) -> str:
  try:
    return json.dumps(value)
  except (TypeError, ValueError):
    return repr(value)


def box_location(model: inference.Model):
  """How a box [x1, y1, x2, y2] becomes (centre, scale) for ``model``: as the coco builder does
  for a model evaluated on COCO, else None (the box's centre and larger side / 200)."""
  import ml_collections
  data = ml_collections.ConfigDict(model.config).data  # every field declared (configs.upgrade)
  dataset = data.eval_dataset or str(data.dataset).split('+')[0]
  if dataset != 'coco':
    return None
  aspect = data.coco_aspect_ratio or coco.ASPECT_RATIO
  padding = data.coco_padding or coco.PADDING
  return lambda x1, y1, x2, y2: coco.box_center_scale((x1, y1, x2 - x1, y2 - y1), aspect, padding)


def person_location(shape, given=None, where: str = '', from_box=None):
  """(center [2], scale, how) for an image of ``shape``: given (center and scale, or a box) or
  the default (centred, DEFAULT_HEIGHT_FRACTION of the image height). ``from_box`` (see
  ``box_location``) turns a box into a centre and scale.

  Raises BadFile naming ``where`` (the locations file and key) and the value for a location
  that is malformed, a box with x2 <= x1 or y2 <= y1, or a box or person (centre +- 100 x scale)
  wholly outside the image.
  """
  height, width = shape[:2]
  if given is None:
    return (np.array([(width - 1) / 2, (height - 1) / 2], np.float32),
            DEFAULT_HEIGHT_FRACTION * height / 200.0, 'default')
  box = None
  try:
    if not isinstance(given, dict):
      raise TypeError(type(given).__name__)
    if 'box' in given:
      box = [float(v) for v in given['box']]
      x1, y1, x2, y2 = box
      center, scale = [(x1 + x2) / 2, (y1 + y2) / 2], max(x2 - x1, y2 - y1) / 200.0
      if from_box is not None and x2 > x1 and y2 > y1 and np.isfinite(box).all():
        center, scale = from_box(x1, y1, x2, y2)
        center = [float(v) for v in center]
    else:
      center, scale = [float(v) for v in given['center']], float(given['scale'])
  except (KeyError, TypeError, ValueError) as e:
    raise errors.BadFile(f'{where}: a location is {{"center": [x, y], "scale": s}} or '
                         f'{{"box": [x1, y1, x2, y2]}}, got {_json(given)}') from e
  if box is not None:
    if not np.isfinite(box).all():
      raise errors.BadFile(f'{where}: bad location {_json(given)} (box values must be finite)')
    if not (box[2] > box[0] and box[3] > box[1]):
      raise errors.BadFile(
          f'{where}: box {_json(given["box"])} has x2 <= x1 or y2 <= y1 (a box is [x1, y1, x2, '
          'y2]: top-left corner, then bottom-right, in image pixels)')
    extent = box
  else:
    if len(center) != 2 or not np.isfinite(center).all() or not (np.isfinite(scale)
                                                                 and scale > 0):
      raise errors.BadFile(f'{where}: bad location {_json(given)} (centre must be 2 finite '
                           'numbers, scale > 0)')
    half = 100.0 * scale
    extent = [center[0] - half, center[1] - half, center[0] + half, center[1] + half]
  if extent[2] < 0 or extent[3] < 0 or extent[0] > width - 1 or extent[1] > height - 1:
    what = (f'box {_json(given["box"])}' if box is not None else
            f'the person at center {_json(given["center"])} with scale {_json(given["scale"])} '
            f'(x {extent[0]:g} to {extent[2]:g}, y {extent[1]:g} to {extent[3]:g})')
    raise errors.BadFile(f'{where}: {what} lies wholly outside the {width}x{height} image')
  return np.asarray(center, np.float32), scale, 'given'


def check_locations(inputs, locations: dict, where: str) -> None:
  """Before anything is predicted: every key names an input, and every location fits its image
  (image and GIF sizes read from their headers; other videos are checked frame by frame)."""
  unmatched_locations([p for p, _ in inputs], locations, where)
  for path, kind in inputs:
    key = location_key(path, locations)
    if key is None or not (kind == 'image' or path.lower().endswith('.gif')):
      continue
    try:
      with Image.open(path) as im:
        width, height = im.size
    except Exception:  # unreadable: skipped and counted when it is predicted
      continue
    person_location((height, width), locations[key], f'--locations {where}: {key!r}')


def plausibility(final, scale: float, min_confidence: float, how: str) -> list[str]:
  """Warnings about one person's final keypoints [P, 3]: weak peaks, or a skeleton implausibly
  small for the person the crop assumes (200 x ``scale`` px tall)."""
  problems = []
  conf = final[:, 2]
  weak = int((conf < min_confidence).sum())
  if weak > WEAK_FRACTION * len(conf):
    problems.append(f'weak peaks: {weak} of {len(conf)} parts below --min_confidence '
                    f'{min_confidence:g} (mean confidence {conf.mean():.2f})')
  span = float(max(np.ptp(final[:, 0]), np.ptp(final[:, 1])))
  height = 200.0 * scale
  if span < SMALL_FRACTION * height:
    problems.append(f'the skeleton spans {span:.0f} px, under {SMALL_FRACTION:.0%} of the '
                    f'{height:.0f} px tall person the crop assumes')
  if problems and how == 'default':
    problems.append(LOCATION_HINT)
  return problems


def target_peak(model: inference.Model) -> float:
  """The mode of the model's training targets (config ``targets.peak``; 1 when not given)."""
  peak = float((model.config or {}).get('targets', {}).get('peak', 1.0) or 1.0)
  return peak if np.isfinite(peak) and peak > 0 else 1.0


class Predictor:
  """One model with its test-time views, compiled once."""

  def __init__(self, model: inference.Model, scales=inference.DEFAULT_SCALES, flip: bool = True):
    self.model = model
    self.view_list = inference.views(scales, flip)
    self.fn, self.merge = inference.predict_fn(model, self.view_list)
    self.peak = target_peak(model)

  def __call__(self, image, center, scale):
    """Keypoints [T, P, 3] in image pixels, confidences divided by the target peak; merged maps
    [T, G, G, C] as the model gives them; grid_to_image [2, 3]."""
    import tensorflow as tf
    crops, crop_to_image = inference.view_crops(tf.constant(image), center, scale, self.model,
                                                self.view_list)
    crop_to_image = crop_to_image.numpy()
    kp, merged = self.fn(crops.numpy()[None], crop_to_image[None])
    grid_to_image = np.asarray(keypoints.compose(crop_to_image, self.merge.grid_to_crop))
    kp = np.array(kp)[:, 0]
    kp[..., 2] /= self.peak
    return kp, np.asarray(merged)[:, 0], grid_to_image


def record(path, image, center, scale, how, keypoints, model, warnings=(), peak=1.0) -> dict:
  skel = model.skeleton
  final = keypoints[-1]
  return {'image': path, 'width': int(image.shape[1]), 'height': int(image.shape[0]),
          'center': [float(v) for v in center], 'scale': float(scale), 'location': how,
          'model': model.source, 'confidence_peak': float(peak),
          'parts': {name: {'x': float(final[i, 0]), 'y': float(final[i, 1]),
                           'confidence': float(final[i, 2])} for i, name in enumerate(skel.parts)},
          'stages': [[[float(v) for v in p] for p in kp] for kp in keypoints],
          'warnings': list(warnings)}


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


def _location(path, shape, locations, where, model=None):
  key = location_key(path, locations)
  given = None if key is None else locations[key]
  return person_location(shape, given, f'--locations {where}: {key!r}' if key else path,
                         None if model is None else box_location(model))


def predict_image(predictor, path, out, locations, min_confidence, stage_parts=(), name=None,
                  locations_file=''):
  """Predicts one image into ``out``/NAME* (NAME: ``name``, default the file's stem); returns
  its record (see ``record``), warnings included."""
  image = read_image(path)
  center, scale, how = _location(path, image.shape, locations, locations_file, predictor.model)
  keypoints, merged, grid_to_image = predictor(image, center, scale)
  stem = os.path.join(out, name or os.path.splitext(os.path.basename(path))[0])
  warnings = plausibility(keypoints[-1], scale, min_confidence, how)
  rec = record(path, image, center, scale, how, keypoints, predictor.model, warnings,
               predictor.peak)
  with open(stem + '.json', 'w') as f:
    json.dump(rec, f, indent=2)
  skel = predictor.model.skeleton
  Image.fromarray(draw_overlay(image, keypoints[-1], skel, min_confidence)).save(
      stem + '_overlay.png')
  if stage_parts:
    a, tx, ty = grid_to_image[0, 0], grid_to_image[0, 2], grid_to_image[1, 2]
    g = merged.shape[1]
    extent = (tx - a / 2, tx + a * (g - 0.5), ty + a * (g - 0.5), ty - a / 2)
    drawing.stage_panel(image, merged, stage_parts, skel, stem + '_stages.png',
                        map_extent=extent, points=keypoints)
  return rec


def predict_video(predictor, path, out, locations, min_confidence, max_frames: int = -1,
                  name=None, locations_file=''):
  """Predicts every frame into ``out``/NAME/frame_*.json and NAME_annotated.gif (or .mp4);
  returns (the annotated video's path, the frames' warnings)."""
  frames, seconds = read_video(path)
  if max_frames > 0:
    frames = frames[:max_frames]
  name = name or os.path.splitext(os.path.basename(path))[0]
  folder = os.path.join(out, name)
  os.makedirs(folder, exist_ok=True)
  drawn, warned = [], []
  for k, frame in enumerate(frames):
    center, scale, how = _location(path, frame.shape, locations, locations_file,
                                   predictor.model)
    keypoints, _, _ = predictor(frame, center, scale)
    warnings = plausibility(keypoints[-1], scale, min_confidence, how)
    if warnings:
      warned.append(k)
    rec = record(f'{path}#{k}', frame, center, scale, how, keypoints, predictor.model, warnings,
                 predictor.peak)
    with open(os.path.join(folder, f'frame_{k:05d}.json'), 'w') as f:
      json.dump(rec, f, indent=2)
    drawn.append(draw_overlay(frame, keypoints[-1], predictor.model.skeleton, min_confidence))
  warnings = []
  if warned:
    warnings.append(f'{len(warned)} of {len(frames)} frames have weak peaks or a small skeleton '
                    f'(first: frame {warned[0]}; see its JSON)')
  return write_video(drawn, seconds, os.path.join(out, name + '_annotated'), path), warnings


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
