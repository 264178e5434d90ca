"""Per-convolution timings of the three passes (forward, input gradient, weight gradient) of every
distinct convolution of a CPM config, in several formulations and under XLA CPU flag settings.

  python benchmarks/conv_passes.py [--config=experiments/cpm_mpii.py] [--batch_size=4]
      [--settings=xla_default,package_default] [--only=L2,T2] [--repeats=3] [--torch]

Each flag setting runs in its own process (XLA reads XLA_FLAGS once). Formulations:

  fwd  lax        lax.conv_general_dilated, NHWC x HWIO
  dx   transpose  JAX's transpose rule of the forward conv (what autodiff emits)
       conv       an explicit forward-form conv of the output gradient with the flipped,
                  in/out-swapped kernel (HWIO)
  dw   transpose  JAX's transpose rule
       conv       an explicit conv in canonical form with transposed operands:
                  x as [Cin, H, W, B] (batch = Cin), dy as [H, W, B, Cout] (the kernel)
       conv3d     the same with a third, size-1 spatial dimension (a form YNNPACK does not take)
       rows       per kernel row: patches of that row (kw shifts stacked on channels), one dot
(the first three of each are posemachines.models.ops' forms). The forms of one pass are timed in
alternating rounds.

Reported: GFLOP/s (2 FLOP per multiply-add) from the median of --repeats timed calls, and for
--torch the same passes in PyTorch (torch.nn.grad).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {'xla_default': None, 'package_default': '-individual_convolution', 'ynn_off': ''}
FLAG = '--xla_cpu_experimental_ynn_fusion_type='


def cpm_convolutions(config):
  """(name, cin, cout, kernel, size, count, needs_dx) of every distinct conv of the CPM."""
  m, size = config.model, config.data.crop_size
  from posemachines import skeleton  # pylint: disable=g-import-not-at-top
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
# JAX formulations.


def jax_formulations():
  """{pass: {form: fn}}: the forms of posemachines/models/ops.py, plus a per-row im2col dot."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from posemachines.models import ops  # pylint: disable=g-import-not-at-top

  def pads(w):
    p = w.shape[0] // 2
    return ((p, p), (p, p))

  def fwd(x, w):
    return ops._conv(x, w, pads(w))  # pylint: disable=protected-access

  def dx(form):
    return lambda x, w, g: ops.input_grad(g, w, x.shape, pads(w), form)

  def dw(form):
    return lambda x, w, g: ops.weight_grad(x, g, w.shape, pads(w), form)

  def dw_rows(x, w, g):
    k = w.shape[0]
    p = k // 2
    _, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    rows = []
    for i in range(k):
      patches = jnp.concatenate([xp[:, i:i + h, j:j + wd] for j in range(k)], axis=-1)
      rows.append(jnp.einsum('bhwk,bhwo->ko', patches, g).reshape(k, c, -1))
    return jnp.stack(rows)

  return {'fwd': {'lax': fwd},
          'dx': {f: dx(f) for f in ops.INPUT_GRAD_FORMS},
          'dw': {**{f: dw(f) for f in ops.WEIGHT_GRAD_FORMS}, 'rows': dw_rows}}


def _compile(fn, args):
  import jax  # pylint: disable=g-import-not-at-top
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  return compiled


def _interleaved(calls: dict, repeats: int) -> dict:
  """Median seconds of each call, timed in alternating rounds."""
  import jax  # pylint: disable=g-import-not-at-top
  times = {k: [] for k in calls}
  for _ in range(repeats):
    for k, call in calls.items():
      t0 = time.perf_counter()
      jax.block_until_ready(call())
      times[k].append(time.perf_counter() - t0)
  return {k: statistics.median(v) for k, v in times.items()}


def run_jax(convs, batch, repeats, passes, skip_rows_above, skip_forms=()):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  forms = jax_formulations()
  rng = np.random.default_rng(0)
  rows = []
  for name, cin, cout, k, s, count, needs_dx in convs:
    x = jnp.asarray(rng.standard_normal((batch, s, s, cin), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout), dtype=np.float32) * 0.01)
    g = jnp.asarray(rng.standard_normal((batch, s, s, cout), dtype=np.float32))
    gflop = 2.0 * batch * s * s * k * k * cin * cout / 1e9
    for kind, fns in forms.items():
      if kind not in passes or (kind == 'dx' and not needs_dx):
        continue
      calls = {}
      for form, fn in fns.items():
        if form == 'rows' and (k == 1 or s * s * k * cin > skip_rows_above):
          continue
        if f'{kind}/{form}' in skip_forms:
          continue
        args = (x, w) if kind == 'fwd' else (x, w, g)
        compiled = _compile(fn, args)
        calls[form] = functools.partial(compiled, *args)
      for form, sec in _interleaved(calls, repeats).items():
        rows.append({'conv': name, 'pass': kind, 'form': form, 'seconds': sec,
                     'gflops': gflop / sec, 'count': count, 'gflop': gflop})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
  return rows


