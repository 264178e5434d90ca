"""orbax checkpoints of the train state: fallback past an unreadable newest step, and a check
that the workdir can hold them before training starts."""
from __future__ import annotations

import contextlib
import errno
import gc
import logging as std_logging
import os
import shutil
import threading
import time
import weakref

from absl import logging
import jax
import numpy as np
from etils import epath
import jax.numpy as jnp
import orbax.checkpoint as ocp

from posemachines.core import errors
from posemachines.training import distributed

# The item name under which orbax stores the state in a step's directory (StandardSave).
ITEM = 'default'

# Room for what a workdir holds besides checkpoints (metrics, events, pictures, eval.json).
OTHER_FILES_BYTES = 64 << 20


class WorkdirError(RuntimeError):
  """The workdir cannot be written, is not shared by all processes, or is too full."""


# The managers made with asynchronous=True (their background saves are orbax's own).
_asynchronous: weakref.WeakSet = weakref.WeakSet()


class _NoReadOnlyNotice(std_logging.Filter):
  """orbax warns "Given directory is read only" for every read-only manager: the ones made here
  only read (resuming, evaluating, exporting), so the warning says nothing to the user."""

  def filter(self, record):
    return not record.getMessage().startswith('Given directory is read only')


std_logging.getLogger('absl').addFilter(_NoReadOnlyNotice())


def manager(workdir: str, keep: int, save_every: int | None = None,
            read_only: bool = False, asynchronous: bool = False) -> ocp.CheckpointManager:
  """The run's checkpoints; ``read_only`` for another run's (it is left exactly as it is).

  ``asynchronous``: orbax's own asynchronous saves (``save(..., background=True)`` then uses
  them): what several processes need, since orbax synchronises them at the start of a save.
  """
  # A save killed half-way leaves only a temporary directory, which orbax never lists as a step;
  # cleanup_tmp_directories removes such leftovers when the next run starts.
  options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else keep,
                                         create=not read_only,
                                         save_interval_steps=0 if read_only else save_every or 1,
                                         enable_async_checkpointing=asynchronous and not read_only,
                                         cleanup_tmp_directories=not read_only,
                                         read_only=read_only)
  mngr = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)
  if options.enable_async_checkpointing:
    _asynchronous.add(mngr)
  return mngr


class SaveFailed(errors.UserError):
  """A checkpoint could not be written for want of room (a full disk or an exceeded quota)."""


# How a full disk shows in what orbax raises: an OSError's errno, or the text of tensorstore's
# errors ("RESOURCE_EXHAUSTED: ... [OS error 28: No space left on device]").
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_ROOM_TEXTS = ('no space left', 'disk quota exceeded', 'resource_exhausted', 'os error 28')


def _no_room(error: BaseException, depth: int = 0) -> str | None:
  """A short reason if ``error`` (or an error it wraps) says the disk is full, else None."""
  if error is None or depth > 8:
    return None
  if isinstance(error, OSError) and error.errno in _NO_ROOM_ERRNOS:
    return os.strerror(error.errno)
  text = str(error).lower()
  for marker in _NO_ROOM_TEXTS:
    if marker in text:
      return 'No space left on device' if marker != 'disk quota exceeded' else 'Disk quota exceeded'
  for inner in (*getattr(error, 'exceptions', ()), error.__cause__, error.__context__):
    reason = _no_room(inner, depth + 1)
    if reason:
      return reason
  return None


class _HeldLogs(std_logging.Filter):
  """Holds back the log records of orbax (and the libraries it calls) while a save runs: a
  failed save logs one traceback per array. ``release()`` lets them through after all. Once
  ``background_only``, the main thread's records pass (an asynchronous save is being written by
  orbax's threads while training goes on)."""

  def __init__(self):
    super().__init__()
    self.records = []
    self.background_only = False

  def filter(self, record):
    if f'{os.sep}posemachines{os.sep}' in record.pathname:
      return True
    if self.background_only and record.thread == threading.main_thread().ident:
      return True
    self.records.append(record)
    return False

  def release(self):
    for record in self.records:
      std_logging.getLogger(record.name).handle(record)
    self.records = []


_LIBRARY_LOGGERS = ('absl', 'asyncio', 'orbax', 'jax', 'tensorstore')


class _LogHold:
  """A ``_HeldLogs`` on every library logger, from a save's start to its end."""

  def __init__(self):
    self.held = _HeldLogs()
    self.loggers = [std_logging.getLogger(n) for n in _LIBRARY_LOGGERS]
    for logger in self.loggers:
      logger.addFilter(self.held)

  def end(self):
    for logger in self.loggers:
      logger.removeFilter(self.held)
    self.held.release()


def _never_retrieved(record) -> bool:
  return 'exception was never retrieved' not in record.getMessage()


