"""The runs the claims need, which of them are finished, and training the rest.

A ``RunSpec`` is one training run: a label, a config and, for a phase of a chained scheme, the
run whose last checkpoint starts it. Its key hashes the config (with ``init_from`` replaced by
the parent run's key, so that keys do not depend on where a checkout lives) and the version of
the data set; a run is finished when the summary store holds its key
(posemachines/analyses/summaries.py), so a fresh checkout skips it without its checkpoints.

``build`` lists the runs for a set of claims and seeds, applying the seeds rule
(posemachines/analyses/claims.py: a third seed where two compared settings differ by less than
twice their seeds' spread, decided once the first two seeds are in). ``execute`` trains the
runs that are not finished, one at a time, through training/runs.py (an interrupted run
resumes from its checkpoint in the runs directory), and saves each one's summary as it
finishes; it plans again after every run, so that third seeds follow as soon as they are due.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import resource
import threading
import time
from typing import Any, Callable

import numpy as np

from posemachines.analyses import summaries as summaries_lib
from posemachines.core import overrides


@dataclasses.dataclass(frozen=True)
class RunSpec:
  label: str
  config: Any = dataclasses.field(repr=False, compare=False)
  key: str = ''
  parent: 'RunSpec | None' = dataclasses.field(default=None, repr=False, compare=False)
  pictures: bool = False    # draw every stage's belief maps of the hard parts after training

  @property
  def kind(self) -> str:
    return self.config.model.name


def data_version(config) -> str:
  """The version of the data set the config trains on ('' for real data sets)."""
  if config.data.dataset == 'synthetic_people':
    from posemachines.data import synthetic
    return f'synthetic_people {synthetic.SyntheticPeople.VERSION}'
  return config.data.dataset


# Fields declared after runs were made, at the values that leave a run as it was before they
# existed: left out of the key, so that declaring a field does not orphan the finished runs.
# (model.layers 'custom' computes the same sums as the nn.Conv layers runs had before it, in
# another order: the results differ by float32 rounding.)
NEUTRAL_FIELDS = {
    'allow_config_change': False, 'init_from_matching': False, 'precision': 'fp32',
    'data.coco_aspect_ratio': 0.75, 'data.coco_padding': 1.25, 'data.crop_width': 0,
    'model.batch_norm': False, 'model.layers': 'custom', 'model.remat': 'none',
    'data.synthetic_occlusion': 'light',
}


def run_key(config, parent: RunSpec | None = None) -> str:
  """The run's identity: a hash of its config (less ``NEUTRAL_FIELDS`` at their neutral
  values), the run it continues, and the version of its data."""
  c = overrides.derive(config, init_from='')
  with c.unlocked():
    for field, neutral in NEUTRAL_FIELDS.items():
      *path, name = field.split('.')
      node = functools.reduce(lambda n, p: n[p], path, c)   # every config has these sections
      if name in node and node[name] == neutral:
        del node[name]
  text = (c.to_json_best_effort(sort_keys=True) + f'|after={parent.key if parent else ""}'
          f'|data={data_version(config)}')
  return hashlib.sha1(text.encode()).hexdigest()[:10]


def spec(label: str, config, parent: RunSpec | None = None, pictures: bool = False) -> RunSpec:
  config = overrides.derive(config, init_from='')
  return RunSpec(label, config, run_key(config, parent), parent, pictures)


# ---------------------------------------------------------------------------- the plan --

@dataclasses.dataclass
class Planned:
  spec: RunSpec
  claims: list[str]
  finished: bool
  checkpoint_step: int | None = None   # newest checkpoint in the runs directory
  retrain: bool = False                # finished, but a later phase needs its checkpoint
  estimate_s: float = 0.0              # CPU seconds still to spend on it
  superseded: bool = False             # finished at a schedule given up (did not converge)

  @property
  def to_train(self) -> bool:
    return not self.superseded and (not self.finished or self.retrain)


@dataclasses.dataclass
class Plan:
  runs: list[Planned]
  undecided: list[str]          # settings whose third seed waits for the first two
  undecided_estimate_s: float   # CPU seconds those third seeds would take

  def to_train(self) -> list[Planned]:
    return [p for p in self.runs if p.to_train]

  @property
  def estimate_s(self) -> float:
    return sum(p.estimate_s for p in self.runs)


def workdir(runs_dir: str, s: RunSpec) -> str:
  return os.path.join(runs_dir, f'{s.label}-{s.key}')


# CPU seconds per training image for the 3-stage CPM at 96x96 on the 2-core machine (measured
# runs replace these: see ``rates``); other models scale with their number of stages.
DEFAULT_RATES = {'cpm': 0.07, 'recurrent': 0.08}


def _size(config) -> float:
  if config.model.name == 'cpm':
    return (1 + 0.5 * (config.model.num_stages - 1)) / 2 * (config.data.crop_size / 96) ** 2
  return (config.data.crop_size / 96) ** 2


def _images(config) -> float:
  return float(config.num_train_steps * config.batch_size)


def rates(store: summaries_lib.Store, specs) -> dict:
  """CPU seconds per image and size unit, from the finished runs among ``specs`` (median)."""
  measured = {}
  for s in specs:
    loaded = store.load(s.key)
    cpu = loaded and summaries_lib.cpu_seconds(loaded)
    if cpu:
      measured.setdefault(s.kind, []).append(cpu / (_images(s.config) * _size(s.config)))
  out = dict(DEFAULT_RATES)
  for kind, values in measured.items():
    out[kind] = sorted(values)[len(values) // 2]
  return out


def estimate(s: RunSpec, rate: dict, done_steps: int = 0) -> float:
  left = max(s.config.num_train_steps - done_steps, 0) * s.config.batch_size
  return left * _size(s.config) * rate.get(s.kind, DEFAULT_RATES['cpm'])


def build(claims, store: summaries_lib.Store, runs_dir: str, seeds: int = 2,
          only=None) -> Plan:
  """The runs of every claim whose group or key is in ``only`` (default all), in order, each
  once."""
  from posemachines.analyses import claims as claims_lib
  chosen = [c for c in claims if only is None or c.group in only or c.key in only]
  order, by_key, undecided, extra = [], {}, [], []
  superseded = []
  for claim in chosen:
    need, waiting = claims_lib.seeds_needed(claim, store, seeds)
    superseded += [(claim, s) for s in claims_lib.superseded_runs(claim, need)]
    undecided += [f'{claim.key}: {name}' for name in waiting]
    for name in waiting:
      extra += claim.settings[name](2)
    for seed in range(max(need.values(), default=0)):
      for name, chain in claim.settings.items():
        if seed >= need[name]:
          continue
        for s in chain(seed):
          if s.key not in by_key:
            by_key[s.key] = Planned(s, [], store.finished(s.key))
            order.append(s.key)
          if claim.key not in by_key[s.key].claims:
            by_key[s.key].claims.append(claim.key)
  for claim, s in superseded:   # listed after the runs the claims need
    if s.key not in by_key and store.finished(s.key):
      by_key[s.key] = Planned(s, [claim.key], True, superseded=True)
      order.append(s.key)
  runs = [by_key[k] for k in order]
  # A phase still to train starts from its parent's checkpoint: a finished parent whose
  # checkpoints are gone (a fresh checkout) trains again first.
  for p in runs:
    p.checkpoint_step = summaries_lib.checkpoint_step(workdir(runs_dir, p.spec))
  for p in reversed(runs):
    parent = p.spec.parent
    if p.to_train and parent is not None:
      q = by_key[parent.key]
      if q.checkpoint_step != parent.config.num_train_steps:
        q.retrain = True
  rate = rates(store, [p.spec for p in runs])
  for p in runs:
    if p.to_train:
      p.estimate_s = estimate(p.spec, rate, p.checkpoint_step or 0)
  extra_s = sum(estimate(s, rate) for s in {s.key: s for s in extra
                                              if s.key not in by_key}.values())
  return Plan(runs, undecided, extra_s)


def _minutes(seconds) -> str:
  return '-' if seconds is None else f'{seconds / 60:.0f} min'


def describe(plan: Plan, store: summaries_lib.Store) -> list[str]:
  """The plan as lines of text: every run, its state and CPU time, and the CPU time left."""
  lines = [f'{"run":<44} {"key":<10} {"steps":>6}  {"state":<28} {"CPU":>8}  claims']
  for p in plan.runs:
    s = p.spec
    if p.finished:
      loaded = store.load(s.key)
      state = ('superseded (trained longer)' if p.superseded else
               'finished' + (', checkpoint needed' if p.retrain else ''))
      cpu = summaries_lib.cpu_seconds(loaded)
    elif p.checkpoint_step:
      state, cpu = f'interrupted at step {p.checkpoint_step}', p.estimate_s
    else:
      state, cpu = 'to train', p.estimate_s
    if p.to_train and p.finished:
      cpu = p.estimate_s
    lines.append(f'{s.label:<44} {s.key:<10} {s.config.num_train_steps:>6}  {state:<28} '
                 f'{_minutes(cpu):>8}  {",".join(p.claims)}')
  done = [p for p in plan.runs if p.finished]
  spent = sum(summaries_lib.cpu_seconds(store.load(p.spec.key)) or 0 for p in done)
  dropped = sum(p.superseded for p in plan.runs)
  lines += ['', f'{len(done) - dropped} of {len(plan.runs) - dropped} runs finished'
            + (f', {dropped} superseded' if dropped else '') + f' ({spent / 3600:.1f} CPU hours '
            f'spent); {len(plan.to_train())} to train: about {plan.estimate_s / 3600:.1f} CPU '
            'hours left']
  if plan.undecided:
    claims = sorted({u.split(':')[0] for u in plan.undecided})
    lines.append(f'third seeds of {len(plan.undecided)} settings wait for their first two '
                 f'(claims {", ".join(claims)}): up to {plan.undecided_estimate_s / 3600:.1f} '
                 'more CPU hours')
  return lines


# --------------------------------------------------------------------------- training --

def _cpu_now() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class AttemptClock:
  """The wall and CPU time of a run's attempts, kept in ``path`` (cpu_time.json): an attempt's
  time is added from its start and written every ``every_s`` seconds, so that an attempt killed
  outright (SIGKILL, the end of a session) still counts up to its last write."""

  def __init__(self, path: str, every_s: float = 60.0):
    self.path, self.every_s = path, every_s
    info = json.load(open(path)) if os.path.exists(path) else {}
    self.base = {'seconds': float(info.get('seconds', 0.0)),
                 'cpu_seconds': float(info.get('cpu_seconds', 0.0))}
    self.attempts = int(info.get('attempts', 0)) + 1
    self.load_average = list(info.get('load_average', []))
    self.cpu0, self.wall0, self.load0 = _cpu_now(), time.time(), os.getloadavg()[0]
    self._stop = threading.Event()
    self.write()
    self._thread = threading.Thread(target=self._tick, name='attempt_clock', daemon=True)
    self._thread.start()

  def _tick(self):
    while not self._stop.wait(self.every_s):
      self.write()

  def write(self, finished: bool = False):
    load = self.load_average + ([[round(self.load0, 2), round(os.getloadavg()[0], 2)]]
                                if finished else [])
    info = {'seconds': self.base['seconds'] + time.time() - self.wall0,
            'cpu_seconds': self.base['cpu_seconds'] + _cpu_now() - self.cpu0,
            'attempts': self.attempts, 'load_average': load}
    tmp = f'{self.path}.tmp.{os.getpid()}'
    with open(tmp, 'w') as f:
      json.dump(info, f)
    os.replace(tmp, self.path)

  def close(self):
    self._stop.set()
    self._thread.join()
    self.write(finished=True)


def train_run(s: RunSpec, config, work: str) -> None:
  """Trains (or resumes) one run in ``work`` through training/runs.py, adding the wall and CPU
  time of this attempt to ``work``/cpu_time.json (``AttemptClock``: also when it is killed)."""
  from posemachines.training import runs
  os.makedirs(work, exist_ok=True)
  outputs = ((summaries_lib.BELIEF_PICTURE,) if s.pictures else ()) + (
      (summaries_lib.VISIBILITY_PR,) if s.kind == 'recurrent' else ())
  clock = AttemptClock(os.path.join(work, summaries_lib.CPU_TIME))
  try:
    runs.run_once(config, work, s.label, on_trained=lambda state, result, d: _after_training(
        s, config, state, result, d), outputs=outputs)
  finally:
    clock.close()


def _after_training(s: RunSpec, config, state, result, work: str) -> None:
  import jax
  if s.pictures:
    from posemachines import models
    from posemachines.training import pictures
    c = overrides.derive(config, num_pictures=2)
    pictures.training_pictures(c, models.build(c), jax.device_get(state.variables), work,
                               parts=('r_elbow', 'l_elbow', 'r_wrist', 'l_wrist'))
  if s.kind == 'recurrent':
    from posemachines.training import loop
    mesh = loop.make_mesh()
    eval_fn = loop.build(config, mesh).eval_step
    out = loop.run_evaluation(config, state.variables, eval_fn, mesh, keep_predictions=True)
    ann = out['annotated'] > 0
    summary = summaries_lib.precision_recall_summary(out['predictions'][-1][..., 2][ann],
                                                     out['visible'][ann] > 0)
    with open(os.path.join(work, summaries_lib.VISIBILITY_PR), 'w') as f:
      json.dump(summary, f)


OCCLUSION_KEYS = ('pck@0.5_visible', 'pck@0.5_occluded')


def complete_occlusion_split(specs, store: summaries_lib.Store, runs_dir: str,
                             evaluate: Callable | None = None) -> list[RunSpec]:
  """Adds PCKh over the visible and over the occluded parts to the summaries of finished
  recurrent runs saved before evaluations measured it, from their final checkpoint in the runs
  directory (one evaluation each; a run whose final checkpoint is gone is left as it is). The
  evaluation must give the summary's PCKh again, or nothing is written. Returns the runs
  completed."""
  done = []
  for s in specs:
    if s.kind != 'recurrent' or not store.finished(s.key):
      continue
    loaded = store.load(s.key)
    stages = loaded['eval']['stages']
    work = workdir(runs_dir, s)
    if all(k in st for st in stages for k in OCCLUSION_KEYS) or (
        summaries_lib.checkpoint_step(work) != s.config.num_train_steps):
      continue
    print(f'  {s.label}: PCKh of the visible and the occluded parts from its final checkpoint',
          flush=True)
    result = (evaluate or _evaluate_workdir)(s.config, work)
    again = [st['pck@0.5'] for st in result['stages']]
    # Summaries keep 5 digits; one part in 7,000 is 1.4e-4.
    if len(again) != len(stages) or any(abs(a - st['pck@0.5']) > 2e-5
                                        for a, st in zip(again, stages)):
      print(f'  {s.label}: its checkpoint gives PCKh {again}, not the summary\'s '
            f'{[st["pck@0.5"] for st in stages]}: left as it is', flush=True)
      continue
    store.add_to_eval(s.key, [{k: new[k] for k in OCCLUSION_KEYS} for new in result['stages']])
    done.append(s)
  return done


def picture_lost_parts(specs, store: summaries_lib.Store, runs_dir: str,
                       draw: Callable | None = None) -> list[RunSpec]:
  """Draws, into the summary folder of every finished run whose last output lost a part
  (``summaries.lost_parts``) and has no picture of it yet, the lost parts' maps from its final
  checkpoint in the runs directory (a run whose final checkpoint is gone is left as it is).
  Returns the runs drawn."""
  done = []
  for s in specs:
    loaded = store.load(s.key)
    if loaded is None or 'lost_picture' in loaded:
      continue
    lost = summaries_lib.lost_parts(loaded)
    work = workdir(runs_dir, s)
    if not lost or summaries_lib.checkpoint_step(work) != s.config.num_train_steps:
      continue
    print(f'  {s.label}: picture of the lost {", ".join(lost)} from its final checkpoint',
          flush=True)
    (draw or draw_lost_parts)(work, lost, os.path.join(loaded['dir'],
                                                      summaries_lib.LOST_PICTURE))
    done.append(s)
  return done


def draw_lost_parts(work: str, parts, path: str, crops: int = 3) -> None:
  """The maps of ``parts`` from every output of the newest checkpoint in ``work`` on the first
  ``crops`` validation crops, the annotated part marked on each crop."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from posemachines import models
  from posemachines.core import skeleton
  from posemachines.data import pipeline
  from posemachines.tools import loading
  work = os.path.normpath(work)
  model = loading.load_workdir(work)
  config = loading.workdir_config(work)
  config.eval_batch_size = crops
  batch = next(iter(pipeline.as_numpy(pipeline.eval_dataset(config, num_examples=crops))))
  out = np.asarray(model.forward(batch['image']))   # every output's maps, the parts first
  names = models.output_names(config)
  all_parts = list(skeleton.get(config.data.parts).parts)
  rows = [(i, p) for p in parts for i in range(crops)]
  fig, axes = plt.subplots(len(rows), 1 + out.shape[0], squeeze=False,
                           figsize=(1.9 * (1 + out.shape[0]), 1.9 * len(rows) + 0.4))
  for r, (i, part) in enumerate(rows):
    k = all_parts.index(part)
    top = max(1.0, float(out[..., k].max()))
    axes[r, 0].imshow(batch['image'][i])
    axes[r, 0].plot(*batch['keypoints'][i, k, :2], '+', color='cyan', ms=10, mew=1.5)
    axes[r, 0].set_ylabel(part, fontsize=8)
    for t in range(out.shape[0]):
      m = out[t, i, ..., k]
      axes[r, t + 1].imshow(m, vmin=0, vmax=top, cmap='inferno')
      axes[r, t + 1].set_title(f'{names[t]}: max {m.max():.2f}', fontsize=7)
  for a in axes.flat:
    a.set_xticks([])
    a.set_yticks([])
  fig.suptitle(f'{os.path.basename(model.source)}:\nthe lost '
               f'{", ".join(parts)} map of every output (+: the annotated part)', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=72)
  plt.close(fig)


