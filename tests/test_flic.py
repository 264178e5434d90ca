"""The ``flic`` builder on an official-format FLIC.zip (examples.mat struct array, images/)."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import flic
from posemachines.data import manual
from tests import marker

PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'photos')
S = skeleton.FLIC
# Observer-centric labels of a person facing the camera in a 400 x 300 frame: FLIC's "left"
# shoulder is the one on the image's left, which is the person's right shoulder.
OBSERVER = {'l_shoulder': (150, 100), 'l_elbow': (130, 150), 'l_wrist': (190, 170),
            'r_shoulder': (250, 100), 'r_elbow': (270, 150), 'r_wrist': (280, 200),
            'l_hip': (170, 220), 'r_hip': (230, 220), 'nose': (200, 60)}


def _coords(parts, shift=(0, 0)):
  c = np.full((2, flic.NUM_SLOTS), np.nan)
  for name, (x, y) in parts.items():
    c[:, flic.SLOTS[name]] = (x + shift[0], y + shift[1])
  c[:, 12], c[:, 13] = (190 + shift[0], 50), (210 + shift[0], 50)  # eyes: dropped
  return c


def _example(path, coords, box, train=True):
  return {'coords': coords, 'filepath': path, 'imgdims': np.array([300.0, 400.0, 3.0]),
          'torsobox': np.array(box, np.float64), 'istrain': float(train),
          'istest': float(not train), 'moviename': 'fixture', 'currframe': 1.0}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('flic'))
  # The person's right wrist (FLIC's "l_wrist" on the image's left) carries the marker.
  frame = marker.marker_image(400, 300, [OBSERVER['l_wrist']])
  far = {k: v for k, v in OBSERVER.items() if k != 'nose'}  # a second person, no nose label
  examples = [
      _example('frame.jpg', _coords(OBSERVER), [140, 90, 260, 230]),
      _example('frame.jpg', _coords(far, shift=(-120, 0)), [20, 90, 140, 230]),
      _example('test.jpg', _coords(OBSERVER), [140, 90, 260, 230], train=False),
      _example('frame.jpg', _coords(OBSERVER), [140, 230, 260, 90]),  # upside-down box
      {**_example('frame.jpg', _coords(OBSERVER), [140, 90, 260, 230]), 'istrain': 0.0},
      _example('gone.jpg', _coords(OBSERVER), [140, 90, 260, 230]),
  ]
  mat = os.path.join(folder, 'examples.mat')
  flic.write_examples(mat, examples)
  os.makedirs(os.path.join(folder, 'manual'))
  with zipfile.ZipFile(os.path.join(folder, 'manual', 'FLIC.zip'), 'w') as z:
    z.write(mat, 'FLIC/examples.mat')
    z.writestr('FLIC/images/frame.jpg', frame)
    with open(os.path.join(PHOTOS, 'princess-diaries-2-00152201.jpg'), 'rb') as f:
      z.writestr('FLIC/images/test.jpg', f.read())
  b = flic.builder(os.path.join(folder, 'tfds'), os.path.join(folder, 'manual'))
  read = lambda split: sorted(tfds.as_numpy(b.as_dataset(
      split=split, decoders={'image': tfds.decode.SkipDecoding()})), key=lambda e: -e['norm'])
  return {'builder': b, 'train': read('train'), 'test': read('test')}


def test_labels_become_person_centric(prepared):
  train = prepared['train']
  assert len(train) == 2 and len(prepared['test']) == 1
  first = next(ex for ex in train if ex['joints_annotated'].all())
  for name, (x, y) in OBSERVER.items():
    swapped = ('r_' + name[2:] if name.startswith('l_') else 'l_' + name[2:]) if (
        name[:2] in ('l_', 'r_')) else name
    np.testing.assert_allclose(first['joints'][S.index(swapped)], (x, y))
  # The person's right shoulder is now the one on the image's left.
  assert first['joints'][S.index('r_shoulder'), 0] < first['joints'][S.index('l_shoulder'), 0]
  assert first['joints_visible'].all()


def test_torso_box_centre_scale_and_normaliser(prepared):
  first = next(ex for ex in prepared['train'] if ex['joints_annotated'].all())
  np.testing.assert_allclose(first['center'], [200, 0.7 * 90 + 0.3 * 230])
  assert first['scale'] == pytest.approx(0.011 * 140)
  # MODEC's torso size: FLIC's labelled left shoulder to its labelled right hip.
  assert first['norm'] == pytest.approx(np.hypot(150 - 230, 100 - 220))


def test_other_people_of_the_frame(prepared):
  first = next(ex for ex in prepared['train'] if ex['joints_annotated'].all())
  second = next(ex for ex in prepared['train'] if not ex['joints_annotated'].all())
  assert not second['joints_annotated'][S.index('nose')]
  assert first['others'].shape == (1, 9, 3)
  np.testing.assert_allclose(first['others'][0, :, :2][second['joints_annotated']],
                             second['joints'][second['joints_annotated']])
  np.testing.assert_array_equal(first['others'][0, :, 2], second['joints_annotated'])


def test_report_counts_bad_examples(prepared):
  report = manual.skip_report(prepared['builder'])
  assert report.count(flic.BAD_TORSO_BOX) == 1 and report.count(flic.NO_SPLIT) == 1
  assert report.count('missing image') == 1
  assert report.count(flic.SWAPPED) == 3 and report.count(flic.MISSING_PART) == 1
  assert report.num_kept == 3
  assert prepared['builder'].info.metadata['skeleton'] == 'flic'


def test_augmented_keypoints_land_on_the_marker(prepared):
  first = next(ex for ex in prepared['train'] if ex['joints_annotated'].all())
  raw = {k: v for k, v in first.items() if k not in ('image_id', 'head_box')}
  assert marker.check_marker_lands(raw, 'flic', 'r_wrist', model='flic',
                                   indices=range(6)) == {True, False}
