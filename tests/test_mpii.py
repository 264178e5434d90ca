"""The ``mpii`` builder on official-format archives built from the five real MPII samples, with
one deliberately messy case per kind of bad annotation."""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from posemachines.data import features as features_lib
from posemachines.data import manual
from posemachines.data import mpii
from posemachines.data import mpii_mat
from tests.conftest import tiny_config

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mpii_sample')


def _records():
  with open(os.path.join(SAMPLE, 'test_mpii.json')) as f:
    return json.load(f)


def _point(pid, x, y, **extra):
  return {'x': x, 'y': y, 'id': pid, **extra}


def _fixture_images():
  """The five real images (annolist 1-5), then one image per kind of messy annotation."""
  images = mpii_mat.images_from_people(_records())
  first = images[0]  # 005808361.jpg, 1280 x 720
  # A second person in the first image (shifted left), and a person with objpos only.
  second = copy.deepcopy(first.people[0])
  second.index = 2
  second.points = {k: (x - 600, y, v) for k, (x, y, v) in second.points.items()}
  second.objpos = (second.objpos[0] - 600, second.objpos[1])
  unlabelled = mpii_mat.Person(3, {}, None, (100.0, 100.0), 2.0)
  first.people += [second, unlabelled]
  raws = [mpii_mat.image_to_raw(im) for im in images]
  head = lambda x1=900.0, y1=60.0, x2=1000.0, y2=250.0: dict(x1=x1, y1=y1, x2=x2, y2=y2)
  base = dict(scale=4.7, objpos={'x': 966.0, 'y': 340.0})
  raws += [
      {'name': 'empty.jpg', 'img_train': 1, 'annorect': []},                       # 6
      {'name': 'messy.jpg', 'img_train': 1, 'annorect': [                          # 7
          {**head(), **base, 'annopoints': {'point': [
              _point(0, 804.0, 711.0, is_visible='1'), _point(1, 816.0, 510.0, is_visible='0'),
              _point(9, 962.0, 80.0, is_visible=None), _point(8, 982.0, 236.0, is_visible=1),
              _point(16, 5.0, 5.0, is_visible=1), _point(12, 1300.0, 253.0, is_visible=1)]}},
          {**head(), **base, 'annopoints': {'point': [               # no is_visible field
              _point(13, 1067.0, 253.0), _point(14, 1167.0, 353.0)]}},
          {**head(x2=900.0), **base, 'annopoints': {'point': [_point(0, 1.0, 2.0)]}},
          {**base, 'annopoints': {'point': [_point(0, 1.0, 2.0)]}},  # no head box
          {**head(), 'annopoints': {'point': [_point(0, 1.0, 2.0)]}},  # no objpos or scale
      ]},
      {'name': 'missing.jpg', 'img_train': 1,                                       # 8
       'annorect': [{**head(), **base, 'annopoints': {'point': [_point(0, 1.0, 2.0)]}}]},
      {'name': 'corrupt.jpg', 'img_train': 1,                                       # 9
       'annorect': [{**head(), **base, 'annopoints': {'point': [_point(0, 1.0, 2.0)]}}]},
      {'name': 'test.jpg', 'img_train': 0,                                          # 10
       'annorect': [{'objpos': {'x': 300.0, 'y': 200.0}, 'scale': 1.7}]},
      {'name': '', 'img_train': 1,                                                  # 11
       'annorect': [{**head(), **base, 'annopoints': {'point': [_point(0, 1.0, 2.0)]}}]},
  ]
  return raws


