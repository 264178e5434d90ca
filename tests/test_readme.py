"""Every command shown in README.md's code blocks runs, as a reader would run it.

The commands are read from README.md as it is (continuation lines joined, comments dropped,
optional ``[--flag]`` parts included, ``a && b`` split) and run in a sandbox folder that looks
like the checkout (``experiments/`` and ``launch/`` linked in), with ``TFDS_DATA_DIR`` in the
sandbox, one after the other in README order: a later command may use what an earlier one wrote
(``workdirs/default``, ``mat/``, ``artifacts/default``), and asking for one command runs the
commands that write what it needs first. The test fails when a command exits with an error.

Each command gets the tiny settings of the longest matching prefix in ``RULES`` appended (steps,
sizes, example counts; the placeholders DIR, ART, GT.mat ... become real files), so the whole
README runs in a few minutes on a CPU. Real datasets are read from small files in their official
formats, built here with the fixture builders of test_mpii.py, test_lsp.py and test_flic.py.
Commands that cannot run on one machine (a TPU pod, a SLURM cluster, a cluster coordinator) are
checked for the files they need and reported as skipped with the reason; a command that matches
no rule fails, so that a new command in the README gets its settings here.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')
BANNERS = ('oneDNN', 'cpu_feature_guard', 'This TensorFlow binary is optimized', 'libtpu',
           'All log messages before absl::InitializeLog', 'did not fully read the dataset',
           'Downloading and preparing')
# An INFO or WARNING line in absl's format: 'I1201 10:57:02.252897 1405 xla_bridge.py:849] ...'
ABSL_LINE = re.compile(r'^[IW]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (\S+):\d+\]')
OWN_FILES = {f for top in ('posemachines', 'experiments', 'launch')
             for _, _, files in os.walk(os.path.join(ROOT, top)) for f in files}

pytestmark = pytest.mark.readme


# ----------------------------------------------------------------------- reading commands --

@dataclasses.dataclass(frozen=True)
class Command:
  line: int        # README line of its first line
  text: str        # as written (continuations joined, comment dropped)

  @property
  def argv(self) -> list[str]:
    return shlex.split(_expand_optional(self.text))

  @property
  def id(self) -> str:
    return f'L{self.line}:{self.text[:60]}'


COMMAND_WORDS = ('python', 'pip', 'sbatch', 'bash')
SCRIPT = re.compile(r'^\S+\.(sh|py|sbatch)$')   # launch/tpu_pod.sh ...


def _is_command(text: str) -> bool:
  first = text.split()[0] if text.split() else ''
  return first in COMMAND_WORDS or bool(SCRIPT.match(first))


def _expand_optional(text: str) -> str:
  """'--out=x [--json] [--a=b]' -> '--out=x --json --a=b' (optional parts are run too)."""
  return re.sub(r'\[(--[^\]]+)\]', r'\1', text)


def readme_commands(path: str = README) -> list[Command]:
  """The commands of every fenced code block, in order."""
  lines = open(path).read().split('\n')
  out, in_code, i = [], False, 0
  while i < len(lines):
    line = lines[i]
    if line.startswith('```'):
      in_code = not in_code
      i += 1
      continue
    start = i
    if in_code:
      text = line
      while text.rstrip().endswith('\\') and i + 1 < len(lines):
        i += 1
        text = text.rstrip()[:-1].rstrip() + ' ' + lines[i].strip()
      text = re.sub(r'\s+#\s.*$', '', text).strip()
      if _is_command(text):
        for part in text.split(' && '):
          out.append(Command(start + 1, part.strip()))
    i += 1
  return out


# ------------------------------------------------------------------ the settings per prefix --

TINY_STEPS = ['--config.num_train_steps=2', '--config.batch_size=4', '--config.eval_batch_size=4',
              '--config.log_every_steps=1', '--config.eval_every_steps=2',
              '--config.checkpoint_every_steps=2', '--config.num_eval_examples=4',
              '--config.num_pictures=1', '--config.data.shuffle_buffer=16',
              '--config.data.crop_size=48']
TINY_SYNTHETIC = ['--config.data.synthetic_image_size=64', '--config.data.synthetic_num_train=32',
                  '--config.data.synthetic_num_validation=8']


def tiny_config_flags(config_name: str) -> list[str]:
  """Small model, data and step settings for the config a command trains."""
  from posemachines.core import config_files
  import importlib.util
  spec = importlib.util.spec_from_file_location('_readme_config', config_files.resolve(
      config_name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  narrow = lambda name: f'--config.model.{name}=({",".join(["4"] * len(c.model[name]))},)'
  if c.model.name == 'cpm':
    model = [narrow('trunk_widths'), narrow('stage1_widths'), narrow('stage_widths'),
             '--config.model.stage_feature_width=4', '--config.model.num_stages=2']
  else:
    model = [narrow('widths'), '--config.model.num_iterations=1']
  data = TINY_SYNTHETIC if 'synthetic_people' in c.data.dataset else []
  if c.data.crop_width:  # a rectangular crop keeps its aspect
    # A multiple of 8 near the aspect: the CPM's pooled features and center map then agree.
    width = 8 * max(1, round(c.data.crop_width * 48 / c.data.crop_size / 8))
    data = data + [f'--config.data.crop_width={width}']
  return model + data + TINY_STEPS


def _flag(argv, name):
  """The last value of --name=VALUE in argv, or None."""
  values = [a.split('=', 1)[1] for a in argv if a.startswith(f'--{name}=')]
  return values[-1] if values else None


def _config_of(argv, default: str) -> str:
  return _flag(argv, 'config') or default


@dataclasses.dataclass
class Rule:
  """How the test runs the commands that start with ``prefix``."""
  prefix: str
  append: tuple = ()                     # arguments added at the end
  replace: dict = dataclasses.field(default_factory=dict)   # placeholder -> value
  trains: str | None = None              # the default config it trains (tiny settings added)
  skip: str | None = None                # why it is not run here
  needs: tuple = ()                      # files earlier commands must have written
  needs_flags: tuple = ()                # ... and the values of these flags (e.g. --model)
  check: tuple = ()                      # files a skipped command needs, checked
  adapt: object = None                   # argv, sandbox -> argv (after the above)
  expect: object = None                  # checks of the finished command's output
  timeout: int = 300


def _own_workdir(argv, sandbox, command):
  """A training command without --workdir (or with one outside the sandbox) gets its own."""
  workdir = _flag(argv, 'workdir')
  if workdir is None:
    return argv + [f'--workdir=workdirs/readme_line{command.line}']
  if os.path.isabs(workdir):
    return argv + [f'--workdir=workdirs/{workdir.strip("/").replace("/", "_")}']
  return argv


def _gradient_runs(argv, sandbox, command):
  """--run with=DIR --run without=DIR: the two runs experiments/gradients.py recorded."""
  runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(
      sandbox.root, 'workdirs', '**', 'gradients.npz'), recursive=True))
  assert len(runs) >= 2, f'no two gradient recordings in the sandbox: {runs}'
  out, k = [], 0
  for a in argv:
    if a.endswith('=DIR'):
      a, k = a[:-3] + runs[k % len(runs)], k + 1
    out.append(a)
  return out


def _local_launch(argv, sandbox, command):
  """The launched training command gets the tiny settings and its own workdir."""
  inner = argv[argv.index('--') + 1:]
  return _own_workdir(argv, sandbox, command) + tiny_config_flags(_config_of(inner, 'default'))


def _one_final_line(result):
  """Every process has the same result; only process 0 prints it."""
  finals = [l for l in result.stdout.splitlines() if 'Final ' in l]
  assert len(finals) == 1 and not finals[0].startswith('[process'), result.stdout[-2000:]


EVAL_SMALL = ('--num_examples=4', '--scales=0.9,1.1', '--batch_size=2')
RULES = [
    Rule('pip install', skip='installs the package into the environment; the test runs this '
         'checkout as it is', check=('setup.py',)),
    Rule('python -m pytest', skip='the test suite itself (this test is part of it)',
         check=('tests',)),
    Rule('python -m posemachines.train', trains='default', adapt=_own_workdir, timeout=400),
    Rule('python -m posemachines.train --coordinator_address', skip='one process of a cluster: '
         'it waits for the other hosts', check=('posemachines/training/distributed.py',)),
    Rule('python launch/local.py', adapt=_local_launch, timeout=500, expect=_one_final_line),
    Rule('launch/tpu_pod.sh', skip='creates and uses a Cloud TPU slice',
         check=('launch/tpu_pod.sh',)),
    Rule('sbatch', skip='submits a SLURM job', check=('launch/slurm_gpu.sbatch',)),
    Rule('python launch/soak.py', append=('--kills=1',), adapt=lambda a, s, c: a + [
        f for f in tiny_config_flags('default') if not f.startswith('--config.num_train_steps')]
        + ['--config.num_train_steps=4'], timeout=600),
    Rule('python -m posemachines.data.inspect', append=('--num=2',)),
    Rule('python -m posemachines.data.benchmark',
         append=('--seconds=0.2', '--num_examples=4', '--batch_size=2', '--crop_size=96')),
    Rule('python -m posemachines.evaluate --model', append=EVAL_SMALL,
         replace={'ART': 'workdirs/default'}, needs_flags=('model',)),
    Rule('python -m posemachines.evaluate --annotations',
         replace={'GT.mat': 'mat/annotations.mat', 'PRED.mat': 'mat/predictions.mat'},
         needs=('mat/annotations.mat',)),
    Rule('python -m posemachines.export', needs_flags=('workdir',)),
    Rule('python -m posemachines.predict', append=('--scales=1.0',), needs_flags=('model',)),
    Rule('python -m posemachines.summary'),
    Rule('python -m posemachines.benchmark', append=('--steps=1', '--warmup=0', '--batch_size=2'),
         trains='default'),
    Rule('python -m posemachines.schemes', trains='analyses_cpu', adapt=_own_workdir),
    Rule('python -m posemachines.gradients', adapt=_gradient_runs,
         needs=('experiments/gradients.py',)),
    Rule('python -m posemachines.convert_caffe', skip="needs the CPM release's Caffe files; "
         'tests/test_convert_caffe.py converts caffemodels it writes from deploy files of its own',
         check=('posemachines/convert_caffe.py', 'tests/test_convert_caffe.py')),
    Rule('python -m posemachines.evaluate --dataset=lsp', skip="needs the release's prediction "
         'files; tests/test_benchmark_files.py runs this command on official-format fixtures',
         check=('posemachines/evaluation/benchmark_files.py', 'tests/test_benchmark_files.py')),
    # COCO against the official-format fixture (its val2017 people stand in for train2017).
    Rule('python -m posemachines.train --config=cpm_coco', trains='cpm_coco',
         replace={'DIR': 'tests/data/coco'}, append=('--config.data.train_split=validation',),
         adapt=_own_workdir, timeout=400),
    Rule('python -m posemachines.evaluate --model=workdirs/cpm_coco',
         replace={'person_keypoints_val2017.json': 'tests/data/coco/annotations/person_keypoints_val2017.json'},
         append=('--scales=1.0', '--batch_size=2'), needs_flags=('model',)),
    Rule('python -m posemachines.evaluate --dataset=coco',
         replace={'person_keypoints_val2017.json': 'tests/data/coco/annotations/person_keypoints_val2017.json'}),
    Rule('python experiments/recurrent_ablation.py --plan', timeout=300),
    # --stages=2 is the joint run that schemes, gradients and receptive_fields share.
    Rule('python experiments/stages.py', append=('--stages=2',), trains='analyses_cpu'),
    Rule('python experiments/schemes.py', append=('--schemes=joint,final_only',),
         trains='analyses_cpu'),
    Rule('python experiments/gradients.py', trains='analyses_cpu'),
    Rule('python experiments/receptive_fields.py', append=('--kernels=3:1',),
         trains='analyses_cpu'),
]


def rule_for(command: Command) -> Rule | None:
  matches = [r for r in RULES if command.text.startswith(r.prefix)]
  return max(matches, key=lambda r: len(r.prefix)) if matches else None


def test_every_readme_command_has_a_rule():
  """A command the README shows but this test does not know fails here: give it its settings."""
  commands = readme_commands()
  assert len(commands) >= 20
  unknown = [c.id for c in commands if rule_for(c) is None]
  assert not unknown, f'README commands without a rule in tests/test_readme.py: {unknown}'


def test_reading_commands():
  text = ('x\n```\npython -m a --b=1 \\\n    [--c=2]   # note\n# a comment\nlaunch/x.sh y\n```\n'
          '```\nposemachines/  not a command\npip install -e . && python -m t\n```\n')
  path = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'readme_test_reading.md')
  with open(path, 'w') as f:
    f.write(text)
  cmds = readme_commands(path)
  assert [c.text for c in cmds] == ['python -m a --b=1 [--c=2]', 'launch/x.sh y',
                                    'pip install -e .', 'python -m t']
  assert cmds[0].argv == ['python', '-m', 'a', '--b=1', '--c=2'] and cmds[0].line == 3


# ------------------------------------------------------------------------------ the sandbox --

def _manual_dir(folder: str) -> str:
  """One manual directory holding MPII, LSP, LSP-extended and FLIC in their official formats."""
  import shutil
  from tests import marker, test_flic, test_lsp, test_mpii
  from posemachines.data import flic
  manual = os.path.join(folder, 'manual')
  mpii_folder = os.path.join(folder, 'mpii_fixture')
  test_mpii.write_archives(mpii_folder, test_mpii._fixture_images(), [[2, 1]])
  leeds = os.path.join(folder, 'leeds_fixture')
  test_lsp._lsp_fixture(leeds)
  test_lsp._lspet_fixture(leeds)
  for source in (mpii_folder, leeds):
    shutil.copytree(os.path.join(source, 'manual'), manual, dirs_exist_ok=True)
  frame = marker.marker_image(400, 300, [test_flic.OBSERVER['l_wrist']], fmt='JPEG')
  examples = [test_flic._example('frame.jpg', test_flic._coords(test_flic.OBSERVER),
                                 [140, 90, 260, 230]),
              test_flic._example('test.jpg', test_flic._coords(test_flic.OBSERVER),
                                 [140, 90, 260, 230], train=False)]
  mat = os.path.join(folder, 'examples.mat')
  flic.write_examples(mat, examples)
  with zipfile.ZipFile(os.path.join(manual, 'FLIC.zip'), 'w') as z:
    z.write(mat, 'FLIC/examples.mat')
    z.writestr('FLIC/images/frame.jpg', frame)
    z.writestr('FLIC/images/test.jpg', frame)
  return manual


def _photos(root: str) -> None:
  """photos/ (two images), clip.gif (three frames) and where.json (a location for one photo)."""
  from PIL import Image
  rng = np.random.default_rng(0)
  os.makedirs(os.path.join(root, 'photos'))
  for name, size in (('person.jpg', (120, 160)), ('other.png', (90, 90))):
    pixels = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, 'photos', name))
  frames = [Image.fromarray(rng.integers(0, 255, (64, 48, 3), np.uint8)) for _ in range(3)]
  frames[0].save(os.path.join(root, 'clip.gif'), save_all=True, append_images=frames[1:],
                 duration=100)
  with open(os.path.join(root, 'where.json'), 'w') as f:
    json.dump({'person.jpg': {'center': [60, 80], 'scale': 0.7}}, f)


class Sandbox:
  """A folder like the checkout, where the README's commands run one after the other."""

  def __init__(self, root: str):
    self.root = root
    for name in ('experiments', 'launch', 'tests'):
      os.symlink(os.path.join(ROOT, name), os.path.join(root, name))
    self.manual = _manual_dir(os.path.join(root, 'fixtures'))
    _photos(root)
    self.env = dict(os.environ, TFDS_DATA_DIR=os.path.join(root, 'tfds'),
                    PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
                        'PYTHONPATH')])),
                    # Identical programs (the same tiny model in several commands) compile once.
                    JAX_COMPILATION_CACHE_DIR=os.path.join(root, 'jax_cache'),
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
    self.done: dict[Command, subprocess.CompletedProcess] = {}

  def argv(self, command: Command, rule: Rule) -> list[str]:
    argv = command.argv
    placeholders = {'DIR': self.manual, **rule.replace}
    argv = [_substitute(a, placeholders) for a in argv]
    argv = [sys.executable if a == 'python' else a for a in argv]
    if rule.trains:
      argv += tiny_config_flags(_config_of(argv, rule.trains))
    argv += list(rule.append)
    if rule.adapt is not None:
      argv = rule.adapt(argv, self, command)
    return argv

  def run(self, command: Command) -> subprocess.CompletedProcess:
    """Runs ``command`` once (first the commands that write what it needs)."""
    if command in self.done:
      return self.done[command]
    rule = rule_for(command)
    argv = self.argv(command, rule)
    needs = list(rule.needs) + [v for v in (_flag(argv, f) for f in rule.needs_flags) if v]
    for need in needs:
      if not os.path.exists(os.path.join(self.root, need)) or need.endswith('.py'):
        producer = _producer(need, command)
        assert producer is not None, f'no README command before line {command.line} writes {need}'
        result = self.run(producer)
        assert result.returncode == 0, f'{producer.text} failed, needed for {command.text}'
    result = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True,
                            timeout=rule.timeout)
    self.done[command] = result
    return result


