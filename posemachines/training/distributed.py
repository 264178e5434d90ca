"""Several processes (hosts): JAX's distributed runtime, cross-process agreement, SIGTERM.

One training program runs as one process per host (or per GPU). ``initialize`` connects them:
  * explicitly, from ``--coordinator_address``, ``--num_processes``, ``--process_id`` or the
    environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (what
    launch/local.py sets);
  * automatically with ``--multihost=on``: JAX finds the coordinator itself on Cloud TPU, SLURM,
    Open MPI and Kubernetes (what launch/tpu_pod.sh uses); ``--multihost=auto`` (the default) does
    so when it sees a SLURM job step of several tasks or a multi-worker TPU slice.
On CPU, cross-process collectives use gloo (JAX's default), so several local processes with fake
devices behave like hosts of a pod.

Every decision that changes control flow (stop now? is the workdir usable?) must be the same on
every process, or the processes deadlock in the next collective: ``any_process`` makes it so.
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
import threading
import time

from absl import flags, logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from posemachines.core import errors

MULTIHOST_MODES = ('auto', 'on', 'off')
DEFAULT_TIMEOUT_S = 300
PROGRESS_EVERY_S = 30


class CoordinatorTimeout(errors.UserError, TimeoutError):
  """The processes of a multi-process run did not all join within --coordinator_timeout_s."""


def define_flags():
  flags.DEFINE_enum('multihost', 'auto', MULTIHOST_MODES,
                    'on: jax.distributed.initialize() with JAX\'s cluster detection (Cloud TPU, '
                    'SLURM, ...); auto: only when a multi-task SLURM step or a multi-worker TPU '
                    'slice is detected, or a coordinator is given; off: one process.')
  flags.DEFINE_string('coordinator_address', None,
                      'host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS).')
  flags.DEFINE_integer('num_processes', None, 'Number of processes (default: $JAX_NUM_PROCESSES).')
  flags.DEFINE_integer('process_id', None, 'This process, 0..num_processes-1 '
                       '(default: $JAX_PROCESS_ID).')
  flags.DEFINE_integer('coordinator_timeout_s', DEFAULT_TIMEOUT_S,
                       'How long a process waits at start for the coordinator (process 0) and '
                       'the other processes to join, in seconds, before it gives up with an '
                       'error.')


def _env_int(name):
  value = os.environ.get(name)
  if value in (None, ''):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'${name}={value!r} is not an integer') from None


def cluster_detected() -> bool:
  """True in a SLURM job step of several tasks or on one worker of a multi-worker TPU slice."""
  slurm = ('SLURM_JOB_ID', 'SLURM_STEP_NODELIST', 'SLURM_PROCID', 'SLURM_LOCALID')  # srun
  if all(k in os.environ for k in slurm) and (_env_int('SLURM_NTASKS') or 1) > 1:
    return True
  return len([h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]) > 1


def initialize(multihost: str = 'auto', coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
  """Starts JAX's distributed runtime if this program is one of several processes.

  With an explicit coordinator, the process says what it waits for and for how long, and
  raises CoordinatorTimeout (or, where JAX's runtime blocks, prints that error and exits with
  status 2) if the coordinator or the other processes have not joined within ``timeout_s``.
  """
  if multihost not in MULTIHOST_MODES:
    raise ValueError(f'multihost={multihost!r}; expected one of {MULTIHOST_MODES}')
  if multihost == 'off' or jax.distributed.is_initialized():
    return
  address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS')
  n = num_processes if num_processes is not None else _env_int('JAX_NUM_PROCESSES')
  pid = process_id if process_id is not None else _env_int('JAX_PROCESS_ID')
  if address:
    if n is None or pid is None:
      raise ValueError(f'coordinator address {address!r} given without --num_processes and '
                       '--process_id (or $JAX_NUM_PROCESSES and $JAX_PROCESS_ID)')
    if not 0 <= pid < n:
      raise ValueError(f'process_id {pid} is not in 0..{n - 1} (num_processes {n})')
    _connect(address, n, pid, timeout_s)
  elif multihost == 'on' or cluster_detected():
    jax.distributed.initialize()  # JAX finds the coordinator, count and id of this cluster
  else:
    return
  logging.info('Process %d of %d; %d local of %d devices', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def _program() -> str:
  spec = getattr(sys.modules.get('__main__'), '__spec__', None)
  return spec.name if spec is not None else os.path.basename(sys.argv[0] or 'posemachines')


def _wait_for_port(address: str, deadline: float) -> bool:
  """Whether something listens at ``address`` (host:port) before ``deadline``."""
  host, _, port = address.rpartition(':')
  host = host.strip('[]')
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=1.0):
        return True
    except (OSError, ValueError):
      if time.monotonic() >= deadline:
        return False
      time.sleep(0.25)


def _connect(address: str, n: int, pid: int, timeout_s: int) -> None:
  """jax.distributed.initialize, with a stated wait and a clear error at ``timeout_s``."""
  if not timeout_s > 0:
    raise errors.BadFlag(f'--coordinator_timeout_s={timeout_s}: must be > 0')
  if n == 1:  # nobody to wait for
    jax.distributed.initialize(address, n, pid)
    return
  what = (f'the other {n - 1} process{"es" if n > 2 else ""} to connect to this coordinator at '
          f'{address}' if pid == 0 else
          f'the coordinator (process 0) at {address} and the other processes')
  logging.info('Process %d of %d: waiting up to %d s for %s (--coordinator_timeout_s).', pid, n,
               timeout_s, what)
  start = time.monotonic()
  advice = (f'start every process 0..{n - 1} with the same --coordinator_address={address} and '
            f'--num_processes={n}, check that {address} is process 0\'s address and reachable, '
            'or wait longer with --coordinator_timeout_s')
  if pid != 0 and not _wait_for_port(address, start + timeout_s):
    raise CoordinatorTimeout(f'Process {pid} of {n}: no coordinator answered at {address} '
                             f'within {timeout_s} s: {advice}.')
  joined = threading.Event()

  def watchdog():  # JAX's runtime blocks in C++ and aborts at its own timeout: give up first
    while not joined.wait(min(PROGRESS_EVERY_S, max(start + timeout_s - time.monotonic(), 0))):
      waited = time.monotonic() - start
      if waited >= timeout_s:
        missing = (f'the other processes did not all connect to this coordinator at {address}'
                   if pid == 0 else f'the coordinator at {address} answered, but the other '
                   'processes did not all join')
        print(f'{_program()}: error: Process {pid} of {n}: {missing} within {timeout_s} s: '
              f'{advice}.', file=sys.stderr, flush=True)
        os._exit(errors.EXIT_USER_ERROR)
      logging.info('Process %d of %d: still waiting for %s (%d of %d s).', pid, n, what, waited,
                   timeout_s)

  thread = threading.Thread(target=watchdog, name='coordinator_timeout', daemon=True)
  thread.start()
  try:
    # JAX's own limit lies beyond ours, so that the watchdog's message comes first.
    jax.distributed.initialize(address, n, pid, initialization_timeout=int(timeout_s) + 60)
  finally:
    joined.set()
  logging.info('Process %d of %d: every process joined after %.1f s.', pid, n,
               time.monotonic() - start)


def any_process(flag: bool) -> bool:
  """True on every process if ``flag`` is True on any. A collective: call it on every process."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.max(multihost_utils.process_allgather(np.int32(bool(flag)))))


