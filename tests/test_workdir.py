"""A run's workdir under everyday mistakes: a restart with another config, inference beside a
training run, a kill before the final evaluation or between checkpoints, a disk that fills."""
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import tensorflow as tf

from posemachines.core import errors
from posemachines.tools import loading
from posemachines.training import checkpoint, writers
from posemachines.training import loop as train
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(workdir) -> dict:
  """{relative path: sha256} of every file under ``workdir``."""
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      path = os.path.join(root, f)
      with open(path, 'rb') as fh:
        out[os.path.relpath(path, workdir)] = hashlib.sha256(fh.read()).hexdigest()
  return out


def copy_of(workdir, tmp_path, name='w'):
  dst = tmp_path / name
  shutil.copytree(workdir, dst)
  return str(dst)


def config_file(tmp_path, data_dir, **overrides):
  path = tmp_path / 'tiny.py'
  path.write_text(textwrap.dedent(f'''
      import sys
      sys.path.insert(0, {ROOT!r})
      from tests.conftest import tiny_config
      def get_config():
        return tiny_config({data_dir!r}, **{overrides!r})
  '''))
  return str(path)


def train_cli(*args, timeout=600):
  out = subprocess.run([sys.executable, '-m', 'posemachines.train', *args], cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                       timeout=timeout)
  return out.returncode, out.stderr


def error_text(stderr: str) -> str:
  """The error a CLI printed: from 'posemachines.train: error:' to the end."""
  assert 'posemachines.train: error: ' in stderr, stderr[-3000:]
  assert 'Traceback' not in stderr, stderr[-3000:]
  return stderr[stderr.index('posemachines.train: error: '):]


def logged(workdir):
  return [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]


def tensorboard_steps(workdir) -> dict:
  """{tag: [steps]} of every scalar in the workdir's TensorBoard event files."""
  out = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'tensorboard', '*tfevents*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.setdefault(v.tag, []).append(event.step)
  return out


# ------------------------------------------------------------ a run's config is its identity --

def test_restart_with_another_config_stops_before_touching_the_workdir(
    tfds_dir, trained_workdir, tmp_path):
  workdir = copy_of(trained_workdir, tmp_path)
  before = snapshot(workdir)
  cfg = config_file(tmp_path, tfds_dir)
  rc, stderr = train_cli(f'--config={cfg}', f'--workdir={workdir}', '--config.batch_size=4',
                         '--config.model.stage_widths=(16,8)', '--config.num_eval_examples=4')
  assert rc == 2, stderr[-3000:]
  text = error_text(stderr)
  assert f'The workdir {workdir} holds a run with another config: 2 fields differ' in text
  assert '  batch_size: 8 -> 4\n' in text
  assert '  model.stage_widths: [8, 8] -> [16, 8]\n' in text
  assert 'num_eval_examples' not in text.split('freely:')[0]  # a field that may change
  assert '--workdir=ANOTHER_DIR' in text and '--config.allow_config_change=True' in text
  assert snapshot(workdir) == before


def test_a_checkpoint_that_does_not_fit_is_not_taken_for_corrupt(
    tfds_dir, trained_workdir, tmp_path):
  workdir = copy_of(trained_workdir, tmp_path)
  before = snapshot(workdir)
  cfg = config_file(tmp_path, tfds_dir)
  rc, stderr = train_cli(f'--config={cfg}', f'--workdir={workdir}',
                         '--config.model.stage_widths=(16,8)', '--config.allow_config_change=True')
  assert rc == 2, stderr[-3000:]
  text = error_text(stderr)
  assert f'The checkpoint at step 4 in {workdir}/checkpoints does not fit this config' in text
  assert ('params.stage2.conv1.kernel: float32[3, 3, 20, 8] in the checkpoint, '
          'float32[3, 3, 20, 16] by the config') in text
  assert 'readable, not corrupt' in text
  assert '  model.stage_widths: [8, 8] -> [16, 8]\n' in text
  assert snapshot(workdir) == before
  assert not os.path.exists(os.path.join(workdir, 'unreadable_checkpoints'))


def test_fields_that_may_change_resume_and_others_can_be_accepted(
    tfds_dir, trained_workdir, tmp_path):
  from posemachines.training import identity
  workdir = copy_of(trained_workdir, tmp_path)
  # Under the cosine schedule the step budget shapes every later rate: it may not change.
  with pytest.raises(errors.ConfigMismatch, match=r'num_train_steps: 4 -> 6 \(the cosine '):
    train.train_and_evaluate(tiny_config(tfds_dir, num_train_steps=6), workdir)
  # Evaluation, logging and checkpointing fields may.
  state, _ = train.train_and_evaluate(
      tiny_config(tfds_dir, num_eval_examples=4, eval_batch_size=4, log_every_steps=1,
                  keep_checkpoints=2, on_nan='skip'), workdir)
  assert int(state.step) == 4
  assert json.load(open(os.path.join(workdir, 'config.json')))['num_eval_examples'] == 4
  assert not os.path.exists(os.path.join(workdir, identity.CHANGES_FILE))
  # Another change, accepted explicitly: the run goes on and the change is recorded.
  config = tiny_config(tfds_dir, num_train_steps=6, allow_config_change=True,
                       **{'optim.learning_rate': 1e-3})
  state, _ = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 6
  change = json.loads(open(os.path.join(workdir, identity.CHANGES_FILE)).read())
  assert change['from_step'] == 4
  assert change['changes'] == {'num_train_steps': [4, 6], 'optim.learning_rate': [0.003, 0.001]}
  assert json.load(open(os.path.join(workdir, 'config.json')))['optim']['learning_rate'] == 1e-3


