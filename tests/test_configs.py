"""Every config field the code reads is declared, and every ``--config.*`` override in the README
is accepted.

Three checks: the code paths that read configs (models.build, the objectives through the traced
train and eval steps, the host pipeline's settings, schemes.phases, gradients.enabled,
loop.build) run on every config under experiments/, locked; a static scan of the attribute chains
read from configs in posemachines/ and experiments/ against the configs; and no optional reads
(``config.get``, ``'x' in config``, ``getattr(config, ...)``) remain.
"""
from __future__ import annotations

import ast
import functools
import glob
import importlib.util
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from posemachines.core import config_files, configs, overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = config_files.names()


def load(name: str) -> ml_collections.ConfigDict:
  """The config of an experiment file, by name (as --config=NAME finds it)."""
  path = config_files.resolve(name)
  spec = importlib.util.spec_from_file_location(f'_experiment_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def field(config, dotted: str):
  """The value of a dotted field; KeyError naming it if it is not declared."""
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise KeyError(f'no field {dotted!r}')
    node = node[part]
  return node


def all_configs() -> dict:
  """Every experiment config and every factory in posemachines/core/configs.py."""
  out = {name: load(name) for name in EXPERIMENTS}
  out.update({f'configs.{f}': getattr(configs, f)() for f in
              ('cpm_release', 'cpm_small', 'recurrent_paper', 'recurrent_small')})
  return out


def test_every_experiment_is_found():
  assert {'default', 'cpm_mpii', 'cpm_lsp', 'cpm_flic', 'cpm_mpii_lsp', 'recurrent_mpii',
          'recurrent_synthetic', 'analyses_cpu'} <= set(EXPERIMENTS)


# ------------------------------------------------------------------------------ code paths --

def _small(config):
  """The same fields at a crop small enough to initialise in a moment on a CPU (rectangular
  crops keep their aspect)."""
  h = min(config.data.crop_size, 64)
  w = config.data.crop_width and int(round(config.data.crop_width * h / config.data.crop_size))
  return overrides.derive(config, **{'data.crop_size': h, 'data.crop_width': w})


def _batch(config, batch_size: int = 2):
  from posemachines.core import skeleton
  from posemachines.core import crops
  h, w = crops.size_hw(crops.from_config(config.data))
  p, k = skeleton.get(config.data.parts).num_parts, config.data.max_others
  f = lambda *shape: jnp.zeros(shape, jnp.float32)
  return {'image': jnp.zeros((batch_size, h, w, 3), jnp.uint8), 'keypoints': f(batch_size, p, 3),
          'visible': f(batch_size, p), 'others': f(batch_size, k, p, 3),
          'crop_to_image': f(batch_size, 2, 3), 'joints': f(batch_size, p, 3),
          'norm': jnp.ones((batch_size,)), 'index': jnp.zeros((batch_size,), jnp.int32)}


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_code_paths_read_only_declared_fields(name):
  import tensorflow as tf
  from posemachines import models
  from posemachines.data import pipeline, registry
  from posemachines.training import gradients, optim, schemes, step
  config = _small(load(name))
  config.lock()
  model = models.build(config)
  assert len(model.output_names) >= 1
  names = registry.dataset_names(config)
  registry.eval_dataset_name(config)
  registry.mixture_weights(config, [10] * len(names))
  for train in (True, False):
    aug = pipeline.Augment.from_config(config.data, train=train)
    pipeline.make_transform_fn(aug, config.data.parts, config.data.parts, config.seed,
                               config.data.max_others, train=train,
                               fast_decode=config.data.fast_decode)
  pipeline._stream(config, tf.data.Dataset.range(4), 4, 0, 0)
  pipeline._parallel(config.data)
  gradients.enabled(config)
  if config.model.name == 'cpm':
    for scheme in schemes.SCHEMES:
      assert schemes.phases(config, scheme)
  # What loop.build makes, traced only (no compilation): the optimizer from config.optim and
  # the train and eval steps, through the objectives and the loss.
  from posemachines.core import crops
  h, w = crops.size_hw(crops.from_config(config.data))
  params, model_state = step.split_variables(jax.eval_shape(
      model.init, jax.random.key(0), jnp.zeros((1, h, w, 3)), jnp.zeros((1, h, w, 1))))
  tx, _ = optim.make(config.optim, params, config.num_train_steps, config.frozen)
  state = step.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=jax.eval_shape(tx.init, params), model_state=model_state)
  batch = _batch(config)
  _, metrics = jax.eval_shape(functools.partial(step.train_step, model=model, tx=tx,
                                                config=config), state, batch, jax.random.key(0))
  assert metrics['stage_loss'].shape == (len(model.output_names),)
  out = jax.eval_shape(functools.partial(step.eval_step, model=model, config=config),
                       state.variables, batch)
  assert out['pred'].shape[0] == len(model.output_names)


