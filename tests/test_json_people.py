"""The json_people builder on the real MPII sample plus deliberately bad records, and SkipReport."""
from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import re
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from posemachines.core import skeleton
from posemachines.data import features as features_lib
from posemachines.data import json_people
from posemachines.data import report as report_lib

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mpii_sample')
R_ANKLE, R_WRIST = skeleton.MPII.index('r_ankle'), skeleton.MPII.index('r_wrist')
HEAD_TOP, NECK = skeleton.MPII.index('head_top'), skeleton.MPII.index('neck')


def _sample_records() -> list:
  with open(os.path.join(SAMPLE, 'test_mpii.json')) as f:
    return json.load(f)


def _fixture_records(folder: str) -> list:
  """The five real records, then (index 5-11) one record per kind of bad input."""
  good = _sample_records()
  for name in {r['image'] for r in good}:
    shutil.copy(os.path.join(SAMPLE, name), folder)
  first = good[0]  # 005808361.jpg, 1280 x 720
  with open(os.path.join(SAMPLE, first['image']), 'rb') as f:
    jpeg = f.read()
  with open(os.path.join(folder, 'truncated.jpg'), 'wb') as f:
    f.write(jpeg[:300])
  with open(os.path.join(folder, 'random.jpg'), 'wb') as f:
    f.write(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
  for name in ('nan.jpg', 'zero_head.jpg'):
    shutil.copy(os.path.join(SAMPLE, first['image']), os.path.join(folder, name))

  def variant(image, **changes):
    record = copy.deepcopy(first)
    record.update(image=image, **changes)
    return record

  nan = variant('nan.jpg')
  nan['joints'][R_WRIST][0] = math.nan
  # A second person in the first image, shifted left, one ankle beyond the right border.
  outside = variant(first['image'], center=[first['center'][0] - 600, first['center'][1]])
  outside['joints'] = [[x - 600, y] for x, y in first['joints']]
  outside['joints'][R_ANKLE] = [1300.5, 700.25]
  bad_scale = copy.deepcopy(good[1])
  bad_scale['scale'] = 0
  malformed = variant(good[3]['image'], joints=first['joints'][:14])
  zero_head = variant('zero_head.jpg', head_box=[900.0, 60.0, 900.0, 250.0])
  return good + [variant('missing.jpg'), variant('truncated.jpg'), variant('random.jpg'), nan,
                 outside, bad_scale, malformed, zero_head]


@pytest.fixture(scope='module')
def fixture(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('people'))
  records = _fixture_records(folder)
  path = os.path.join(folder, 'people.json')
  with open(path, 'w') as f:
    json.dump(records, f)  # NaN is written as the JSON extension NaN
  b = json_people.builder(path, os.path.join(folder, 'tfds'))
  examples = list(tfds.as_numpy(b.as_dataset(
      split='train', decoders={'image': tfds.decode.SkipDecoding()})))
  return {'folder': folder, 'records': records, 'builder': b, 'examples': examples}


def _find(examples, record) -> dict:
  """The example made from ``record`` (its image and centre identify it)."""
  found = [ex for ex in examples if ex['image_id'].decode() == record['image']
           and np.array_equal(ex['center'], np.float32(record['center']))]
  assert len(found) == 1, record['image']
  return found[0]


# ----------------------------------------------------------------------------------------------
# The prepared dataset
# ----------------------------------------------------------------------------------------------

def test_keeps_good_records_and_the_outside_keypoint(fixture):
  assert fixture['builder'].info.splits['train'].num_examples == 6
  assert len(fixture['examples']) == 6
  assert list(fixture['builder'].info.splits.keys()) == ['train']
  records = fixture['records']
  for record in records[:5] + [records[9]]:
    _find(fixture['examples'], record)


def test_report_counts_each_reason_and_names_the_culprit(fixture):
  summary = json_people.skip_report(fixture['builder']).summary()
  folder = fixture['folder']
  assert summary['kept'] == 6 and summary['skipped'] == 7
  skips = {reason: entry['count'] for reason, entry in summary['skips'].items()}
  assert skips == {'malformed record': 1, 'non-finite coordinate': 1, 'bad scale': 1,
                   'zero-size head box': 1, 'missing image': 1, 'corrupt image': 2}
  assert {n: e['count'] for n, e in summary['notes'].items()} == {
      'keypoint outside image (kept)': 1}
  example = lambda reason: summary['skips'][reason]['examples']
  assert example('missing image')[0].startswith(
      f'record 5: {os.path.join(folder, "missing.jpg")}: ')
  corrupt = example('corrupt image')
  assert corrupt[0].startswith(f'record 6: {os.path.join(folder, "truncated.jpg")}: ')
  assert corrupt[1].startswith(f'record 7: {os.path.join(folder, "random.jpg")}: ')
  assert example('non-finite coordinate') == ['record 8 (nan.jpg): r_wrist [nan, 214.0]']
  assert example('bad scale') == ['record 10 (052475643.jpg): scale 0.0']
  assert example('malformed record') == [
      "record 11: 'joints' has shape (14, 2), expected (16, 2)"]
  assert example('zero-size head box')[0].startswith('record 12 (zero_head.jpg): head box')
  assert summary['notes']['keypoint outside image (kept)']['examples'] == [
      'record 9 (005808361.jpg): r_ankle [1300.5, 700.25] outside 1280x720']


def test_report_is_stored_and_readable(fixture):
  b = fixture['builder']
  stored = json.loads((b.data_path / json_people.REPORT_FILE).read_text())
  report = json_people.skip_report(b)
  assert stored == report.summary()
  text = report.format()
  assert 'kept 6 examples, skipped 7 items' in text
  assert '  skipped 2 x corrupt image' in text
  assert 'random.jpg' in text and 'missing.jpg' in text


def test_examples_carry_the_json_annotations(fixture):
  for record in fixture['records'][:5]:
    ex = _find(fixture['examples'], record)
    joints = np.asarray(record['joints'], np.float32)
    vis = np.asarray(record['joints_vis'], bool)
    assert ex['joints'].dtype == np.float32
    np.testing.assert_array_equal(ex['joints'], joints)
    # Joints with joints_vis 0 lie at (-1, -1) in the sample: not annotated.
    np.testing.assert_array_equal(ex['joints_annotated'], vis)
    np.testing.assert_array_equal(ex['joints_visible'], vis)
    np.testing.assert_array_equal(ex['center'], np.float32(record['center']))
    assert ex['scale'] == np.float32(record['scale'])
    features_lib.check_example(ex, 16, record['image'])


def test_two_sample_records_have_unannotated_ankles(fixture):
  unannotated = [r for r in fixture['records'][:5] if not all(r['joints_vis'])]
  assert len(unannotated) == 2
  for record in unannotated:
    ex = _find(fixture['examples'], record)
    assert not ex['joints_annotated'][R_ANKLE]
    np.testing.assert_array_equal(ex['joints'][R_ANKLE], [-1, -1])


def test_images_keep_their_original_jpeg_bytes(fixture):
  for record in fixture['records'][:5]:
    with open(os.path.join(SAMPLE, record['image']), 'rb') as f:
      assert _find(fixture['examples'], record)['image'] == f.read()


def test_estimated_head_box_has_the_head_segment_as_head_size(fixture):
  for record in fixture['records'][:5]:
    ex = _find(fixture['examples'], record)
    joints = np.asarray(record['joints'])
    segment = np.hypot(*(joints[HEAD_TOP] - joints[NECK]))
    np.testing.assert_allclose(ex['norm'], segment, rtol=1e-5)
    np.testing.assert_allclose(ex['norm'], features_lib.head_size(ex['head_box']), rtol=1e-6)
    x1, y1, x2, y2 = ex['head_box']
    np.testing.assert_allclose(x2 - x1, y2 - y1, rtol=1e-5)
    np.testing.assert_allclose([(x1 + x2) / 2, (y1 + y2) / 2],
                               (joints[HEAD_TOP] + joints[NECK]) / 2, rtol=1e-5)


def test_outside_keypoint_is_preserved(fixture):
  record = fixture['records'][9]
  ex = _find(fixture['examples'], record)
  np.testing.assert_array_equal(ex['joints'][R_ANKLE], np.float32([1300.5, 700.25]))
  np.testing.assert_array_equal(ex['joints'], np.asarray(record['joints'], np.float32))
  assert ex['joints_annotated'][R_ANKLE] and ex['joints_visible'][R_ANKLE]


def test_others_lists_the_other_people_of_the_image(fixture):
  records, examples = fixture['records'], fixture['examples']
  first, outside = _find(examples, records[0]), _find(examples, records[9])
  for ex, other in ((first, records[9]), (outside, records[0])):
    assert ex['others'].shape == (1, 16, 3)
    np.testing.assert_array_equal(ex['others'][0, :, :2], np.float32(other['joints']))
    np.testing.assert_array_equal(ex['others'][0, :, 2], np.ones(16, np.float32))
  # The scale-0 record is no example of its own, but its person is still in the image.
  second = _find(examples, records[1])
  np.testing.assert_array_equal(second['others'][0, :, :2], np.float32(records[10]['joints']))
  # A malformed record is nobody.
  assert _find(examples, records[3])['others'].shape == (0, 16, 3)


# ----------------------------------------------------------------------------------------------
# Errors raised before any work
# ----------------------------------------------------------------------------------------------

def test_missing_annotation_file_names_the_path(tmp_path):
  path = str(tmp_path / 'nope.json')
  with pytest.raises(FileNotFoundError, match='nope.json'):
    json_people.builder(path, str(tmp_path / 'tfds'))
  assert not (tmp_path / 'tfds').exists()


@pytest.mark.parametrize('text', ['[{"image": "a.jpg", ', '', '{"image": "a.jpg"}', '[]'])
def test_invalid_annotation_file_names_the_path(tmp_path, text):
  path = tmp_path / 'broken.json'
  path.write_text(text)
  with pytest.raises(ValueError, match=re.escape(str(path))):
    json_people.builder(str(path), str(tmp_path / 'tfds'))
  assert not (tmp_path / 'tfds').exists()


def test_every_record_skipped_raises_with_the_report(tmp_path):
  path = tmp_path / 'bad.json'
  record = _sample_records()[0]
  path.write_text(json.dumps([record, dict(record, scale=-1.0)]))  # the image is not there
  with pytest.raises(ValueError, match='every record') as info:
    json_people.builder(str(path), str(tmp_path / 'tfds'))
  assert 'missing image' in str(info.value) and 'bad scale' in str(info.value)


# ----------------------------------------------------------------------------------------------
# Planning: labels, splits
# ----------------------------------------------------------------------------------------------

def _plan(records, fraction=0.0):
  report = report_lib.SkipReport()
  return json_people.plan(records, SAMPLE, fraction, report), report


def test_default_split_holds_out_every_nth_image_with_all_its_people():
  records = _sample_records()
  records.append(dict(records[4], center=[10.0, 10.0]))  # a second person in the last image
  groups, report = _plan(records, fraction=0.4)
  assert report.num_skipped == 0
  # Images k = 2 and 4: floor((k + 1) 0.4) steps up there.
  assert list(groups['validation']) == [records[2]['image'], records[4]['image']]
  assert len(groups['validation'][records[4]['image']]) == 2
  assert sum(len(g) for g in groups['train'].values()) == 3


def test_explicit_split_field_wins():
  records = _sample_records()
  records[0]['split'] = 'validation'
  records[1]['split'] = 'test'  # not a split of this builder
  groups, report = _plan(records, fraction=0.0)
  assert list(groups['validation']) == [records[0]['image']]
  assert report.count('malformed record') == 1


def test_occluded_joints_and_explicit_flags():
  record = _sample_records()[0]
  occluded = dict(record, joints_vis=[0] + [1] * 15)  # real coordinates: annotated, occluded
  explicit = dict(record, joints_annotated=[0] + [1] * 15, center=[1.0, 2.0])
  groups, _ = _plan([occluded, explicit])
  first, second = groups['train'][record['image']]
  assert first.person.annotated.all() and not first.person.visible[0]
  assert first.person.visible[1:].all()
  assert second.person.annotated.tolist() == [False] + [True] * 15
  assert second.person.visible.tolist() == [False] + [True] * 15


def test_head_box_needs_head_top_and_neck():
  record = dict(_sample_records()[0], joints_annotated=[1] * 8 + [0] * 8)
  groups, report = _plan([record])
  assert not any(groups.values()) and report.count('no head box') == 1


def test_given_head_box_sets_the_norm():
  record = dict(_sample_records()[0], head_box=[900.0, 60.0, 1020.0, 240.0])
  groups, _ = _plan([record])
  (entry,) = groups['train'][record['image']]
  np.testing.assert_array_equal(entry.head_box, [900.0, 60.0, 1020.0, 240.0])
  ex = json_people._example(entry, b'')
  assert ex['norm'] == np.float32(0.6 * math.hypot(120, 180))


@pytest.mark.parametrize('change, reason', [
    ({'center': [1.0, math.inf]}, 'non-finite coordinate'),
    ({'scale': math.nan}, 'non-finite coordinate'),
    ({'scale': None}, 'bad scale'),
    ({'joints': 'none'}, 'malformed record'),
    ({'joints_vis': [2] * 16}, 'malformed record'),
    ({'center': ['1', 2]}, 'malformed record'),
    ({'image': 7}, 'malformed record'),
])
def test_bad_fields_are_skipped(change, reason):
  record = dict(_sample_records()[0], **change)
  groups, report = _plan([record])
  assert not any(groups.values())
  assert report.count(reason) == 1 and report.num_skipped == 1


def test_missing_joints_and_non_objects_are_malformed():
  record = _sample_records()[0]
  del record['joints']
  _, report = _plan([record, 'a string', None])
  assert report.count('malformed record') == 3
  assert report.summary()['skips']['malformed record']['examples'] == [
      "record 0: missing 'joints'", 'record 1: a str, not an object',
      'record 2: a NoneType, not an object']


# ----------------------------------------------------------------------------------------------
# report.py
# ----------------------------------------------------------------------------------------------

def test_skip_report_summary_format_and_round_trip(caplog):
  report = report_lib.SkipReport('demo', examples_per_reason=2)
  for i in range(3):
    report.skip('bad scale', f'record {i}')
  report.keep('keypoint outside image (kept)', 'record 9')
  report.kept()
  summary = report.summary()
  assert summary['skips']['bad scale'] == {'count': 3, 'examples': ['record 0', 'record 1']}
  assert summary['kept'] == 1 and summary['skipped'] == 3
  assert report_lib.SkipReport.from_summary(json.loads(json.dumps(summary))).summary() == summary
  text = report.format()
  assert text.splitlines()[0] == 'demo: kept 1 examples, skipped 3 items'
  assert '... and 1 more' in text and 'kept 1 x keypoint outside image (kept)' in text
  with caplog.at_level(logging.WARNING):
    report.log()
  assert 'skipped 3 x bad scale' in caplog.text


def test_read_image_rejects_bad_files_naming_them(tmp_path):
  good = os.path.join(SAMPLE, '052475643.jpg')
  with open(good, 'rb') as f:
    data = f.read()
  truncated = tmp_path / 'cut.jpg'
  truncated.write_bytes(data[: len(data) // 2])
  noise = tmp_path / 'noise.png'
  noise.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4)
  for path, reason in ((tmp_path / 'gone.jpg', 'missing image'), (truncated, 'corrupt image'),
                       (noise, 'corrupt image')):
    with pytest.raises(report_lib.BadImage, match=re.escape(str(path))) as info:
      report_lib.read_image(path)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_read_image_keeps_jpeg_bytes_and_reencodes_others(tmp_path):
  good = os.path.join(SAMPLE, '052475643.jpg')
  encoded, size = report_lib.read_image(good)
  with open(good, 'rb') as f:
    assert encoded == f.read()
  assert size == (480, 854)
  rgba = tmp_path / 'a.png'
  Image.new('RGBA', (30, 20), (10, 200, 30, 128)).save(rgba)
  encoded, size = report_lib.read_image(rgba, 'jpeg')
  assert size == (20, 30) and encoded[:2] == b'\xff\xd8'
  assert Image.open(io.BytesIO(encoded)).mode == 'RGB'
  encoded, _ = report_lib.read_image(rgba, 'png')
  back = np.asarray(Image.open(io.BytesIO(encoded)), np.float64)
  # Half transparent: composited over mid-grey (posemachines/core/images.py).
  over = np.array([10, 200, 30]) * 128 / 255 + 128 * (1 - 128 / 255)
  assert back.shape == (20, 30, 3) and np.abs(back - over).max() <= 1


@pytest.mark.parametrize('change, reason, detail', [
    ({'center': [1e5, 1e5]}, json_people.IMPLAUSIBLE_CENTER,
     'center [100000.0, 100000.0] for a 1280x720 image'),
    ({'center': [-1300.0, 300.0]}, json_people.IMPLAUSIBLE_CENTER,
     'center [-1300.0, 300.0] for a 1280x720 image'),
    ({'scale': 1e6}, json_people.IMPLAUSIBLE_SCALE,
     'scale 1e+06 (a person 2e+08 px tall) for a 1280x720 image'),
    ({'scale': 1e-4}, json_people.IMPLAUSIBLE_SCALE,
     'scale 0.0001 (a person 0.02 px tall) for a 1280x720 image'),
])
def test_implausible_centre_or_scale_is_skipped_with_its_threshold(change, reason, detail):
  record = dict(_sample_records()[0], **change)          # 005808361.jpg, 1280 x 720
  groups, report = _plan([record, _sample_records()[1]])
  assert sum(len(g) for g in groups['train'].values()) == 1
  assert report.count(reason) == 1 and report.num_skipped == 1
  assert report.summary()['skips'][reason]['examples'] == [f'record 0 (005808361.jpg): {detail}']
  # The reason states the threshold.
  assert reason in ('implausible centre (more than one image width or height outside the image)',
                    "implausible scale (person height 200 x scale under 8 px or over 4 x the "
                    "image's larger side)")


def test_plausible_extremes_are_kept():
  records = _sample_records()
  records[0] = dict(records[0], center=[-1000.0, 700.0], scale=0.05)     # 10 px tall, just left
  records[1] = dict(records[1], scale=4 * 854 / 200)                     # 4 x the larger side
  groups, report = _plan(records)
  assert report.num_skipped == 0 and sum(len(g) for g in groups['train'].values()) == 5
