"""posemachines' train step against PyTorch (eager and torch.compile), side by side.

  python benchmarks/side_by_side.py --config=experiments/cpm_mpii.py --batch_size=4 --steps=5 \
      [--systems=posemachines,torch_eager,torch_compile] [--config.model.remat=stage ...]

Every system runs in its own process (so each one's peak RSS is its own), all started together.
After each has compiled and run one untimed warm-up step, the coordinator asks them in turn for
one step at a time: ``--steps`` rounds of forward passes, then ``--steps`` rounds of train steps,
the order of the systems rotating every round, so slow drifts of a shared machine fall on all of
them alike. Reported: medians of the rounds.

* posemachines: the project's own jitted train step (``train.build``: loss, targets built on the
  device from keypoints, gradients, SGD with the release's multipliers, buffer donation) on a
  random batch shaped like the pipeline's; forward: the jitted ``model.apply`` in eval mode.
* torch_eager / torch_compile: benchmarks/torch_cpm.py, the same network, loss and SGD; forward
  under ``torch.inference_mode`` in eval mode. Targets are made once on the host.

A system name can carry overrides of its own after a colon, e.g. ``posemachines:model.remat=stage``
or ``posemachines:precision=bf16``; several are joined with '+'.

Also printed: the machine's load (``uptime``) before and after, and XLA's view of the compiled
posemachines step (FLOPs from cost_analysis, temp/argument/output bytes).
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

SYSTEMS = ('posemachines', 'torch_eager', 'torch_compile')
REFERENCE = 'torch_compile'


def _rss_bytes() -> int:
  return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _load_average() -> str:
  try:
    with open('/proc/loadavg') as f:
      return ' '.join(f.read().split()[:3])
  except OSError:
    return 'n/a'


def _send(stream, obj) -> None:
  stream.write(json.dumps(obj) + '\n')
  stream.flush()


# ---------------------------------------------------------------------------------------------
# Workers.


def _pm_modules():
  """(training loop module, benchmark module, objectives module) of posemachines."""
  # pylint: disable=g-import-not-at-top
  from posemachines.objectives import per_model
  from posemachines.tools import benchmark
  from posemachines.training import loop as train
  return train, benchmark, per_model


class JaxSystem:
  """posemachines' own train step and eval forward pass."""

  def __init__(self, config, batch_size: int):
    import jax  # pylint: disable=g-import-not-at-top
    train, bench, step_lib = _pm_modules()
    self.jax = jax
    self.rss_start = _rss_bytes()
    mesh = train.make_mesh()
    built = train.build(config, mesh, config.frozen)
    model, state, step_fn = built.model, built.state, built.train_step
    batch = train.shard_batch(bench.fake_batch(config, batch_size), mesh)
    rng = jax.random.key(config.seed + 1)
    t0 = time.perf_counter()
    self.compiled = step_fn.lower(state, batch, rng).compile()
    self.compile_s = time.perf_counter() - t0
    self.state, self.batch, self.rng = state, batch, rng
    crop, sigma = config.data.crop_size, config.targets.center_sigma
    images = batch['image']

    def forward(params, images):
      x, c = step_lib.model_inputs(images, crop, sigma)
      return model.apply({'params': params, **state.model_state}, x, c, train=False)

    self.forward_compiled = jax.jit(forward).lower(state.params, images).compile()
    self.images = images
    self.info = {'compile_s': self.compile_s, 'xla': _xla_info(self.compiled)}

  def train(self):
    self.state, metrics = self.compiled(self.state, self.batch, self.rng)
    self.jax.block_until_ready((self.state, metrics))
    return float(metrics['loss'])

  def forward(self):
    self.jax.block_until_ready(self.forward_compiled(self.state.params, self.images))


def _xla_info(compiled) -> dict:
  out = {}
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out['flops'] = float(cost.get('flops', 0.0))
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    m = compiled.memory_analysis()
    for n in ('temp', 'argument', 'output', 'alias'):
      out[f'{n}_bytes'] = int(getattr(m, f'{n}_size_in_bytes'))
  except Exception:  # pylint: disable=broad-except
    pass
  return out