class _Background:
  """One save written by a thread of its own while training goes on. It saves a copy of the
  state made on the devices (the train step donates the state it is given), with orbax's
  synchronous save, so that a failure is one exception, raised again by ``finish``."""

  def __init__(self, mngr, step: int, state, force: bool):
    self.step, self.hold, self.error = step, _LogHold(), None
    self.hold.held.background_only = True   # the main thread's records pass meanwhile
    copy = jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, state)
    self.thread = threading.Thread(target=self._write, args=(mngr, copy, force),
                                   name=f'posemachines_save_{step}', daemon=False)
    self.thread.start()

  def _write(self, mngr, state, force):
    try:
      mngr.save(self.step, args=ocp.args.StandardSave(state), force=force)
    except BaseException as e:  # pylint: disable=broad-except  (raised again by finish)
      self.error = e

  def wait(self, mngr):
    del mngr
    self.thread.join()
    if self.error is not None:
      raise self.error


class _OrbaxAsync:
  """One save of an asynchronous manager: orbax copies the arrays off the devices in ``save``
  and writes them in threads of its own."""

  def __init__(self, mngr, step: int, state, force: bool):
    self.step, self.hold = step, _LogHold()
    try:
      with _no_room_is_save_failed(mngr, step, self.hold.held):
        mngr.save(step, args=ocp.args.StandardSave(state), force=force)
    except BaseException:
      self.hold.end()
      raise
    self.hold.held.background_only = True

  def wait(self, mngr):
    mngr.wait_until_finished()


# Each manager's save being written in the background, if any.
_pending: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False,
         background: bool = False) -> bool:
  """Saves ``state`` as ``step``. A save that fails for want of room raises SaveFailed: one
  message naming the last good checkpoint, which the same command resumes from once there is
  room (orbax's tracebacks are held back; the partial save is a temporary directory that the
  next run removes).

  ``background``: returns once a copy of the state is made on the devices; a thread of ours
  (one process) or orbax's (an asynchronous manager) writes it while training goes on;
  ``finish(mngr)`` waits for it, and the next save finishes it first, so a failure is reported
  as its own step's. Returns whether the save was made (or started)."""
  finish(mngr)
  if background:
    kind = _OrbaxAsync if mngr in _asynchronous else _Background
    _pending[mngr] = kind(mngr, step, state, force)
    return True
  hold = _LogHold()
  try:
    with _no_room_is_save_failed(mngr, step, hold.held):
      saved = mngr.save(step, args=ocp.args.StandardSave(state), force=force)
      mngr.wait_until_finished()   # written when save returns, whatever the manager
      return saved
  finally:
    hold.end()


def finish(mngr: ocp.CheckpointManager) -> None:
  """Waits for the manager's save in the background, if any (SaveFailed if it ran out of room;
  its other errors are raised as they are)."""
  pending = _pending.pop(mngr, None)
  if pending is None:
    return
  pending.hold.held.background_only = False
  try:
    with _no_room_is_save_failed(mngr, pending.step, pending.hold.held):
      pending.wait(mngr)
  finally:
    pending.hold.end()


@contextlib.contextmanager
def _no_room_is_save_failed(mngr: ocp.CheckpointManager, step: int, held: _HeldLogs):
  try:
    yield
  except Exception as e:  # orbax raises many types (ValueError from tensorstore, OSError, ...)
    reason = _no_room(e)
    if reason is None:
      raise
    # Each array's failed write is an asyncio task whose error asyncio logs when the task is
    # collected: collect them now, held back, and hold back any that are collected later.
    gc.collect()
    held.records = []
    std_logging.getLogger('asyncio').addFilter(_never_retrieved)
    directory = str(mngr.directory)
    done = [s for s in mngr.all_steps() if s < step and os.path.isdir(
        os.path.join(directory, str(s)))]
    last = (f'The last good checkpoint is step {max(done)} '
            f'({os.path.join(directory, str(max(done)))})' if done else
            'No checkpoint of this run was saved before')
    raise SaveFailed(
        f'Saving the checkpoint of step {step} in {directory} failed: {reason} '
        f'({free_bytes(directory) / 2**20:.1f} MiB free). {last}. Free some space (or lower '
        '--config.keep_checkpoints), then rerun the same command to resume'
        f'{" from it" if done else ""}.') from None


def stored_arrays(mngr: ocp.CheckpointManager, step: int) -> dict:
  """{array name: (shape, dtype)} of the checkpoint at ``step``, from its metadata files alone
  (no array is read). Raises if the metadata cannot be read (a corrupt or partial checkpoint)."""
  path = epath.Path(os.path.join(str(mngr.directory), str(step), ITEM))
  tree = ocp.StandardCheckpointHandler().metadata(path)
  tree = getattr(tree, 'tree', tree)
  return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in
          ocp.tree.to_flat_dict(tree, sep='.').items() if hasattr(v, 'shape')}


def expected_arrays(abstract_state) -> dict:
  """{array name: (shape, dtype)} of a state with ``abstract_state``'s shapes, named as
  orbax names a checkpoint's arrays."""
  flat = ocp.tree.to_flat_dict(ocp.tree.serialize_tree(abstract_state, keep_empty_nodes=True),
                               sep='.')
  return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in flat.items() if hasattr(v, 'shape')}


