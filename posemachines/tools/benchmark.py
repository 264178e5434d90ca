"""Speed and memory of a config's model: the forward pass and the real train step.

  python -m posemachines.benchmark --config=experiments/cpm_mpii.py [--batch_size=4] [--steps=N]
      [--warmup=1] [--json] [--compare_cpu_flags] [--config.x=y ...]

Inputs are random (no dataset): a batch shaped like the pipeline's train batch (image uint8
[B, S, S, 3], keypoints [B, P, 3], visible [B, P], others [B, K, P, 3]) at the config's crop size,
split over every device along the 'data' mesh axis as training does.

* forward: ``model.apply`` in eval mode, jitted, on the normalised image and center map that
  ``per_model.model_inputs`` builds.
* train: the jitted train step of ``train.build`` (loss, gradients, optimizer update).

Each is compiled first (trace, lowering and XLA compilation, timed apart), run ``--warmup``
untimed steps, then timed over ``--steps`` steps (default 5 forward, 3 train); the median and the
best step are reported. GFLOP per image counts convolutions and matmuls of the forward pass
(``flops.forward_flops``, 2 FLOP per multiply-add); the train step's from XLA's cost analysis
of the compiled step.

Memory: each measurement runs in a fresh subprocess, which reports its peak RSS (ru_maxrss) and
its RSS once the libraries are imported, before anything is built; where the backend tracks it,
the devices' ``peak_bytes_in_use``; and XLA's compiled memory analysis (temp + argument + output
bytes, per device). Separate processes also keep posemachines.train and posemachines.summary
apart: both define the absl flag --config.

``--compare_cpu_flags`` (CPU) measures both under three XLA_FLAGS settings, set before JAX starts
in each subprocess: XLA's default (POSEMACHINES_CPU_FLAGS=0), the package's default
(posemachines.CPU_XLA_DEFAULT) and all YNN fusions off, with images/s relative to the first.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import posemachines
from posemachines import models
from posemachines.core import skeleton, validate
from posemachines.objectives import per_model
from posemachines.tools import abstract, flops
from posemachines.training import loop as train

TRAIN_FLOP_FACTOR = 3
FLOP_CONVENTION = ('forward: convolutions and matmuls, 2 FLOP per multiply-add; train step: XLA\'s '
                   'cost analysis of the compiled step (padding taps not counted), or '
                   f'{TRAIN_FLOP_FACTOR} x forward where XLA reports none')
DEFAULT_STEPS = {'forward': 5, 'train': 3, 'loop': 60}
# What every report says of the machine it ran on (from _environment()).
ENVIRONMENT_KEYS = ('platform', 'device_kind', 'num_devices', 'jax_version', 'jaxlib_version',
                    'xla_flags')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, description, value of the YNN fusion flag; None: the flag unset and the package's off).
CPU_FLAG_SETTINGS = (
    ('xla_default', "XLA's default (POSEMACHINES_CPU_FLAGS=0)", None),
    ('package_default', 'package default', posemachines.CPU_XLA_DEFAULT),
    ('ynn_off', 'all YNN fusions off', ''),
)


class BenchmarkError(ValueError):
  """A setting the benchmark cannot run (batch size, backend)."""


# ---------------------------------------------------------------------------------------------
# Inputs.


def fake_batch(config, batch_size: int, seed: int = 0) -> dict:
  """Random numpy train batch with the pipeline's keys, dtypes and shapes."""
  rng = np.random.default_rng(seed)
  size = config.data.crop_size
  parts = skeleton.get(config.data.parts).num_parts

  def people(*lead):
    xy = rng.uniform(0, size - 1, lead + (parts, 2))
    annotated = rng.random(lead + (parts, 1)) < 0.9
    return np.concatenate([xy, annotated], axis=-1).astype(np.float32)

  keypoints = people(batch_size)
  visible = keypoints[..., 2] * (rng.random((batch_size, parts)) < 0.8)
  return {'image': rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8),
          'keypoints': keypoints, 'visible': visible.astype(np.float32),
          'others': people(batch_size, config.data.max_others)}


