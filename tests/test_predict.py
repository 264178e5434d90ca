"""predict on real photos and a GIF, with default and given person locations; bad input."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from posemachines.tools import predict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'photos')


def test_predict_command_on_real_photos_and_a_gif(trained_workdir, tmp_path):
  small = os.path.join(PHOTOS, 'im1630.jpg')
  wide = os.path.join(PHOTOS, 'nadal.png')
  frame = Image.open(os.path.join(PHOTOS, 'im1640.jpg')).convert('RGB')
  clip = tmp_path / 'clip.gif'
  frames = [frame.rotate(a) for a in (0, 5, 10)]
  frames[0].save(clip, save_all=True, append_images=frames[1:], duration=80, loop=0)
  locations = tmp_path / 'locations.json'
  locations.write_text(json.dumps({'nadal.png': {'box': [250, 40, 400, 330]}}))
  out = tmp_path / 'out'
  env = dict(os.environ, PYTHONPATH=ROOT)
  subprocess.run([sys.executable, '-m', 'posemachines.predict', f'--model={trained_workdir}',
                  small, wide, str(clip), f'--out={out}', '--stage_parts=r_wrist,head_top',
                  f'--locations={locations}', '--scales=0.8,1.0,1.2'], env=env, check=True,
                 timeout=600)
  rec = json.load(open(out / 'im1630.json'))
  w, h = Image.open(small).size
  assert (rec['width'], rec['height']) == (w, h)
  assert rec['location'] == 'default' and rec['center'] == [(w - 1) / 2, (h - 1) / 2]
  assert rec['scale'] == pytest.approx(predict.DEFAULT_HEIGHT_FRACTION * h / 200)
  assert len(rec['parts']) == 14 and len(rec['stages']) == 2
  assert all(np.isfinite([p['x'], p['y'], p['confidence']]).all() for p in rec['parts'].values())
  assert rec['stages'][-1][0][:2] == [rec['parts']['head_top']['x'], rec['parts']['head_top']['y']]
  given = json.load(open(out / 'nadal.json'))
  assert given['location'] == 'given' and given['center'] == [325.0, 185.0]
  assert given['scale'] == pytest.approx(290 / 200)
  for name, path in (('im1630', small), ('nadal', wide)):
    assert Image.open(out / f'{name}_overlay.png').size == Image.open(path).size
    assert os.path.getsize(out / f'{name}_stages.png') > 10_000
  assert sorted(os.listdir(out / 'clip')) == [f'frame_{k:05d}.json' for k in range(3)]
  assert json.load(open(out / 'clip' / 'frame_00002.json'))['image'].endswith('clip.gif#2')
  with Image.open(out / 'clip_annotated.gif') as gif:
    assert gif.n_frames == 3 and gif.size == frame.size


def test_overlay_draws_confident_parts_only():
  from posemachines.core import skeleton
  image = np.zeros((100, 100, 3), np.uint8)
  skel = skeleton.CPM14
  kp = np.zeros((14, 3))
  kp[:, :2] = [20, 20]
  kp[skel.index('r_shoulder')] = [30, 30, 0.9]
  kp[skel.index('r_elbow')] = [70, 70, 0.9]
  drawn = predict.draw_overlay(image, kp, skel, min_confidence=0.5)
  assert drawn[50, 50].tolist() == [0xd6, 0x27, 0x28]        # the right upper arm, red
  kp[skel.index('r_elbow'), 2] = 0.1
  drawn = predict.draw_overlay(image, kp, skel, min_confidence=0.5)
  assert drawn[50, 50].tolist() == [0, 0, 0]                  # not confident: no limb


def test_bad_inputs(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere.jpg'):
    predict.collect_inputs([str(tmp_path / 'nowhere.jpg')])
  (tmp_path / 'notes.txt').write_text('x')
  with pytest.raises(ValueError, match='notes.txt: not an image'):
    predict.collect_inputs([str(tmp_path / 'notes.txt')])
  (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(ValueError, match='broken.jpg is not a readable image'):
    predict.read_image(str(tmp_path / 'broken.jpg'))
  (tmp_path / 'loc.json').write_text('{"a.jpg": ')
  with pytest.raises(ValueError, match='loc.json is not valid JSON'):
    predict.read_locations(str(tmp_path / 'loc.json'))
  with pytest.raises(ValueError, match='a.jpg: a location is'):
    predict.person_location((10, 10, 3), {'centre': [1, 2]}, 'a.jpg')
  with pytest.raises(ValueError, match='a.jpg: bad location'):
    predict.person_location((10, 10, 3), {'center': [1, 2], 'scale': -1}, 'a.jpg')
  # Folders are expanded to the images and videos inside, sorted; other files are ignored.
  (tmp_path / 'b.png').write_bytes(b'')
  assert predict.collect_inputs([str(tmp_path)]) == [(str(tmp_path / 'b.png'), 'image'),
                                                     (str(tmp_path / 'broken.jpg'), 'image')]


def _predict(*args, timeout=600):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-m', 'posemachines.predict', *args], env=env,
                        capture_output=True, text=True, timeout=timeout)


def _checksums(folder):
  """{relative path: sha256} of every file under ``folder``."""
  out = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return out


def test_outputs_named_uniquely_broken_files_skipped_and_weak_peaks_warned(trained_workdir,
                                                                           tmp_path):
  photo = Image.open(os.path.join(PHOTOS, 'im1640.jpg')).convert('RGB')
  for folder in ('a', 'b', 'folder'):
    (tmp_path / folder).mkdir()
  photo.save(tmp_path / 'a' / 'person.jpg')
  photo.transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / 'b' / 'person.jpg')
  photo.save(tmp_path / 'folder' / 'x.jpg')
  photo.save(tmp_path / 'folder' / 'x.png')
  (tmp_path / 'folder' / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
  (tmp_path / 'folder' / 'notes.txt').write_text('ignored')
  out = tmp_path / 'out'
  before = _checksums(trained_workdir)
  proc = _predict(f'--model={trained_workdir}', str(tmp_path / 'a' / 'person.jpg'),
                  str(tmp_path / 'b' / 'person.jpg'), str(tmp_path / 'folder'), f'--out={out}',
                  '--scales=1.0', '--min_confidence=50')
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert _checksums(trained_workdir) == before            # the model's workdir is left alone
  written = sorted(os.listdir(out))
  assert written == ['a_person.json', 'a_person_overlay.png', 'b_person.json',
                     'b_person_overlay.png', 'x_jpg.json', 'x_jpg_overlay.png', 'x_png.json',
                     'x_png_overlay.png']
  assert json.load(open(out / 'a_person.json'))['image'] == str(tmp_path / 'a' / 'person.jpg')
  assert json.load(open(out / 'x_png.json'))['image'] == str(tmp_path / 'folder' / 'x.png')
  assert f'{tmp_path}/a/person.jpg: mean confidence ' in proc.stdout
  assert f'Written to {out}: 4 of 5 inputs' in proc.stdout
  broken = tmp_path / 'folder' / 'broken.jpg'
  assert f'posemachines.predict: skipped {broken}: {broken} is not a readable image' in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f'posemachines.predict: error: 1 of 5 inputs skipped (unreadable): {broken}; the other 4 '
      f'are in {out}')
  # Every part is below --min_confidence 50: said, with the hint about --locations.
  rec = json.load(open(out / 'x_jpg.json'))
  assert rec['confidence_peak'] == 1.0 and rec['warnings'][0].startswith('weak peaks: ')
  assert rec['warnings'][-1] == predict.LOCATION_HINT
  assert (f'posemachines.predict: warning: {tmp_path}/folder/x.jpg: weak peaks: 14 of 14 parts '
          'below --min_confidence 50 (mean confidence ' in proc.stderr)
  assert '--locations, e.g. {"photo.jpg": {"box": [x1, y1, x2, y2]}}' in proc.stderr


def test_bad_locations_are_errors_before_anything_is_written(tmp_path):
  small = os.path.join(PHOTOS, 'im1630.jpg')                    # 76 x 193
  out = tmp_path / 'out'
  cases = [
      ({'im1630.jpg': {'box': [60, 10, 20, 150]}},
       "'im1630.jpg': box [60, 10, 20, 150] has x2 <= x1 or y2 <= y1 (a box is [x1, y1, x2, y2]: "
       'top-left corner, then bottom-right, in image pixels)'),
      ({'im1630.jpg': {'box': [5000, 10, 5100, 150]}},
       "'im1630.jpg': box [5000, 10, 5100, 150] lies wholly outside the 76x193 image"),
      ({'im1630.jpg': {'center': [-500, 50], 'scale': 1.0}},
       "'im1630.jpg': the person at center [-500, 50] with scale 1.0 (x -600 to -400, y -50 to "
       '150) lies wholly outside the 76x193 image'),
      ({'im1630.jpg': {'box': [1, 2]}},
       "'im1630.jpg': a location is {\"center\": [x, y], \"scale\": s} or {\"box\": [x1, y1, x2, "
       'y2]}, got {"box": [1, 2]}'),
      ({'im1630.jpg': {'box': [0, 0, 50, 150]}, 'im1360.jpg': {'box': [0, 0, 5, 5]}},
       '1 keys match no input file (\'im1360.jpg\': {"box": [0, 0, 5, 5]}); a key is an '
       "input's file name or its path as given"),
  ]
  for k, (table, message) in enumerate(cases):
    locations = tmp_path / f'locations{k}.json'
    locations.write_text(json.dumps(table))
    # The locations are checked before the model is loaded: no model is needed to see the error.
    proc = _predict(f'--model={tmp_path / "no_model"}', small, f'--locations={locations}',
                    f'--out={out}', timeout=300)
    assert proc.returncode == 2, (message, proc.stderr[-2000:])
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f'posemachines.predict: error: --locations {locations}: {message}', last
    assert not out.exists()


def test_person_location_checks():
  where = "--locations l.json: 'a.jpg'"
  center, scale, how = predict.person_location((100, 200, 3), {'box': [150, 50, 250, 120]}, where)
  assert center.tolist() == [200, 85] and scale == 0.5 and how == 'given'   # overlaps: kept
  from posemachines.core import errors
  with pytest.raises(errors.BadFile, match=r"'a.jpg': box \[10, 50, 10, 60\] has x2 <= x1"):
    predict.person_location((100, 200, 3), {'box': [10, 50, 10, 60]}, where)
  with pytest.raises(errors.BadFile, match='bad location .*finite'):
    predict.person_location((100, 200, 3), {'box': [10, 50, float('nan'), 60]}, where)


def test_plausibility_warnings():
  final = np.zeros((14, 3))
  final[:, 0] = np.linspace(100, 300, 14)           # spans 200 px of a 200 px tall person
  final[:, 2] = 0.9
  assert predict.plausibility(final, 1.0, 0.1, 'default') == []
  final[:8, 2] = 0.05                               # 8 of 14 below 0.1
  assert predict.plausibility(final, 1.0, 0.1, 'given') == [
      'weak peaks: 8 of 14 parts below --min_confidence 0.1 (mean confidence 0.41)']
  final[:, 2] = 0.9
  final[:, 0] = np.linspace(100, 140, 14)           # 40 px: under a quarter of 200 px
  assert predict.plausibility(final, 1.0, 0.1, 'default') == [
      'the skeleton spans 40 px, under 25% of the 200 px tall person the crop assumes',
      predict.LOCATION_HINT]


def test_confidence_is_normalised_to_the_target_peak():
  """A model whose maps peak at its targets' peak (12, as the recurrent model's heatmaps) gives
  confidence 1, as a CPM's (peak 1) does."""
  import jax.numpy as jnp
  from posemachines.evaluation import inference
  crop, stride = 48, 4
  g = crop // stride
  yy, xx = np.mgrid[:g, :g]
  bump = np.exp(-((xx - 5.5) ** 2 + (yy - 5.5) ** 2) / (2 * 3.0 ** 2))[..., None]
  confidences = []
  for peak in (1.0, 12.0):
    maps = np.concatenate([peak * np.repeat(bump, 14, -1), np.zeros((g, g, 1))], -1)

    def forward(crops, maps=maps):
      return jnp.broadcast_to(jnp.asarray(maps, jnp.float32), (1, crops.shape[0]) + maps.shape)

    model = inference.Model(forward=forward, crop_size=crop, stride=stride, parts='cpm14',
                            target_dist=1.0, config={'targets': {'peak': peak}}, source='test')
    predictor = predict.Predictor(model, (1.0,), flip=False)
    kp, merged, _ = predictor(np.zeros((64, 64, 3), np.uint8), np.array([32.0, 32.0]), 0.3)
    assert predictor.peak == peak
    assert merged[-1, ..., :14].max() == pytest.approx(peak, rel=0.05)   # the maps, as given
    confidences.append(kp[-1, :, 2])
    assert confidences[-1] == pytest.approx(np.ones(14), rel=0.05)
  assert confidences[1] == pytest.approx(confidences[0], rel=1e-5)
