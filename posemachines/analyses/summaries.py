"""Small summaries of finished training runs, kept where they can be committed.

A run's summary folder ``<root>/<label>-<key>/`` holds a few kilobytes:

  eval.json        the final evaluation (every stage's PCKh@0.5, per part, visibility AP) and
                   ``history``: every evaluation during training, from the run's metrics.jsonl
  wall_time.json   wall and CPU seconds the run took (summed over interrupted attempts)
  gradients.json   for runs that recorded gradients: per layer and recorded step the standard
                   deviation, mean |g|, quantiles and a 40-bin histogram of the gradient values
  visibility.json  for models with visibility labels: the last output's precision-recall curve
                   (at most 100 points)
  belief_maps.png  where asked for: every stage's belief maps of the hard parts on one
                   validation crop
  summary.json     label, key, config and provenance; written last, so its presence marks a
                   finished run

A run whose summary exists is finished, whether or not its checkpoints are still on disk.
"""
from __future__ import annotations

import glob
import json
import os
import time

import numpy as np

from posemachines.evaluation import metrics

SUMMARY = 'summary.json'
EVAL = 'eval.json'
TIME = 'wall_time.json'
GRADIENTS = 'gradients.json'
VISIBILITY = 'visibility.json'
BELIEFS = 'belief_maps.png'
LOST_PICTURE = 'lost_parts.png'   # the maps of a run's lost parts (plan.picture_lost_parts)

# Files a training workdir gets from the runner besides the trainer's own.
CPU_TIME = 'cpu_time.json'
VISIBILITY_PR = 'visibility_pr.json'
BELIEF_PICTURE = os.path.join('pictures', 'stages_0.png')

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 40


def _round(x, digits: int = 4):
  """Floats rounded to ``digits`` significant digits (nested lists and dicts kept)."""
  if isinstance(x, dict):
    return {k: _round(v, digits) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_round(v, digits) for v in x]
  if isinstance(x, (float, np.floating)):
    x = float(x)
    return x if not np.isfinite(x) or x == 0 else float(f'{x:.{digits}g}')
  if isinstance(x, np.integer):
    return int(x)
  return x


def _small_png(src: str, dst: str, colours: int = 32, width: int = 400) -> None:
  """A copy of a picture at most ``width`` pixels wide in a palette of ``colours`` (about 50 KB
  instead of 150-250)."""
  from PIL import Image
  with Image.open(src) as im:
    im = im.convert('RGB')
    if im.width > width:
      im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colours).save(dst, optimize=True)


def _dump(path: str, data) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(data, f, separators=(',', ':'))
  os.replace(tmp, path)


def _load(path: str):
  with open(path) as f:
    return json.load(f)


# ------------------------------------------------------------------- reading a workdir --

def eval_history(workdir: str) -> list[dict]:
  """Every evaluation written to the run's metrics.jsonl: [{'step', 'pck@0.5': [per stage],
  'visibility_ap': [per stage] (when measured)}], by step; a step evaluated again after a
  resume keeps its last value."""
  path = os.path.join(workdir, 'metrics.jsonl')
  by_step = {}
  if not os.path.exists(path):
    return []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      entry = {}
      for metric in ('pck@0.5', 'visibility_ap'):
        stages = sorted((int(k.rsplit('stage', 1)[1]), v) for k, v in record.items()
                        if k.startswith(f'eval/{metric}/stage'))
        if stages:
          entry[metric] = [v for _, v in stages]
      if 'pck@0.5' in entry:
        by_step[int(record['step'])] = {'step': int(record['step']), **entry}
  return [by_step[s] for s in sorted(by_step)]


def gradient_summary(record: dict) -> dict:
  """A compact description of a gradients.npz record (training/gradients.load): per layer and
  recorded step, the spread and a histogram over a range common to the layer's recordings
  after initialisation (the 99.8th percentile of |g|)."""
  steps = [int(s) for s in record['steps']]
  out = {'layers': list(record['layers']), 'steps': steps,
         'epoch_steps': record.get('epoch_steps'), 'quantiles': list(QUANTILES),
         'size': {}, 'std': {}, 'mean_abs': {}, 'quantile_values': {}, 'histogram': {}}
  later = [i for i, s in enumerate(steps) if s > 0] or list(range(len(steps)))
  for layer in out['layers']:
    v = np.asarray(record['values'][layer], np.float64)
    out['size'][layer] = int(v.shape[1]) if v.ndim == 2 else 0
    if v.size == 0:
      continue
    out['std'][layer] = v.std(axis=1).tolist()
    out['mean_abs'][layer] = np.abs(v).mean(axis=1).tolist()
    out['quantile_values'][layer] = np.quantile(v, QUANTILES, axis=1).T.tolist()
    limit = float(np.percentile(np.abs(v[later]), 99.8)) or 1.0
    edges = np.linspace(-limit, limit, HISTOGRAM_BINS + 1)
    out['histogram'][layer] = {'limit': limit,
                               'counts': [np.histogram(row, edges)[0].tolist() for row in v]}
  return _round(out)


