"""Accelerator check: matmul ceilings, the released CPM's train step in fp32 and bf16, MFU, memory.

  python benchmarks/accelerator.py [--tiny] [--batch_sizes=16,32] [--precisions=fp32,bf16]
      [--steps=20] [--matmul_size=8192] [--json_out=FILE]

(benchmarks/accelerator.sh runs this with a time limit.) Printed, for the first local device:

* matmul ceiling: TFLOP/s of an N x N x N matrix product, median of timed calls: bfloat16 inputs
  (float32 accumulation), float32 at XLA's default precision (what fp32 training gets: TF32 on
  recent NVIDIA GPUs) and float32 at HIGHEST precision.
* per (batch size, precision): the project's own jitted train step (train.build: targets on the
  device, loss, gradients, SGD with the release's multipliers, donated state) on a random batch;
  img/s over ``--steps`` steps dispatched back to back (timed to the last one's completion),
  FLOPs per step from the compiled step's cost_analysis(), MFU = achieved FLOP/s over the
  ceiling of the same precision (bf16 -> the bf16 ceiling, fp32 -> fp32 at default precision),
  and the device's peak memory (memory_stats()['peak_bytes_in_use'], where the backend keeps it).

* loop vs bare step: ``posemachines.benchmark --loop``'s figures for the released CPM (fp32, the
  first batch size) on the built-in synthetic people at 368x368: the training loop's images/s
  (input pipeline, prefetching, logging, an asynchronous checkpoint) against the bare step's.
* artifact: a tiny CPM trained for 2 steps, exported for cpu and the accelerator, run on both;
  the largest difference of the outputs.

Every measurement runs in its own process, so each peak memory is its own. ``--tiny`` runs a
small CPM at 64x64 with small matrices: seconds on a CPU, to test the script anywhere.
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
HERE = os.path.dirname(os.path.abspath(__file__))

TINY_MODEL = dict(num_stages=3, trunk_kernels=(5, 5, 5), trunk_widths=(16, 32, 32),
                  stage1_kernels=(5, 5, 1), stage1_widths=(16, 32, 32),
                  stage_feature_width=16, stage_kernels=(5, 5, 5, 1),
                  stage_widths=(32, 32, 32, 32))


def _config(tiny: bool, precision: str):
  sys.path.insert(0, ROOT)
  from posemachines.core import configs  # pylint: disable=g-import-not-at-top
  c = configs.cpm_release(num_stages=6)   # experiments/cpm_mpii.py's model and optimizer
  c.data.dataset = 'mpii'
  if tiny:
    c.model.update(TINY_MODEL)
    c.data.crop_size = 64
    c.targets.center_sigma = 21.0 * 64 / 368
  c.precision = precision
  return c


def _peak_bytes(device):
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    return None
  return None if not stats else stats.get('peak_bytes_in_use')


def measure_matmul(size: int, repeats: int = 5) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  out = {}
  kinds = {'bf16': (jnp.bfloat16, None), 'fp32': (jnp.float32, None),
           'fp32_highest': (jnp.float32, jax.lax.Precision.HIGHEST)}
  for name, (dtype, precision) in kinds.items():
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    f = jax.jit(lambda a, b, p=precision: jnp.dot(a, b, precision=p,
                                                   preferred_element_type=jnp.float32))
    c = f.lower(a, b).compile()
    jax.block_until_ready(c(a, b))
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(c(a, b))
      times.append(time.perf_counter() - t0)
    out[name] = 2.0 * size ** 3 / statistics.median(times) / 1e12
  return {'kind': 'matmul', 'size': size, 'tflops': out}


def measure_train(tiny: bool, precision: str, batch_size: int, steps: int) -> dict:
  sys.path.insert(0, HERE)
  import jax  # pylint: disable=g-import-not-at-top
  import side_by_side  # pylint: disable=g-import-not-at-top
  train, bench, _ = side_by_side._pm_modules()  # pylint: disable=protected-access
  config = _config(tiny, precision)
  config.batch_size = batch_size
  mesh = train.make_mesh(jax.local_devices()[:1])
  built = train.build(config, mesh)
  state, step_fn = built.state, built.train_step
  batch = train.shard_batch(bench.fake_batch(config, batch_size), mesh)
  rng = jax.random.key(1)
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch, rng).compile()
  compile_s = time.perf_counter() - t0
  info = side_by_side._xla_info(compiled)  # pylint: disable=protected-access
  state, metrics = compiled(state, batch, rng)   # warm-up
  jax.block_until_ready((state, metrics))
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - t0) / steps
  return {'kind': 'train', 'precision': precision, 'batch_size': batch_size, 'steps': steps,
          'step_s': seconds, 'img_s': batch_size / seconds, 'compile_s': compile_s,
          'flops_per_step': info.get('flops'), 'loss': float(metrics['loss']),
          'peak_bytes': _peak_bytes(jax.local_devices()[0]),
          'device': jax.local_devices()[0].device_kind, 'platform': jax.default_backend()}


def _synthetic(config, data_dir: str, tiny: bool):
  """``config`` on the built-in synthetic people (no dataset on the machine), in ``data_dir``."""
  config.data.update(dict(dataset='synthetic_people', data_dir=data_dir, max_others=1,
                          synthetic_num_train=64 if tiny else 640,
                          synthetic_num_validation=16 if tiny else 32,
                          synthetic_image_size=96 if tiny else 400))
  return config


def measure_loop(tiny: bool, batch_size: int, steps: int, data_dir: str) -> dict:
  """The training loop (input pipeline, prefetching, logging, checkpoint) against the bare
  step, one after the other, on the released CPM in fp32 (posemachines.benchmark --loop)."""
  sys.path.insert(0, ROOT)
  from posemachines.tools import benchmark  # pylint: disable=g-import-not-at-top
  config = _synthetic(_config(tiny, 'fp32'), data_dir, tiny)
  r = benchmark.loop_versus_step(config, batch_size, steps)
  return {'kind': 'loop', 'batch_size': batch_size, 'step_img_s': r['train']['images_per_sec'],
          'loop_img_s': r['loop']['images_per_sec'], 'loop_fraction': r['loop_fraction']}


def measure_artifact(tiny: bool, data_dir: str) -> dict:
  """Trains the tiny CPM for 2 steps, exports it for cpu and cuda, and runs the artifact on the
  accelerator and on the CPU: the largest difference of their outputs."""
  sys.path.insert(0, ROOT)
  import tempfile  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from posemachines.tools import artifact, export  # pylint: disable=g-import-not-at-top
  from posemachines.training import loop as train  # pylint: disable=g-import-not-at-top
  config = _synthetic(_config(True, 'fp32'), data_dir, True)
  config.update(dict(batch_size=4, num_train_steps=2, log_every_steps=1,
                     checkpoint_every_steps=2, eval_every_steps=2, num_eval_examples=4,
                     eval_batch_size=4, num_pictures=0))
  accelerator = jax.local_devices()[0]
  platforms = tuple(dict.fromkeys(('cpu', 'cuda' if accelerator.platform == 'gpu'
                                   else accelerator.platform)))
  with tempfile.TemporaryDirectory() as tmp:
    train.train_and_evaluate(config, os.path.join(tmp, 'w'))
    export.export(os.path.join(tmp, 'w'), os.path.join(tmp, 'art'), platforms=platforms)
    art = artifact.load(os.path.join(tmp, 'art'))
    h, w = art.input_hw
    crops = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    outs = {}
    for device in dict.fromkeys((accelerator, jax.devices('cpu')[0])):
      with jax.default_device(device):
        params = jax.device_put(art.params, device)
        outs[device.platform] = np.asarray(art.exported.call(params, jax.device_put(crops,
                                                                                    device)))
  cpu = outs['cpu']
  other = [v for k, v in outs.items() if k != 'cpu']
  diff = float(np.max(np.abs(other[0] - cpu))) if other else 0.0
  return {'kind': 'artifact', 'platforms': list(platforms), 'ran_on': list(outs),
          'max_abs_diff': diff, 'max_abs_output': float(np.max(np.abs(cpu)))}


def _worker(args):
  if args.worker == 'matmul':
    result = measure_matmul(args.matmul_size)
  elif args.worker.startswith('loop:'):
    result = measure_loop(args.tiny, int(args.worker.split(':')[1]), args.loop_steps,
                          args.data_dir)
  elif args.worker == 'artifact':
    result = measure_artifact(args.tiny, args.data_dir)
  else:
    precision, batch = args.worker.split(':')
    result = measure_train(args.tiny, precision, int(batch), args.steps)
  print(json.dumps(result))


def _run(args, what: str, timeout: float) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), '--worker', what, '--steps', str(args.steps),
         '--matmul_size', str(args.matmul_size), '--loop_steps', str(args.loop_steps),
         '--data_dir', args.data_dir] + (['--tiny'] if args.tiny else [])
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  try:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
  except subprocess.TimeoutExpired:
    return {'error': f'{what}: over {timeout:.0f} s'}
  if proc.returncode:
    tail = proc.stderr.strip().splitlines()[-3:]
    return {'error': f'{what}: exit {proc.returncode}: {" | ".join(tail)}'}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _say(what: str, result: dict, line) -> dict:
  """Prints ``line(result)``, or what failed; returns ``result``."""
  print(f'{what}: {result["error"]}' if 'error' in result else line(result), flush=True)
  return result


def _gib(n):
  return 'n/a' if n is None else f'{n / 2**30:.2f}'


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--tiny', action='store_true', help='small model and matrices (CPU test)')
  ap.add_argument('--batch_sizes', default='')
  ap.add_argument('--precisions', default='fp32,bf16')
  ap.add_argument('--steps', type=int, default=0)
  ap.add_argument('--matmul_size', type=int, default=0)
  ap.add_argument('--budget_s', type=float, default=450.0,
                  help='time for everything; each measurement gets what is left')
  ap.add_argument('--json_out', default='')
  ap.add_argument('--loop_steps', type=int, default=0, help='timed steps of the loop check')
  ap.add_argument('--data_dir', default='', help='where the synthetic data is built '
                  '(default: a temporary directory)')
  ap.add_argument('--worker', default='')
  args = ap.parse_args()
  args.loop_steps = args.loop_steps or (10 if args.tiny else 40)
  if not args.data_dir and not args.worker:
    import tempfile  # pylint: disable=g-import-not-at-top
    args.data_dir = tempfile.mkdtemp(prefix='posemachines_accelerator_')
  args.steps = args.steps or (2 if args.tiny else 20)
  args.matmul_size = args.matmul_size or (512 if args.tiny else 8192)
  if args.worker:
    return _worker(args)
  batches = [int(b) for b in (args.batch_sizes or ('2,4' if args.tiny else '16,32')).split(',')]
  start = time.perf_counter()
  left = lambda: max(args.budget_s - (time.perf_counter() - start), 1.0)
  report = {'matmul': _run(args, 'matmul', left()), 'train': []}
  mm = report['matmul']
  if 'error' in mm:
    print(f'matmul: {mm["error"]}')
    ceilings = {}
  else:
    ceilings = {'bf16': mm['tflops']['bf16'], 'fp32': mm['tflops']['fp32']}
    print(f"matmul ceiling ({mm['size']}^3): bf16 {mm['tflops']['bf16']:.1f} TFLOP/s, "
          f"fp32 (default precision) {mm['tflops']['fp32']:.1f}, "
          f"fp32 (HIGHEST) {mm['tflops']['fp32_highest']:.1f}", flush=True)
  print(f"{'precision':<9} {'batch':>5} {'img/s':>9} {'step s':>8} {'GFLOP/step':>10} "
        f"{'TFLOP/s':>8} {'MFU':>6} {'peak GiB':>8} {'compile s':>9}", flush=True)
  for precision in args.precisions.split(','):
    for batch in batches:
      r = _run(args, f'{precision}:{batch}', left())
      report['train'].append(r)
      if 'error' in r:
        print(f'{precision:<9} {batch:>5} {r["error"]}', flush=True)
        continue
      flops = r['flops_per_step'] or 0.0
      achieved = flops / r['step_s'] / 1e12
      mfu = achieved / ceilings[precision] if ceilings.get(precision) else None
      r.update(achieved_tflops=achieved, mfu=mfu)
      print(f"{precision:<9} {batch:>5} {r['img_s']:>9.2f} {r['step_s']:>8.3f} "
            f"{flops / 1e9:>10.4g} {achieved:>8.3g} "
            f"{'n/a' if mfu is None else f'{100 * mfu:.1f}%':>6} {_gib(r['peak_bytes']):>8} "
            f"{r['compile_s']:>9.1f}", flush=True)
  loop_batch = batches[0]
  report['loop'] = _say('loop vs bare step', _run(args, f'loop:{loop_batch}', left()), lambda r: (
      f"loop vs bare step (fp32, batch {loop_batch}, synthetic people): loop "
      f"{r['loop_img_s']:.2f} img/s, step {r['step_img_s']:.2f} img/s: "
      f"{100 * r['loop_fraction']:.1f}%"))
  report['artifact'] = _say('artifact', _run(args, 'artifact', left()), lambda r: (
      f"exported artifact ({', '.join(r['platforms'])}) run on {', '.join(r['ran_on'])}: "
      f"largest difference {r['max_abs_diff']:.3g} (outputs up to {r['max_abs_output']:.3g})"))
  first = next((r for r in report['train'] if 'device' in r), {})
  print(f"device: {first.get('device', 'n/a')} ({first.get('platform', 'n/a')}); "
        f"{'tiny model, ' if args.tiny else ''}{args.steps} timed steps each; "
        f"{time.perf_counter() - start:.0f} s in all")
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(report, f, indent=1)


if __name__ == '__main__':
  main()
