"""Metrics to TensorBoard event files and a JSON-lines file (process 0 only).

A resumed run's logs read as if it had never stopped. A run killed after logging step n but
before saving it resumes from an earlier checkpoint and logs those steps again, so
``MetricsWriter(workdir, resume_step=s)`` first drops what was logged after step s: the lines
of metrics.jsonl with a larger step, and the TensorBoard events with a larger step (every event
file is cut at its first such event: a file is written in step order, so what follows is later
too). TensorBoard then shows each step once, without relying on its purge of out-of-order steps.
"""
from __future__ import annotations

import glob
import json
import os
import struct

import tensorflow as tf

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


class MetricsWriter:

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    """``resume_step``: the step the run goes on from; what was logged after it is dropped."""
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    if enabled:
      tb = os.path.join(workdir, TENSORBOARD_DIR)
      _drop_partial_line(self.path)
      if resume_step is not None:
        drop_lines_after(self.path, resume_step)
        for events in sorted(glob.glob(os.path.join(tb, '*tfevents*'))):
          cut_events_after(events, resume_step)
      self._tb = tf.summary.create_file_writer(tb)
      self._jsonl = open(self.path, 'a')

  def logged(self, step: int, prefix: str = '') -> bool:
    """Whether metrics.jsonl has a line of ``step`` with a metric whose name starts with
    ``prefix`` (e.g. 'eval/')."""
    return any(l['step'] == step and any(k.startswith(prefix) for k in l if k != 'step')
               for l in read_lines(self.path))

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    with self._tb.as_default(step=step):
      for k, v in scalars.items():
        tf.summary.scalar(k, v)
    self._tb.flush()
    self._jsonl.write(json.dumps({'step': step, **scalars}) + '\n')
    self._jsonl.flush()

  def histogram(self, step: int, name: str, values):
    if self.enabled:
      with self._tb.as_default(step=step):
        tf.summary.histogram(name, values)

  def close(self):
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def read_lines(path: str) -> list[dict]:
  """The complete lines of a metrics.jsonl (a last line cut short is left out)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split('\n')[:-1]
  return [json.loads(l) for l in lines if l.strip()]


def _drop_partial_line(path: str):
  """Removes a last line cut short by a killed run, so that every line stays valid JSON."""
  if os.path.exists(path):
    with open(path, 'rb+') as f:
      data = f.read()
      if data and not data.endswith(b'\n'):
        f.truncate(data.rfind(b'\n') + 1)


def drop_lines_after(path: str, step: int):
  """Rewrites metrics.jsonl without its lines of steps after ``step`` (atomically)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.read().split('\n')[:-1]
  keep = [l for l in lines if l.strip() and json.loads(l)['step'] <= step]
  if len(keep) == len(lines):
    return
  tmp = f'{path}.tmp.{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(''.join(l + '\n' for l in keep))
  os.replace(tmp, path)


def _records(data: bytes):
  """(offset, payload) of every complete TFRecord in ``data`` (length, its CRC, payload, its
  CRC); a record cut short at the end is left out."""
  offset = 0
  while offset + 12 <= len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    end = offset + 12 + length + 4
    if end > len(data):
      return
    yield offset, data[offset + 12:offset + 12 + length]
    offset = end


def cut_events_after(path: str, step: int):
  """Truncates a TensorBoard event file before its first event of a step after ``step`` (and
  before a record cut short by a kill)."""
  with open(path, 'rb') as f:
    data = f.read()
  cut = 0
  for offset, payload in _records(data):
    if tf.compat.v1.Event.FromString(payload).step > step:
      break
    cut = offset + 12 + len(payload) + 4
  if cut < len(data):
    with open(path, 'rb+') as f:
      f.truncate(cut)
