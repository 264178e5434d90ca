"""The benchmarks' own files, on official-format fixtures built here, with hand-computed scores.

LSP (joints.mat 3 x 14 x 2000, predictions 14 x 2 x 1000): every test person's torso (left
shoulder to right hip) is 100 px, predictions equal the truth except six designed joints:
  im1001 r_wrist 20 px off      hit (<= 0.2 x 100, the boundary counts)
  im1002 r_wrist 20.5 px off    miss
  im1003 r_wrist 22 px off      miss: the predicted torso is 115 px (its l_shoulder 15 px out,
                                a hit), which would allow 23 px; the ground truth's is used
  im1004 l_elbow 25 px off      miss: the other diagonal (r_shoulder to l_hip) is 150 px here,
                                which would allow 30 px
  im1005 l_ankle 50 px off      miss although flagged occluded: every joint counts; its
                                l_knee (also flagged) is exact and counts as a hit
  im1006 neck not predicted     miss (NaN)
  im2000 head_top 100 px off    miss: the last column is image 2000
The training images 1-1000 hold a different pose, so scoring them would miss everything.
Hand count: 6 misses of 14,000 joints, Mean 13994 / 14000 = 99.957%; r_wrist 998 / 1000;
l_elbow, l_ankle, neck, head_top 999 / 1000; Wrist (r, l averaged) 99.9, Elbow 99.95.
With the predicted torso instead (not the rule), im1003's r_wrist would be a hit.

FLIC (examples.mat, 7 examples, 4 with istest: 2, 4, 5, 6): coords in the 11 labelled slots,
NaN elsewhere.
  ex 2  person-centric labels, torso 100; exact.
  ex 4  observer-centric (labelled right shoulder right of the left one): swapped. After the
        swap its torso (l_shoulder to r_hip) is 100 px, before it 85.4 px; its l_elbow is
        predicted 19 px off: a hit only with the swap and the person-centric torso.
  ex 5  torso 100; l_shoulder predicted 15 px out (predicted torso 115); r_wrist 22 px off:
        a miss with the ground truth's torso.
  ex 6  torso 100; both wrists 30 px off, r_elbow 25 px off: misses.
Hand count: elbows l 4/4, r 3/4 -> Elbow 87.5; wrists l 3/4, r 2/4 -> Wrist 62.5; at 0.1 the
elbows are l 3/4 (ex 4's 19 px), r 3/4 -> 75.0. Normalised by the predicted torso (the release's
MATLAB code, ``normaliser='prediction'``) ex 5's r_wrist is a hit: Wrist 75.0.
"""
import json
import os

import numpy as np
import pytest
import scipy.io

from posemachines.core import errors, skeleton
from posemachines.data import mpii_mat
from posemachines.evaluation import benchmark_files as bf
from posemachines.evaluation import metrics, mpii_files

LSP = skeleton.LSP.parts
FLIC = skeleton.FLIC.parts


def _one_line(excinfo):
  msg = str(excinfo.value)
  assert '\n' not in msg
  return msg


# ---------------------------------------------------------------------------------- LSP --

def _lsp_pose():
  """[14, 2] in LSP order; |l_shoulder - r_hip| = 100, |r_shoulder - l_hip| = 89.4."""
  p = {'r_ankle': (100, 330), 'r_knee': (100, 260), 'r_hip': (100, 180), 'l_hip': (140, 180),
       'l_knee': (150, 260), 'l_ankle': (150, 330), 'r_wrist': (60, 200), 'r_elbow': (70, 150),
       'r_shoulder': (100, 100), 'l_shoulder': (160, 100), 'l_elbow': (190, 150),
       'l_wrist': (200, 200), 'neck': (130, 80), 'head_top': (130, 30)}
  return np.array([p[k] for k in LSP], np.float64)


def _set(arr, part, xy):
  arr[LSP.index(part)] = xy


def lsp_fixture():
  """(joints [2000, 14, 3], predictions [1000, 14, 2]) as described in the module docstring."""
  pose = _lsp_pose()
  joints = np.zeros((2000, 14, 3))
  joints[:, :, :2] = pose
  joints[:1000, :, :2] = pose * 0.5 + 400          # training images: another pose entirely
  gt = joints[1000:, :, :2]
  pred = gt.copy()
  i = lambda image: image - 1001
  pred[i(1001), LSP.index('r_wrist')] += (20.0, 0.0)
  pred[i(1002), LSP.index('r_wrist')] += (0.0, 20.5)
  pred[i(1003), LSP.index('l_shoulder')] += (9.0, -12.0)     # 15 px along the torso, outwards
  pred[i(1003), LSP.index('r_wrist')] += (22.0, 0.0)
  gt[i(1004), LSP.index('l_hip')] = (190.0, 220.0)           # |r_shoulder - l_hip| = 150
  pred[i(1004)] = gt[i(1004)]
  pred[i(1004), LSP.index('l_elbow')] += (0.0, 25.0)
  joints[1004, [LSP.index('l_ankle'), LSP.index('l_knee')], 2] = 1.0   # flagged occluded
  pred[i(1005), LSP.index('l_ankle')] += (30.0, 40.0)
  pred[i(1006), LSP.index('neck')] = np.nan
  pred[i(2000), LSP.index('head_top')] += (0.0, -100.0)
  return joints, pred


