"""Gradient values at layers across the depth of the network (CPM Fig. 5).

With ``config.gradients.every_steps`` (or ``at_steps``) set, the trainer calls ``Recorder.record``
before the update of a chosen step: a separately jitted function computes the loss gradients on
that step's batch at the current parameters and returns the kernels of the chosen layers. Their
values go to TensorBoard (``gradients/<layer>`` histograms) and to ``gradients.npz`` in the
workdir. With recording off the train step is unchanged and nothing extra runs.

  python -m posemachines.gradients --run with=DIR_A --run without=DIR_B --out=fig5.png

draws the paper's Fig. 5 from such workdirs: a row per run, a column per layer (input side on
the left), one curve per recorded epoch.
"""
from __future__ import annotations

import functools
import os
import re

import flax.traverse_util as tu
import jax
import numpy as np

from posemachines.objectives import per_model

FILENAME = 'gradients.npz'


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def default_layers(params) -> list[str]:
  """Convolution kernels spanning the CPM's depth, input side first: stage 1's first trunk conv
  and its belief layer, the first conv of the shared features x', the first conv of every later
  stage, and the last stage's belief layer. Other models: the first, middle and last kernels."""
  kernels = ['/'.join(k[:-1]) for k in tu.flatten_dict(params) if k[-1] == 'kernel']
  stages = sorted((n for n in params if re.fullmatch(r'stage\d+', n) and n != 'stage1'),
                  key=_natural_key)
  wanted = ['stage1/trunk/conv1', 'stage1/beliefs', 'features/conv1']
  wanted += [f'{s}/conv1' for s in stages] + [f'{stages[-1]}/beliefs' if stages else '']
  layers = [w for w in wanted if w in kernels]
  if len(layers) >= 2:
    return layers
  return sorted({kernels[0], kernels[len(kernels) // 2], kernels[-1]}, key=kernels.index)


def select(grads, layers):
  """{layer: flat kernel gradient} for 'a/b/c' paths into the param tree."""
  flat = tu.flatten_dict(grads, sep='/')
  missing = [l for l in layers if f'{l}/kernel' not in flat]
  if missing:
    raise ValueError(f'config.gradients.layers names unknown layers {missing}; kernels: '
                     f'{sorted(k[:-len("/kernel")] for k in flat if k.endswith("/kernel"))}')
  return {l: flat[f'{l}/kernel'].reshape(-1) for l in layers}


def enabled(config) -> bool:
  return bool(config.gradients.every_steps or config.gradients.at_steps)


class Recorder:
  """Records chosen layers' gradient values at chosen steps (see the module docstring)."""

  def __init__(self, config, model, params, workdir: str, writer, start_step: int = 0):
    g = config.gradients
    self.every = int(g.every_steps)
    self.at = {int(s) for s in g.at_steps}
    self.layers = list(g.layers) or default_layers(params)
    self.path = os.path.join(workdir, FILENAME)
    self.writer = writer
    self.epoch_steps = _epoch_steps(config)
    loss = functools.partial(per_model.loss_fn, model=model, config=config)
    grad = jax.grad(loss, has_aux=True)
    self._fn = jax.jit(lambda p, s, b, r: select(grad(p, s, b, r)[0], self.layers))
    self.steps, self.values = [], {l: [] for l in self.layers}
    if os.path.exists(self.path):  # a resumed run keeps what was recorded before start_step
      old = load(self.path)
      keep = [i for i, s in enumerate(old['steps']) if s < start_step]
      if list(old['layers']) == self.layers:
        self.steps = [int(old['steps'][i]) for i in keep]
        self.values = {l: [old['values'][l][i] for i in keep] for l in self.layers}

  def due(self, step: int) -> bool:
    """Whether to record before the update that follows ``step`` updates."""
    return step in self.at or (self.every > 0 and step % self.every == 0)

  def record(self, step: int, state, batch, rng):
    """Gradients at ``state``'s params on ``batch`` with the train step's dropout key."""
    rng = jax.random.fold_in(rng, state.step)
    out = jax.device_get(self._fn(state.params, state.model_state, batch, rng))
    self.steps.append(int(step))
    for layer in self.layers:
      v = np.asarray(out[layer], np.float32)
      self.values[layer].append(v)
      if self.writer is not None:
        self.writer.histogram(step, f'gradients/{layer}', v)
    if self.writer is None or self.writer.enabled:
      save(self.path, self.steps, self.values, self.epoch_steps)


def _epoch_steps(config):
  """Steps per pass over the training split (for labelling), or None if unknown."""
  try:
    from posemachines.data import registry
    split = registry.get_builder(config).info.splits[config.data.train_split]
    return split.num_examples / config.batch_size
  except Exception:  # the label falls back to steps
    return None


def save(path: str, steps, values: dict, epoch_steps=None):
  arrays = {f'values/{l}': np.stack(v) if v else np.zeros((0, 0), np.float32)
            for l, v in values.items()}
  tmp = path + '.tmp.npz'
  np.savez(tmp, steps=np.asarray(steps, np.int64), layers=np.asarray(list(values)),
           epoch_steps=np.asarray(epoch_steps or 0.0, np.float64), **arrays)
  os.replace(tmp, path)


def load(path: str) -> dict:
  """{'steps': [N], 'layers': [L], 'values': {layer: [N, size]}, 'epoch_steps': int or None}."""
  with np.load(path) as f:
    layers = [str(l) for l in f['layers']]
    return {'steps': f['steps'], 'layers': layers,
            'values': {l: f[f'values/{l}'] for l in layers},
            'epoch_steps': float(f['epoch_steps']) or None}


def spread(record: dict, layer: str) -> np.ndarray:
  """Standard deviation of the layer's gradient values at every recorded step."""
  return record['values'][layer].std(axis=1)


def after_initialisation(record: dict) -> dict:
  """The records taken after at least one update (the step-0 gradients of a fresh network are
  dominated by its initial outputs and would set the scale of every plot)."""
  keep = np.asarray(record['steps']) > 0
  if not keep.any():
    return record
  return {**record, 'steps': np.asarray(record['steps'])[keep],
          'values': {l: v[keep] for l, v in record['values'].items()}}


def _label(step: int, epoch_steps) -> str:
  return f'epoch {step / epoch_steps:.2g}' if epoch_steps else f'step {step}'


def figure(runs: dict, path: str, layers=None, title=None):
  """The paper's Fig. 5: rows = runs ({label: load() dict}), columns = layers, a curve per
  recorded step; x = gradient value, y = fraction of the layer's weights per bin (log scale)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  first = next(iter(runs.values()))
  layers = layers or first['layers']
  fig, axes = plt.subplots(len(runs), len(layers), squeeze=False, sharex='col',
                           figsize=(2.6 * len(layers), 2.3 * len(runs) + 0.6))
  for c, layer in enumerate(layers):
    # A common range per column: the widest run's 99.8th percentile of |gradient|.
    lim = max(np.percentile(np.abs(r['values'][layer]), 99.8) for r in runs.values()) or 1.0
    bins = np.linspace(-lim, lim, 61)
    for r, (label, rec) in enumerate(runs.items()):
      ax = axes[r, c]
      n = len(rec['steps'])
      colours = plt.get_cmap('viridis')(np.linspace(0, 0.9, max(n, 1)))
      for i, s in enumerate(rec['steps']):
        v = rec['values'][layer][i]
        h, _ = np.histogram(v, bins=bins)  # values beyond the range are left out of the plot
        ax.plot(0.5 * (bins[1:] + bins[:-1]), np.maximum(h / v.size, 1e-5), color=colours[i],
                lw=1, label=_label(int(s), rec['epoch_steps']))
      ax.set_yscale('log')
      ax.set_ylim(1e-5, 1.0)
      ax.tick_params(labelsize=7)
      ax.xaxis.get_offset_text().set_fontsize(7)
      if r == 0:
        ax.set_title(layer, fontsize=8)
      if c == 0:
        ax.set_ylabel(f'{label}\nfraction of weights', fontsize=8)
      if r == len(runs) - 1:
        ax.set_xlabel('gradient value', fontsize=8)
  axes[0, -1].legend(fontsize=6, loc='upper right')
  fig.suptitle(title or 'gradient values per layer (input side on the left)', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