def broadcast_from_main(value: int) -> int:
  """Process 0's ``value`` on every process (an integer)."""
  if jax.process_count() == 1:
    return int(value)
  return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


_barriers = itertools.count()


def barrier(name: str, timeout_s: int = 1800) -> None:
  """Waits until every process has reached this barrier, for at most ``timeout_s``.

  It uses JAX's coordination service, not a device collective: gloo connects the processes at
  their first collective and fails if one of them is more than 30 s late (still compiling, say),
  so processes meet here first, and here they may wait on each other for long.
  """
  if jax.process_count() > 1:
    key = f'posemachines_{name}_{next(_barriers)}'  # every barrier needs its own key
    ocp.multihost.get_barrier_sync_fn()(key=key, timeout_ms=timeout_s * 1000)


def main_process_first(fn, name: str, timeout_s: int = 24 * 3600):
  """Runs ``fn`` on process 0, then on the others (e.g. preparing a dataset in a shared dir)."""
  if jax.process_index() == 0:
    out = fn()
    barrier(name, timeout_s)
  else:
    barrier(name, timeout_s)
    out = fn()
  return out


def raise_if_any(error: Exception | None, what: str) -> None:
  """Raises on every process if any process found ``error`` (so none is left waiting)."""
  if any_process(error is not None):
    if error is not None:
      raise error
    raise RuntimeError(f'{what} failed on another process; see its log.')


_NOTED = []   # the signals any StopSignal of this process has received


def stop_noted() -> bool:
  """Whether a StopSignal of this process (or, with several, of any process: a collective)
  received its signal, also one that came after the last step it polled (during the final
  evaluation): a caller about to start more training stops instead."""
  return any_process(bool(_NOTED))


class StopSignal:
  """Turns SIGTERM into a request to stop at the next step that every process agrees on.

  Preemption (Cloud TPU maintenance, spot VMs, SLURM's --signal and requeue) sends SIGTERM to
  one or all hosts. The handler only notes it; ``requested()``, called by every process after
  every log step, all-reduces the note, so all processes see it at the same step and can save that
  step together. Previous handlers are restored by ``close()``.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self.received = None
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      for s in signals:
        previous = signal.signal(s, self._handle)
        self._previous[s] = signal.SIG_DFL if previous is None else previous

  def _handle(self, signum, frame):
    del frame
    self.received = signum
    _NOTED.append(signum)

  def requested(self, poll: bool = True) -> bool:
    """Whether to stop now. One process looks at its own note. Several agree on it only where
    ``poll`` (a collective: every process must pass the same ``poll`` at the same step); in
    between, False, so a stop waits for the next step that polls."""
    if jax.process_count() == 1:
      return self.received is not None
    return poll and any_process(self.received is not None)

  def close(self):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
