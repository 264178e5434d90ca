"""orbax checkpoints of the train state, with fallback past a corrupt newest step."""
from __future__ import annotations

import os

from absl import logging
import orbax.checkpoint as ocp


def manager(workdir: str, keep: int, save_every: int | None = None) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         save_interval_steps=save_every or 1,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state):
  """Restores the newest readable checkpoint; returns (state, step) or (None, None).

  A newest step that fails to restore (partial write, corrupt file) is reported and skipped.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))
      return state, step
    except Exception as e:  # orbax raises many types for unreadable data
      logging.warning('Checkpoint at step %d in %s is unreadable (%s: %s); trying an older one.',
                      step, mngr.directory, type(e).__name__, str(e)[:300])
  return None, None