def write_lsp(tmp_path, layout='3x14'):
  joints, pred = lsp_fixture()
  gt_path = tmp_path / f'joints_{layout}.mat'
  arr = joints.transpose(2, 1, 0) if layout == '3x14' else joints.transpose(1, 2, 0)
  scipy.io.savemat(gt_path, {'joints': arr})
  pred_path = tmp_path / 'LSP_prediction_fixture.mat'
  bf.write_prediction_all(pred_path, pred.transpose(1, 2, 0))
  return str(gt_path), str(pred_path), joints, pred


def test_lsp_fixture_geometry():
  joints, pred = lsp_fixture()
  gt = joints[1000:, :, :2]
  ls, rh, rs, lh = (LSP.index(p) for p in ('l_shoulder', 'r_hip', 'r_shoulder', 'l_hip'))
  assert np.allclose(np.linalg.norm(gt[:, ls] - gt[:, rh], axis=-1), 100.0)
  assert np.linalg.norm(gt[3, rs] - gt[3, lh]) == 150.0
  assert np.linalg.norm(pred[2, ls] - gt[2, rh]) == 115.0


@pytest.mark.parametrize('layout', ['3x14', '14x3'])
def test_lsp_hand_computed(tmp_path, layout):
  gt_path, pred_path, _, _ = write_lsp(tmp_path, layout)
  res = bf.score_files('lsp', gt_path, [pred_path])
  assert res['num_people'] == 1000
  tab = res['files'][0]['table']
  assert res['files'][0]['name'] == 'LSP_prediction_fixture'
  assert res['files'][0]['format'] == 'prediction_all'
  pp = tab['per_part']
  assert pp['r_wrist'] == 998 / 1000
  for part in ('l_elbow', 'l_ankle', 'neck', 'head_top'):
    assert pp[part] == 999 / 1000, part
  for part in set(LSP) - {'r_wrist', 'l_elbow', 'l_ankle', 'neck', 'head_top'}:
    assert pp[part] == 1.0, part
  assert tab['row']['Mean'] == 13994 / 14000
  assert tab['row']['Wrist'] == pytest.approx(0.999)
  assert tab['row']['Elbow'] == pytest.approx(0.9995)
  assert tab['row']['Head'] == 0.999
  assert tab['metric'] == 'PCK@0.2' and tab['curves']['thresholds'][-1] == 0.2
  other = bf.score_files('lsp', gt_path, [pred_path], normaliser='prediction')
  assert other['files'][0]['table']['per_part']['r_wrist'] == 999 / 1000
  assert other['files'][0]['table']['row']['Mean'] == 13995 / 14000


def test_lsp_rules_each_flip_a_joint(tmp_path):
  """Scoring with each wrong rule changes the designed joints: the rules are what decide."""
  joints, pred = lsp_fixture()
  gt = joints[1000:, :, :2]
  ok = lambda norm: np.linalg.norm(pred - gt, axis=-1) <= 0.2 * norm[:, None]
  ls, rh, rs, lh = (LSP.index(p) for p in ('l_shoulder', 'r_hip', 'r_shoulder', 'l_hip'))
  right = ok(np.linalg.norm(gt[:, ls] - gt[:, rh], axis=-1))
  by_prediction = ok(np.linalg.norm(pred[:, ls] - pred[:, rh], axis=-1))
  other_diagonal = ok(np.linalg.norm(gt[:, rs] - gt[:, lh], axis=-1))
  assert not right[2, LSP.index('r_wrist')] and by_prediction[2, LSP.index('r_wrist')]
  assert not right[3, LSP.index('l_elbow')] and other_diagonal[3, LSP.index('l_elbow')]
  strict = np.linalg.norm(pred - gt, axis=-1) < 0.2 * 100
  assert right[0, LSP.index('r_wrist')] and not strict[0, LSP.index('r_wrist')]
  # The training images would score nothing:
  train = joints[:1000, :, :2]
  assert not (np.linalg.norm(pred - train, axis=-1) <= 20).any()


