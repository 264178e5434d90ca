"""The benchmarks' measures against hand-computed cases."""
import numpy as np
import pytest

from posemachines.evaluation import metrics
from posemachines.core import skeleton
from posemachines.data import features

INF = np.inf


def test_threshold_is_inclusive_and_scaled_by_the_normaliser():
  dist = np.array([[5.0, 10.0, 10.001, 0.0]])
  per_part, total = metrics.pck(dist, np.ones((1, 4)), np.array([20.0]), 0.5)  # limit 10 px
  np.testing.assert_array_equal(per_part, [1, 1, 0, 1])
  assert total == pytest.approx(3 / 4)
  _, total = metrics.pck(dist, np.ones((1, 4)), np.array([20.0]), 0.25)  # limit 5 px
  assert total == pytest.approx(2 / 4)


def test_missing_parts():
  # Person 0: part 1 unlabelled (does not count, wherever it was predicted); part 2 labelled but
  # not predicted (inf) or not a number: wrong. Person 1: part 1 labelled and right.
  dist = np.array([[1.0, 0.0, INF], [1.0, 2.0, np.nan]])
  annotated = np.array([[1, 0, 1], [1, 1, 1]])
  per_part, total = metrics.pck(dist, annotated, np.array([10.0, 10.0]), 0.5)
  np.testing.assert_array_equal(per_part, [1.0, 1.0, 0.0])
  assert total == pytest.approx(3 / 5)
  # A part nobody labelled has no value (NaN), and its group falls back on the other side.
  per_part, _ = metrics.pck(dist, np.array([[1, 0, 1], [1, 0, 1]]), np.array([10.0, 10.0]))
  assert np.isnan(per_part[1])
  g = metrics.groups(np.array([0.5, np.nan]), ('r_wrist', 'l_wrist'))
  assert g == {'Wrist': 0.5}


def test_head_size_normalisation():
  box = (100.0, 50.0, 130.0, 90.0)               # 30 x 40: diagonal 50, head size 30
  size = features.head_size(box)
  assert size == pytest.approx(30.0)
  dist = np.array([[14.9, 15.0, 15.1, 2.9, 3.1]])  # PCKh@0.5: 15 px; @0.1: 3 px
  ok = metrics.correct(dist, np.ones((1, 5)), np.array([size]), [0.1, 0.5])
  np.testing.assert_array_equal(ok[:, 0], [[0, 0, 0, 1, 0], [1, 1, 0, 1, 1]])


def test_torso_normalisation_lsp_table():
  parts = skeleton.LSP.parts
  # Torso size: left shoulder (10, 10) to right hip (40, 50) = 50 px, so PCK@0.2 allows 10 px.
  torso = np.hypot(40 - 10, 50 - 10)
  dist = np.full((1, 14), 9.99)
  dist[0, parts.index('l_wrist')] = 10.01
  dist[0, parts.index('r_ankle')] = 30.0
  tab = metrics.lsp_table(dist, np.ones((1, 14)), np.array([torso]), parts)
  assert tab['row']['Wrist'] == pytest.approx(0.5)   # right 1, left 0: averaged
  assert tab['row']['Ankle'] == pytest.approx(0.5)
  assert tab['row']['Head'] == 1.0 and tab['row']['Knee'] == 1.0
  assert tab['row']['Mean'] == pytest.approx(12 / 14)   # every part of LSP counts
  assert tab['curves']['thresholds'][-1] == pytest.approx(0.2)


def test_mpii_table_excludes_pelvis_and_thorax_from_the_mean():
  parts = skeleton.MPII.parts
  n = 4
  dist = np.zeros((n, 16))
  annotated = np.ones((n, 16))
  for name in ('pelvis', 'thorax'):
    dist[:, parts.index(name)] = 100.0         # always wrong, and must not lower the Mean
  dist[:3, parts.index('r_wrist')] = 100.0     # r_wrist right once in 4, l_wrist always
  annotated[0, parts.index('l_ankle')] = 0     # l_ankle labelled 3 times
  dist[1, parts.index('l_ankle')] = 100.0      # and wrong once
  tab = metrics.mpii_table(dist, annotated, np.full(n, 10.0), parts)
  row = tab['row']
  assert row['Wrist'] == pytest.approx((1 / 4 + 1) / 2)
  assert row['Ankle'] == pytest.approx((1 + 2 / 3) / 2)
  assert row['Head'] == 1.0 and row['Shoulder'] == 1.0
  # Mean over the 14 other parts, weighted by counts: 14 * 4 - 1 labelled, 3 + 1 wrong.
  assert row['Mean'] == pytest.approx((55 - 4) / 55)
  assert tab['per_part']['pelvis'] == 0.0 and tab['per_part']['thorax'] == 0.0
  assert tab['columns'] == ['Head', 'Shoulder', 'Elbow', 'Wrist', 'Hip', 'Knee', 'Ankle', 'Mean',
                            'Mean@0.1', 'AUC']