def write_archives(folder: str, raws: list, validation: list) -> str:
  """The official archives in ``folder/manual``; returns the validation file's path."""
  manual_dir = os.path.join(folder, 'manual')
  os.makedirs(manual_dir)
  mat = os.path.join(folder, mpii.ANNOTATION_MAT)
  mpii_mat.write_release(mat, raws)
  with zipfile.ZipFile(os.path.join(manual_dir, mpii.ANNOTATION_ZIP), 'w') as z:
    z.write(mat, 'mpii_human_pose_v1_u12_2/' + mpii.ANNOTATION_MAT)
    z.writestr('mpii_human_pose_v1_u12_2/README.md', 'annotations')
  jpeg = open(os.path.join(SAMPLE, '005808361.jpg'), 'rb').read()
  with tarfile.open(os.path.join(manual_dir, mpii.IMAGES_TAR), 'w:gz') as tar:
    def add(name, data):
      info = tarfile.TarInfo('images/' + name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for name in sorted(os.listdir(SAMPLE)):
      if name.endswith('.jpg'):
        add(name, open(os.path.join(SAMPLE, name), 'rb').read())
    add('messy.jpg', jpeg)
    add('test.jpg', jpeg)
    add('corrupt.jpg', jpeg[:400])
  path = os.path.join(folder, 'validation.json')
  with open(path, 'w') as f:
    json.dump({'persons': validation}, f)
  return path


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('mpii'))
  validation = write_archives(folder, _fixture_images(), [[2, 1], [4, 1], [99, 1]])
  b = mpii.builder(os.path.join(folder, 'tfds'), os.path.join(folder, 'manual'), validation)
  read = lambda split: list(tfds.as_numpy(b.as_dataset(
      split=split, decoders={'image': tfds.decode.SkipDecoding()})))
  return {'builder': b, 'train': read('train'), 'validation': read('validation'),
          'test': read('test'), 'report': manual.skip_report(b), 'validation_file': validation,
          'data_dir': os.path.join(folder, 'tfds'), 'manual_dir': os.path.join(folder, 'manual')}


def _by_image(examples):
  out = {}
  for ex in examples:
    out.setdefault(ex['image_id'].decode(), []).append(ex)
  return out


def test_real_people_carry_their_annotations(prepared):
  records = {r['image']: r for r in _records()}
  splits = {'train': _by_image(prepared['train']), 'validation': _by_image(prepared['validation'])}
  assert sorted(splits['validation']) == ['004645041.jpg', '052475643.jpg']  # annolist 2 and 4
  for name, record in records.items():
    split = 'validation' if name in splits['validation'] else 'train'
    ex = splits[split][name][0]
    vis = np.array(record['joints_vis'], bool)
    joints = np.array(record['joints'], np.float32)
    np.testing.assert_array_equal(ex['joints_annotated'], vis)
    np.testing.assert_array_equal(ex['joints_visible'], vis)
    np.testing.assert_allclose(ex['joints'][vis], joints[vis], rtol=1e-6)
    np.testing.assert_allclose(ex['center'], record['center'])
    assert ex['scale'] == pytest.approx(record['scale'])
    # The head box of the fixture has head size = head-top to upper-neck length.
    assert ex['norm'] == pytest.approx(np.hypot(*(joints[9] - joints[8])), rel=1e-5)
    assert ex['norm'] == pytest.approx(features_lib.head_size(ex['head_box']), rel=1e-6)
    with open(os.path.join(SAMPLE, name), 'rb') as f:
      assert ex['image'] == f.read()  # the JPEG's own bytes, not re-encoded
  ankles = splits['validation']['004645041.jpg'][0]['joints_annotated'][[0, 5]]
  assert not ankles.any()  # 14 points: the ankles are unannotated


def test_every_person_keeps_the_other_people_of_its_image(prepared):
  first, second = sorted(_by_image(prepared['train'])['005808361.jpg'],
                         key=lambda ex: -ex['center'][0])
  assert first['others'].shape == (1, 16, 3)  # the objpos-only person is no peak source
  np.testing.assert_allclose(first['others'][0, :, :2], second['joints'])
  np.testing.assert_allclose(second['others'][0, :, :2], first['joints'])
  assert first['others'][0, :, 2].all()


