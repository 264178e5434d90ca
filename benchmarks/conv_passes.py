"""Per-convolution timings of the three passes (forward, input gradient, weight gradient) of every
distinct convolution of a CPM config, in each form of posemachines/models/ops.py, under XLA CPU
flag settings, and in PyTorch: all interleaved.

  python benchmarks/conv_passes.py [--config=experiments/cpm_mpii.py] [--batch_size=4]
      [--settings=xla_default,package_default] [--only=L2,T2] [--passes=fwd,dx,dw]
      [--repeats=3] [--torch] [--skip_forms=dw/rows] [--json_out=FILE]

XLA reads XLA_FLAGS once per process, so every setting (and torch) gets its own worker process,
all started together. For each convolution every worker compiles all its forms; then
``--repeats`` rounds call each (worker, form) once in turn, so the machine's drifts fall on all
of them alike. Reported: GFLOP/s (2 FLOP per multiply-add) of the median call, and seconds.

Forms (posemachines.models.ops): fwd 'lax' (lax.conv_general_dilated, NHWC x HWIO); dx
'transpose' (JAX's own transpose rule), 'conv'; dw 'transpose', 'conv', 'swap', 'rows' (see
ops.ConvForms). Settings: xla_default (XLA's own CPU flags: YNNPACK takes the convolutions it
supports), package_default (posemachines' historical --xla_cpu_experimental_ynn_fusion_type=
-individual_convolution), ynn_off (no YNN fusions).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG = '--xla_cpu_experimental_ynn_fusion_type='
# name -> XLA flags added to the environment's (None: the YNN flag left unset).
SETTINGS = {'xla_default': None, 'package_default': FLAG + '-individual_convolution',
            'ynn_off': FLAG}


def cpm_convolutions(config):
  """(name, cin, cout, kernel, size, count, needs_dx) of every distinct conv of the CPM."""
  from posemachines.core import skeleton  # pylint: disable=g-import-not-at-top
  m, size = config.model, config.data.crop_size
  out = skeleton.get(config.data.parts).num_parts + 1
  convs = []
  trunks = 2 if m.num_stages > 1 else 1
  cin, s = 3, size
  for i, (k, w, pool) in enumerate(zip(m.trunk_kernels, m.trunk_widths, m.trunk_pools)):
    convs.append((f'L{i + 1}', cin, w, k, s, trunks, i > 0))
    cin = w
    if pool:
      s = -(-(s - 3) // 2) + 1
  for i, (k, w) in enumerate(zip(m.stage1_kernels, m.stage1_widths)):
    convs.append((f'H{i + 1}', cin, w, k, s, 1, True))
    cin = w
  convs.append(('Hout', cin, out, 1, s, 1, True))
  later = m.num_stages - 1
  if later:
    convs.append(('Tf', m.trunk_widths[-1], m.stage_feature_width, m.stage_feature_kernel, s,
                  later, True))
    cin = m.stage_feature_width + out + (1 if m.use_center_map else 0)
    for i, (k, w) in enumerate(zip(m.stage_kernels, m.stage_widths)):
      convs.append((f'T{i + 1}', cin, w, k, s, later, True))
      cin = w
    convs.append(('Tout', cin, out, 1, s, later, True))
  return convs


# ---------------------------------------------------------------------------------------------
# Workers.


class JaxWorker:

  def __init__(self, batch, passes, skip_forms, dtype='float32'):
    import jax  # pylint: disable=g-import-not-at-top
    from posemachines.models import ops  # pylint: disable=g-import-not-at-top
    self.jax, self.ops = jax, ops
    self.batch, self.passes, self.skip = batch, passes, skip_forms
    self.dtype = dtype
    self.calls = {}

  def forms(self):
    ops = self.ops
    return {'fwd': ['lax'], 'dx': list(ops.INPUT_GRAD_FORMS), 'dw': list(ops.WEIGHT_GRAD_FORMS)}

  def prepare(self, conv):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    jax, ops = self.jax, self.ops
    _, cin, cout, k, s, _, needs_dx = conv
    rng = np.random.default_rng(0)
    dt = jnp.dtype(self.dtype)
    x = jnp.asarray(rng.standard_normal((self.batch, s, s, cin), dtype=np.float32), dt)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout), dtype=np.float32) * 0.01, dt)
    g = jnp.asarray(rng.standard_normal((self.batch, s, s, cout), dtype=np.float32), dt)
    pads = ((k // 2, k // 2),) * 2
    fns = {'fwd/lax': (lambda x, w: ops._conv(x, w, pads), (x, w))}  # pylint: disable=protected-access
    for f in ops.INPUT_GRAD_FORMS:
      if needs_dx:
        fns[f'dx/{f}'] = (lambda w, g, f=f: ops.input_grad(g, w, x.shape, pads, f), (w, g))
    for f in ops.WEIGHT_GRAD_FORMS:
      if f == 'rows' and k == 1:
        continue
      fns[f'dw/{f}'] = (lambda x, g, f=f: ops.weight_grad(x, g, w.shape, pads, f), (x, g))
    self.calls = {}
    for name, (fn, args) in fns.items():
      if name.split('/')[0] not in self.passes or name in self.skip:
        continue
      compiled = jax.jit(fn).lower(*args).compile()
      jax.block_until_ready(compiled(*args))
      self.calls[name] = (compiled, args)
    return sorted(self.calls)

  def run(self, name):
    compiled, args = self.calls[name]
    t0 = time.perf_counter()
    self.jax.block_until_ready(compiled(*args))
    return time.perf_counter() - t0


class TorchWorker:

  def __init__(self, batch, passes, skip_forms, dtype='float32'):
    del skip_forms, dtype
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count() or 1)
    self.torch, self.batch, self.passes = torch, batch, passes
    self.calls = {}

  def prepare(self, conv):
    torch = self.torch
    _, cin, cout, k, s, _, needs_dx = conv
    x = torch.randn(self.batch, cin, s, s)
    w = torch.randn(cout, cin, k, k) * 0.01
    g = torch.randn(self.batch, cout, s, s)
    p = k // 2
    calls = {'fwd/torch': lambda: torch.nn.functional.conv2d(x, w, padding=p),
             'dw/torch': lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=p)}
    if needs_dx:
      calls['dx/torch'] = lambda: torch.nn.grad.conv2d_input(x.shape, w, g, padding=p)
    self.calls = {n: c for n, c in calls.items() if n.split('/')[0] in self.passes}
    with torch.no_grad():
      for c in self.calls.values():
        c()
    return sorted(self.calls)

  def run(self, name):
    with self.torch.no_grad():
      t0 = time.perf_counter()
      self.calls[name]()
      return time.perf_counter() - t0


def worker_main(kind, batch, passes, skip_forms, dtype):
  out = sys.stdout
  sys.stdout = sys.stderr
  sys.path.insert(0, ROOT)
  worker = (TorchWorker if kind == 'torch' else JaxWorker)(batch, passes, skip_forms, dtype)
  out.write(json.dumps({'ready': True}) + '\n')
  out.flush()
  for line in sys.stdin:
    cmd = json.loads(line)
    if cmd['op'] == 'quit':
      break
    result = worker.prepare(tuple(cmd['conv'])) if cmd['op'] == 'prepare' else worker.run(
        cmd['name'])
    out.write(json.dumps(result) + '\n')
    out.flush()


# ---------------------------------------------------------------------------------------------
# Coordinator.


def _load_config(path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('cfg', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


class Worker:

  def __init__(self, setting, args):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if setting != 'torch':
      kept = [f for f in env.get('XLA_FLAGS', '').split() if not f.startswith(FLAG)]
      if SETTINGS[setting] is not None:
        kept.append(SETTINGS[setting])
      env['XLA_FLAGS'] = ' '.join(kept)
      env['POSEMACHINES_CPU_FLAGS'] = '0'
    self.proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--worker', setting,
         '--batch_size', str(args.batch_size), '--passes', args.passes,
         '--skip_forms', args.skip_forms, '--dtype', args.dtype], env=env, cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    self.setting = setting
    self.read()

  def read(self):
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f'{self.setting}: worker ended (exit {self.proc.wait()})')
    return json.loads(line)

  def ask(self, **cmd):
    self.proc.stdin.write(json.dumps(cmd) + '\n')
    self.proc.stdin.flush()
    return self.read()


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--config', default=os.path.join(ROOT, 'experiments/cpm_mpii.py'))
  ap.add_argument('--batch_size', type=int, default=4)
  ap.add_argument('--settings', default='xla_default,package_default')
  ap.add_argument('--only', default='')
  ap.add_argument('--passes', default='fwd,dx,dw')
  ap.add_argument('--repeats', type=int, default=3)
  ap.add_argument('--skip_forms', default='', help='e.g. dw/rows,dx/transpose')
  ap.add_argument('--torch', action='store_true')
  ap.add_argument('--dtype', default='float32', help='JAX inputs: float32 or bfloat16')
  ap.add_argument('--worker', default='')
  ap.add_argument('--json_out', default='')
  args = ap.parse_args()
  if args.worker:
    return worker_main(args.worker, args.batch_size, args.passes.split(','),
                       [f for f in args.skip_forms.split(',') if f], args.dtype)
  sys.path.insert(0, ROOT)
  convs = cpm_convolutions(_load_config(args.config))
  if args.only:
    convs = [c for c in convs if c[0] in args.only.split(',')]
  settings = [s for s in args.settings.split(',') if s] + (['torch'] if args.torch else [])
  workers = [Worker(s, args) for s in settings]
  with open('/proc/loadavg') as f:
    load_before = ' '.join(f.read().split()[:3])
  rows = []
  for conv in convs:
    name, cin, cout, k, s, count, _ = conv
    gflop = 2.0 * args.batch_size * s * s * k * k * cin * cout / 1e9
    names = {w.setting: w.ask(op='prepare', conv=list(conv)) for w in workers}
    times = {(w.setting, n): [] for w in workers for n in names[w.setting]}
    for _ in range(args.repeats):
      for w in workers:
        for n in names[w.setting]:
          times[(w.setting, n)].append(w.ask(op='run', name=n))
    for (setting, n), ts in times.items():
      sec = statistics.median(ts)
      kind, form = n.split('/')
      rows.append({'conv': name, 'cin': cin, 'cout': cout, 'k': k, 'size': s, 'count': count,
                   'pass': kind, 'setting': setting, 'form': form, 'seconds': sec,
                   'gflop': gflop, 'gflops': gflop / sec})
    best = {}
    for r in rows[-len(times):]:
      key = r['pass']
      best.setdefault(key, []).append(f"{r['setting']}/{r['form']} {r['gflops']:.0f}")
    print(f'{name} ({cin}->{cout}, {k}x{k}, {s}x{s}, x{count}, {gflop:.1f} GFLOP): ' +
          '; '.join(f"{p}: {', '.join(v)}" for p, v in best.items()), flush=True)
  for w in workers:
    w.proc.stdin.write(json.dumps({'op': 'quit'}) + '\n')
    w.proc.stdin.flush()
    w.proc.wait()
  with open('/proc/loadavg') as f:
    load_after = ' '.join(f.read().split()[:3])
  print(f'load average before {load_before}, after {load_after}')
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump({'rows': rows, 'load_before': load_before, 'load_after': load_after}, f)


if __name__ == '__main__':
  main()
