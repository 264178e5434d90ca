"""The recurrent pose model: scan = loop, parameters, heatmap targets, occlusion modes, visibility
AP and a tiny training run."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from posemachines import models
from posemachines.core import configs
from posemachines.objectives import losses
from posemachines.core import skeleton
from posemachines.codec import targets
from posemachines.training import loop as train
from posemachines.evaluation import visibility
from posemachines.models.recurrent import RecurrentPose
from tests.conftest import tiny_recurrent_config
from posemachines.tools import loading
from posemachines.objectives import per_model
from posemachines.codec import keypoints

TINY = dict(num_parts=3, num_limbs=2, kernels=(3, 3, 3, 5, 1, 5, 1), widths=(8,) * 7)


def _count(variables):
  return sum(x.size for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('unroll', [True, 1])   # the scan unrolled by XLA, or a rolled loop
def test_scan_equals_unrolled_loop_with_the_same_parameters(unroll):
  scanned = RecurrentPose(num_iterations=3, unroll=unroll, **TINY)
  unrolled = scanned.clone(scan=False)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = scanned.init(jax.random.key(0), x)
  assert jax.tree.structure(unrolled.init(jax.random.key(0), x)) == jax.tree.structure(variables)
  # Evaluation: running averages, shared by every iteration.
  a, b = [jax.jit(m.apply)(variables, x) for m in (scanned, unrolled)]
  assert a.shape == (4, 2, 8, 8, 5)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Training: batch statistics, and the running averages updated once per iteration in turn.
  (a, sa), (b, sb) = [
      jax.jit(lambda v, x, m=m: m.apply(v, x, train=True, mutable=['batch_stats']))(variables, x)
      for m in (scanned, unrolled)]
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for u, v in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)
  # The gradients with respect to the shared weights agree too.
  grads = [jax.jit(jax.grad(lambda p, m=m: m.apply({**variables, 'params': p}, x).sum()))(
      variables['params']) for m in (scanned, unrolled)]
  for u, v in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
  # The iterations really refine: every one gives different heatmaps.
  assert all(float(jnp.abs(a[t + 1] - a[t]).max()) > 0 for t in range(3))


def test_one_iteration_compiles_without_a_loop():
  """XLA keeps a scan of length 1 as a while loop (slow weight gradients on CPU): one iteration
  runs as the plain iteration, with the same parameters as the scanned model's."""
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  one = RecurrentPose(num_iterations=1, **TINY)
  variables = one.init(jax.random.key(0), x)
  assert jax.tree.structure(RecurrentPose(num_iterations=3, **TINY).init(
      jax.random.key(0), x)) == jax.tree.structure(variables)
  step = jax.jit(jax.grad(lambda p: one.apply({**variables, 'params': p}, x, train=True,
                                              mutable=['batch_stats'])[0].sum()))
  assert 'while' not in step.lower(variables['params']).compile().as_text()
  a = one.apply(variables, x)
  b = one.clone(scan=False).apply(variables, x)
  assert a.shape == (2, 2, 8, 8, 5)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_parameter_count_does_not_depend_on_iterations():
  x = jnp.zeros((1, 32, 32, 3))
  counts, shapes = {}, {}
  for n in (0, 1, 2, 5):
    model = RecurrentPose(num_iterations=n, **TINY)
    variables = model.init(jax.random.key(0), x)
    counts[n] = _count(variables)
    shapes[n] = model.apply(variables, x).shape
  assert len(set(counts.values())) == 1, counts
  assert {n: s[0] for n, s in shapes.items()} == {0: 1, 1: 2, 2: 3, 5: 6}
  assert shapes[0][1:] == (1, 8, 8, 5)


def test_layer_configuration_errors_name_the_field():
  x = jnp.zeros((1, 32, 32, 3))
  with pytest.raises(ValueError, match='model.kernels needs 7'):
    RecurrentPose(num_parts=3, kernels=(3, 3)).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match='pooling after layer 3'):
    RecurrentPose(num_parts=3, pools=(True, False, False, True, False, False, False)).init(
        jax.random.key(0), x)


def test_paper_config_summary():
  """248x248 -> 62x62, a third of the CPM's parameters, the scan's iterations in the FLOPs and
  a receptive field that grows with every iteration."""
  from posemachines.tools import summary
  config = configs.recurrent_paper()
  config.data.parts = 'mpii'
  model = models.build(config)
  assert (model.num_parts, model.num_limbs, model.stride) == (16, 15, 4)
  s = summary.summarize(config)
  assert 0.3 < s['parameters'] / 31_219_866 < 0.37, s['parameters']
  assert [st['output_shape'] for st in s['stages']] == [[1, 62, 62, 31]] * 3
  fields = [st['receptive_field_px'] for st in s['stages']]
  assert fields[0] < fields[1] < fields[2] and fields[2] - fields[1] == fields[1] - fields[0]
  assert len(s['layers']) == 9 and s['layers'][3].startswith('layer 4: 9x9 conv, 256 + BN')
  # Each iteration adds its 9x9 layer 6 (192 from 128 + 128 channels) at 62x62, and its 1x1s.
  per_iteration = 2 * 62 * 62 * (81 * 256 * 192 + 192 * 128 + 128 * 31)
  fewer = config.copy_and_resolve_references()
  fewer.model.num_iterations = 1
  assert s['gflops_forward'] - summary.summarize(fewer)['gflops_forward'] == pytest.approx(
      per_iteration / 1e9, rel=1e-6)