def _substitute(arg: str, placeholders: dict) -> str:
  for key, value in placeholders.items():
    arg = re.sub(rf'(?<![\w/.]){re.escape(key)}(?![\w.])', value, arg)
  return arg


def _producer(need: str, before: Command) -> Command | None:
  """The first README command before ``before`` that writes ``need`` (or is the script)."""
  top = need.rstrip('/').split('/')
  for c in readme_commands():
    if c.line >= before.line:
      break
    if need.endswith('.py'):
      if need in c.text:
        return c
      continue
    for a in c.argv:
      value = a.split('=', 1)[1].rstrip('/') if a.startswith('--') and '=' in a else None
      if value and (value == need.rstrip('/') or value == '/'.join(top[:-1])):
        return c
  return None


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
  return Sandbox(str(tmp_path_factory.mktemp('readme')))


# ------------------------------------------------------------------------------- the test --

@pytest.mark.parametrize('command', readme_commands(), ids=lambda c: c.id)
def test_readme_command_runs(command, sandbox):
  rule = rule_for(command)
  assert rule is not None, f'no rule for README line {command.line}: {command.text}'
  if rule.skip:
    missing = [p for p in rule.check if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, f'{command.text} needs {missing}, which the checkout lacks'
    if command.text.startswith('pip install'):
      extras = re.findall(r'\.\[(\w+)\]', command.text)
      setup = open(os.path.join(ROOT, 'setup.py')).read()
      assert all(f"'{e}':" in setup for e in extras), f'setup.py lacks the extras {extras}'
    pytest.skip(rule.skip)
  result = sandbox.run(command)
  tail = (result.stdout[-2000:] + '\n--- stderr ---\n' + result.stderr[-4000:])
  assert result.returncode == 0, (f'README line {command.line} failed ({result.returncode}): '
                                  f'{" ".join(sandbox.argv(command, rule))}\n{tail}')
  assert 'Traceback (most recent call last)' not in result.stderr, tail
  # No library chatter: TensorFlow's banners, JAX's backend search, tf.data's cache warning,
  # or INFO and WARNING lines logged by jax, orbax, tensorflow or tfds.
  for banner in BANNERS:
    assert banner not in result.stderr + result.stdout, (
        f'README line {command.line} printed {banner!r}:\n{tail}')
  foreign = [l for l in result.stderr.splitlines() if (m := ABSL_LINE.match(l))
             and m.group(1) not in OWN_FILES]
  assert not foreign, f'README line {command.line} printed library logs:\n' + '\n'.join(
      foreign[:20])
  if rule.expect is not None:
    rule.expect(result)