def array_differences(stored: dict, expected: dict) -> list[str]:
  """One entry per array whose shape or dtype differs, or that only one side has."""
  def show(x):
    return f'{x[1].name}{list(x[0])}'
  out = []
  for name in sorted(set(stored) | set(expected)):
    a, b = stored.get(name), expected.get(name)
    if a == b:
      continue
    if a is None:
      out.append(f'{name}: not in the checkpoint (config: {show(b)})')
    elif b is None:
      out.append(f'{name}: {show(a)} in the checkpoint, not in the config')
    else:
      out.append(f'{name}: {show(a)} in the checkpoint, {show(b)} by the config')
  return out


def _summarise(diffs: list[str], limit: int = 8) -> str:
  """The differing arrays, parameters first, optimizer-state copies of them counted."""
  params = [d for d in diffs if not d.startswith('opt_state.')]
  shown = (params or diffs)[:limit]
  rest = len(diffs) - len(shown)
  text = '\n'.join(f'  {d}' for d in shown)
  if rest:
    text += f'\n  ... and {rest} more (' + ('their optimizer state' if params else 'arrays') + ')'
  return text


class StateMismatch(errors.ConfigMismatch):
  """A readable checkpoint whose arrays do not fit the model and optimizer of the config."""

  def __init__(self, directory: str, step: int, diffs: list[str], context: str = ''):
    self.step, self.diffs = step, diffs
    super().__init__(
        f'The checkpoint at step {step} in {directory} does not fit this config: '
        f'{len(diffs)} array(s) differ in shape or dtype (the checkpoint is readable, not '
        f'corrupt, and was left as it is):\n{_summarise(diffs)}' + (f'\n{context}' if context
                                                                    else ''))


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, move_aside: bool = True,
                   mismatch_context=None):
  """Restores the newest checkpoint readable on every process; returns (state, step) or
  (None, None).

  Before anything is read or moved, the newest checkpoint's stored shapes and dtypes are
  compared with ``abstract_state``'s: a checkpoint that does not fit (another model or
  optimizer) raises StateMismatch (an errors.ConfigMismatch), with ``mismatch_context()``'s
  text appended (the config fields that differ). A step whose metadata or arrays cannot be read
  (corrupt or truncated files) is reported and an older one is tried; with ``move_aside`` the
  unreadable ones are then moved to ``<workdir>/unreadable_checkpoints/`` (so that the resumed
  run can save those steps again). Without ``move_aside`` nothing in the directory is changed
  (a reader beside a training run): a step that disappears meanwhile (the trainer keeps only
  its newest checkpoints) is passed over, and steps saved meanwhile are tried too.
  Every process makes the same choice.
  """
  expected = expected_arrays(abstract_state)
  unreadable, tried = [], set()
  for _ in range(1 if move_aside else 3):
    steps = [s for s in sorted(mngr.all_steps(), reverse=True) if s not in tried]
    for step in steps:
      tried.add(step)
      state, error, diffs = None, None, None
      try:
        diffs = array_differences(stored_arrays(mngr, step), expected)
      except Exception as e:  # orbax raises many types for unreadable metadata
        error = e
      if distributed.any_process(bool(diffs)):  # a collective: every process takes part
        raise StateMismatch(str(mngr.directory), step, diffs or ['(found on another process)'],
                            mismatch_context() if mismatch_context else '')
      if error is None:
        try:
          state = mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))
        except Exception as e:  # orbax raises many types for unreadable data
          error = e
      if not distributed.any_process(error is not None):
        for bad in unreadable if move_aside else ():
          _move_aside(mngr, bad)
        return state, step
      if not move_aside and not os.path.exists(os.path.join(str(mngr.directory), str(step))):
        logging.info('Checkpoint at step %d in %s was removed while being read; trying an '
                     'older one.', step, mngr.directory)
        continue
      why = f'{type(error).__name__}: {str(error)[:300]}' if error else 'failed on another process'
      logging.warning('Checkpoint at step %d in %s is unreadable (%s); falling back to an older '
                      'one.', step, mngr.directory, why)
      unreadable.append(step)
    if move_aside:
      break
    mngr.reload()  # a reader: the trainer may have saved newer steps meanwhile
    if not [s for s in mngr.all_steps() if s not in tried]:
      break
  for bad in unreadable if move_aside else ():
    _move_aside(mngr, bad)
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
  restored, step = restore_latest(
      manager(workdir, 1, read_only=True), abstract_state, move_aside=False,
      mismatch_context=lambda: f'--config.init_from={workdir} must name a run of the same model '
      'and optimizer.')
  if restored is None:
    raise errors.MissingData(f'--config.init_from={workdir}: no readable checkpoint in '
                             f'{workdir}/checkpoints')
  logging.info('Initialised from the checkpoint at step %d in %s', step, workdir)
  return state.replace(params=restored.params, model_state=restored.model_state)