def test_differences_list_every_field_and_ignore_the_ones_that_may_change():
  from posemachines.core import configs
  from posemachines.training import identity
  a = identity.as_json(configs.cpm_small())
  b = identity.as_json(configs.cpm_small())
  b['batch_size'], b['num_eval_examples'], b['data']['data_dir'] = 32, 100, '/elsewhere'
  b['model']['num_stages'] = 2
  b['optim']['schedule'], b['num_train_steps'] = 'step', 3000
  diffs = identity.differences(a, b)
  assert [d[:3] for d in diffs] == [('batch_size', 8, 32), ('model.num_stages', 3, 2),
                                    ('num_train_steps', 2500, 3000),  # the saved one is cosine
                                    ('optim.schedule', 'cosine', 'step')]
  a['optim']['schedule'] = 'step'  # the budget alone may change under a step schedule
  assert [d[0] for d in identity.differences(a, b)] == ['batch_size', 'model.num_stages']
  b['model']['use_center_map'] = 1  # True and 1 are not the same setting
  assert 'model.use_center_map' in [d[0] for d in identity.differences(a, b)]
  # A run saved before a field existed: the field's default is what it did.
  b = identity.as_json(configs.cpm_small())
  old = identity.as_json(configs.cpm_small())
  del old['data']['crop_width'], old['allow_config_change']
  old['data']['a_field_since_removed'] = 1
  assert identity.differences(old, b) == []
  b['data']['crop_width'] = 64
  assert identity.differences(old, b) == [('data.crop_width', '(absent)', 64, '')]


# ------------------------------------------------------- inference beside a training run --

def test_loading_a_workdir_for_inference_changes_nothing(trained_workdir, tmp_path):
  workdir = copy_of(trained_workdir, tmp_path)
  ckpts = os.path.join(workdir, 'checkpoints')
  # A save in progress, as orbax names it (a copy of step 4 with its arrays half written) ...
  tmp = os.path.join(ckpts, '6.orbax-checkpoint-tmp-1764580000000000')
  shutil.copytree(os.path.join(ckpts, '4'), tmp)
  os.remove(os.path.join(tmp, 'commit_success.txt'))
  for f in glob.glob(os.path.join(tmp, 'default', 'ocdbt.process_0', 'd', '*'))[:1]:
    os.remove(f)
  # ... and a corrupt newest complete checkpoint.
  for root, _, files in os.walk(os.path.join(ckpts, '4', 'default')):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'garbage')
  before = snapshot(workdir)
  model = loading.load_workdir(workdir)
  assert model.source == f'{workdir} (step 2)'
  assert snapshot(workdir) == before
  assert sorted(os.listdir(ckpts)) == ['2', '4', os.path.basename(tmp)]
  # With no readable checkpoint at all: one clear error, and still nothing changed.
  for root, _, files in os.walk(os.path.join(ckpts, '2', 'default')):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'garbage')
  before = snapshot(workdir)
  with pytest.raises(errors.MissingData, match='No complete, readable checkpoint in'):
    loading.load_workdir(workdir)
  assert snapshot(workdir) == before


# ------------------------------------------------------------ logs as if never stopped --

class Killed(BaseException):
  """Stands for a SIGKILL at that point: nothing after it runs, nothing is cleaned up."""


def test_a_kill_before_the_final_evaluation_logs_it_on_rerun(tfds_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / 'w')
  config = tiny_config(tfds_dir)
  real = train.run_evaluation

  def killed(*args, **kwargs):
    raise Killed()

  monkeypatch.setattr(train, 'run_evaluation', killed)
  with pytest.raises(Killed):
    train.train_and_evaluate(config, workdir)
  assert checkpoint.manager(workdir, 3, read_only=True).all_steps() == [2, 4]
  assert not any(k.startswith('eval/') for l in logged(workdir) for k in l)
  monkeypatch.setattr(train, 'run_evaluation', real)
  state, result = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 4
  evals = [l for l in logged(workdir) if 'eval/pck@0.5/stage2' in l]
  assert [l['step'] for l in evals] == [4]
  assert evals[0]['eval/pck@0.5/stage2'] == result['stages'][1]['pck@0.5']
  assert json.load(open(os.path.join(workdir, 'eval.json')))['step'] == 4
  assert tensorboard_steps(workdir)['eval/pck@0.5/stage2'] == [4]
  # A rerun of the finished run logs nothing twice.
  train.train_and_evaluate(config, workdir)
  assert [l['step'] for l in logged(workdir) if 'eval/pck@0.5/stage2' in l] == [4]
  assert tensorboard_steps(workdir)['eval/pck@0.5/stage2'] == [4]