def test_lsp_writer_from_people_any_order(tmp_path):
  gt_path, pred_path, _, pred = write_lsp(tmp_path)
  order = np.random.RandomState(0).permutation(1000)
  ids = [f'im{1001 + k}.jpg' for k in order]
  model = skeleton.convert(pred[order], 'lsp', 'cpm14')        # a model in its own order
  arr = bf.lsp_prediction_all(ids, model, 'cpm14')
  assert arr.shape == (14, 2, 1000)
  np.testing.assert_array_equal(arr, pred.transpose(1, 2, 0))
  path = tmp_path / 'written.mat'
  bf.write_prediction_all(path, arr)
  a = bf.score_files('lsp', gt_path, [pred_path])['files'][0]['table']
  b = bf.score_files('lsp', gt_path, [str(path)])['files'][0]['table']
  assert a['row'] == b['row']
  with pytest.raises(ValueError, match='not an LSP test image'):
    bf.lsp_prediction_all(['im0999.jpg'], model[:1], 'cpm14')


def test_lsp_side_by_side_and_figure(tmp_path):
  gt_path, pred_path, _, pred = write_lsp(tmp_path)
  perfect = tmp_path / 'perfect.mat'
  joints, _ = lsp_fixture()
  bf.write_prediction_all(perfect, joints[1000:, :, :2].transpose(1, 2, 0))
  res = bf.score_files('lsp', gt_path, [pred_path, str(perfect)], names=['fixture', 'truth'])
  text = bf.markdown(res)
  assert '| predictions | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean |' in text
  assert ('| fixture | 99.90 | 100.00 | 99.95 | 99.90 | 100.00 | 100.00 | 99.95 | 99.96 |'
          in text)
  assert '| truth | 100.00 | 100.00 |' in text
  assert '| r_wrist | 99.80 | 100.00 |' in text
  paths = bf.write_outputs(res, str(tmp_path / 'out'))
  assert os.path.getsize(paths['curves']) > 10_000
  with open(paths['json']) as f:
    again = json.load(f)
  # The JSON written is itself a predictions input: its tables come back as they are.
  back = bf.score_files('lsp', gt_path, [paths['json']])
  assert [f['name'] for f in back['files']] == ['fixture', 'truth']
  assert back['files'][0]['table']['row'] == again['files'][0]['table']['row']


def test_lsp_bad_ground_truth(tmp_path):
  joints, _ = lsp_fixture()
  cases = {
      'missing.mat': (None, r'missing\.mat: no such file \(expected LSP\'s joints\.mat'),
      'text.mat': (b'not a mat file at all', r'is not a readable MATLAB \.mat file'),
      'other.mat': ({'pose': joints.transpose(2, 1, 0)},
                    r'holds pose \(3x14x2000 double\); expected a variable joints of shape '
                    r'3 x 14 x 2000'),
      'shape.mat': ({'joints': np.zeros((3, 15, 2000))},
                    r'holds joints of shape 3x15x2000; expected a variable joints'),
      'count.mat': ({'joints': np.zeros((3, 14, 1000))}, r'holds joints of 1000 images; '),
      'lspet.mat': ({'joints': np.zeros((14, 3, 10000))},
                    r'holds joints of 10000 images \(LSP-extended'),
  }
  for name, (content, pattern) in cases.items():
    path = tmp_path / name
    if isinstance(content, bytes):
      path.write_bytes(content)
    elif content is not None:
      scipy.io.savemat(path, content)
    with pytest.raises(errors.UserError, match=pattern) as e:
      bf.score_files('lsp', str(path), [str(path)])
    assert str(path) in _one_line(e)
    assert e.type is (errors.MissingData if content is None else errors.BadFile)
  bad = joints.copy()
  bad[1500, LSP.index('r_hip'), :2] = bad[1500, LSP.index('l_shoulder'), :2]
  scipy.io.savemat(tmp_path / 'zero.mat', {'joints': bad.transpose(2, 1, 0)})
  with pytest.raises(bf.BadFile, match='test image 1501 has its left shoulder on its right hip'):
    bf.lsp_truth(str(tmp_path / 'zero.mat'))


def _matlab73(path):
  """A file with the header of a MATLAB v7.3 (HDF5) .mat file."""
  text = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5'
  path.write_bytes(text.ljust(116) + b'\0' * 8 + b'\x00\x02IM' + b'\0' * 512)


