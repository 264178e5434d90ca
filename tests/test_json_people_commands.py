"""json_people through the documented commands: train and evaluate on people from a JSON list
(the MPII sample in tests/data), a missing validation split caught before training, and a
validation split without labelled parts reported as such."""
import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, 'tests', 'data', 'mpii_sample')
ANNOTATIONS = os.path.join(SAMPLE, 'test_mpii.json')


def _run(module, *args, timeout=600):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', f'posemachines.{module}', *args], env=env,
                        capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
  """A tiny config file (2-stage CPM, 48 px crops) and its tfds folder."""
  tmp = tmp_path_factory.mktemp('json_people_commands')
  config = tmp / 'tiny.py'
  config.write_text(textwrap.dedent(f'''
      import sys
      sys.path.insert(0, {ROOT!r})
      from tests.conftest import tiny_config
      def get_config():
        return tiny_config({str(tmp / 'tfds')!r}, num_train_steps=2, eval_batch_size=2)
  '''))
  return tmp, config


def test_missing_validation_split_is_an_error_before_training(setting):
  tmp, config = setting
  workdir = tmp / 'no_validation'
  proc = _run('train', f'--config={config}', f'--workdir={workdir}',
              '--config.data.dataset=json_people', f'--config.data.annotations={ANNOTATIONS}')
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      f"posemachines.train: error: json_people {ANNOTATIONS} has no split 'validation' "
      "(config.data.eval_split; it has train): set --config.data.validation_fraction (for "
      "example 0.1) to hold out that fraction of the images, or mark records' split "
      '("split": "validation")')
  assert 'step/s' not in proc.stderr                   # no training step ran
  assert not (workdir / 'checkpoints').exists() or not os.listdir(workdir / 'checkpoints')
  assert not (workdir / 'metrics.jsonl').exists()


def test_train_then_evaluate_on_json_people(setting):
  tmp, config = setting
  workdir = tmp / 'trained'
  proc = _run('train', f'--config={config}', f'--workdir={workdir}',
              '--config.data.dataset=json_people', f'--config.data.annotations={ANNOTATIONS}',
              '--config.data.validation_fraction=0.4')
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Images k = 2 and 4 of 5 are held out: 2 people.
  assert 'Final PCKh@0.5 (%) per output: stage 1 ' in proc.stdout
  assert f'(2 people, {workdir}/eval.json)' in proc.stdout
  assert json.load(open(workdir / 'eval.json'))['num_people'] == 2
  saved = json.load(open(workdir / 'config.json'))['data']
  assert saved['dataset'] == 'json_people' and saved['annotations'] == ANNOTATIONS

  # The model's own dataset, from its config.
  proc = _run('evaluate', f'--model={workdir}', '--scales=1.0', '--noflip',
              f'--out={tmp / "eval_own"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '**json_people validation, 2 people** (PCKh@0.5, %)' in proc.stdout

  # Another annotation file, every image held out; its images in another folder.
  other = tmp / 'other'
  other.mkdir()
  records = json.load(open(ANNOTATIONS))[:3]
  for record in records:
    shutil.copy(os.path.join(SAMPLE, record['image']), tmp)
  (other / 'people.json').write_text(json.dumps(records))
  proc = _run('evaluate', f'--model={workdir}', f'--json_people={other / "people.json"}',
              f'--image_dir={tmp}', '--validation_fraction=1', '--scales=1.0', '--noflip',
              f'--out={tmp / "eval_other"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '**json_people validation, 3 people** (PCKh@0.5, %)' in proc.stdout
  assert json.load(open(tmp / 'eval_other' / 'eval.json'))['num_people'] == 3

  # Without a validation split: the error says how to get one.
  proc = _run('evaluate', f'--model={workdir}', f'--json_people={other / "people.json"}',
              f'--image_dir={tmp}', '--validation_fraction=0')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      f"posemachines.evaluate: error: json_people {other / 'people.json'} has no split "
      "'validation' (it has train): give --split=train, or --validation_fraction (1 to hold "
      "out every image), or mark records' split (\"split\": \"validation\")")

  # --annotations names a benchmark's .mat, not the JSON list; json_people flags need it.
  proc = _run('evaluate', f'--model={workdir}', '--dataset=json_people',
              f'--annotations={ANNOTATIONS}')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      f'posemachines.evaluate: error: --annotations={ANNOTATIONS}: the JSON list of a '
      f'json_people dataset is given as --json_people={ANNOTATIONS} (--annotations names a '
      "benchmark's ground-truth .mat)")
  proc = _run('evaluate', f'--model={workdir}', '--dataset=synthetic_people',
              '--validation_fraction=1')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      'posemachines.evaluate: error: --validation_fraction applies to json_people, but the '
      "evaluation dataset is 'synthetic_people': give --json_people=FILE")


def test_a_validation_split_without_labelled_parts(setting):
  tmp, config = setting
  records = json.load(open(ANNOTATIONS))
  for record in records:
    record['split'] = 'train'
  unlabelled = copy.deepcopy(records[1])
  unlabelled.update(split='validation', joints_annotated=[0] * 16, joints_vis=[0] * 16,
                    head_box=[300.0, 50.0, 340.0, 100.0])
  folder = tmp / 'unlabelled'
  folder.mkdir()
  path = folder / 'people.json'
  path.write_text(json.dumps(records + [unlabelled]))
  workdir = tmp / 'unlabelled_run'
  proc = _run('train', f'--config={config}', f'--workdir={workdir}',
              '--config.data.dataset=json_people', f'--config.data.annotations={path}',
              f'--config.data.image_dir={SAMPLE}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == (
      f'Final evaluation: no labelled parts in the evaluation split (1 people); '
      f'{workdir}/eval.json')
  assert 'per output' not in proc.stdout
  result = json.load(open(workdir / 'eval.json'))
  assert result['stages'] == [] and result['note'] == 'no labelled parts'
  proc = _run('evaluate', f'--model={workdir}', '--scales=1.0', '--noflip',
              f'--out={tmp / "eval_unlabelled"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert ('json_people validation: no labelled parts, so no accuracy (predictions only)'
          in proc.stdout)
  assert '| 1 |' not in proc.stdout
  assert json.load(open(tmp / 'eval_unlabelled' / 'eval.json'))['note'] == 'no labelled parts'
