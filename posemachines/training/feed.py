"""What keeps an accelerator busy: batches put on the devices ahead of the step that takes them,
and the steps' metrics kept on the devices until the loop needs them.

* ``Prefetch``: a thread reads the next host batches and puts them on the mesh while the
  current step runs (``jax.make_array_from_process_local_data`` copies host data to the devices;
  done in the loop, the copy and the pipeline's host work sit between two steps).
* ``Window``: the metrics of the steps since the last look stay device arrays; ``fetch()`` brings
  them all to the host in one transfer, every ``log_every_steps`` and before every checkpoint
  and evaluation, so the loop does not wait on the device after every step.
"""
from __future__ import annotations

import queue
import threading

import jax
import numpy as np

_END = object()


class Prefetch:
  """An iterator over ``put(batch)`` for the batches of ``source``, ``size`` batches ahead.

  The source is read in a thread of its own; an error there is raised by ``next()`` in the loop,
  after the batches read before it. ``close()`` stops the thread (it holds at most ``size``
  batches on the devices).
  """

  def __init__(self, source, put, size: int = 2):
    if size < 1:
      raise ValueError(f'prefetch size must be at least 1, not {size}')
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(iter(source), put),
                                    name='prefetch_to_device', daemon=True)
    self._thread.start()

  def _offer(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _fill(self, source, put):
    try:
      for batch in source:
        if not self._offer(put(batch)):
          return
    except BaseException as e:  # pylint: disable=broad-except  (raised again in the loop)
      self._offer(e)
      return
    self._offer(_END)

  def __iter__(self):
    return self

  def __next__(self):
    item = self._queue.get()
    if item is _END:
      self._queue.put(_END)   # every later next() ends too
      raise StopIteration
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self):
    self._stop.set()
    self._thread.join(timeout=10)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Window:
  """The per-step metrics (device arrays) of the steps since the last ``fetch()``."""

  def __init__(self):
    self._steps: list[int] = []
    self._metrics: list[dict] = []

  def add(self, step: int, metrics: dict) -> None:
    """``step``: the step's number counted from 1 (the state's step after it)."""
    self._steps.append(step)
    self._metrics.append(metrics)

  def __len__(self):
    return len(self._steps)

  def fetch(self) -> list[tuple[int, dict]]:
    """[(step, host metrics)] of every step since the last fetch, oldest first; empties it."""
    steps, fetched = self._steps, jax.device_get(self._metrics)
    self._steps, self._metrics = [], []
    return [(s, {k: np.asarray(v) for k, v in m.items()}) for s, m in zip(steps, fetched)]
