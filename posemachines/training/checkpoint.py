"""orbax checkpoints of the train state: fallback past an unreadable newest step, and a check
that the workdir can hold them before training starts."""
from __future__ import annotations

import os
import shutil
import time

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from posemachines.training import distributed

# Room for what a workdir holds besides checkpoints (metrics, events, pictures, eval.json).
OTHER_FILES_BYTES = 64 << 20


class WorkdirError(RuntimeError):
  """The workdir cannot be written, is not shared by all processes, or is too full."""


def manager(workdir: str, keep: int, save_every: int | None = None,
            read_only: bool = False) -> ocp.CheckpointManager:
  """The run's checkpoints; ``read_only`` for another run's (it is left exactly as it is)."""
  # A save killed half-way leaves only a temporary directory, which orbax never lists as a step;
  # cleanup_tmp_directories removes such leftovers when the next run starts.
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                         save_interval_steps=save_every or 1,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, move_aside: bool = True):
  """Restores the newest checkpoint readable on every process; returns (state, step) or
  (None, None).

  A newer step that fails to restore (corrupt or truncated files) is reported, an older one is
  tried, and with ``move_aside`` the unreadable one is moved to
  ``<workdir>/unreadable_checkpoints/`` (so that the resumed run can save that step again).
  Every process makes the same choice.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    state, error = None, None
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except Exception as e:  # orbax raises many types for unreadable data
      error = e
    if not distributed.any_process(error is not None):
      return state, step
    why = f'{type(error).__name__}: {str(error)[:300]}' if error else 'failed on another process'
    logging.warning('Checkpoint at step %d in %s is unreadable (%s); falling back to an older '
                    'one.', step, mngr.directory, why)
    if move_aside:
      _move_aside(mngr, step)
  return None, None


def _move_aside(mngr: ocp.CheckpointManager, step: int):
  src = os.path.join(str(mngr.directory), str(step))
  if jax.process_index() == 0 and os.path.exists(src):
    dst = os.path.join(os.path.dirname(str(mngr.directory)), 'unreadable_checkpoints',
                       f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.move(src, dst)
    logging.warning('Moved the unreadable checkpoint %s to %s.', src, dst)
  distributed.barrier(f'move_aside_{step}')
  mngr.reload()


def state_bytes(abstract_state) -> int:
  """Bytes of one checkpoint's arrays (the train state: params, optimizer state, model state)."""
  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(abstract_state)))


def check_workdir(workdir: str, abstract_state, keep: int) -> None:
  """Raises WorkdirError on every process, before training, if ``workdir`` cannot hold the run.

  Checks that it can be created and written, that every process sees the same directory (orbax
  needs a filesystem shared by all hosts), and that its disk has room for ``keep`` checkpoints
  plus the one being written, each estimated as the state's size in bytes.
  """
  distributed.barrier('check_workdir')  # the run's first collective follows
  error = None
  try:
    _check_writable(workdir)
    _check_free_space(workdir, abstract_state, keep)
  except WorkdirError as e:
    error = e
  distributed.raise_if_any(error, f'The workdir check of {workdir}')
  if jax.process_count() > 1:
    _check_shared(workdir)


def _check_writable(workdir: str):
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f'.write_test.{os.getpid()}')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f'Cannot write to the workdir {workdir!r}: {e}. Choose a writable '
                       '--workdir.') from e


def _check_free_space(workdir: str, abstract_state, keep: int):
  size = state_bytes(abstract_state)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  existing = len([d for d in os.listdir(ckpt_dir) if d.isdigit()]) if os.path.isdir(ckpt_dir) else 0
  count = max(1, keep + 1 - existing)
  need = count * size + OTHER_FILES_BYTES
  free = free_bytes(workdir)
  if free < need:
    raise WorkdirError(
        f'The disk of the workdir {workdir!r} has {free / 2**20:.1f} MiB free; the run needs about '
        f'{need / 2**20:.1f} MiB ({count} more checkpoint(s) of {size / 2**20:.1f} MiB each, '
        f'keep_checkpoints={keep}, plus {OTHER_FILES_BYTES >> 20} MiB of logs). Free some space, '
        'choose another --workdir, or lower --config.keep_checkpoints.')


def free_bytes(path: str) -> int:
  return shutil.disk_usage(path).free


def _check_shared(workdir: str):
  token = distributed.broadcast_from_main(int.from_bytes(os.urandom(6), 'little'))
  marker = os.path.join(workdir, f'.shared_test.{token}')
  if jax.process_index() == 0:
    with open(marker, 'w') as f:
      f.write('ok')
  distributed.barrier('shared_workdir_written')
  error = None
  if not os.path.exists(marker):
    error = WorkdirError(
        f'Process {jax.process_index()} does not see files that process 0 writes in the workdir '
        f'{workdir!r}: every process must use one shared directory (NFS, Lustre, a mounted '
        'bucket) so that checkpoints written by all hosts can be restored.')
  distributed.barrier('shared_workdir_read')
  if jax.process_index() == 0:
    os.remove(marker)
  distributed.raise_if_any(error, f'The shared-workdir check of {workdir}')


def initialise_from(workdir: str, state, abstract_state):
  """``state`` with the params and model state of the newest checkpoint in ``workdir`` (another
  run of the same model); its step and optimizer state stay fresh."""
  restored, step = restore_latest(manager(workdir, 1, read_only=True), abstract_state,
                                  move_aside=False)
  if restored is None:
    raise FileNotFoundError(f'init_from: no readable checkpoint in {workdir}/checkpoints')
  logging.info('Initialised from the checkpoint at step %d in %s', step, workdir)
  return state.replace(params=restored.params, model_state=restored.model_state)
