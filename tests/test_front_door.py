"""The commands as a new user meets them: user errors as one line, no library noise, output that
says what it shows, and commands that work from any directory."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from posemachines.core import errors
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BANNERS = ('oneDNN', 'cpu_feature_guard', 'This TensorFlow binary is optimized', 'libtpu',
           'All log messages before absl::InitializeLog', 'did not fully read the dataset')


def cli(args, cwd=ROOT, env=None, timeout=300, **extra_env):
  """Runs ``python ARGS`` as a user would (this checkout first on the path)."""
  env = dict(os.environ if env is None else env, **extra_env)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # the package's own defaults, not the test suite's
  return subprocess.run([sys.executable] + list(args), cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


LOG_LINE = re.compile(r'^[IW]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ')


def one_line_error(run, program: str) -> str:
  """The user error a command printed: exit status 2, one line on stderr besides the command's
  own progress logs (e.g. train's 'Devices: ...'), no traceback."""
  assert run.returncode == errors.EXIT_USER_ERROR, (run.returncode, run.stderr[-3000:])
  lines = [l for l in run.stderr.splitlines() if l.strip() and not LOG_LINE.match(l)]
  assert len(lines) == 1, run.stderr[-3000:]
  assert lines[0].startswith(f'{program}: error: '), lines[0]
  return lines[0]


# ------------------------------------------------------------------ user errors as one line --

def test_missing_dataset_names_the_data_tools_flag(tmp_path):
  (tmp_path / 'manual').mkdir()
  run = cli(['-m', 'posemachines.data.inspect', '--dataset=mpii', f'--data_dir={tmp_path}/tfds',
             f'--manual_dir={tmp_path}/manual', f'--out={tmp_path}/g.png'])
  line = one_line_error(run, 'posemachines.data.inspect')
  assert 'mpii: the manual directory' in line and 'is empty' in line
  assert 'http://human-pose.mpi-inf.mpg.de/' in line and 'mpii_human_pose_v1.tar.gz' in line
  assert line.endswith('give it with --manual_dir=DIR') and '--config.data' not in line


def test_missing_mixture_names_every_component_and_the_train_flag(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('not a dataset')
  run = cli(['-m', 'posemachines.train', '--config=cpm_mpii_lsp', f'--workdir={tmp_path}/w',
             f'--config.data.manual_dir={manual}', f'--config.data.data_dir={tmp_path}/tfds',
             '--config.data.crop_size=48', '--config.model.num_stages=2',
             '--config.batch_size=2'])
  line = one_line_error(run, 'posemachines.train')
  assert '3 datasets are missing' in line
  for name, archive in (('mpii', 'mpii_human_pose_v1_u12_2.zip'), ('lsp', 'lsp_dataset.zip'),
                        ('lsp_extended', 'lspet_dataset.zip')):
    assert f'{name}: found none of {archive}' in line
  assert line.endswith('give it with --config.data.manual_dir=DIR')


def test_missing_dataset_names_evaluates_flag(trained_workdir, tmp_path):
  run = cli(['-m', 'posemachines.evaluate', f'--model={trained_workdir}', '--dataset=flic',
             f'--data_dir={tmp_path}/tfds', f'--manual_dir={tmp_path}/nowhere',
             f'--out={tmp_path}/out'])
  line = one_line_error(run, 'posemachines.evaluate')
  assert 'flic: the manual directory' in line and 'does not exist' in line
  assert line.endswith('--manual_dir=DIR')


def test_gradients_without_a_recording(tmp_path):
  (tmp_path / 'a').mkdir()
  run = cli(['-m', 'posemachines.gradients', f'--run=with={tmp_path}/a',
             f'--run=without={tmp_path}/b', f'--out={tmp_path}/g.png'])
  line = one_line_error(run, 'posemachines.gradients')
  assert f'{tmp_path}/a/gradients.npz' in line and f'{tmp_path}/b (no such folder)' in line
  assert '--config.gradients.every_steps=N' in line
  line = one_line_error(cli(['-m', 'posemachines.gradients', '--run=nolabel']),
                        'posemachines.gradients')
  assert 'LABEL=WORKDIR' in line


def test_video_without_the_video_extra(tmp_path):
  blocker = tmp_path / 'blocked'
  for name in ('imageio', 'imageio_ffmpeg'):
    (blocker / name).mkdir(parents=True)
    (blocker / name / '__init__.py').write_text('raise ImportError("not installed")\n')
  (tmp_path / 'clip.mp4').write_bytes(b'\0' * 16)
  run = cli(['-m', 'posemachines.predict', f'--model={tmp_path}/no_model',
             str(tmp_path / 'clip.mp4'), f'--out={tmp_path}/out'], PYTHONPATH=str(blocker))
  line = one_line_error(run, 'posemachines.predict')
  assert 'clip.mp4: reading this video format needs imageio' in line and '[video]' in line


def test_usage_mistakes(tmp_path):
  line = one_line_error(cli(['-m', 'posemachines.summary', 'default']), 'posemachines.summary')
  assert "unexpected arguments ['default']" in line
  run = cli(['-m', 'posemachines.summary', '--config=nonesuch'])
  assert run.returncode == errors.EXIT_USER_ERROR
  assert "no experiment named 'nonesuch'" in run.stderr and 'cpm_mpii' in run.stderr
  assert len(run.stderr.strip().splitlines()) == 1
  line = one_line_error(cli(['-m', 'posemachines.evaluate', '--predictions=a.mat']),
                        'posemachines.evaluate')
  assert '--predictions needs --annotations' in line
  line = one_line_error(cli(['-m', 'posemachines.evaluate', f'--model={tmp_path}/none']),
                        'posemachines.evaluate')
  assert 'neither an exported artifact' in line


# ----------------------------------------------------------------------------------- noise --

def test_no_banners_and_no_download_talk(tmp_path):
  """A command that loads TensorFlow and prepares a dataset prints none of TensorFlow's, JAX's
  or tfds' chatter, and does not claim to download."""
  run = cli(['-m', 'posemachines.data.inspect', '--config=default', '--split=validation',
             '--config.data.synthetic_image_size=64', '--config.data.synthetic_num_train=8',
             '--config.data.synthetic_num_validation=4', f'--config.data.data_dir={tmp_path}',
             '--num=2', f'--out={tmp_path}/g.png'])
  assert run.returncode == 0, run.stderr[-3000:]
  for banner in BANNERS:
    assert banner not in run.stderr, run.stderr[-3000:]
  assert 'Downloading' not in run.stdout + run.stderr
  assert 'downloaded and prepared' not in run.stdout
  assert 'Preparing dataset synthetic_people' in run.stdout
  assert 'nothing is downloaded' in run.stdout
  assert not [l for l in run.stderr.splitlines() if l[:1] in 'IW' and l[1:5].isdigit()]


def test_summary_prints_nothing_on_stderr():
  run = cli(['-m', 'posemachines.summary', '--config=default'])
  assert run.returncode == 0 and run.stderr.strip() == '', run.stderr[-2000:]


def test_a_training_stream_that_stops_early_leaves_no_cache_warning(tfds_dir):
  """The pipeline reads a cached split fully once, so a stream stopped mid-epoch (every training
  run's end) and a partly read evaluation split leave no half-filled cache behind."""
  script = textwrap.dedent(f'''
      import sys
      sys.path.insert(0, {ROOT!r})
      from tests.conftest import tiny_config
      from posemachines.data import pipeline
      config = tiny_config({tfds_dir!r})
      assert config.data.cache
      next(iter(pipeline.as_numpy(pipeline.train_dataset(config))))
      next(iter(pipeline.as_numpy(pipeline.eval_dataset(config, num_examples=2))))
      print('ok')
  ''')
  run = cli(['-c', script], TF_CPP_MIN_LOG_LEVEL='0')
  assert run.returncode == 0 and 'ok' in run.stdout, run.stderr[-3000:]
  assert 'did not fully read the dataset being cached' not in run.stderr, run.stderr[-3000:]


def test_the_filled_cache_reads_the_source_once():
  import tensorflow as tf
  from posemachines.data import pipeline
  reads = []
  source = tf.data.Dataset.range(6).map(lambda x: tf.py_function(
      lambda v: reads.append(int(v)) or v, [x], tf.int64))
  ds = pipeline._filled_cache(source)
  assert len(reads) == 6
  epochs = tf.data.Dataset.range(3).flat_map(lambda e: ds.shuffle(6, seed=e))
  assert len(list(epochs.take(14))) == 14 and len(reads) == 6


def test_library_logs_are_hidden_but_own_logs_and_errors_are_not():
  import logging
  from posemachines.core import logs
  f = logs.OwnLogsOnly()
  record = lambda path, level=logging.INFO: logging.LogRecord('x', level, path, 1, 'm', (), None)
  assert not f.filter(record('/site-packages/jax/_src/xla_bridge.py'))
  assert not f.filter(record('/home/u/posemachines/.venv/lib/orbax/checkpoint.py',
                             logging.WARNING))
  assert f.filter(record(os.path.join(ROOT, 'posemachines', 'training', 'loop.py')))
  assert f.filter(record(os.path.join(ROOT, 'experiments', 'stages.py')))
  assert f.filter(record('/site-packages/jax/x.py', logging.ERROR))


def test_environment_defaults_keep_what_the_user_set():
  run = cli(['-c', 'import os, posemachines; print(os.environ["TF_CPP_MIN_LOG_LEVEL"], '
             'os.environ["TF_ENABLE_ONEDNN_OPTS"])'], TF_ENABLE_ONEDNN_OPTS='1')
  assert run.stdout.split() == ['1', '1']


# ------------------------------------------------------------------- output that is right --

def test_inspect_axes_are_the_crop_and_fewer_crops_are_said(tfds_dir, tmp_path):
  from posemachines.data import inspect as inspect_lib
  config = tiny_config(tfds_dir)
  notes = []
  crops = inspect_lib.samples(config, 'validation', 12, augment=False, notes=notes)
  assert len(crops) == 8
  assert notes == ['synthetic_people validation holds 8 people, fewer than --num=12: drawing 8']
  crops[2]['others'] = np.array([[[-500.0, 900.0, 1.0]] * crops[2]['others'].shape[1]],
                                np.float32)  # another person far outside the crop
  fig = inspect_lib.grid_figure(config, crops)
  size = config.data.crop_size
  for ax in fig.axes[::2][:len(crops)]:
    assert ax.get_xlim() == (-0.5, size - 0.5) and ax.get_ylim() == (size - 0.5, -0.5)
  run = cli(['-m', 'posemachines.data.inspect', '--config=default', '--split=validation',
             '--augment=False', '--num=12', '--config.data.synthetic_image_size=64',
             '--config.data.synthetic_num_train=32', '--config.data.synthetic_num_validation=8',
             f'--config.data.data_dir={tfds_dir}', '--config.data.crop_size=48',
             f'--out={tmp_path}/g.png'])
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'fewer than --num=12: drawing 8' in run.stdout
  stats = json.loads(run.stdout.strip().splitlines()[-1])
  assert stats['crops'] == 8 and stats['annotated_parts'] == round(stats['annotated_parts'], 2)


def test_mpii_head_is_head_top_and_neck_so_the_mean_lies_within_the_columns():
  from posemachines.core import skeleton
  from posemachines.evaluation import metrics
  parts = skeleton.MPII.parts
  dist = np.full((2, 16), 100.0)
  dist[:, parts.index('neck')] = 0.0        # only the neck is right
  tab = metrics.mpii_table(dist, np.ones((2, 16)), np.full(2, 10.0), parts)
  row = tab['row']
  assert row['Head'] == pytest.approx(0.5)  # (head top 0 + neck 1) / 2
  columns = [row[c] for c in ('Head', 'Shoulder', 'Elbow', 'Wrist', 'Hip', 'Knee', 'Ankle')]
  assert min(columns) <= row['Mean'] <= max(columns)
  assert 'Head is the head top and the (upper) neck' in metrics.__doc__


def test_outputs_are_named_by_the_model_everywhere():
  from posemachines import models
  from posemachines.core import configs
  from posemachines.evaluation import metrics
  from posemachines.training import loop
  assert models.output_names(configs.cpm_small()) == ['stage 1', 'stage 2', 'stage 3']
  names = models.output_names(configs.recurrent_small())
  assert names == ['feed-forward', 'iteration 1', 'iteration 2']
  table = {'metric': 'PCKh@0.5', 'columns': ['Mean'], 'row': {'Mean': 0.5}}
  md = metrics.markdown([dict(table, output=n) for n in names])
  assert '| output | Mean |' in md and '| feed-forward | 50.0 |' in md
  assert '| iteration 2 | 50.0 |' in md
  result = {'metric': 'PCKh@0.5', 'stages': [
      {'stage': t + 1, 'output': n, 'pck@0.5': 0.5} for t, n in enumerate(names)]}
  assert loop.format_eval(result) == ('PCKh@0.5 (%) per output: feed-forward 50.0, '
                                      'iteration 1 50.0, iteration 2 50.0')


def test_evaluation_names_outputs_and_metric(tfds_dir, trained_workdir):
  from posemachines.evaluation import runner
  from posemachines.tools import loading
  from posemachines.training import loop
  model = loading.load(trained_workdir)
  assert model.output_names == ['stage 1', 'stage 2']
  result, *_ = runner.run(model, tiny_config(tfds_dir), 'validation', [1.0], False,
                          num_examples=2, batch_size=2)
  assert [s['output'] for s in result['stages']] == ['stage 1', 'stage 2']
  assert loop.metric_name(tiny_config(tfds_dir)) == 'PCKh@0.5'


def test_local_launch_prefixes_the_other_processes(tmp_path):
  script = 'import os; print("line from", os.environ["JAX_PROCESS_ID"])'
  run = subprocess.run([sys.executable, os.path.join(ROOT, 'launch', 'local.py'),
                        '--num_processes=3', '--', sys.executable, '-c', script],
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  assert sorted(run.stdout.splitlines()) == ['[process 1] line from 1', '[process 2] line from 2',
                                             'line from 0']


# ---------------------------------------------------------------- commands from anywhere --

def test_configs_by_name_from_any_directory(tmp_path):
  run = cli(['-m', 'posemachines.summary', '--config=cpm_mpii', '--json'], cwd=str(tmp_path))
  assert run.returncode == 0, run.stderr[-2000:]
  assert json.loads(run.stdout)['parameters'] == 31_219_866
  run = cli(['-m', 'posemachines.summary', '--config=experiments/recurrent_mpii.py', '--json'],
            cwd=str(tmp_path))
  assert run.returncode == 0 and json.loads(run.stdout)['model'] == 'RecurrentPose'


def test_an_installed_package_finds_its_experiments(tmp_path):
  """setup.py installs experiments/ as posemachines.experiments: a built package, used from
  another directory, resolves --config=NAME and its default config."""
  build = subprocess.run([sys.executable, 'setup.py', '-q', 'build',
                          f'--build-base={tmp_path}/build'], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
  assert build.returncode == 0, build.stderr[-2000:]
  lib = tmp_path / 'build' / 'lib'
  assert (lib / 'posemachines' / 'experiments' / 'cpm_mpii.py').is_file()
  assert (lib / 'posemachines' / 'data' / 'mpii_tompson_validation.json').is_file()
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = dict(os.environ, PYTHONPATH=str(lib))
  for args in (['--config=cpm_mpii'], []):
    run = subprocess.run([sys.executable, '-m', 'posemachines.summary', '--json'] + args,
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)['parameters'] == (31_219_866 if args else 598_989)
  where = subprocess.run([sys.executable, '-c', 'from posemachines.core import config_files; '
                          'print(config_files.experiments_dir())'], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
  assert where.stdout.strip() == str(lib / 'posemachines' / 'experiments')