def check_batch_size(batch_size: int, num_devices: int) -> None:
  if batch_size < 1 or batch_size % num_devices:
    raise BenchmarkError(f'batch size {batch_size} must be a positive multiple of the '
                         f'{num_devices} devices (the batch is split over all of them); '
                         'set --batch_size')


def _mesh_and_shardings():
  mesh = jax.make_mesh((jax.device_count(),), ('data',))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return mesh, split, replicated


def _shard(batch: dict, sharding) -> dict:
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# Measurement.


def _rss_bytes() -> int:
  """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if sys.platform == 'darwin' else rss * 1024)


def _compile(jitted, *args):
  """(compiled executable, seconds to trace, lower and compile)."""
  t0 = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _memory_analysis(compiled) -> dict | None:
  """XLA's compiled memory analysis in bytes (per device), where the backend gives one."""
  try:
    m = compiled.memory_analysis()
  except (NotImplementedError, RuntimeError, AttributeError):
    return None
  if m is None:
    return None
  names = ('temp', 'argument', 'output', 'alias', 'generated_code')
  out = {f'{n}_bytes': int(getattr(m, f'{n}_size_in_bytes'))
         for n in names if hasattr(m, f'{n}_size_in_bytes')}
  out['total_bytes'] = sum(out.get(f'{n}_bytes', 0) for n in ('temp', 'argument', 'output'))
  return out


def _device_peak_bytes() -> int | None:
  """Largest ``peak_bytes_in_use`` over the local devices, where the backend reports it."""
  peaks = []
  for d in jax.local_devices():
    try:
      stats = d.memory_stats()
    except (NotImplementedError, RuntimeError):
      stats = None
    if stats and 'peak_bytes_in_use' in stats:
      peaks.append(int(stats['peak_bytes_in_use']))
  return max(peaks) if peaks else None


def _time_steps(call, steps: int, warmup: int) -> list[float]:
  """Seconds per call of ``call()`` (waited on) over ``steps`` calls after ``warmup`` more."""
  for _ in range(warmup):
    jax.block_until_ready(call())
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - t0)
  return times


def _environment() -> dict:
  device = jax.devices()[0]
  try:
    jaxlib_version = importlib.metadata.version('jaxlib')
  except importlib.metadata.PackageNotFoundError:
    jaxlib_version = None
  return {'platform': device.platform, 'device_kind': device.device_kind,
          'num_devices': jax.device_count(), 'jax_version': jax.__version__,
          'jaxlib_version': jaxlib_version, 'xla_flags': os.environ.get('XLA_FLAGS', '')}


def _result(times, batch_size: int, gflop_per_image, **extra) -> dict:
  """Timings, rates and memory of one measurement."""
  median, best = statistics.median(times), min(times)
  out = {'batch_size': batch_size, 'steps': len(times), 'step_s': times, 'median_s': median,
         'min_s': best, 'images_per_sec': batch_size / median,
         'images_per_sec_best': batch_size / best, 'gflop_per_image': gflop_per_image,
         'gflops_per_sec': None, 'gflops_per_sec_best': None}
  if gflop_per_image is not None:
    out['gflops_per_sec'] = gflop_per_image * out['images_per_sec']
    out['gflops_per_sec_best'] = gflop_per_image * out['images_per_sec_best']
  out.update(extra)
  out.update(device_peak_bytes=_device_peak_bytes(), rss_peak_bytes=_rss_bytes(),
             **_environment())
  return out