def _evaluate_workdir(config, work: str) -> dict:
  from posemachines.tools import loading
  from posemachines.training import loop
  model = loading.load_workdir(work)
  mesh = loop.make_mesh()
  return loop.run_evaluation(config, model.variables, loop.build(config, mesh).eval_step, mesh)


def _machine() -> str:
  import jax
  return f'{jax.devices()[0].platform} x{jax.device_count()}, {os.cpu_count()} CPU cores'


def execute(make_plan: Callable[[], Plan], store: summaries_lib.Store, runs_dir: str,
            runner: Callable = train_run, max_runs: int | None = None,
            on_saved: Callable | None = None) -> list[RunSpec]:
  """Trains what the plan lists as not finished, first to last, planning again after every
  run; at most ``max_runs`` runs. ``on_saved(spec, summary_dir)`` follows every saved summary.
  A run that fails (an exception other than an interruption) is reported and left out, with
  the phases that start from it, for the rest of this call. Returns the runs trained."""
  trained, failed = [], set()

  def blocked(s):
    return s is not None and (s.key in failed or blocked(s.parent))

  while max_runs is None or len(trained) < max_runs:
    todo = [p for p in make_plan().to_train() if not blocked(p.spec)]
    if not todo:
      break
    p = todo[0]
    s = p.spec
    config = s.config
    if s.parent is not None:
      config = overrides.derive(config, init_from=os.path.abspath(workdir(runs_dir, s.parent)))
    work = workdir(runs_dir, s)
    print(f'[{len(trained) + 1}{f"/{max_runs}" if max_runs else ""}] {s.label} ({s.key}): '
          f'{"again, for its checkpoint" if p.finished else "training"}', flush=True)
    try:
      runner(s, config, work)
    except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
      failed.add(s.key)
      print(f'  {s.label} failed: {type(e).__name__}: {e}; going on with the other runs',
            flush=True)
      continue
    trained.append(s)
    if not p.finished:
      d = store.save_workdir(s.label, s.key, work, {
          'parent': s.parent.key if s.parent else None, 'data': data_version(s.config),
          'machine': _machine(), 'config': json.loads(s.config.to_json_best_effort())})
      if on_saved is not None:
        on_saved(s, d)
  return trained