def run_torch(convs, batch, repeats, passes):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  rows = []
  for name, cin, cout, k, s, count, needs_dx in convs:
    x = torch.randn(batch, cin, s, s)
    w = torch.randn(cout, cin, k, k) * 0.01
    g = torch.randn(batch, cout, s, s)
    p = k // 2
    gflop = 2.0 * batch * s * s * k * k * cin * cout / 1e9
    fns = {'fwd': lambda: torch.nn.functional.conv2d(x, w, padding=p),
           'dx': lambda: torch.nn.grad.conv2d_input(x.shape, w, g, padding=p),
           'dw': lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=p)}
    for kind, fn in fns.items():
      if kind not in passes or (kind == 'dx' and not needs_dx):
        continue
      with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
          t0 = time.perf_counter()
          fn()
          times.append(time.perf_counter() - t0)
      sec = statistics.median(times)
      rows.append({'conv': name, 'pass': kind, 'form': 'torch', 'seconds': sec,
                   'gflops': gflop / sec, 'count': count, 'gflop': gflop})
      print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
  return rows


def _load_config(path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('cfg', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def worker(args):
  sys.path.insert(0, ROOT)
  convs = cpm_convolutions(_load_config(args.config))
  if args.only:
    convs = [c for c in convs if c[0] in args.only.split(',')]
  passes = args.passes.split(',')
  if args.worker == 'torch':
    rows = run_torch(convs, args.batch_size, args.repeats, passes)
  else:
    rows = run_jax(convs, args.batch_size, args.repeats, passes, args.skip_rows_above,
                   [f for f in args.skip_forms.split(',') if f])
  print(json.dumps(rows))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--config', default=os.path.join(ROOT, 'experiments/cpm_mpii.py'))
  ap.add_argument('--batch_size', type=int, default=4)
  ap.add_argument('--settings', default='xla_default,package_default')
  ap.add_argument('--only', default='')
  ap.add_argument('--passes', default='fwd,dx,dw')
  ap.add_argument('--repeats', type=int, default=3)
  ap.add_argument('--skip_rows_above', type=int, default=10**9,
                  help='skip the "rows" dw form when H*W*k*Cin exceeds this')
  ap.add_argument('--skip_forms', default='', help='e.g. dw/conv3d,dw/rows')
  ap.add_argument('--torch', action='store_true')
  ap.add_argument('--worker', default='')
  ap.add_argument('--json_out', default='')
  args = ap.parse_args()
  if args.worker:
    return worker(args)
  runs = [s for s in args.settings.split(',') if s] + (['torch'] if args.torch else [])
  results = {}
  for setting in runs:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    if setting != 'torch':
      kept = [f for f in env.get('XLA_FLAGS', '').split() if not f.startswith(FLAG)]
      if SETTINGS[setting] is not None:
        kept.append(FLAG + SETTINGS[setting])
      env['XLA_FLAGS'] = ' '.join(kept)
      env['POSEMACHINES_CPU_FLAGS'] = '0'
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', setting] + [
        a for a in sys.argv[1:] if not a.startswith('--settings') and a != '--torch']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
      sys.exit(f'{setting} failed:\n{proc.stderr[-3000:]}')
    results[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
  table = {}
  for setting, rows in results.items():
    for r in rows:
      table.setdefault((r['conv'], r['pass']), {})[f"{setting}/{r['form']}"] = r
  cols = sorted({c for v in table.values() for c in v})
  print(f"{'conv':<6} {'pass':<4} {'GFLOP':>7} " + ' '.join(f'{c:>22}' for c in cols))
  for (conv, kind), v in table.items():
    gflop = next(iter(v.values()))['gflop']
    print(f'{conv:<6} {kind:<4} {gflop:>7.2f} ' + ' '.join(
        f"{v[c]['gflops']:>16.0f} {v[c]['seconds']:>5.2f}" if c in v else f"{'':>22}"
        for c in cols))
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(results, f)


if __name__ == '__main__':
  main()