class TorchSystem:
  """benchmarks/torch_cpm.py, eager or compiled."""

  def __init__(self, config, batch_size: int, compile: bool):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_cpm  # pylint: disable=g-import-not-at-top
    from posemachines.core import skeleton  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count() or 1)
    self.torch = torch
    self.rss_start = _rss_bytes()
    parts = skeleton.get(config.data.parts).num_parts
    self.trainer = torch_cpm.Trainer(config, parts + 1, compile=compile, seed=config.seed)
    rng = np.random.default_rng(0)
    size = config.data.crop_size
    images = torch.from_numpy(rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8))
    stride = self.trainer.model.stride
    h = -(-size // stride)
    targets = torch.from_numpy(rng.random((config.model.num_stages, batch_size, parts + 1, h, h),
                                          dtype=np.float32))
    self.x, self.c, self.t = self.trainer.prepare(images, targets)
    t0 = time.perf_counter()
    self.trainer.train_step(self.x, self.c, self.t)   # compiles the train graph under compile
    self.trainer.forward(self.x, self.c)
    self.info = {'compile_s': time.perf_counter() - t0,
                 'torch_version': torch.__version__, 'threads': torch.get_num_threads()}

  def train(self):
    return float(self.trainer.train_step(self.x, self.c, self.t))

  def forward(self):
    self.trainer.forward(self.x, self.c)


def worker_main() -> None:
  """A request (pickled) on stdin, then one command a line; one JSON line back for each."""
  header = sys.stdin.buffer.readline()
  req = pickle.loads(bytes.fromhex(header.decode().strip()))
  out = sys.stdout
  sys.stdout = sys.stderr  # libraries' prints must not mix with the replies
  name = req['system']
  if name == 'posemachines':
    system = JaxSystem(req['config'], req['batch_size'])
  else:
    system = TorchSystem(req['config'], req['batch_size'], compile=name == 'torch_compile')
  system.train()   # warm-up of each
  system.forward()
  _send(out, {'ready': True, 'rss_start_bytes': system.rss_start, **system.info})
  for line in sys.stdin:
    cmd = line.strip()
    if cmd == 'quit':
      break
    t0 = time.perf_counter()
    value = getattr(system, cmd)()
    _send(out, {'seconds': time.perf_counter() - t0, 'value': value, 'rss_bytes': _rss_bytes()})
  _send(out, {'rss_peak_bytes': _rss_bytes()})


# ---------------------------------------------------------------------------------------------
# Coordinator.


def _system_config(config, spec: str):
  """(name, its config): ``spec`` is NAME or NAME:key=value+key=value."""
  from posemachines.core import configs  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  name, _, overrides = spec.partition(':')
  if name not in SYSTEMS:
    raise SystemExit(f'unknown system {name!r}; known: {", ".join(SYSTEMS)}')
  c = config.copy_and_resolve_references()
  for item in filter(None, overrides.split('+')):
    key, _, value = item.partition('=')
    node = c
    *path, last = key.split('.')
    for p in path:
      node = node[p]
    old = node[last]
    node[last] = type(old)(value) if not isinstance(old, (tuple, list, bool)) else (
        value.lower() in ('1', 'true') if isinstance(old, bool) else eval(value))  # noqa: S307
  return name, c


def start(spec: str, config, batch_size: int):
  name, c = _system_config(config, spec)
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--worker'], cwd=ROOT,
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  req = pickle.dumps({'system': name, 'config': c, 'batch_size': batch_size})
  proc.stdin.write(req.hex() + '\n')
  proc.stdin.flush()
  return proc


def _reply(proc, spec):
  line = proc.stdout.readline()
  if not line:
    raise RuntimeError(f'{spec}: the worker ended (exit {proc.wait()})')
  return json.loads(line)


def _ask(proc, spec, cmd):
  proc.stdin.write(cmd + '\n')
  proc.stdin.flush()
  return _reply(proc, spec)


def run(config, batch_size: int, steps: int, specs, log=print) -> dict:
  load_before = _load_average()
  procs = {}
  info = {}
  # Workers set up one after another: compilation of one must not slow another's.
  for spec in specs:
    procs[spec] = start(spec, config, batch_size)
    info[spec] = _reply(procs[spec], spec)
    log(f'{spec}: ready (compile {info[spec]["compile_s"]:.1f} s, load {_load_average()})')
  times = {spec: {'forward': [], 'train': []} for spec in specs}
  for kind in ('forward', 'train'):
    for r in range(steps):
      order = specs[r % len(specs):] + specs[:r % len(specs)]
      for spec in order:
        times[spec][kind].append(_ask(procs[spec], spec, kind)['seconds'])
      log(f'{kind} round {r + 1}: ' + ', '.join(f'{s} {times[s][kind][-1]:.2f} s' for s in specs))
  results = {}
  for spec in specs:
    final = _ask(procs[spec], spec, 'quit')
    procs[spec].wait()
    results[spec] = {'forward_s': statistics.median(times[spec]['forward']),
                     'train_s': statistics.median(times[spec]['train']),
                     'forward_all': times[spec]['forward'], 'train_all': times[spec]['train'],
                     'rss_peak_bytes': final['rss_peak_bytes'], **info[spec]}
  ref = next((s for s in specs if s.split(':')[0] == REFERENCE), specs[0])
  for spec in specs:
    r = results[spec]
    r['train_img_s'] = batch_size / r['train_s']
    r['vs_reference'] = results[ref]['train_s'] / r['train_s']
    r['forward_vs_reference'] = results[ref]['forward_s'] / r['forward_s']
  return {'batch_size': batch_size, 'crop_size': config.data.crop_size, 'steps': steps,
          'reference': ref, 'load_before': load_before, 'load_after': _load_average(),
          'systems': results}


def format_table(report: dict) -> str:
  ref = report['reference']
  lines = [f"{report['crop_size']}x{report['crop_size']}, batch {report['batch_size']}, medians of "
           f"{report['steps']} alternating steps; load average before {report['load_before']}, "
           f"after {report['load_after']}",
           f"{'system':<40} {'fwd s/step':>10} {'train s/step':>12} {'train img/s':>11} "
           f"{'fwd vs ref':>10} {'vs ' + ref:>18} {'peak RSS GiB':>12}"]
  for spec, r in report['systems'].items():
    lines.append(f"{spec:<40} {r['forward_s']:>10.3f} {r['train_s']:>12.3f} "
                 f"{r['train_img_s']:>11.4f} {r['forward_vs_reference']:>10.2f} "
                 f"{r['vs_reference']:>18.2f} {r['rss_peak_bytes'] / 2**30:>12.2f}")
  for spec, r in report['systems'].items():
    xla = r.get('xla')
    if xla:
      lines.append(f"{spec}: XLA train step {xla.get('flops', 0) / 1e9:,.0f} GFLOP "
                   f"(cost_analysis), temp {xla.get('temp_bytes', 0) / 2**30:.2f} GiB, "
                   f"arguments {xla.get('argument_bytes', 0) / 2**30:.2f} GiB, "
                   f"compile {r['compile_s']:.1f} s")
  return '\n'.join(lines)


def main(argv=None) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', os.path.join(ROOT, 'experiments/cpm_mpii.py'),
                                  'Experiment config file.', lock_config=False)
  flags.DEFINE_integer('batch_size', 4, 'Batch size.')
  flags.DEFINE_integer('steps', 5, 'Timed rounds of each kind (forward, train).')
  flags.DEFINE_list('systems', list(SYSTEMS), 'Systems to compare (NAME[:key=value+...]).')
  flags.DEFINE_string('json_out', '', 'Also write the report as JSON to this file.')

  def _main(args):
    if len(args) > 1:
      raise app.UsageError(f'Unexpected arguments: {args[1:]}')
    fl = flags.FLAGS
    report = run(fl.config, fl.batch_size, fl.steps, list(fl.systems),
                 log=lambda s: print(s, flush=True))
    print(format_table(report))
    if fl.json_out:
      with open(fl.json_out, 'w') as f:
        json.dump(report, f, indent=1)

  app.run(_main, argv)


if __name__ == '__main__':
  if '--worker' in sys.argv:
    worker_main()
  else:
    main()
