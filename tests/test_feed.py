"""The loop's feed: batches prefetched onto the devices in a thread, metrics fetched per window
(not per step), a NaN still named by its step, checkpoints written asynchronously."""
import threading

import jax
import numpy as np
import pytest

from posemachines.training import checkpoint, feed
from posemachines.training import loop as train
from tests.conftest import tiny_config
from tests.test_faults import _inject_nan


def _put(mesh):
  return lambda b: train.shard_batch(b, mesh)


def test_prefetch_gives_the_batches_in_order_on_the_devices():
  mesh = train.make_mesh()
  source = [{'x': np.full((len(jax.devices()), 2), i, np.float32)} for i in range(5)]
  with feed.Prefetch(source, _put(mesh), size=2) as batches:
    got = list(batches)
  assert [int(b['x'][0, 0]) for b in got] == [0, 1, 2, 3, 4]
  assert all(isinstance(b['x'], jax.Array) and b['x'].sharding.mesh == mesh for b in got)
  with pytest.raises(StopIteration):
    next(batches)


def test_prefetch_raises_the_sources_error_after_the_batches_before_it():
  def source():
    yield {'x': np.zeros((len(jax.devices()), 1), np.float32)}
    raise ValueError('bad record 7 in shard 3')

  batches = feed.Prefetch(source(), _put(train.make_mesh()))
  next(batches)
  with pytest.raises(ValueError, match='bad record 7 in shard 3'):
    next(batches)
  batches.close()


def test_prefetch_reads_ahead_at_most_its_size_and_close_stops_the_thread():
  read = []

  def endless():
    while True:
      read.append(len(read))
      yield {'x': np.zeros((len(jax.devices()), 1), np.float32)}

  batches = feed.Prefetch(endless(), _put(train.make_mesh()), size=2)
  next(batches)
  threading.Event().wait(0.5)
  # One taken, two in the queue, at most one more read and waiting to be put.
  assert 3 <= len(read) <= 4, read
  batches.close()
  assert not batches._thread.is_alive()   # pylint: disable=protected-access


def test_window_fetches_every_step_once_in_order():
  window = feed.Window()
  for step in (1, 2, 3):
    window.add(step, {'loss': jax.numpy.float32(step / 2), 'finite': jax.numpy.bool_(True)})
  got = window.fetch()
  assert [s for s, _ in got] == [1, 2, 3]
  assert [float(m['loss']) for _, m in got] == [0.5, 1.0, 1.5]
  assert len(window) == 0 and window.fetch() == []


def test_the_loop_fetches_metrics_once_per_log_window(tfds_dir, tmp_path, monkeypatch):
  fetched = []
  real = feed.Window.fetch

  def fetch(self):
    out = real(self)
    fetched.append([s for s, _ in out])
    return out

  monkeypatch.setattr(feed.Window, 'fetch', fetch)
  config = tiny_config(tfds_dir, num_train_steps=6, log_every_steps=3, checkpoint_every_steps=6)
  state, _ = train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert int(state.step) == 6
  assert [f for f in fetched if f] == [[1, 2, 3], [4, 5, 6]]
  assert checkpoint.manager(str(tmp_path / 'w'), 3, read_only=True).all_steps() == [6]


def test_a_nan_inside_a_window_is_named_by_its_step(tfds_dir, tmp_path, monkeypatch):
  _inject_nan(monkeypatch, at_step=3, stage=1)
  config = tiny_config(tfds_dir, num_train_steps=6, log_every_steps=6, checkpoint_every_steps=2)
  with pytest.raises(train.NonFinite, match=r'Non-finite stage 1 loss at step 3\b'):
    train.train_and_evaluate(config, str(tmp_path / 'w'))
  # Step 2's (asynchronous) checkpoint is on disk; step 4's, after the NaN, was never saved.
  assert checkpoint.manager(str(tmp_path / 'w'), 3, read_only=True).all_steps() == [2]