def test_keypoint_heatmap_mode_and_width():
  kp = jnp.array([[[4 * 5 + 1.5, 4 * 7 + 1.5, 1.0]]])   # the centre of map pixel (7, 5)
  maps = targets.keypoint_heatmaps(kp, 16, 16, 4, 1.3, 12.0)
  assert float(maps[0, 7, 5, 0]) == pytest.approx(12.0)
  assert float(maps[0, 7, 6, 0]) == pytest.approx(12.0 * np.exp(-1 / (2 * 1.3 ** 2)), rel=1e-5)


def test_limb_heatmap_geometry_measured():
  """The Gaussian sits at the limb's midpoint; its spread is 0.15 x length along the limb and
  0.1 x length across it (measured as the map's second moments on a fine grid)."""
  a, b = np.array([30.0, 40.0]), np.array([90.0, 120.0])        # length 100, a 53 degree limb
  kp = jnp.array([[[*a, 1.0], [*b, 1.0], [0.0, 0.0, 0.0]]])
  maps = np.asarray(targets.limb_heatmaps(kp, [(0, 1), (1, 2)], 200, 200, 1))
  m = maps[0, :, :, 0].astype(np.float64)
  ys, xs = np.mgrid[:200, :200]
  total = m.sum()
  mean = np.array([(m * xs).sum(), (m * ys).sum()]) / total
  np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-3)
  unit = (b - a) / np.linalg.norm(b - a)
  along = (xs - mean[0]) * unit[0] + (ys - mean[1]) * unit[1]
  across = (ys - mean[1]) * unit[0] - (xs - mean[0]) * unit[1]
  assert np.sqrt((m * along ** 2).sum() / total) == pytest.approx(15.0, rel=1e-3)
  assert np.sqrt((m * across ** 2).sum() / total) == pytest.approx(10.0, rel=1e-3)
  assert float(m.max()) == pytest.approx(1.0, abs=1e-3)
  assert float(np.abs(maps[..., 1]).max()) == 0.0      # an end is unannotated: no Gaussian
  # A zero-length limb (foreshortened completely) gives a small round blob, not NaNs.
  dot = targets.limb_heatmaps(jnp.array([[[50.0, 50.0, 1.0], [50.0, 50.0, 1.0]]]), [(0, 1)],
                              25, 25, 4)
  assert np.isfinite(np.asarray(dot)).all() and float(dot.max()) > 0.5


def test_foreground_and_background_contribute_equally():
  kp = jnp.array([[[20.0, 30.0, 1.0], [0.0, 0.0, 0.0]]])
  maps = targets.keypoint_heatmaps(kp, 16, 16, 4, 1.3, 12.0)
  fg = maps > 1.2
  w = np.asarray(targets.balanced_weights(fg))
  f = np.asarray(fg)
  assert 0 < f[..., 0].sum() < 256
  np.testing.assert_allclose(w[..., 0][f[..., 0]].sum(), w[..., 0][~f[..., 0]].sum())
  np.testing.assert_array_equal(w[..., 0][~f[..., 0]], 1.0)
  np.testing.assert_array_equal(w[..., 1], 1.0)           # an empty map: background only


def _occlusion_setup(mode):
  """One person, parts 0 and 2 visible, part 1 occluded; limbs 0-1 and 0-2."""
  config = ml_collections.ConfigDict({
      'data': {'parts': 'x'},
      'targets': {'keypoint_sigma': 1.3, 'peak': 12.0, 'limb_along': 0.15, 'limb_across': 0.1,
                  'foreground': 0.1},
      'loss': {'occlusion': mode}})
  model = RecurrentPose(num_parts=3, num_iterations=1)
  batch = {'keypoints': jnp.array([[[20.0, 20.0, 1.0], [44.0, 30.0, 1.0], [24.0, 50.0, 1.0]]]),
           'visible': jnp.array([[1.0, 0.0, 1.0]])}
  return config, model, batch


