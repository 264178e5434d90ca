"""Tests for posemachines.benchmark on a tiny CPM: result fields, their consistency and the CLI.

Nothing here asserts on speed. Measurements run in subprocesses, as the benchmark runs them:
the forward one imports posemachines.summary, the train one posemachines.train, and the two
cannot share a process with each other (both define the absl flag --config).
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import posemachines
from posemachines import models
from posemachines.tools import benchmark
from posemachines.core import configs
from posemachines.core import skeleton

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 2
TINY = {'data.crop_size': 32, 'model.num_stages': 2, 'model.trunk_widths': (8, 8, 8),
        'model.stage1_widths': (8, 16, 16), 'model.stage_feature_width': 8,
        'model.stage_widths': (8, 8, 8, 8)}


def _tiny_config():
  c = configs.cpm_small()
  for key, value in TINY.items():
    section, name = key.split('.')
    c[section][name] = value
  return c


def _num_parameters(config):
  size = config.data.crop_size
  x, c = jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1))
  params = jax.eval_shape(models.build(config).init, jax.random.key(0), x, c)['params']
  return sum(a.size for a in jax.tree.leaves(params))


def _cli(*args, env=None):
  overrides = [f'--config.{k}={v}' for k, v in TINY.items()]
  env = dict(os.environ if env is None else env)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  cmd = [sys.executable, '-m', 'posemachines.benchmark', '--config=experiments/default.py',
         *overrides, *args]
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def _assert_consistent(m, batch, gflop_per_image):
  for key in ('compile_s', 'median_s', 'min_s', 'images_per_sec', 'images_per_sec_best',
              'gflop_per_image', 'gflops_per_sec', 'rss_peak_bytes', 'rss_start_bytes'):
    assert m[key] > 0, key
  assert m['steps'] == len(m['step_s']) == 1
  assert m['median_s'] == pytest.approx(float(np.median(m['step_s'])))
  assert m['min_s'] == min(m['step_s']) <= m['median_s']
  assert m['images_per_sec'] == pytest.approx(batch / m['median_s'])
  assert m['images_per_sec_best'] == pytest.approx(batch / m['min_s'])
  assert m['gflop_per_image'] == pytest.approx(gflop_per_image)
  assert m['gflops_per_sec'] == pytest.approx(gflop_per_image * m['images_per_sec'])
  assert m['gflops_per_sec_best'] == pytest.approx(gflop_per_image * m['images_per_sec_best'])
  assert m['rss_peak_bytes'] >= m['rss_start_bytes']
  mem = m['xla_memory']
  if mem is not None:
    assert mem['total_bytes'] == mem['temp_bytes'] + mem['argument_bytes'] + mem['output_bytes']
    assert mem['total_bytes'] > 0


def test_fake_batch_matches_pipeline():
  c = _tiny_config()
  b = benchmark.fake_batch(c, 3)
  p, k = skeleton.get(c.data.parts).num_parts, c.data.max_others
  expected = {'image': (np.uint8, (3, 32, 32, 3)), 'keypoints': (np.float32, (3, p, 3)),
              'visible': (np.float32, (3, p)), 'others': (np.float32, (3, k, p, 3))}
  assert set(b) == set(expected)
  for key, (dtype, shape) in expected.items():
    assert b[key].dtype == dtype and b[key].shape == shape, key
  assert set(np.unique(b['keypoints'][..., 2])) <= {0.0, 1.0}
  assert np.all(b['visible'] <= b['keypoints'][..., 2])


def test_setting_env():
  base = {'XLA_FLAGS': f'--xla_foo=1 {posemachines.CPU_XLA_FLAG}x', 'POSEMACHINES_CPU_FLAGS': '1'}
  default = benchmark.setting_env(None, base)
  assert default['XLA_FLAGS'] == '--xla_foo=1' and default['POSEMACHINES_CPU_FLAGS'] == '0'
  off = benchmark.setting_env('', base)
  assert off['XLA_FLAGS'] == f'--xla_foo=1 {posemachines.CPU_XLA_FLAG}'
  assert 'POSEMACHINES_CPU_FLAGS' not in off
  package = benchmark.setting_env(posemachines.CPU_XLA_DEFAULT, {})
  assert package['XLA_FLAGS'] == posemachines.CPU_XLA_FLAG + posemachines.CPU_XLA_DEFAULT


def test_measure_forward():
  m = benchmark.run_isolated('forward', _tiny_config(), BATCH, steps=1, warmup=1)
  assert m['kind'] == 'forward' and m['crop_size'] == 32
  assert m['parameters'] == _num_parameters(_tiny_config())
  assert m['gflop_per_image'] > 0
  _assert_consistent(m, BATCH, m['gflop_per_image'])
  for key in ('platform', 'device_kind', 'jax_version', 'xla_flags'):
    assert key in m


@pytest.fixture(scope='module')
def cli_report():
  proc = _cli(f'--batch_size={BATCH}', '--steps=1', '--json')
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)


def test_cli_json(cli_report):
  r = cli_report
  assert r['batch_size'] == BATCH and r['crop_size'] == 32 and r['model'] == 'CPM'
  assert r['parameters'] == _num_parameters(_tiny_config())
  assert r['gflop_per_image_forward'] > 0
  # XLA's count of the compiled step: the forward and the backward (about twice the forward's
  # multiply-adds), less the taps that fall on zero padding, which the analytic forward counts.
  assert 2 * r['gflop_per_image_forward'] < r['gflop_per_image_train'] <= 3.05 * r[
      'gflop_per_image_forward']
  assert '3 x forward' in r['flop_convention']
  _assert_consistent(r['forward'], BATCH, r['gflop_per_image_forward'])
  _assert_consistent(r['train'], BATCH, r['gflop_per_image_train'])
  assert r['forward']['kind'] == 'forward' and r['train']['kind'] == 'train'
  for key in ('device_kind', 'platform', 'jax_version', 'xla_flags', 'num_devices'):
    assert key in r
  assert benchmark.format_report(r).startswith('CPM at 32x32, batch 2')


def test_batch_not_divisible_by_devices():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  proc = _cli('--batch_size=3', '--steps=1', '--json', env=env)
  assert proc.returncode != 0
  assert 'batch size 3 must be a positive multiple of the 2 devices' in proc.stderr
  assert proc.stdout == ''


def test_comparison_table(cli_report):
  rows = []
  for scale, (name, description, _) in zip((1.0, 2.0, 0.5), benchmark.CPU_FLAG_SETTINGS):
    report = json.loads(json.dumps(cli_report))
    for kind in ('forward', 'train'):
      report[kind]['images_per_sec'] *= scale
    rows.append({'setting': name, 'description': description, 'report': report})
  c = benchmark.comparison(rows)
  assert [r['train_ratio'] for r in c['settings']] == pytest.approx([1.0, 2.0, 0.5])
  assert [r['forward_ratio'] for r in c['settings']] == pytest.approx([1.0, 2.0, 0.5])
  assert c['fastest_train'] == 'package_default'
  text = benchmark.format_comparison(c)
  assert 'fastest train step: package_default' in text


def test_loop_against_the_bare_step(tfds_dir):
  from tests.conftest import tiny_config
  r = benchmark.loop_versus_step(tiny_config(tfds_dir), batch_size=BATCH * 4, steps=10)
  loop, step = r['loop'], r['train']
  assert loop['kind'] == 'loop' and step['kind'] == 'train'
  assert loop['windows'] == 1 and loop['window'] == 10 and loop['warmup_windows'] == 1
  assert loop['images_per_sec'] > 0 and step['images_per_sec'] > 0
  assert r['loop_fraction'] == pytest.approx(loop['images_per_sec'] / step['images_per_sec'])
  text = benchmark.format_loop(r)
  assert f"loop / step: {r['loop_fraction']:.1%}" in text and 'batch 8' in text


def test_loop_refuses_a_step_count_below_one_before_measuring(tfds_dir):
  from tests.conftest import tiny_config
  with pytest.raises(benchmark.BenchmarkError, match='--steps must be at least 1, got 0'):
    benchmark.loop_versus_step(tiny_config(tfds_dir), steps=0)