def precision_recall_summary(scores, positive, points: int = 100) -> dict:
  """The precision-recall curve of ``scores`` (visible parts positive), at most ``points``
  points spread along it, with its AP."""
  from posemachines.evaluation import visibility
  precision, recall, _ = visibility.precision_recall(scores, positive)
  keep = np.unique(np.linspace(0, len(recall) - 1, min(points, len(recall))).round().astype(int))
  return _round({'recall': recall[keep].tolist(), 'precision': precision[keep].tolist(),
                 'ap': visibility.average_precision(scores, positive),
                 'num_visible': int(np.sum(positive)),
                 'num_occluded': int(np.size(positive) - np.sum(positive))})


def checkpoint_step(workdir: str) -> int | None:
  """The newest checkpointed step in a training workdir, or None."""
  steps = [int(os.path.basename(p)) for p in glob.glob(os.path.join(workdir, 'checkpoints', '*'))
           if os.path.basename(p).isdigit()]
  return max(steps) if steps else None


# ---------------------------------------------------------------------------- the store --

class Store:
  """The summary folders under ``root``, found by run key."""

  def __init__(self, root: str):
    self.root = root

  def dir(self, key: str) -> str | None:
    found = sorted(glob.glob(os.path.join(self.root, f'*-{key}', SUMMARY)))
    return os.path.dirname(found[0]) if found else None

  def finished(self, key: str) -> bool:
    return self.dir(key) is not None

  def load(self, key: str) -> dict | None:
    """{'summary', 'eval', 'time', 'gradients'?, 'visibility'?, 'dir'} or None."""
    d = self.dir(key)
    if d is None:
      return None
    out = {'dir': d, 'summary': _load(os.path.join(d, SUMMARY))}
    for name, filename in (('eval', EVAL), ('time', TIME), ('gradients', GRADIENTS),
                           ('visibility', VISIBILITY)):
      path = os.path.join(d, filename)
      if os.path.exists(path):
        out[name] = _load(path)
    if os.path.exists(os.path.join(d, BELIEFS)):
      out['belief_maps'] = os.path.join(d, BELIEFS)
    if os.path.exists(os.path.join(d, LOST_PICTURE)):
      out['lost_picture'] = os.path.join(d, LOST_PICTURE)
    return out

  def state(self) -> tuple:
    """The finished summaries (path, inode, time, size): changes when a run finishes or a
    summary is rewritten (written to a new file and renamed, so a new inode)."""
    out = []
    for p in sorted(glob.glob(os.path.join(self.root, '*', SUMMARY))):
      st = os.stat(p)
      out.append((p, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)

  def labels(self) -> dict[str, list[str]]:
    """{label: [keys]} of every summary (for reporting summaries of changed configs)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(self.root, '*', SUMMARY))):
      label, _, key = os.path.basename(os.path.dirname(path)).rpartition('-')
      out.setdefault(label, []).append(key)
    return out

  def write(self, label: str, key: str, *, summary: dict, eval_result: dict, time_info: dict,
            gradients: dict | None = None, visibility: dict | None = None,
            belief_maps: str | None = None) -> str:
    """Writes a summary folder (summary.json last) and returns it."""
    d = os.path.join(self.root, f'{label}-{key}')
    os.makedirs(d, exist_ok=True)
    _dump(os.path.join(d, EVAL), _round(eval_result, 5))
    _dump(os.path.join(d, TIME), _round(time_info, 5))
    if gradients is not None:
      _dump(os.path.join(d, GRADIENTS), gradients)
    if visibility is not None:
      _dump(os.path.join(d, VISIBILITY), visibility)
    if belief_maps is not None:
      _small_png(belief_maps, os.path.join(d, BELIEFS))
    _dump(os.path.join(d, SUMMARY), {'label': label, 'key': key, **summary})
    return d

  def add_to_eval(self, key: str, per_stage: list[dict]) -> None:
    """Adds fields to every stage of a finished run's final evaluation (eval.json)."""
    path = os.path.join(self.dir(key), EVAL)
    saved = _load(path)
    for st, new in zip(saved['stages'], per_stage, strict=True):
      st.update(new)
    _dump(path, saved)

  def save_workdir(self, label: str, key: str, workdir: str, summary: dict) -> str:
    """The summary of a finished training workdir."""
    from posemachines.training import gradients as gradients_lib
    result = _load(os.path.join(workdir, 'eval.json'))
    result['history'] = eval_history(workdir)
    cpu_path = os.path.join(workdir, CPU_TIME)
    time_info = _load(cpu_path) if os.path.exists(cpu_path) else {}
    run_time = os.path.join(workdir, 'wall_time.json')
    if os.path.exists(run_time):
      time_info['last_attempt_seconds'] = _load(run_time)['seconds']
    grads = None
    if os.path.exists(os.path.join(workdir, gradients_lib.FILENAME)):
      grads = gradient_summary(gradients_lib.load(os.path.join(workdir, gradients_lib.FILENAME)))
    vis_path = os.path.join(workdir, VISIBILITY_PR)
    picture = os.path.join(workdir, BELIEF_PICTURE)
    return self.write(label, key, summary={**summary, 'saved': time.strftime('%Y-%m-%d %H:%M')},
                      eval_result=result, time_info=time_info, gradients=grads,
                      visibility=_load(vis_path) if os.path.exists(vis_path) else None,
                      belief_maps=picture if os.path.exists(picture) else None)


# ------------------------------------------------------------------- reading a summary --

def pck(loaded: dict, stage: int = -1) -> float:
  """PCKh@0.5 (%) of one stage (default the last) at the end of the run."""
  return 100 * loaded['eval']['stages'][stage]['pck@0.5']


def part_pck(loaded: dict, parts, stage: int = -1) -> float:
  """Mean PCKh@0.5 (%) of some parts (e.g. both wrists) at the end of the run."""
  per_part = loaded['eval']['stages'][stage]['per_part']
  return 100 * float(np.mean([per_part[p] for p in parts]))


def lost_parts(loaded: dict) -> list[str]:
  """The parts the last output lost (``metrics.lost_parts``), in the skeleton's order."""
  return metrics.lost_parts(loaded['eval']['stages'][-1])


def _percent(loaded: dict, field: str, stage: int) -> float:
  """A stage's field of the final evaluation (%), nan where the summary lacks it."""
  v = loaded['eval']['stages'][stage].get(field)
  return float('nan') if v is None else 100 * v


def visibility_ap(loaded: dict, stage: int = -1) -> float:
  return _percent(loaded, 'visibility_ap', stage)


def occluded_pck(loaded: dict, stage: int = -1) -> float:
  """PCKh@0.5 (%) over the occluded parts alone (nan where the summary predates it)."""
  return _percent(loaded, 'pck@0.5_occluded', stage)


def visible_pck(loaded: dict, stage: int = -1) -> float:
  return _percent(loaded, 'pck@0.5_visible', stage)


def last_change(loaded: dict) -> float | None:
  """Final-stage PCKh@0.5 of the final evaluation minus the one before it (points), or None.

  "Before" is a full evaluation interval earlier where the run has one (a run whose length is
  not a multiple of the interval also evaluates at its end, shortly after the last regular
  evaluation)."""
  history = loaded['eval'].get('history') or []
  if len(history) < 2:
    return None
  spacing = (loaded.get('summary', {}).get('config') or {}).get('eval_every_steps') or 0
  last = history[-1]
  earlier = [h for h in history[:-1] if h['step'] <= last['step'] - spacing] or history[:-1]
  return 100 * (last['pck@0.5'][-1] - earlier[-1]['pck@0.5'][-1])


def converged(loaded: dict, tolerance: float = 1.0) -> bool:
  """Whether the final evaluation is within ``tolerance`` points of the one before it."""
  change = last_change(loaded)
  return change is not None and abs(change) <= tolerance


def cpu_seconds(loaded: dict) -> float | None:
  return loaded.get('time', {}).get('cpu_seconds')


def wall_seconds(loaded: dict) -> float | None:
  return loaded.get('time', {}).get('seconds')