def test_a_kill_between_checkpoints_leaves_no_duplicated_lines(tfds_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / 'w')
  config = tiny_config(tfds_dir, num_train_steps=5, log_every_steps=1, checkpoint_every_steps=2,
                       eval_every_steps=2)
  real = writers.MetricsWriter.write

  def write(self, step, scalars):
    real(self, step, scalars)
    if step == 3:  # step 3 logged, its checkpoint never saved: the rerun resumes from step 2
      raise Killed()

  monkeypatch.setattr(writers.MetricsWriter, 'write', write)
  with pytest.raises(Killed):
    train.train_and_evaluate(config, workdir)
  assert [l['step'] for l in logged(workdir) if 'loss' in l] == [1, 2, 3]
  monkeypatch.setattr(writers.MetricsWriter, 'write', real)
  train.train_and_evaluate(config, workdir)
  lines = logged(workdir)
  assert [l['step'] for l in lines if 'loss' in l] == [1, 2, 3, 4, 5]
  assert [l['step'] for l in lines if 'eval/pck@0.5/stage1' in l] == [2, 4, 5]
  tb = tensorboard_steps(workdir)
  assert tb['loss'] == [1, 2, 3, 4, 5]
  assert tb['eval/pck@0.5/stage1'] == [2, 4, 5]


def test_tensorboard_files_are_cut_at_the_first_later_step(tmp_path):
  path = str(tmp_path / 'events.out.tfevents.1.host')
  with tf.io.TFRecordWriter(path) as w:
    for step in (0, 1, 2, 2, 3, 4):
      w.write(tf.compat.v1.Event(step=step, wall_time=1.0).SerializeToString())
  with open(path, 'ab') as f:
    f.write(b'\x05\x00\x00')  # a record cut short by a kill
  writers.cut_events_after(path, 2)
  assert [e.step for e in tf.compat.v1.train.summary_iterator(path)] == [0, 1, 2, 2]


# ---------------------------------------------------------------- a disk that fills --

def test_a_disk_that_fills_during_a_save_gives_one_message(tfds_dir, tmp_path, monkeypatch,
                                                          capsys, caplog):
  from etils import epath
  workdir = str(tmp_path / 'w')
  config = tiny_config(tfds_dir, num_train_steps=4, checkpoint_every_steps=1)
  path_type = type(epath.Path(str(tmp_path)))
  real = path_type.write_text

  def write_text(self, *args, **kwargs):
    if '3.orbax-checkpoint-tmp' in str(self):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    return real(self, *args, **kwargs)

  monkeypatch.setattr(path_type, 'write_text', write_text)
  main = errors.exit_on_user_error(lambda argv: train.train_and_evaluate(config, workdir),
                                   'posemachines.train')
  with pytest.raises(SystemExit) as exit_:
    main(['train'])
  assert exit_.value.code == 2
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if 'error:' in l]
  assert len(lines) == 1, err
  assert re.fullmatch(re.escape(
      f'posemachines.train: error: Saving the checkpoint of step 3 in {workdir}/checkpoints '
      'failed: No space left on device (') + r'[\d.]+' + re.escape(
      f' MiB free). The last good checkpoint is step 2 ({workdir}/checkpoints/2). Free some '
      'space (or lower --config.keep_checkpoints), then rerun the same command to resume from '
      'it.'), lines[0]), lines[0]
  assert 'Traceback' not in err
  assert not [r for r in caplog.records if r.levelname == 'ERROR'], caplog.records
  # With room again, the same command resumes from step 2 and finishes.
  monkeypatch.setattr(path_type, 'write_text', real)
  state, _ = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 4
  assert [l['step'] for l in logged(workdir) if 'loss' in l] == [2, 4]


def test_tensorstore_disk_full_errors_are_recognised():
  text = ('RESOURCE_EXHAUSTED: Error writing "params.a/0" in OCDBT database at local file '
          '"/w/checkpoints/4.orbax-checkpoint-tmp/default/": Failed to write 987 bytes to file '
          "19: No space left on device [os_error_code='28']")
  assert checkpoint._no_room(ValueError(text)) == 'No space left on device'
  group = ExceptionGroup('save', [ValueError('other'), ValueError(text)])
  assert checkpoint._no_room(RuntimeError('wrapped')) is None
  try:
    raise RuntimeError('save failed') from group
  except RuntimeError as e:
    assert checkpoint._no_room(e) == 'No space left on device'
  assert checkpoint._no_room(OSError(errno.EDQUOT, 'quota')) == os.strerror(errno.EDQUOT)


def test_reading_a_run_logs_no_read_only_notice(tmp_path, caplog):
  from absl import logging as absl_logging
  caplog.set_level('INFO')
  checkpoint.manager(str(tmp_path), 2, read_only=True)
  absl_logging.warning('another warning')   # the filter lets every other message through
  messages = [r.getMessage() for r in caplog.records]
  assert 'another warning' in messages
  assert not [m for m in messages if 'read only' in m], messages
