"""Runs one command as N processes on this machine, each with D fake CPU devices: a small pod.

  python launch/local.py --num_processes=2 --devices_per_process=2 -- \\
      python -m posemachines.train --workdir=workdirs/local2x2

Process i gets JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT, JAX_NUM_PROCESSES=N, JAX_PROCESS_ID=i,
JAX_PLATFORMS=cpu and --xla_force_host_platform_device_count=D in XLA_FLAGS, so
posemachines.train connects the processes with jax.distributed and trains over N x D devices
(cross-process collectives use gloo). Process 0's output comes as a single process would write
it; every other process's lines are prefixed with "[process i]" (or, with --log_dir, each
process writes process_i.log). SIGTERM or SIGINT to the launcher is passed on to every
process. When one process fails, the others are stopped (SIGTERM, then SIGKILL after --grace
seconds), since they would otherwise wait in their next collective. The exit status is 0 when
every process exits 0, else that of the first to fail (128 + N for a process killed by signal N).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def process_env(process_id: int, num_processes: int, devices_per_process: int, port: int,
                env=None) -> dict:
  env = dict(os.environ if env is None else env)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  env.update(JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}', JAX_NUM_PROCESSES=str(num_processes),
             JAX_PROCESS_ID=str(process_id), JAX_PLATFORMS='cpu',
             XLA_FLAGS=' '.join(flags + [f'--xla_force_host_platform_device_count='
                                         f'{devices_per_process}']))
  return env


_OUTPUT_LOCK = threading.Lock()


def _prefix_lines(stream, prefix: str, out) -> None:
  """Copies ``stream``'s lines to ``out``, each after ``prefix`` (until the stream ends); whole
  lines, so that the processes' lines never run into each other."""
  for line in iter(stream.readline, b''):
    with _OUTPUT_LOCK:
      out.write(prefix.encode() + line)
      out.flush()
  stream.close()


def start(cmd, num_processes: int, devices_per_process: int = 1, log_dir: str | None = None,
          env=None) -> list[subprocess.Popen]:
  """Starts ``cmd`` as processes 0..N-1; with ``log_dir``, process i writes process_i.log,
  else the processes' output comes here line by line: process 0's as it is (its stderr, with
  the progress bar, straight to this terminal), the others' (stdout and stderr) prefixed
  "[process i] "."""
  port = free_port()
  procs = []
  for i in range(num_processes):
    stdout, stderr = subprocess.PIPE, (subprocess.STDOUT if i > 0 else None)
    if log_dir:
      os.makedirs(log_dir, exist_ok=True)
      stdout, stderr = open(os.path.join(log_dir, f'process_{i}.log'), 'w'), subprocess.STDOUT
    procs.append(subprocess.Popen(
        cmd, env=process_env(i, num_processes, devices_per_process, port, env),
        stdout=stdout, stderr=stderr))
    if stdout is subprocess.PIPE:
      prefix = f'[process {i}] ' if i > 0 else ''
      procs[-1].prefixer = threading.Thread(
          target=_prefix_lines, args=(procs[-1].stdout, prefix, sys.stdout.buffer), daemon=True)
      procs[-1].prefixer.start()
    else:
      stdout.close()
  return procs


def exit_status(returncode: int) -> int:
  return 128 - returncode if returncode < 0 else returncode


def signal_all(procs, sig):
  for p in procs:
    if p.poll() is None:
      p.send_signal(sig)


def wait(procs, grace: float = 10.0, poll: float = 0.2) -> int:
  """Waits for every process; when one fails, stops the rest. Returns the exit status."""
  failed = None
  while True:
    codes = [p.poll() for p in procs]
    if failed is None:
      failed = next((c for c in codes if c not in (None, 0)), None)
      if failed is not None:
        signal_all(procs, signal.SIGTERM)
        deadline = time.time() + grace
    elif time.time() > deadline:
      signal_all(procs, signal.SIGKILL)
    if all(c is not None for c in codes):
      for p in procs:  # the last prefixed lines
        if getattr(p, 'prefixer', None) is not None:
          p.prefixer.join(timeout=5)
      return exit_status(failed) if failed is not None else 0
    time.sleep(poll)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   usage='%(prog)s [options] -- command ...')
  parser.add_argument('--num_processes', type=int, default=2)
  parser.add_argument('--devices_per_process', type=int, default=1)
  parser.add_argument('--log_dir', default=None,
                      help='write process_i.log files here instead of sharing the terminal')
  parser.add_argument('--grace', type=float, default=10.0,
                      help='seconds between SIGTERM and SIGKILL when stopping the others')
  parser.add_argument('command', nargs=argparse.REMAINDER)
  args = parser.parse_args(argv)
  cmd = args.command[1:] if args.command[:1] == ['--'] else args.command
  if not cmd:
    parser.error('no command given (put it after --)')
  if args.num_processes < 1 or args.devices_per_process < 1:
    parser.error('--num_processes and --devices_per_process must be at least 1')
  procs = start(cmd, args.num_processes, args.devices_per_process, args.log_dir)
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda s, f: signal_all(procs, s))
  return wait(procs, args.grace)


if __name__ == '__main__':
  sys.exit(main())