def random_params(model, x, c, sharding, seed: int = 0):
  """He-normal kernels and zero biases in the shapes of ``model.init``, drawn on the host (XLA
  compiles random initialisers slowly on CPU and their values do not change the speed)."""
  rng = np.random.default_rng(seed)

  def leaf(a):
    if a.ndim < 2:
      return np.zeros(a.shape, a.dtype)
    std = np.sqrt(2.0 / np.prod(a.shape[:-1]))
    return (rng.standard_normal(a.shape) * std).astype(a.dtype)

  abstract = jax.eval_shape(model.init, jax.random.key(0), x, c)
  return jax.device_put(jax.tree.map(leaf, abstract), sharding)


def forward_gflop(model, crop_size: int) -> float:
  """GFLOP per image of the forward pass (convolutions and matmuls)."""
  counts = flops.forward_flops(model, crop_size)
  return (counts.get('conv_general_dilated', 0.) + counts.get('dot_general', 0.)) / 1e9


def measure_forward(config, batch_size: int, steps: int = DEFAULT_STEPS['forward'],
                    warmup: int = 1) -> dict:
  """Eval-mode forward pass: compile time, step times, images/s, GFLOP/s and memory."""
  rss_start = _rss_bytes()
  check_batch_size(batch_size, jax.device_count())
  model = models.build(config)
  crop = config.data.crop_size
  _, split, replicated = _mesh_and_shardings()
  images = _shard({'image': fake_batch(config, batch_size)['image']}, split)['image']
  x, c = per_model.model_inputs(images, crop, config.targets.center_sigma)
  params = random_params(model, x[:1], c[:1], replicated, config.seed)
  apply = jax.jit(lambda p, x, c: model.apply(p, x, c, train=False))
  compiled, compile_s = _compile(apply, params, x, c)
  times = _time_steps(lambda: compiled(params, x, c), steps, warmup)
  return _result(times, batch_size, forward_gflop(model, crop), kind='forward',
                 model=type(model).__name__, crop_size=crop,
                 parameters=abstract.count_parameters(model, crop), compile_s=compile_s,
                 warmup=warmup, xla_memory=_memory_analysis(compiled), rss_start_bytes=rss_start)


def measure_train(config, batch_size: int, steps: int = DEFAULT_STEPS['train'], warmup: int = 1,
                  gflop_per_image: float | None = None) -> dict:
  """The real jitted train step of ``train.build``; ``gflop_per_image`` is the forward's.

  Imports posemachines.train, so it cannot run in a process that imported posemachines.summary
  (see ``run_isolated``)."""
  rss_start = _rss_bytes()
  check_batch_size(batch_size, jax.device_count())
  mesh = train.make_mesh()
  built = train.build(config, mesh)
  state, step_fn = built.state, built.train_step
  batch = train.shard_batch(fake_batch(config, batch_size), mesh)
  rng = jax.random.key(config.seed + 1)
  compiled, compile_s = _compile(step_fn, state, batch, rng)
  holder = [state]

  def call():
    holder[0], metrics = compiled(holder[0], batch, rng)
    return holder[0], metrics

  times = _time_steps(call, steps, warmup)
  total = flops.compiled_flops(compiled)  # XLA's count of the whole compiled step
  if total is not None:
    gflop = total / batch_size / 1e9
  else:
    gflop = None if gflop_per_image is None else TRAIN_FLOP_FACTOR * gflop_per_image
  return _result(times, batch_size, gflop, kind='train', compile_s=compile_s, warmup=warmup,
                 xla_memory=_memory_analysis(compiled), rss_start_bytes=rss_start)