def test_lsp_bad_predictions(tmp_path):
  gt_path, _, joints, pred = write_lsp(tmp_path)
  cols = pred.transpose(1, 2, 0)
  images = [{'name': 'a.jpg', 'annorect': []}]
  mpii_mat.write_release(tmp_path / 'annolist.mat', images, top='annolist')
  _matlab73(tmp_path / 'v73.mat')
  expected = r'expected a variable prediction_all of shape 14 x 2 x 1000 \(x, y of the 14 LSP'
  cases = {
      'preds.mat': ({'preds': cols}, r'holds preds \(14x2x1000 double\); ' + expected),
      'transposed.mat': ({'prediction_all': cols.transpose(1, 0, 2)},
                         r'holds prediction_all of shape 2x14x1000; ' + expected),
      'count.mat': ({'prediction_all': cols[..., :999]},
                    r'holds prediction_all of shape 14x2x999: 999 columns for the 1000 test '
                    r'people of .*joints_3x14\.mat; ' + expected),
      'cell.mat': ({'prediction_all': np.array([[1, 'a']], dtype=object)},
                   r'prediction_all is prediction_all \(1x2 cell\); ' + expected),
      'annolist.mat': (None, r'holds annolist \(1x1 struct\) \(an MPII annotation layout\); '),
      'v73.mat': (None, r'is a MATLAB v7\.3 \(HDF5\) file; expected LSP predictions saved as '
                        r'MATLAB v5/v7'),
      'nothing.mat': (False, r'nothing\.mat: no such file \(expected LSP predictions: '),
  }
  for name, (content, pattern) in cases.items():
    path = tmp_path / name
    if isinstance(content, dict):
      scipy.io.savemat(path, content)
    with pytest.raises(errors.UserError, match=pattern) as e:
      bf.score_files('lsp', gt_path, [str(path)])
    assert _one_line(e).startswith(str(path))
    assert e.type is (errors.MissingData if content is False else errors.BadFile)


def test_json_bad_inputs(tmp_path):
  gt_path, _, _, _ = write_lsp(tmp_path)
  (tmp_path / 'broken.json').write_text('{"files": [')
  (tmp_path / 'list.json').write_text('[1, 2]')
  (tmp_path / 'keys.json').write_text('{"model": "x"}')
  mpii_row = {'metric': 'PCKh@0.5', 'columns': ['Mean'], 'row': {'Mean': 0.9}}
  (tmp_path / 'mpii.json').write_text(json.dumps({'table': mpii_row}))
  (tmp_path / 'kind.json').write_text(json.dumps({'table': 'flic', 'stages': [
      {'metric': 'PCK@0.2', 'columns': ['Elbow', 'Wrist'], 'row': {'Elbow': 1, 'Wrist': 1}}]}))
  (tmp_path / 'norow.json').write_text(json.dumps({'stages': [{'metric': 'PCK@0.2'}]}))
  cases = {'broken.json': r'is not valid JSON', 'list.json': r'holds JSON with keys list and no '
           r'benchmark table; expected the JSON evaluate writes',
           'keys.json': r"holds JSON with keys \['model'\] and no benchmark table",
           'mpii.json': r"holds a mpii table \(PCKh@0\.5 of Mean\), not LSP's",
           'kind.json': r"holds a flic table \(PCK@0\.2 of Elbow, Wrist\), not LSP's",
           'norow.json': r"the table of 'norow' lacks metric, columns or row",
           'absent.json': r'absent\.json: no such file \(expected the JSON evaluate writes'}
  for name, pattern in cases.items():
    with pytest.raises(errors.UserError, match=pattern) as e:
      bf.score_files('lsp', gt_path, [str(tmp_path / name)])
    assert _one_line(e).startswith(str(tmp_path / name))
    assert e.type is (errors.MissingData if name == 'absent.json' else errors.BadFile)


def test_eval_json_of_a_model_run(tmp_path):
  """eval.json as evaluate writes it for a model: its last stage's table, named by --names."""
  gt_path, pred_path, _, _ = write_lsp(tmp_path)
  dist = np.zeros((4, 14))
  dist[0, 0] = 50.0
  stages = [metrics.table('lsp', dist + 100 * (t == 0), np.ones((4, 14)), np.full(4, 100.0), LSP)
            for t in range(2)]
  (tmp_path / 'eval.json').write_text(json.dumps({'table': 'lsp', 'stages': stages,
                                                  'dataset': 'lsp', 'num_people': 4}))
  res = bf.score_files('lsp', gt_path, [pred_path, str(tmp_path / 'eval.json')],
                       names=['release', 'ours'])
  assert [f['name'] for f in res['files']] == ['release', 'ours']
  assert res['files'][1]['table']['row']['Mean'] == 55 / 56
  assert res['files'][1]['format'] == 'json'


# --------------------------------------------------------------------------------- FLIC --

SLOT = {'l_shoulder': 0, 'l_elbow': 1, 'l_wrist': 2, 'r_shoulder': 3, 'r_elbow': 4,
        'r_wrist': 5, 'l_hip': 6, 'r_hip': 9, 'l_eye': 12, 'r_eye': 13, 'nose': 16}


def _coords(labels):
  c = np.full((2, 29), np.nan)
  for part, xy in labels.items():
    c[:, SLOT[part]] = xy
  return c


def _flic_person(**moved):
  """Person-centric labels (a person facing the camera: their left on the image's right)."""
  p = {'l_shoulder': (160, 100), 'l_elbow': (190, 140), 'l_wrist': (200, 190),
       'r_shoulder': (100, 100), 'r_elbow': (70, 140), 'r_wrist': (60, 190),
       'l_hip': (160, 180), 'r_hip': (100, 180), 'l_eye': (140, 60), 'r_eye': (120, 60),
       'nose': (130, 70)}
  p.update(moved)
  return p