@pytest.mark.parametrize('name', ['default', 'recurrent_synthetic'])
def test_loop_build_reads_only_declared_fields(name):
  """loop.build itself (it compiles the initialisation: one config per model)."""
  from posemachines.training import loop
  config = load(name)
  config.lock()
  built = loop.build(config, loop.make_mesh(jax.devices()[:1]))
  assert int(built.state.step) == 0


# ---------------------------------------------------------------------------- static scan --

def _sources():
  return sorted(glob.glob(os.path.join(ROOT, 'posemachines', '**', '*.py'), recursive=True)
                + glob.glob(os.path.join(ROOT, 'experiments', '*.py')))


CONFIG_NAMES = {'config', 'base'}  # parameters and variables that hold a whole config


def _root_and_chain(node):
  chain = []
  while isinstance(node, ast.Attribute):
    chain.append(node.attr)
    node = node.value
  return (node.id if isinstance(node, ast.Name) else None), chain[::-1]


def _bindings(func):
  """name -> list of the values bound to it in ``func`` (None for loop and comprehension
  targets, parameters other than config and base, and other bindings)."""
  out = {}
  args = func.args.posonlyargs + func.args.args + func.args.kwonlyargs
  for a in args:
    out.setdefault(a.arg, []).append('config' if a.arg in CONFIG_NAMES else None)
  for node in ast.walk(func):
    if isinstance(node, ast.Assign):
      for target in node.targets:
        if isinstance(target, ast.Name):
          out.setdefault(target.id, []).append(node.value)
        else:
          for n in ast.walk(target):
            if isinstance(n, ast.Name):
              out.setdefault(n.id, []).append(None)
    elif isinstance(node, (ast.For, ast.comprehension, ast.With, ast.NamedExpr, ast.AugAssign,
                           ast.AnnAssign)):
      targets = [node.target] if hasattr(node, 'target') else [
          i.optional_vars for i in node.items if i.optional_vars is not None]
      for target in targets:
        for n in ast.walk(target):
          if isinstance(n, ast.Name):
            out.setdefault(n.id, []).append(None)
  return out


SECTIONS = ('data', 'model', 'targets', 'loss', 'optim', 'gradients', 'schemes')


def _config_chain(value, configs_here):
  """The section chain a bound value is, when it is a config or a section of one, else None."""
  if value == 'config':
    return []
  if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
      value.func.attr == 'copy_and_resolve_references':
    value = value.func.value
  root, chain = _root_and_chain(value)
  if root in configs_here and all(c in SECTIONS for c in chain):
    return configs_here[root] + chain
  return None