def measure_loop(config, batch_size: int, steps: int = DEFAULT_STEPS['loop'], warmup: int = 1,
                 window: int = 10) -> dict:
  """The training loop itself (``train.train_and_evaluate``: the config's input pipeline,
  device prefetching, the jitted step, logging, one asynchronous checkpoint) in a temporary
  workdir: ``warmup`` windows of ``window`` steps (the first holds compilation), then at least
  ``steps`` timed steps. Its rates are the ones training logs as ``images_per_sec``, one per
  window."""
  rss_start = _rss_bytes()
  check_batch_size(batch_size, jax.device_count())
  total = (max(warmup, 1) + -(-steps // window)) * window
  config = config.copy_and_resolve_references()
  config.update(dict(batch_size=batch_size, num_train_steps=total, log_every_steps=window,
                     checkpoint_every_steps=total, eval_every_steps=total,
                     num_eval_examples=config.eval_batch_size, num_pictures=0))
  config.gradients.every_steps, config.gradients.at_steps = 0, ()
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    wall = time.perf_counter() - t0
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      rates = [line['images_per_sec'] for line in map(json.loads, f) if 'images_per_sec' in line]
  timed = rates[max(warmup, 1):]
  times = [batch_size / r for r in timed]   # seconds per step of each timed window
  return _result(times, batch_size, None, kind='loop', window=window,
                 warmup_windows=max(warmup, 1), windows=len(timed), wall_s=wall,
                 rss_start_bytes=rss_start)


def loop_versus_step(config, batch_size: int | None = None, steps: int | None = None,
                     warmup: int = 1, env: dict | None = None) -> dict:
  """The bare train step, then the training loop on the same config, one after the other, each
  in its own subprocess; the loop's images/s as a fraction of the step's."""
  batch_size = _checked(config, batch_size, steps)
  steps = steps or DEFAULT_STEPS['loop']
  step = run_isolated('train', config, batch_size, steps, warmup, env)
  loop = run_isolated('loop', config, batch_size, steps, warmup, env)
  return {'batch_size': batch_size, 'steps': steps, 'train': step, 'loop': loop,
          'loop_fraction': loop['images_per_sec'] / step['images_per_sec'],
          **{k: step[k] for k in ENVIRONMENT_KEYS}}


def format_loop(r: dict) -> str:
  s, l = r['train'], r['loop']
  return '\n'.join([
      f"{r['platform']} ({r['device_kind']}) x{r['num_devices']}, batch {r['batch_size']}",
      f"bare train step: {s['images_per_sec']:.4g} img/s (median of {s['steps']} steps, "
      f"{s['median_s']:.4f} s/step)",
      f"training loop:   {l['images_per_sec']:.4g} img/s (median of {l['windows']} windows of "
      f"{l['window']} steps after {l['warmup_windows']} warm-up window(s); "
      f"{l['median_s']:.4f} s/step)",
      f"loop / step: {r['loop_fraction']:.1%}"])


MEASURES = {'forward': measure_forward, 'train': measure_train, 'loop': measure_loop}


# ---------------------------------------------------------------------------------------------
# Subprocesses.


def run_isolated(kind: str, config, batch_size: int, steps: int, warmup: int = 1,
                 env: dict | None = None, **kwargs) -> dict:
  """``MEASURES[kind]`` in a fresh Python process with environment ``env`` (default: ours)."""
  env = dict(os.environ if env is None else env)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  payload = pickle.dumps({'kind': kind, 'config': config, 'batch_size': batch_size,
                          'steps': steps, 'warmup': warmup, 'kwargs': kwargs})
  proc = subprocess.run([sys.executable, '-c', 'from posemachines.tools import benchmark; '
                         'benchmark.worker_main()'], input=payload, capture_output=True,
                        env=env, check=False)
  stdout = proc.stdout.decode(errors='replace').strip()
  if proc.returncode or not stdout:
    tail = proc.stderr.decode(errors='replace')[-4000:]
    raise RuntimeError(f'The {kind} measurement failed (exit {proc.returncode}):\n{tail}')
  result = json.loads(stdout.splitlines()[-1])
  if 'error' in result:
    raise BenchmarkError(result['error'])
  return result


def worker_main() -> None:
  """Subprocess entry: a pickled request on stdin, one JSON line (the result) on stdout."""
  req = pickle.load(sys.stdin.buffer)
  try:
    result = MEASURES[req['kind']](req['config'], req['batch_size'], req['steps'],
                                   req['warmup'], **req['kwargs'])
  except BenchmarkError as e:
    result = {'error': str(e)}
  sys.stdout.write(json.dumps(result) + '\n')
  sys.stdout.flush()


def _checked(config, batch_size: int | None, steps: int | None) -> int:
  """Checks the config (errors.BadFlag, one line per bad field) and --steps before any
  subprocess starts; the batch size (default: the config's)."""
  validate.check(config)
  if steps is not None and steps < 1:
    raise BenchmarkError(f'--steps must be at least 1, got {steps}')
  return config.batch_size if batch_size is None else batch_size


def benchmark(config, batch_size: int | None = None, steps: int | None = None, warmup: int = 1,
              env: dict | None = None) -> dict:
  """Forward then train step, each in its own subprocess; the report as a dict."""
  batch_size = _checked(config, batch_size, steps)
  fwd = run_isolated('forward', config, batch_size, steps or DEFAULT_STEPS['forward'], warmup,
                     env)
  trn = run_isolated('train', config, batch_size, steps or DEFAULT_STEPS['train'], warmup, env,
                     gflop_per_image=fwd['gflop_per_image'])
  return {'model': fwd['model'], 'crop_size': fwd['crop_size'], 'batch_size': batch_size,
          'parameters': fwd['parameters'], 'gflop_per_image_forward': fwd['gflop_per_image'],
          'gflop_per_image_train': trn['gflop_per_image'], 'flop_convention': FLOP_CONVENTION,
          **{k: fwd[k] for k in ENVIRONMENT_KEYS}, 'forward': fwd, 'train': trn}


def setting_env(value: str | None, base: dict | None = None) -> dict:
  """``base`` (default: our environment) with XLA's YNN fusion flag set to ``value``; None
  leaves the flag unset and turns the package's default off (POSEMACHINES_CPU_FLAGS=0)."""
  env = dict(os.environ if base is None else base)
  kept = [f for f in env.get('XLA_FLAGS', '').split()
          if not f.startswith(posemachines.CPU_XLA_FLAG)]
  if value is None:
    env['POSEMACHINES_CPU_FLAGS'] = '0'
  else:
    env.pop('POSEMACHINES_CPU_FLAGS', None)
    kept.append(posemachines.CPU_XLA_FLAG + value)
  env['XLA_FLAGS'] = ' '.join(kept)
  return env


def compare_cpu_flags(config, batch_size: int | None = None, steps: int | None = None,
                      warmup: int = 1) -> dict:
  """``benchmark`` under each of CPU_FLAG_SETTINGS, with images/s relative to the first."""
  rows = []
  for name, description, value in CPU_FLAG_SETTINGS:
    report = benchmark(config, batch_size, steps, warmup, setting_env(value))
    if report['platform'] != 'cpu':
      raise BenchmarkError(f'--compare_cpu_flags measures the CPU backend, but JAX runs on '
                           f'{report["platform"]}; set JAX_PLATFORMS=cpu to compare anyway')
    rows.append({'setting': name, 'description': description, 'report': report})
  return comparison(rows)


def comparison(rows: list[dict]) -> dict:
  """Adds each row's images/s relative to the first row's; names the fastest train step."""
  for row in rows:
    for kind in ('forward', 'train'):
      first = rows[0]['report'][kind]['images_per_sec']
      row[f'{kind}_ratio'] = row['report'][kind]['images_per_sec'] / first
  fastest = max(rows, key=lambda r: r['report']['train']['images_per_sec'])
  return {'settings': rows, 'fastest_train': fastest['setting'],
          'fastest_train_xla_flags': fastest['report']['xla_flags']}


# ---------------------------------------------------------------------------------------------
# Output.


def _mib(n) -> str:
  return 'n/a' if n is None else f'{n / 2**20:,.1f}'


def _fmt(x, spec: str) -> str:
  return 'n/a' if x is None else format(x, spec)


def _header(r: dict) -> list[str]:
  return [f"{r['model']} at {r['crop_size']}x{r['crop_size']}, batch {r['batch_size']}, "
          f"{r['parameters']:,} parameters",
          f"device: {r['device_kind']} ({r['platform']}) x{r['num_devices']}; jax "
          f"{r['jax_version']}, jaxlib {r['jaxlib_version']}",
          f"XLA_FLAGS: {r['xla_flags'] or '(none)'}",
          f"GFLOP per image: forward {r['gflop_per_image_forward']:.3f}, train step "
          f"{r['gflop_per_image_train']:.3f} ({FLOP_CONVENTION})"]


def format_report(r: dict) -> str:
  f, t = r['forward'], r['train']
  rows = [
      ('compile s (trace+lower+XLA)', lambda m: f"{m['compile_s']:.2f}"),
      ('timed steps (+ warm-up)', lambda m: f"{m['steps']} (+{m['warmup']})"),
      ('median step s', lambda m: f"{m['median_s']:.4f}"),
      ('min step s', lambda m: f"{m['min_s']:.4f}"),
      ('images/s (median)', lambda m: f"{m['images_per_sec']:.4g}"),
      ('images/s (best)', lambda m: f"{m['images_per_sec_best']:.4g}"),
      ('GFLOP/s (median)', lambda m: _fmt(m['gflops_per_sec'], '.1f')),
      ('GFLOP/s (best)', lambda m: _fmt(m['gflops_per_sec_best'], '.1f')),
      ('peak RSS MiB', lambda m: _mib(m['rss_peak_bytes'])),
      ('RSS after imports MiB', lambda m: _mib(m['rss_start_bytes'])),
      ('device peak MiB', lambda m: _mib(m['device_peak_bytes'])),
      ('XLA temp+arg+out MiB', lambda m: _mib((m['xla_memory'] or {}).get('total_bytes'))),
      ('  temp MiB', lambda m: _mib((m['xla_memory'] or {}).get('temp_bytes'))),
  ]
  lines = _header(r) + ['', f"{'':<28} {'forward':>12} {'train step':>12}"]
  lines += [f'{label:<28} {fn(f):>12} {fn(t):>12}' for label, fn in rows]
  lines.append('(RSS: each in a fresh process; XLA memory analysis: per device)')
  return '\n'.join(lines)


def format_comparison(c: dict) -> str:
  first = c['settings'][0]['report']
  labels = [f"({row['setting']}) {row['description']}" for row in c['settings']]
  w = max(map(len, labels + ['setting']))
  lines = _header({**first, 'xla_flags': '(per setting below)'}) + ['']
  lines.append(f"{'setting':<{w}} {'train img/s':>11} {'ratio':>6} {'fwd img/s':>10} "
               f"{'ratio':>6} {'train GFLOP/s':>13} {'train compile s':>15} "
               f"{'train RSS MiB':>13}")
  for label, row in zip(labels, c['settings']):
    f, t = row['report']['forward'], row['report']['train']
    lines.append(f"{label:<{w}} {t['images_per_sec']:>11.4g} {row['train_ratio']:>6.2f} "
                 f"{f['images_per_sec']:>10.4g} {row['forward_ratio']:>6.2f} "
                 f"{_fmt(t['gflops_per_sec'], '.1f'):>13} {t['compile_s']:>15.2f} "
                 f"{_mib(t['rss_peak_bytes']):>13}")
  lines.append('')
  lines += [f"  {row['setting']}: XLA_FLAGS={row['report']['xla_flags'] or '(none)'}"
            for row in c['settings']]
  lines.append(f"fastest train step: {c['fastest_train']} "
               f"(XLA_FLAGS={c['fastest_train_xla_flags'] or '(none)'})")
  return '\n'.join(lines)
