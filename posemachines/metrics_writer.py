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
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')

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