def test_mean_at_0_1_and_auc():
  parts = skeleton.CPM14.parts
  # Every part of one person at 0.25 head sizes: wrong up to 0.24, right from 0.25 on.
  dist = np.full((1, 14), 2.5)
  tab = metrics.mpii_table(dist, np.ones((1, 14)), np.array([10.0]), parts)
  assert tab['row']['Mean'] == 1.0 and tab['row']['Mean@0.1'] == 0.0
  # On thresholds rescaled to [0, 1]: 0 up to x = 0.48, 1 from x = 0.5, a trapezoid between.
  assert tab['row']['AUC'] == pytest.approx(0.5 + 0.02 / 2)
  assert metrics.auc([0, 0.5], [1.0, 1.0]) == pytest.approx(1.0)
  assert metrics.auc([0, 0.1, 0.2], [0.0, 0.5, 1.0]) == pytest.approx(0.5)


def test_flic_table_elbows_and_wrists_over_0_to_0_2():
  parts = skeleton.FLIC.parts
  dist = np.zeros((2, 9))
  dist[0, parts.index('l_elbow')] = 0.15 * 40     # right until 0.15 x torso 40
  dist[:, parts.index('r_wrist')] = 0.3 * 40      # never right within 0.2
  tab = metrics.flic_table(dist, np.ones((2, 9)), np.array([40.0, 40.0]), parts)
  assert tab['columns'] == ['Elbow', 'Wrist']
  assert tab['row'] == {'Elbow': 1.0, 'Wrist': 0.5}
  curve = np.asarray(tab['curves']['Elbow'])
  assert len(curve) == 21
  # l_elbow is right for person 0 from 0.15 on, r_elbow always: (0.5 + 1) / 2 below 0.15.
  np.testing.assert_allclose(curve[:15], 0.75)
  np.testing.assert_allclose(curve[15:], 1.0)


def test_bad_normaliser_and_shapes_are_refused():
  with pytest.raises(ValueError, match='normaliser that is not positive'):
    metrics.pck(np.zeros((2, 3)), np.ones((2, 3)), np.array([10.0, 0.0]))
  with pytest.raises(ValueError, match='must be'):
    metrics.pck(np.zeros((2, 3)), np.ones((2, 4)), np.array([10.0, 1.0]))
  # A person with no labelled part may have no normaliser (MPII's test people).
  _, total = metrics.pck(np.zeros((2, 3)), np.array([[1, 1, 1], [0, 0, 0]]), np.array([10.0, 0]))
  assert total == 1.0


def test_markdown_has_a_row_per_stage_in_percent():
  parts = skeleton.CPM14.parts
  tabs = [metrics.mpii_table(np.full((1, 14), d), np.ones((1, 14)), np.array([10.0]), parts)
          for d in (9.0, 1.0)]
  md = metrics.markdown(tabs, 'x')
  lines = md.strip().splitlines()
  assert lines[-2].startswith('| 1 | 0.0 |') and lines[-1].startswith('| 2 | 100.0 |')
  md = metrics.markdown(tabs[1:], header='predictions', rows=['pred.mat'])
  assert md.splitlines()[2].startswith('| predictions | Head |')
  assert md.splitlines()[-1].startswith('| pred.mat | 100.0 |')


def test_an_output_that_gave_up_on_a_part_is_named_and_warned_of():
  from posemachines.training import loop
  result = {'stages': [
      {'stage': 1, 'output': 'feed-forward', 'pck@0.5': 0.66,
       'per_part': {'r_hip': 0.85, 'r_elbow': 0.6}},
      {'stage': 2, 'output': 'iteration 1', 'pck@0.5': 0.61,
       'per_part': {'r_hip': 0.0, 'r_elbow': 0.049}},
      {'stage': 3, 'output': 'iteration 2', 'pck@0.5': 0.25,   # weak overall: not a lost part
       'per_part': {'r_hip': 0.0, 'r_elbow': 0.3}}]}
  assert [metrics.lost_parts(s) for s in result['stages']] == [[], ['r_hip', 'r_elbow'], []]
  lines = loop.lost_warnings(result)
  assert len(lines) == 1 and lines[0].startswith(
      'warning: iteration 1 has lost r_hip, r_elbow (PCKh@0.5 below 5% on them, 61.0% on all '
      'parts)')
