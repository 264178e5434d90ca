"""predict on real photos and a GIF, with default and given person locations; bad input."""
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