def flic_fixture():
  """(examples as dicts, person-centric ground truth [4, 9, 2], predictions [4, 9, 2])."""
  # ex 4, observer-centric: labelled "left" parts lie on the image's left.
  observer = {'l_shoulder': (100, 100), 'l_elbow': (70, 140), 'l_wrist': (60, 190),
              'r_shoulder': (160, 100), 'r_elbow': (190, 140), 'r_wrist': (200, 190),
              'l_hip': (100, 180), 'r_hip': (130, 180), 'l_eye': (120, 60),
              'r_eye': (140, 60), 'nose': (130, 70)}
  poison = {k: (v[0] + 500, v[1] + 500) for k, v in _flic_person().items()}
  labels = [poison, _flic_person(), poison, observer, _flic_person(), _flic_person(), poison]
  istest = [0, 1, 0, 1, 1, 1, 0]
  examples = []
  for i, (lab, t) in enumerate(zip(labels, istest)):
    ys = [v[1] for v in lab.values()]
    examples.append({'coords': _coords(lab), 'filepath': f'movie-{i // 2:08d}.jpg',
                     'imgdims': np.array([480.0, 720.0, 3.0]),
                     'torsobox': np.array([95.0, 90.0 + 10 * i, 170.0, 190.0]),
                     'istrain': float(1 - t), 'istest': float(t)})
  person_centric = dict(observer)
  for a, b in (('l_shoulder', 'r_shoulder'), ('l_elbow', 'r_elbow'), ('l_wrist', 'r_wrist'),
               ('l_hip', 'r_hip')):
    person_centric[a], person_centric[b] = observer[b], observer[a]
  tests = [_flic_person(), person_centric, _flic_person(), _flic_person()]
  gt = np.array([[t[p] for p in FLIC] for t in tests], np.float64)
  pred = gt.copy()
  f = FLIC.index
  pred[1, f('l_elbow')] += (0.0, 19.0)
  pred[2, f('l_shoulder')] += (9.0, -12.0)
  pred[2, f('r_wrist')] += (22.0, 0.0)
  pred[3, f('l_wrist')] += (30.0, 0.0)
  pred[3, f('r_wrist')] += (0.0, 30.0)
  pred[3, f('r_elbow')] += (0.0, -25.0)
  pred[3, f('nose')] += (0.0, 50.0)
  return examples, gt, pred


def write_flic(tmp_path, examples=None, pred=None):
  ex, _, p = flic_fixture()
  from posemachines.data import flic as flic_data
  gt_path = tmp_path / 'examples.mat'
  flic_data.write_examples(gt_path, examples if examples is not None else ex)
  pred_path = tmp_path / 'FLIC_prediction_fixture.mat'
  bf.write_prediction_all(pred_path, (p if pred is None else pred).transpose(1, 2, 0))
  return str(gt_path), str(pred_path)


def test_flic_fixture_geometry():
  ex, gt, pred = flic_fixture()
  f = FLIC.index
  obs = ex[3]['coords']
  # Before the swap the labelled l_shoulder to r_hip is 85.4 px; after it, 100 px.
  assert np.hypot(*(obs[:, 0] - obs[:, 9])) == pytest.approx(85.44, abs=0.01)
  assert np.linalg.norm(gt[1, f('l_shoulder')] - gt[1, f('r_hip')]) == 100.0
  assert np.linalg.norm(pred[2, f('l_shoulder')] - pred[2, f('r_hip')]) == 115.0
  # Without the swap ex 4's predicted l_elbow would be 120 px from the labelled one.
  assert np.linalg.norm(pred[1, f('l_elbow')] - obs[:, 1]) > 100