@pytest.mark.parametrize('mode', losses.OCCLUSION_MODES)
def test_occlusion_mode_gradient_masks(mode):
  config, model, batch = _occlusion_setup(mode)
  outputs = jax.random.uniform(jax.random.key(0), (2, 1, 16, 16, 3), maxval=4.0)
  grad = lambda b: np.asarray(jax.jit(jax.grad(
      lambda o: per_model.recurrent_objective(config, model, o, b).sum()))(outputs))
  g = grad(batch)
  g_visible = grad({**batch, 'visible': jnp.ones((1, 3))})   # the same person, nothing occluded
  maps = np.asarray(targets.keypoint_heatmaps(batch['keypoints'], 16, 16, 4, 1.3, 12.0))
  region = maps[0, ..., 1] > 1.2                               # part 1's foreground
  assert 0 < region.sum() < 40
  o = np.asarray(outputs)
  # Visible parts are trained the same way in every mode.
  np.testing.assert_array_equal(g[..., [0, 2]], g_visible[..., [0, 2]])
  if mode == 'include':
    np.testing.assert_array_equal(g, g_visible)
  elif mode == 'exclude':   # target 0 everywhere, every pixel background (weight 1): d/do = o
    np.testing.assert_allclose(g[:, 0, ..., 1], o[:, 0, ..., 1], rtol=1e-6)
  else:                     # ignore: exactly zero in the region, background (weight 1) outside
    assert (g[:, 0][:, region, 1] == 0).all()
    np.testing.assert_allclose(g[:, 0][:, ~region, 1],
                               (o[:, 0, ..., 1] - maps[0, ..., 1])[:, ~region], rtol=1e-5,
                               atol=1e-6)
    assert (g[:, 0][:, ~region, 1] != 0).all()


def test_occluded_end_makes_a_limb_occluded():
  config, model, batch = _occlusion_setup('exclude')
  config.data.parts = 'cpm14'
  model = RecurrentPose(num_parts=14, num_limbs=13)
  kp = jnp.tile(jnp.array([[[10.0, 10.0, 1.0]]]), (1, 14, 1)) + jnp.arange(14.)[None, :, None] * \
      jnp.array([3.0, 2.0, 0.0])
  visible = jnp.ones((1, 14)).at[0, 4].set(0.0)                # r_wrist occluded
  tgt, w = jax.jit(lambda b: per_model.heatmap_targets(config, model, b, 16, 16))(
      {'keypoints': kp, 'visible': visible})
  limbs = list(skeleton.CPM14.limbs)
  hidden = [14 + i for i, l in enumerate(limbs) if 'r_wrist' in l]
  assert hidden == [14 + limbs.index(('r_elbow', 'r_wrist'))]
  assert float(jnp.abs(tgt[..., hidden]).max()) == 0.0 and float(tgt[..., 4].max()) == 0.0
  shown = [c for c in range(14, 27) if c not in hidden]
  assert float(tgt[..., shown].max(axis=(0, 1, 2)).min()) > 1.0


def test_evaluation_decodes_only_the_keypoint_channels():
  kp = jnp.array([[[13.3, 20.7, 1.0], [40.2, 5.1, 1.0], [30.0, 33.0, 1.0]]])
  model = RecurrentPose(num_parts=3, num_limbs=2)
  maps = jnp.concatenate([targets.keypoint_heatmaps(kp, 12, 12, 4, 1.3, 12.0),
                          12 * targets.limb_heatmaps(kp, [(0, 1), (1, 2)], 12, 12, 4)], -1)
  decoded = keypoints.decode_peaks(per_model.part_beliefs(model, maps), 4)
  assert decoded.shape == (1, 3, 3)
  np.testing.assert_allclose(decoded[0, :, :2], kp[0, :, :2], atol=1e-3)


def test_visibility_average_precision_hand_computed():
  scores = [0.9, 0.8, 0.7, 0.6, 0.5]
  positive = [1, 0, 1, 1, 0]
  precision, recall, thresholds = visibility.precision_recall(scores, positive)
  np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
  np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 1, 1])
  # AP = sum of recall steps x precision = 1/3 (1 + 2/3 + 3/4).
  assert visibility.average_precision(scores, positive) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
  # Tied scores enter together: one point for both.
  p, r, t = visibility.precision_recall([0.5, 0.9, 0.5], [1, 1, 0])
  np.testing.assert_allclose(t, [0.9, 0.5])
  np.testing.assert_allclose(p, [1.0, 2 / 3])
  assert visibility.average_precision([0.5, 0.9, 0.5], [1, 1, 0]) == pytest.approx(
      0.5 * 1 + 0.5 * 2 / 3)
  assert np.isnan(visibility.average_precision([0.1, 0.2], [1, 1]))
  # Only annotated parts count.
  res = visibility.visibility_ap([[0.9, 0.1, 0.8]], [[1, 0, 0]], [[1, 1, 0]])
  assert res == {'ap': 1.0, 'num_visible': 1, 'num_occluded': 1}
  with pytest.raises(ValueError, match='non-finite'):
    visibility.precision_recall([np.nan, 1.0], [1, 0])