def test_messy_annotations_are_kept_correctly_or_counted(prepared):
  report = prepared['report']
  train = _by_image(prepared['train'])
  assert 'empty.jpg' not in train and 'missing.jpg' not in train  # empty annorect: no people
  messy = train['messy.jpg']
  assert len(messy) == 2
  a = next(ex for ex in messy if ex['joints_annotated'][0])
  # '1' -> visible, '0' -> occluded, empty -> visible (as the release read it), id 16 dropped.
  assert np.flatnonzero(a['joints_annotated']).tolist() == [0, 1, 8, 9, 12]
  assert a['joints_visible'][[0, 1, 8, 9, 12]].tolist() == [True, False, True, True, True]
  np.testing.assert_allclose(a['joints'][1], [816.0, 510.0])
  assert (a['joints'][~a['joints_annotated']] == -1).all()
  b = next(ex for ex in messy if not ex['joints_annotated'][0])
  assert np.flatnonzero(b['joints_annotated']).tolist() == [13, 14]
  assert b['joints_visible'][[13, 14]].all()  # is_visible missing: visible
  expected = {
      mpii.NO_KEYPOINTS: 1, mpii.ZERO_HEAD_BOX: 1, mpii.NO_HEAD_BOX: 1, mpii.NO_CENTER: 1,
      'missing image': 1, 'corrupt image': 1, mpii.NO_IMAGE_NAME: 1,
      mpii_mat.ID_OUT_OF_RANGE: 1, f'{mpii_mat.VISIBLE_MISSING} (kept as visible)': 1,
      f'{mpii_mat.VISIBLE_EMPTY} (kept as visible)': 1,
      f'{mpii_mat.VISIBLE_STRING} (kept, read as a number)': 1,
      mpii.OUTSIDE: 1, mpii.VALIDATION_MISSING: 1,
  }
  for reason, count in expected.items():
    assert report.count(reason) == count, (reason, report.format())
  assert report.count(mpii.FEWER_POINTS) == 4  # two real people, two messy ones
  assert report.num_kept == len(prepared['train']) + len(prepared['validation']) + 1
  assert 'missing.jpg' in report.format() and 'corrupt.jpg' in report.format()


def test_test_split_has_centres_and_no_labels(prepared):
  [ex] = prepared['test']
  assert ex['image_id'] == b'test.jpg'
  np.testing.assert_allclose(ex['center'], [300, 200])
  assert ex['scale'] == pytest.approx(1.7) and ex['norm'] == 0
  assert not ex['joints_annotated'].any()


def test_metadata_and_split_sizes(prepared):
  b = prepared['builder']
  assert b.info.metadata['skeleton'] == 'mpii' and b.info.metadata['metric'] == 'pckh'
  sizes = {k: v.num_examples for k, v in b.info.splits.items()}
  assert sizes == {'train': 6, 'validation': 2, 'test': 1}


def test_extracted_files_and_the_standard_validation_list(tmp_path):
  """Extracted images/ and .mat work as well as the archives; the packaged split is standard."""
  pairs = mpii.validation_pairs()
  assert len(pairs) == 2958 and (7, 1) in pairs
  images = mpii_mat.images_from_people(_records()[:2])
  manual_dir = tmp_path / 'manual' / 'mpii'
  (manual_dir / 'images').mkdir(parents=True)
  for im in images:
    shutil.copy(os.path.join(SAMPLE, im.name), manual_dir / 'images')
  mpii_mat.write_release(manual_dir / mpii.ANNOTATION_MAT, images)
  b = mpii.builder(str(tmp_path / 'tfds'), str(tmp_path / 'manual'))
  assert b.info.splits['train'].num_examples == 2  # annolist 1, 2: not standard validation


def test_missing_files_raise_with_instructions(tmp_path):
  (tmp_path / 'manual').mkdir()
  with pytest.raises(FileNotFoundError, match='human-pose.mpi-inf.mpg.de'):
    mpii.builder(str(tmp_path / 'tfds'), str(tmp_path / 'manual'))


def test_training_and_validation_run_from_the_fixture(prepared, tmp_path):
  from posemachines.training import loop as train
  config = tiny_config(prepared['data_dir'], **{
      'data.dataset': 'mpii', 'data.manual_dir': prepared['manual_dir'],
      'data.mpii_validation_file': prepared['validation_file'], 'data.max_others': 2,
      'num_train_steps': 2, 'checkpoint_every_steps': 2})
  state, result = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 2
  ev = json.load(open(tmp_path / 'eval.json'))
  assert ev['num_people'] == 2 and all(0 <= s['pck@0.5'] <= 1 for s in ev['stages'])