def test_flic_hand_computed(tmp_path):
  gt_path, pred_path = write_flic(tmp_path)
  gt = bf.flic_truth(gt_path)
  _, want, _ = flic_fixture()
  np.testing.assert_array_equal(gt.joints, want)
  assert gt.swapped.tolist() == [False, True, False, False]
  # examples 5 and 6 are two people of one frame
  assert gt.ids == ['example 2 (movie-00000000.jpg)', 'example 4 (movie-00000001.jpg)',
                    'example 5 (movie-00000002.jpg)', 'example 6 (movie-00000002.jpg)']
  np.testing.assert_array_equal(gt.norm, [100.0] * 4)
  res = bf.score_files('flic', gt_path, [pred_path])
  assert res['num_people'] == 4 and res['swapped_to_person_centric'] == 1
  tab = res['files'][0]['table']
  assert tab['columns'] == ['Elbow', 'Wrist']
  assert tab['row'] == {'Elbow': 0.875, 'Wrist': 0.625}
  pp = tab['per_part']
  assert (pp['l_elbow'], pp['r_elbow'], pp['l_wrist'], pp['r_wrist']) == (1.0, 0.75, 0.75, 0.5)
  assert pp['nose'] == 0.75 and pp['l_shoulder'] == 1.0
  thresholds = tab['curves']['thresholds']
  assert thresholds[0] == 0.0 and thresholds[-1] == 0.2 and len(thresholds) == 21
  assert tab['curves']['Elbow'][10] == 0.75        # at 0.1: ex 4's l_elbow (19 px) misses too
  assert tab['curves']['Elbow'][0] == 0.75 and tab['curves']['Wrist'][-1] == 0.625
  text = bf.markdown(res)
  assert '| FLIC_prediction_fixture | 87.50 | 62.50 |' in text
  # As the release's MATLAB code scores (the predicted torso): ex 5's predicted torso of 115 px
  # allows its r_wrist's 22 px, so r_wrist is 3/4 and Wrist 75.0.
  mat = bf.score_files('flic', gt_path, [pred_path], normaliser='prediction')
  assert mat['files'][0]['table']['row'] == {'Elbow': 0.875, 'Wrist': 0.75}
  bf.plot_curves(res, str(tmp_path / 'flic.png'))
  assert os.path.getsize(tmp_path / 'flic.png') > 10_000


def test_flic_writer_locates_people_by_image_and_centre(tmp_path):
  ex, gt, pred = flic_fixture()
  gt_path, pred_path = write_flic(tmp_path)
  tests = [e for e in ex if e['istest']]
  ids = [e['filepath'] for e in tests]
  centres = [((e['torsobox'][0] + e['torsobox'][2]) / 2,
              0.7 * e['torsobox'][1] + 0.3 * e['torsobox'][3]) for e in tests]
  order = [3, 1, 0, 2]
  arr = bf.flic_prediction_all(gt_path, [ids[i] for i in order], [centres[i] for i in order],
                               pred[order], 'flic')
  np.testing.assert_array_equal(arr, pred.transpose(1, 2, 0))
  with pytest.raises(bf.BadFile, match=r"0 test examples of 'movie-00000000\.jpg' have their "
                                       r'centre at \[1\.0, 2\.0\]'):
    bf.flic_prediction_all(gt_path, ids[:1], [(1.0, 2.0)], pred[:1], 'flic')


def test_flic_bad_inputs(tmp_path):
  ex, gt, pred = flic_fixture()
  gt_path, pred_path = write_flic(tmp_path)
  expected = r'expected a struct array examples with coords \(2 x 29, 11 columns labelled\)'
  from posemachines.data import flic as flic_data

  def examples_file(name, change):
    exs = [dict(e) for e in ex]
    change(exs)
    flic_data.write_examples(tmp_path / name, exs)
    return str(tmp_path / name)

  short = examples_file('short.mat', lambda e: e[1].update(coords=e[1]['coords'][:, :28]))
  with pytest.raises(bf.BadFile, match=r'example 2 \(movie-00000000\.jpg\) has coords of shape '
                                       r'2x28; ' + expected) as e:
    bf.flic_truth(short)
  _one_line(e)

  def drop_nose(e):
    e[3]['coords'][:, 16] = np.nan
  ten = examples_file('ten.mat', drop_nose)
  with pytest.raises(bf.BadFile, match=r"example 4 .* has 10 labelled coords columns \(x and "
                                       r"y\); the release's rule needs 11"):
    bf.flic_truth(ten)
  notest = examples_file('notest.mat', lambda e: [x.update(istest=0.0) for x in e])
  with pytest.raises(bf.BadFile, match=r'no example has istest set; ' + expected):
    bf.flic_truth(notest)
  nofield = examples_file('nofield.mat', lambda e: [x.pop('istest') for x in e])
  with pytest.raises(bf.BadFile, match=r'examples has fields coords, filepath, imgdims, '
                                       r'torsobox, istrain \(no istest\); ' + expected):
    bf.flic_truth(nofield)
  scipy.io.savemat(tmp_path / 'other.mat', {'joints': np.zeros((3, 14, 2000))})
  with pytest.raises(bf.BadFile, match=r'holds joints \(3x14x2000 double\); ' + expected):
    bf.flic_truth(str(tmp_path / 'other.mat'))
  flic_layout = r'expected a variable prediction_all of shape 9 x 2 x 4 \(x, y of the 9 FLIC'
  cols = pred.transpose(1, 2, 0)
  for name, arr, pattern in (
      ('three.mat', cols[..., :3], r'holds prediction_all of shape 9x2x3: 3 columns for the 4 '
                                   r'test people'),
      ('lsp.mat', np.zeros((14, 2, 4)), r'holds prediction_all of shape 14x2x4; ')):
    scipy.io.savemat(tmp_path / name, {'prediction_all': arr})
    with pytest.raises(bf.BadFile, match=pattern + '.*' + flic_layout) as e:
      bf.score_files('flic', gt_path, [str(tmp_path / name)])
    _one_line(e)