def config_reads(tree) -> list[tuple[list[str], int]]:
  """Attribute chains read from configs inside functions: ``config.a.b`` where ``config`` (or
  ``base``) is a parameter, and through local aliases (``data = config.data`` then ``data.x``;
  ``cfg = config.copy_and_resolve_references()``). A name bound to anything else in the same
  function (a loop variable, a builder config) is not a config there."""
  reads = []
  funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
  for func in funcs:
    bindings = _bindings(func)
    configs_here = {name: [] for name in CONFIG_NAMES
                    if all(v == 'config' for v in bindings.get(name, ['config']))}
    for _ in range(3):  # aliases of aliases
      for name, values in bindings.items():
        chains = [_config_chain(v, configs_here) for v in values]
        if chains and all(c is not None for c in chains) and len({tuple(c) for c in chains}) == 1:
          configs_here[name] = chains[0]
    inner = {id(n) for f in ast.walk(func) if f is not func and isinstance(
        f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    parents = {child: parent for parent in ast.walk(func)
               for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(func):
      if id(node) in inner or not isinstance(node, ast.Attribute) or isinstance(
          parents.get(node), ast.Attribute):
        continue
      root, chain = _root_and_chain(node)
      if root in configs_here:
        reads.append((configs_here[root] + chain, node.lineno))
  return reads


def resolves(config, chain: list[str]) -> bool:
  node = config
  for attr in chain:
    if not isinstance(node, ml_collections.ConfigDict):
      return True                   # a method of a field's value (a str, a tuple)
    if attr in node:
      node = node[attr]
    elif hasattr(ml_collections.ConfigDict, attr):
      return True                   # a ConfigDict method (copy_and_resolve_references, ...)
    else:
      return False
  return True


def test_every_field_read_in_the_code_is_declared():
  known = list(all_configs().values())
  unknown = []
  for path in _sources():
    tree = ast.parse(open(path).read())
    for chain, line in config_reads(tree):
      if not any(resolves(c, chain) for c in known):
        unknown.append(f'{os.path.relpath(path, ROOT)}:{line}: config.{".".join(chain)}')
  assert not unknown, 'fields read but declared by no config:\n' + '\n'.join(unknown)


def test_the_scan_sees_the_reads_it_checks():
  tree = ast.parse('def f(config):\n  data = config.data\n  return data.crop_size + '
                   'config.model.num_stages + config.nope\n'
                   'def g(config):\n  m = config.model\n  return [m.x for m in y]\n'
                   'def h(builder):\n  config = builder.config\n  return config.padding\n')
  chains = {'.'.join(c) for c, _ in config_reads(tree)}
  assert {'data.crop_size', 'model.num_stages', 'nope'} <= chains
  assert not {'model.x', 'padding'} & chains
  assert not resolves(configs.cpm_small(), ['nope'])
  assert resolves(configs.cpm_small(), ['data', 'parts', 'split'])


SECTION_PARAMETERS = {'cfg', 'data', 'model_cfg', 'targets', 'loss', 'optim'}


def _declared() -> set[str]:
  names = set()
  for c in (configs.cpm_release(), configs.recurrent_paper()):
    for section in c.values():
      if isinstance(section, ml_collections.ConfigDict):
        names |= set(section.keys())
  return names


DECLARED = _declared()


def test_no_optional_reads_of_config_fields():
  """No ``config.get(...)``, ``'x' in config``, ``getattr/hasattr(config, ...)``: every field is
  declared, so it is read as an attribute."""
  found = []
  for path in _sources():
    tree = ast.parse(open(path).read())
    found += [f'{os.path.relpath(path, ROOT)}:{line}: .get' for chain, line in config_reads(tree)
              if chain and chain[-1] == 'get']   # through aliases: data = config.data; data.get
    for node in ast.walk(tree):   # a section handed over as a parameter: data.get('crop_width')
      if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
          node.func.attr == 'get' and isinstance(node.func.value, ast.Name) and \
          node.func.value.id in SECTION_PARAMETERS and node.args and \
          isinstance(node.args[0], ast.Constant) and node.args[0].value in DECLARED:
        found.append(f'{os.path.relpath(path, ROOT)}:{node.lineno}: {node.func.value.id}.get('
                     f'{node.args[0].value!r})')
    for node in ast.walk(tree):
      where = f'{os.path.relpath(path, ROOT)}:{getattr(node, "lineno", "?")}'
      if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
          node.func.attr == 'get' and _root_and_chain(node.func.value)[0] in CONFIG_NAMES:
        found.append(f'{where}: .get')
      if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
          'getattr', 'hasattr') and node.args and _root_and_chain(node.args[0])[0] in CONFIG_NAMES:
        found.append(f'{where}: {node.func.id}')
      if isinstance(node, ast.Compare) and any(isinstance(o, (ast.In, ast.NotIn))
                                               for o in node.ops):
        if any(_root_and_chain(c)[0] in CONFIG_NAMES for c in node.comparators):
          found.append(f'{where}: in')
  assert not found, 'optional reads of config fields:\n' + '\n'.join(found)


# --------------------------------------------------------------------- README's overrides --

PLACEHOLDERS = {'N': '2', 'DIR': '/tmp/posemachines_dir', 'FILE': '/tmp/posemachines_file.json'}
# Commands whose --config default is not the default config.
DEFAULT_CONFIG = {'posemachines.schemes': 'analyses_cpu', 'experiments/stages.py': 'analyses_cpu',
                  'experiments/schemes.py': 'analyses_cpu',
                  'experiments/gradients.py': 'analyses_cpu',
                  'experiments/receptive_fields.py': 'analyses_cpu',
                  'experiments/recurrent_ablation.py': 'recurrent_synthetic'}
OVERRIDE = re.compile(r'--config\.([A-Za-z_][\w.]*)(?:=(\S+))?')


def readme_overrides() -> list[tuple[str, str | None, str | None, str]]:
  """(field, value or None, the config of the command or None for prose, where) per override
  shown in README.md: in its code blocks (with the command's config) and in its prose."""
  text = open(os.path.join(ROOT, 'README.md')).read()
  out = []
  blocks = re.split(r'^```.*$', text, flags=re.M)
  for i, block in enumerate(blocks):
    in_code = i % 2 == 1
    lines = block.replace('\\\n', ' ').splitlines()
    for line in lines:
      line = line.split('#')[0] if in_code else line
      name = None
      if in_code:
        config = re.search(r'--config=(\S+)', line)
        command = next((c for c in DEFAULT_CONFIG if c in line), None)
        name = config.group(1) if config else DEFAULT_CONFIG.get(command, 'default')
      for m in OVERRIDE.finditer(line):
        field, value = m.group(1).rstrip('.'), m.group(2)
        if field == 'FIELD':
          continue  # "--config.FIELD=VALUE", the general form
        if value is not None:
          value = re.split(r'[`)\]]', value)[0]
          if value.endswith(',...'):  # alternatives, e.g. 0,1,2,...: the first
            value = value.split(',')[0]
          value = value.rstrip('.,;:')
          value = PLACEHOLDERS.get(value, value)
        out.append((field, value, name, line.strip()[:80]))
  return out


def _parse(config_path: str, field: str, value: str):
  """The config that ``--config=PATH --config.FIELD=VALUE`` gives on a command line."""
  from absl import flags
  from ml_collections import config_flags
  fv = flags.FlagValues()
  argv = ['prog', f'--config={config_path}', f'--config.{field}={value}']
  config_flags.DEFINE_config_file('config', config_path, flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  return fv.config


def test_readme_shows_overrides():
  fields = {f for f, _, _, _ in readme_overrides()}
  assert {'batch_size', 'num_train_steps', 'gradients.every_steps', 'data.manual_dir'} <= fields


@pytest.mark.parametrize('field_name,value,name,where', readme_overrides(),
                         ids=[f'{f}={v}@{n}' for f, v, n, _ in readme_overrides()])
def test_every_readme_override_is_accepted(field_name, value, name, where):
  candidates = [name] if name else EXPERIMENTS   # prose: accepted by some experiment's config
  errors = []
  for config_name in candidates:
    config = load(config_name)
    try:
      if value is None:  # named without a value: the field is declared
        overrides.derive(config, {field_name: field(config, field_name)})
      else:  # parsed as the command line parses it, then applied with derive
        parsed = _parse(config_files.resolve(config_name), field_name, value)
        derived = overrides.derive(config, {field_name: field(parsed, field_name)})
        assert derived.to_json() == parsed.to_json()
      return
    except Exception as e:  # noqa: BLE001  (reported below)
      errors.append(f'{config_name}: {e!r}')
  pytest.fail(f'README override --config.{field_name}={value} ({where}) rejected: {errors}')


# ---------------------------------------------------------------- the documented gradients --

def test_train_records_gradients_on_the_default_config(tfds_dir, tmp_path):
  """``python -m posemachines.train --config.gradients.every_steps=2
  --config.num_train_steps=4`` on the default config (tiny data through overrides)."""
  workdir = tmp_path / 'run'
  cmd = [sys.executable, '-m', 'posemachines.train', '--config.gradients.every_steps=2',
         '--config.num_train_steps=4', f'--workdir={workdir}',
         f'--config.data.data_dir={tfds_dir}', '--config.data.synthetic_image_size=64',
         '--config.data.synthetic_num_train=32', '--config.data.synthetic_num_validation=8',
         '--config.data.crop_size=48', '--config.data.shuffle_buffer=32',
         '--config.num_pictures=0', '--config.eval_batch_size=8']
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  from posemachines.training import gradients
  record = gradients.load(str(workdir / gradients.FILENAME))
  assert list(record['steps']) == [0, 2]
  assert record['layers'] and all(np.isfinite(v).all() for v in record['values'].values())
  assert 'PCKh@0.5 (%) per output: stage 1' in run.stdout


def test_configs_saved_before_a_field_was_declared_are_upgraded():
  """A workdir's config.json from an earlier version lacks fields declared since: loading fills
  them in at their defaults, so the strict reads above work on it."""
  from posemachines import models
  saved = configs.cpm_small().to_dict()
  del saved['model']['batch_norm'], saved['data']['annotations'], saved['gradients']
  config = configs.upgrade(saved)
  assert config.model.batch_norm is False and config.data.annotations == ''
  assert config.gradients.every_steps == 0 and config.model.num_stages == 3
  assert models.output_names(config) == ['stage 1', 'stage 2', 'stage 3']
  recurrent = configs.recurrent_small().to_dict()
  del recurrent['loss']['occlusion']
  assert configs.upgrade(recurrent).loss.occlusion == 'include'
