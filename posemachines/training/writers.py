"""Metrics to TensorBoard event files and a JSON-lines file (process 0 only)."""
from __future__ import annotations

import json
import os

import tensorflow as tf


class MetricsWriter:

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self._tb = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))
      path = os.path.join(workdir, 'metrics.jsonl')
      _drop_partial_line(path)
      self._jsonl = open(path, 'a')

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


def _drop_partial_line(path: str):
  """Removes a last line cut short by a killed run, so that every line stays valid JSON."""
  if os.path.exists(path):
    with open(path, 'rb+') as f:
      data = f.read()
      if data and not data.endswith(b'\n'):
        f.truncate(data.rfind(b'\n') + 1)