def test_flic_one_test_example_matlab_drops_the_singleton(tmp_path):
  ex, gt, pred = flic_fixture()
  for e in ex:
    e['istest'] = 0.0
  ex[1]['istest'] = 1.0
  gt_path, _ = write_flic(tmp_path, ex)
  scipy.io.savemat(tmp_path / 'one.mat', {'prediction_all': pred[0]})    # 9 x 2
  tab = bf.score_files('flic', gt_path, [str(tmp_path / 'one.mat')])['files'][0]['table']
  assert tab['row'] == {'Elbow': 1.0, 'Wrist': 1.0}


# --------------------------------------------------------------------------------- MPII --

def _mpii_person(index, shift=0.0, objpos=(50.0, 60.0), points=True):
  pts = {pid: (10.0 + pid + shift, 20.0 + 2 * pid, True) for pid in range(16)} if points else {}
  return mpii_mat.Person(index, pts, (0.0, 0.0, 30.0, 40.0), objpos, 1.5)


def test_mpii_files_side_by_side(tmp_path):
  images = [mpii_mat.ImageAnnotation(1, 'a.jpg', [_mpii_person(1), _mpii_person(2)], 1),
            mpii_mat.ImageAnnotation(2, 'b.jpg', [_mpii_person(1)], 1)]
  mpii_mat.write_release(tmp_path / 'gt.mat', images)
  near = [mpii_mat.ImageAnnotation(i.index, i.name, [_mpii_person(p.index, 5.0)
                                                     for p in i.people]) for i in images]
  far = [mpii_mat.ImageAnnotation(i.index, i.name, [_mpii_person(p.index, 20.0)
                                                    for p in i.people]) for i in images]
  mpii_mat.write_release(tmp_path / 'near.mat', near, top='annolist')
  mpii_mat.write_release(tmp_path / 'far.mat', far, top='annolist')
  gt = str(tmp_path / 'gt.mat')
  res = bf.score_files('mpii', gt, [str(tmp_path / 'near.mat'), str(tmp_path / 'far.mat')],
                       names=['near', 'far'])
  assert res['num_people'] == 3 and res['files'][0]['left_out'] == {}
  assert res['files'][0]['table'] == mpii_files.score(gt, str(tmp_path / 'near.mat'))['table']
  # head size 30: 15 px allowed at 0.5; 5 px off all hit, 20 px off all miss
  assert res['files'][0]['table']['row']['Mean'] == 1.0
  assert res['files'][1]['table']['row']['Mean'] == 0.0
  assert '| near | 100.00 |' in bf.markdown(res) and '| far | 0.00 |' in bf.markdown(res)
  bf.plot_curves(res, str(tmp_path / 'mpii.png'))
  scipy.io.savemat(tmp_path / 'pa.mat', {'prediction_all': np.zeros((14, 2, 3))})
  with pytest.raises(bf.BadFile, match=r'pa\.mat holds prediction_all \(the LSP/FLIC layout\); '
                                       r'expected an MPII annotation or predictions file'):
    bf.score_files('mpii', gt, [str(tmp_path / 'pa.mat')])
  scipy.io.savemat(tmp_path / 'other.mat', {'preds': np.zeros((16, 2, 3))})
  with pytest.raises(bf.BadFile, match=r'other\.mat holds neither RELEASE nor annolist '
                                       r"\(variables: \['preds'\]\); expected an MPII") as e:
    bf.score_files('mpii', gt, [str(tmp_path / 'other.mat')])
  _one_line(e)


def _release_with_test_images(path):
  """5 images, img_train 1 0 0 1 0. Test image 2: two people; test image 3: three, the first
  without objpos (a builder skips it, so positions must not be recounted); test image 5: one,
  left unpredicted."""
  no_pos = mpii_mat.Person(1, {}, None, None, None)
  images = [
      mpii_mat.ImageAnnotation(1, 'train1.jpg', [_mpii_person(1)], 1),
      mpii_mat.ImageAnnotation(2, 'test2.jpg', [_mpii_person(1, points=False, objpos=(10, 10)),
                                                _mpii_person(2, points=False, objpos=(90, 10))],
                               0),
      mpii_mat.ImageAnnotation(3, 'test3.jpg', [no_pos,
                                                _mpii_person(2, points=False, objpos=(30, 40)),
                                                _mpii_person(3, points=False, objpos=(70, 40))],
                               0),
      mpii_mat.ImageAnnotation(4, 'train4.jpg', [_mpii_person(1)], 1),
      mpii_mat.ImageAnnotation(5, 'test5.jpg', [_mpii_person(1, points=False, objpos=(5, 5))],
                               0)]
  mpii_mat.write_release(path, images)


