"""The MPII .mat reader and writer: the real sample round-trips, and every messy case reads."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.io

from posemachines.data import mpii_mat

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mpii_sample')


def _sample_images():
  with open(os.path.join(SAMPLE, 'test_mpii.json')) as f:
    return mpii_mat.images_from_people(json.load(f))


@pytest.mark.parametrize('top', ['RELEASE', 'annolist'])
def test_real_sample_round_trips(tmp_path, top):
  images = _sample_images()
  path = tmp_path / 'sample.mat'
  mpii_mat.write_release(path, images, top=top)
  back = mpii_mat.load(path)
  assert [im.name for im in back] == [im.name for im in images]
  assert [im.index for im in back] == [1, 2, 3, 4, 5]
  for a, b in zip(images, back):
    assert b.img_train == (1 if top == 'RELEASE' else None)
    assert len(b.people) == len(a.people) == 1
    pa, pb = a.people[0], b.people[0]
    assert pb.points == pa.points and pb.notes == []
    assert pb.objpos == pa.objpos and pb.scale == pytest.approx(pa.scale)
    np.testing.assert_allclose(pb.head_box, pa.head_box)
  # 051423444.jpg has no ankles: 14 points, the others 16.
  counts = {im.name: len(im.people[0].points) for im in back}
  assert counts['051423444.jpg'] == 14 and counts['005808361.jpg'] == 16
  first = back[0].people[0]  # 005808361.jpg, r-ankle (id 0) at (804, 711)
  assert first.points[0] == (804.0, 711.0, True)
  assert first.objpos == (966.0, 340.0)


def _point(pid, x=10.0, y=20.0, **extra):
  return {'x': x, 'y': y, 'id': pid, **extra}


def test_messy_annotations_read_without_guessing(tmp_path):
  rect = lambda points, **kw: {'x1': 0.0, 'y1': 0.0, 'x2': 10.0, 'y2': 10.0,
                               'annopoints': {'point': points}, 'scale': 1.5,
                               'objpos': {'x': 5.0, 'y': 6.0}, **kw}
  images = [
      {'name': 'empty.jpg', 'annorect': [], 'img_train': 1},
      {'name': 'messy.jpg', 'img_train': 1, 'single_person': [2], 'annorect': [
          # is_visible a string, empty, a number; one id out of range; one repeated; a NaN.
          rect([_point(0, is_visible='1'), _point(1, is_visible='0'), _point(2, is_visible=None),
                _point(3, is_visible=0), _point(16, is_visible=1), _point(-1, is_visible=1),
                _point(3, x=99.0, is_visible=1), _point(4, x=float('nan'), is_visible=1),
                _point(5, is_visible='x')]),
          # no is_visible field at all, a single point
          rect([_point(9)]),
          # no annopoints, no head box, empty objpos and scale (a test person)
          {'annopoints': None, 'objpos': None, 'scale': None},
          # zero-size head box is returned as it is
          rect([_point(7, is_visible=1)], x2=0.0, y2=0.0),
      ]},
      {'name': 'single.jpg', 'img_train': 0,
       'annorect': [{'objpos': {'x': 1.0, 'y': 2.0}, 'scale': 3.0}]},
  ]
  path = tmp_path / 'messy.mat'
  mpii_mat.write_release(path, images)
  empty, messy, single = mpii_mat.load(path)
  assert empty.people == [] and empty.img_train == 1
  assert messy.single_person == (2,)
  a, b, c, d = messy.people
  assert [p.index for p in messy.people] == [1, 2, 3, 4]
  assert a.points == {0: (10.0, 20.0, True), 1: (10.0, 20.0, False), 2: (10.0, 20.0, None),
                      3: (10.0, 20.0, False), 5: (10.0, 20.0, None)}
  assert a.notes.count(mpii_mat.ID_OUT_OF_RANGE) == 2
  assert a.notes.count(mpii_mat.VISIBLE_STRING) == 3
  for note in (mpii_mat.DUPLICATE_ID, mpii_mat.BAD_COORDINATE, mpii_mat.VISIBLE_EMPTY,
               mpii_mat.VISIBLE_BAD):
    assert note in a.notes
  assert b.points == {9: (10.0, 20.0, None)} and b.notes == [mpii_mat.VISIBLE_MISSING]
  assert (c.points, c.head_box, c.objpos, c.scale) == ({}, None, None, None)
  assert d.head_box == (0.0, 0.0, 0.0, 0.0)
  assert single.img_train == 0 and single.people[0].objpos == (1.0, 2.0)
  assert single.people[0].head_box is None


def test_loaded_struct_layouts_of_the_real_file(tmp_path):
  """As MATLAB saves it: 1 x 1 fields, ids as doubles, is_visible as a char in some points."""
  point = np.empty((1, 2), dtype=[('id', 'O'), ('x', 'O'), ('y', 'O'), ('is_visible', 'O')])
  point[0, 0] = (np.array([[6.0]]), np.array([[610.0]]), np.array([[187.0]]), np.array(['1']))
  point[0, 1] = (np.array([[7.0]]), np.array([[647.0]]), np.array([[176.0]]), np.array([[0.0]]))
  annopoints = np.empty((1, 1), dtype=[('point', 'O')])
  annopoints[0, 0] = (point,)
  rect = np.empty((1, 1), dtype=[('x1', 'O'), ('y1', 'O'), ('x2', 'O'), ('y2', 'O'),
                                 ('annopoints', 'O')])
  rect[0, 0] = (627.0, 100.0, 706.0, 198.0, annopoints)
  image = np.empty((1, 1), dtype=[('name', 'O')])
  image[0, 0] = ('015601864.jpg',)
  annolist = np.empty((1, 1), dtype=[('image', 'O'), ('annorect', 'O')])
  annolist[0, 0] = (image, rect)
  release = np.empty((1, 1), dtype=[('annolist', 'O'), ('img_train', 'O')])
  release[0, 0] = (annolist, np.array([[1]], np.uint8))
  path = tmp_path / 'one.mat'
  scipy.io.savemat(path, {'RELEASE': release})
  [im] = mpii_mat.load(path)
  assert im.name == '015601864.jpg' and im.img_train == 1
  [p] = im.people
  assert p.points == {6: (610.0, 187.0, True), 7: (647.0, 176.0, False)}
  assert p.head_box == (627.0, 100.0, 706.0, 198.0) and p.objpos is None and p.scale is None


def test_bad_files_raise_naming_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.mat'):
    mpii_mat.load(tmp_path / 'nope.mat')
  garbage = tmp_path / 'garbage.mat'
  garbage.write_bytes(b'not a mat file at all' * 10)
  with pytest.raises(ValueError, match='garbage.mat'):
    mpii_mat.load(garbage)
  other = tmp_path / 'other.mat'
  scipy.io.savemat(other, {'joints': np.zeros((3, 14, 2))})
  with pytest.raises(ValueError, match=r'neither RELEASE nor annolist.*joints'):
    mpii_mat.load(other)