def test_tiny_recurrent_training_run(tfds_dir, tmp_path):
  config = tiny_recurrent_config(tfds_dir, num_pictures=2)
  state, result = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  logged = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  logged = [l for l in logged if 'loss' in l]
  assert {'loss/stage1', 'loss/stage2', 'loss/stage3'} <= set(logged[-1])
  assert all(np.isfinite(l['loss']) for l in logged)
  ev = json.load(open(tmp_path / 'eval.json'))
  assert ev['num_people'] == 8 and len(ev['stages']) == 3   # feed-forward + 2 iterations
  assert all(0.0 <= s['pck@0.5'] <= 1.0 for s in ev['stages'])
  vis = ev['visibility']
  assert vis['num_visible'] + vis['num_occluded'] == 8 * 14 and vis['num_occluded'] > 0
  assert all(0.0 <= s['visibility_ap'] <= 1.0 for s in ev['stages'])
  # PCKh over the visible and the occluded parts alone, weighted by their counts, is the total.
  for s in ev['stages']:
    assert s['pck@0.5'] * (vis['num_visible'] + vis['num_occluded']) == pytest.approx(
        s['pck@0.5_visible'] * vis['num_visible'] + s['pck@0.5_occluded'] * vis['num_occluded'])
  assert {'eval/pck@0.5_occluded/stage3', 'eval/pck@0.5_visible/stage1'} <= set().union(
      *[json.loads(l) for l in open(tmp_path / 'metrics.jsonl')])
  assert 'batch_stats' in state.model_state
  for name in ('predictions.png', 'stages_0.png', 'limbs_0.png'):
    assert os.path.getsize(tmp_path / 'pictures' / name) > 1000
  # Inference (evaluate, predict, export) sees the keypoint heatmaps and an ignored last channel.
  model = loading.load_workdir(str(tmp_path))
  crops = np.zeros((2, 48, 48, 3), np.uint8)
  maps = np.asarray(model.forward(crops))
  assert maps.shape == (3, 2, 12, 12, 15)
  x, c = per_model.model_inputs(crops, 48, config.targets.center_sigma)
  outputs = jax.jit(models.build(config).apply)(model.variables, x, c)
  np.testing.assert_allclose(maps[..., :14], outputs[..., :14], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(maps[..., 14], 0.0)
  # The picture of a lost part's maps (drawn for the results page), from this checkpoint.
  from posemachines.analyses import plan
  picture = str(tmp_path / 'lost.png')
  plan.draw_lost_parts(str(tmp_path), ['r_hip', 'neck'], picture, crops=2)
  from PIL import Image
  w, h = Image.open(picture).size
  assert w > 4 * 100 and h > 4 * 100   # 4 rows (2 parts x 2 crops), crop + 3 outputs each


def test_fine_tuning_copies_matching_layers_and_starts_the_rest_afresh(tfds_dir, tmp_path):
  """init_from with init_from_matching: a model without limb heatmaps fine-tuned into one with
  them (as COCO -> MPII changes the prediction layers): every array of the same name and shape
  is the source run's, the prediction layers (other output channels) keep their fresh values."""
  import jax
  from posemachines.training import checkpoint
  from posemachines.training import loop
  source_dir = str(tmp_path / 'source')
  source = tiny_recurrent_config(tfds_dir, **{'model.limb_heatmaps': False, 'num_train_steps': 2})
  src_state, _ = loop.train_and_evaluate(source, source_dir)
  target = tiny_recurrent_config(tfds_dir, **{'init_from': source_dir, 'init_from_matching': True,
                                              'num_train_steps': 1})
  mesh = loop.make_mesh()
  built = loop.build(target, mesh)
  state = loop.initialise_from(target, built.state, built.abstract_state, mesh)
  src = {jax.tree_util.keystr(p): v for p, v in
         jax.tree_util.tree_leaves_with_path(jax.device_get(src_state.params))}
  fresh = {jax.tree_util.keystr(p): v for p, v in
           jax.tree_util.tree_leaves_with_path(jax.device_get(built.state.params))}
  copied, kept = 0, 0
  for path, value in jax.tree_util.tree_leaves_with_path(jax.device_get(state.params)):
    name = jax.tree_util.keystr(path)
    if name in src and src[name].shape == value.shape:
      np.testing.assert_array_equal(value, src[name])
      copied += 1
    else:
      np.testing.assert_array_equal(value, fresh[name])
      kept += 1
  assert copied > 10 and kept >= 1
  # Without init_from_matching the shapes must agree: a one-line ConfigMismatch.
  strict = tiny_recurrent_config(tfds_dir, **{'init_from': source_dir, 'num_train_steps': 1})
  with pytest.raises(Exception, match='init_from'):
    checkpoint.initialise_from(strict.init_from, built.state, built.abstract_state)