def _read_pred(path):
  mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
  assert sorted(k for k in mat if not k.startswith('__')) == ['pred']
  return mpii_mat.parse({'annolist': mat['pred']}, str(path))


def test_mpii_submission_positions(tmp_path):
  gt = tmp_path / 'release.mat'
  _release_with_test_images(gt)
  people = [('test3.jpg', (70.0, 40.0), (3, 3)), ('test2.jpg', (10.0, 10.0), (2, 1)),
            ('test3.jpg', (30.0, 40.0), (3, 2)), ('test2.jpg', (90.0, 10.0), (2, 2))]
  kp = np.zeros((4, 14, 3))
  for n in range(4):
    kp[n, :, 0] = 100 * n + np.arange(14)
    kp[n, :, 1] = 7.0
    kp[n, :, 2] = 0.5
  ids = [p[0] for p in people]
  centres = [p[1] for p in people]
  counts = bf.write_mpii_submission(str(tmp_path / 'by_centre.mat'), str(gt), ids, kp, 'cpm14',
                                    centers=centres)
  assert counts == {'test_images': 3, 'test_people': 6, 'predicted': 4}
  bf.write_mpii_submission(str(tmp_path / 'by_position.mat'), str(gt), ids, kp, 'cpm14',
                           positions=[p[2] for p in people])
  for name in ('by_centre.mat', 'by_position.mat'):
    back = _read_pred(tmp_path / name)
    assert [im.name for im in back] == ['test2.jpg', 'test3.jpg', 'test5.jpg']
    assert [len(im.people) for im in back] == [2, 3, 1]
    assert not back[1].people[0].points and back[1].people[0].objpos is None
    assert not back[2].people[0].points and back[2].people[0].objpos == (5.0, 5.0)
    for n, (image, centre, (a, r)) in enumerate(people):
      person = back[[2, 3].index(a)].people[r - 1]
      assert person.objpos == centre and person.scale == 1.5
      want = skeleton.convert(kp[n], 'cpm14', 'mpii')
      assert sorted(person.points) == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15]
      for pid, (x, y, _) in person.points.items():
        assert (x, y) == tuple(want[pid, :2]), (n, pid)
  with pytest.raises(bf.BadFile, match=r"0 test people of image 'test2\.jpg' have objpos "
                                       r'\[50\.0, 50\.0\] \(expected exactly one\)'):
    bf.write_mpii_submission(str(tmp_path / 'x.mat'), str(gt), ['test2.jpg'], kp[:1], 'cpm14',
                             centers=[(50.0, 50.0)])
  with pytest.raises(bf.BadFile, match=r'no test person at annolist 1, annorect 1'):
    bf.write_mpii_submission(str(tmp_path / 'x.mat'), str(gt), ['train1.jpg'], kp[:1], 'cpm14',
                             positions=[(1, 1)])
  mpii_mat.write_release(tmp_path / 'train_only.mat',
                         [mpii_mat.ImageAnnotation(1, 'a.jpg', [_mpii_person(1)], 1)])
  with pytest.raises(bf.BadFile, match=r'has no test image \(img_train == 0\)'):
    bf.write_mpii_submission(str(tmp_path / 'x.mat'), str(tmp_path / 'train_only.mat'), [],
                             kp[:0], 'cpm14', centers=[])
  with pytest.raises(errors.MissingData, match=r'nope\.mat.*expected the official MPII '
                                               r'annotation file'):
    bf.write_mpii_submission(str(tmp_path / 'x.mat'), str(tmp_path / 'nope.mat'), [], kp[:0],
                             'cpm14', centers=[])


def test_cli_scores_lsp_files_side_by_side(tmp_path):
  """``evaluate --dataset=lsp --annotations --predictions=A,B --names --out`` as a user runs it."""
  import subprocess
  import sys
  gt_path, pred_path, joints, _ = write_lsp(tmp_path)
  perfect = tmp_path / 'perfect.mat'
  bf.write_prediction_all(perfect, joints[1000:, :, :2].transpose(1, 2, 0))
  out = tmp_path / 'cmp'
  run = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', '--dataset=lsp',
                        f'--annotations={gt_path}', f'--predictions={pred_path},{perfect}',
                        '--names=fixture,truth', f'--out={out}'], capture_output=True, text=True,
                       timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  assert '| fixture | 99.90 | 100.00 | 99.95 | 99.90 | 100.00 | 100.00 | 99.95 | 99.96 |' in run.stdout
  assert '| truth | 100.00 |' in run.stdout
  assert os.path.getsize(out / 'curves.png') > 10_000
  bad = subprocess.run([sys.executable, '-m', 'posemachines.evaluate', '--dataset=lsp',
                        f'--annotations={gt_path}', f'--predictions={pred_path}',
                        '--names=a,b'], capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == (
      'posemachines.evaluate: error: --names has 2 names for 1 --predictions files')
