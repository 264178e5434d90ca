"""The papers' claims as settings to train, numbers to compare and a verdict computed from them.

A ``Claim`` names its settings (each a chain of runs per seed: ``settings[name](seed)``), the
quantities measured on them (a number per seed from the summary of the chain's last run), the
pairs of quantities it compares, and ``decide``: from the quantities' statistics across seeds,
whether the claim holds and why, as text with the numbers.

Seeds rule: every setting gets ``seeds`` seeds (at least 2); where a compared pair differs by
less than twice the larger of the two spreads (standard deviation across seeds) once both have
their first two seeds, both settings get a third. Whether a third seed is needed is decided from
seeds 0 and 1 only, so it does not change as more runs finish; the verdicts use every seed a
setting needs.

Convergence rule: when a claim's finished runs include one that has not converged (its final
evaluation moved by more than CONVERGENCE_POINTS from the one before), every setting of the
claim is trained again from scratch, every seed, with a schedule LENGTHS times as long
(``Converging``), so that the settings it compares share a schedule; the shorter runs stay in
the store and are reported as superseded. A check's settings (``Claim.checks``) follow a
schedule of their own, at least as long as the claim's (``Schedule(floor=...)``): a check whose
runs do not converge is trained longer without training the claim's settings again.

Lost parts: a run whose last output gave up on a part (``summaries.lost_parts``: below 5%
PCKh@0.5 on it while 30% or more on all parts; in the recurrent model, a prediction map whose
ReLU died in training) measures the lost map, not the setting: it is left out of the numbers and
the setting trains the next seed in its place, at most MAX_LOST times; the verdict names it.

Status of a claim: 'not yet run' until every run of its own settings has finished (a check
whose runs have not all finished is left out of the verdict, which names it); 'not settled' when a
run of the longest schedule has not converged either, or a setting lost a part in more than
MAX_LOST seeds; otherwise 'holds' or 'does not hold', from ``decide``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np

from posemachines.analyses import summaries as S
from posemachines.analyses.plan import RunSpec, spec
from posemachines.core import overrides
from posemachines.training import schemes

# "The final evaluation within about 1 point of the one before it", taken as at most 1.5 points:
# the first runs of the default schedule moved by +0.7 to +1.3 points in their last 500 steps.
CONVERGENCE_POINTS = 1.5
SMALL_GAIN = 1.0   # points: a gain this small counts as no gain (diminishing returns, saturation)
GROUPS = ('stages', 'schemes', 'gradients', 'receptive_fields', 'recurrent')
CLAIMS = ('gradients', 'refinement', 'stages', 'schemes', 'receptive_fields',
          'recurrent_occlusion', 'recurrent_iterations', 'recurrent_limbs', 'recurrent_visibility')
RF_KERNELS = ((3, 1), (3, 3), (7, 7))
WRISTS, ELBOWS = ('r_wrist', 'l_wrist'), ('r_elbow', 'l_elbow')
OCCLUDED = 'occluded parts'   # quantities over the occluded parts alone
AROUND = 0.9   # a receptive field "around the person's size": at least 90% of its height
MAX_LOST = 3   # seeds of a setting replaced because their run lost a part, at most
LENGTHS = (1, 2, 4)   # schedules a setting is tried with, as multiples of its own, until it converges
# Changes to the recurrent base made to find why a claim does not hold (Runs.check_changes):
#   paperblobs  limb heatmaps' sigmas (fractions of the limb's length) scaled so the blobs are
#               as large in output pixels as at the paper's input size;
#   half        every layer half as wide;
#   light       the default synthetic people (light occlusion) for a base on heavy occlusion.
CHECKS = ('paperblobs', 'half', 'light')
# ... and to the CPM base (Runs.cpm_check_changes):
#   sgd         SGD with momentum and weight decay, the paper's optimiser, for Adam;
#   heavy       the synthetic people with heavy occlusion, whose hidden parts must be placed
#               from the rest of the body, for the default light occlusion;
#   wide        the shared image features twice as wide: the trunk's layers and the features
#               each stage after the first takes from it (x' in the paper).
CPM_CHECKS = ('sgd', 'heavy', 'wide')
# The stage checks' models: where the stage sweep stops rising, trained on heavy occlusion,
# with wider shared features, and ('long') the sweep's own runs at twice the claim's schedule
# (the runs the sweep would train next were it lengthened: the same labels and keys).
STAGE_CHECK_TS = (4, 6)
HEAVY = ', heavy occlusion'
WIDE = ', wide features'
LONG = ', twice the steps'
STAGE_CHECKS = {HEAVY: 'heavy', WIDE: 'wide', LONG: 'long'}   # name suffixes and checks
PAPER_RECURRENT_INPUT = 248   # px, the recurrent paper's input
LIMB_CHECK = 'include + limbs, limb blobs at the paper\'s size'
HALF = ', half width'
SGD = ', SGD'
# The SGD check's optimiser: the paper's momentum and weight decay, and a 500-step warmup, as
# the base's 100 steps let every rate tried diverge within 75 steps (the gradient's norm starts
# at about 1.6e5 with He initialisation and falls below 500 within 100 steps). In 1,000-step
# probes of the joint base with that warmup, 3e-4 diverged at step 515 and 1e-3 at step 21;
# 1.5e-4 and 1e-4 trained (62.0 and 57.8 PCKh@0.5 at step 1,000): 1e-4 leaves a margin for the
# longer runs, which stay near their peak rate for longer.
SGD_CHANGES = {'optim.name': 'sgd', 'optim.momentum': 0.9, 'optim.weight_decay': 5e-4,
               'optim.learning_rate': 1e-4, 'optim.warmup_steps': 500}
LIGHT = ', light occlusion'


@dataclasses.dataclass
class Quantity:
  name: str
  setting: str
  value: Callable[[dict], float]   # loaded summary of the chain's last run -> number
  unit: str = '%'


@dataclasses.dataclass
class Stat:
  seeds: list[int]
  values: list[float]
  loaded: list[dict]
  lost: list[int] = dataclasses.field(default_factory=list)   # seeds left out: a lost part

  @property
  def n(self) -> int:
    return len(self.values)

  @property
  def mean(self) -> float:
    return float(np.mean(self.values)) if self.values else float('nan')

  @property
  def sd(self) -> float:
    return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

  def text(self, digits: int = 1) -> str:
    if not self.values:
      return '-'
    if self.n == 1:  # no spread yet
      return f'{self.mean:.{digits}f} (1 seed)'
    return f'{self.mean:.{digits}f} ± {self.sd:.{digits}f}'


@dataclasses.dataclass
class Claim:
  key: str
  group: str          # --only name
  title: str
  statement: str
  settings: dict      # name -> seed -> [RunSpec] (the last one gives the numbers)
  quantities: list[Quantity]
  pairs: list[tuple[str, str]]
  decide: Callable[[dict], tuple[bool, str]]
  checks: tuple = ()  # settings that check why the claim does not hold (see CHECKS)

  def quantity(self, name: str) -> Quantity:
    return next(q for q in self.quantities if q.name == name)


# ------------------------------------------------------------------------ statistics --

def stats(claim: Claim, store: S.Store, seeds: dict | int) -> dict[str, Stat]:
  """{quantity: Stat} over the finished seeds below ``seeds`` (per setting, or for all), less
  those whose run lost a part."""
  out = {}
  for q in claim.quantities:
    n = seeds if isinstance(seeds, int) else seeds[q.setting]
    st = Stat([], [], [])
    for seed in range(n):
      loaded = store.load(claim.settings[q.setting](seed)[-1].key)
      if loaded is None:
        continue
      if S.lost_parts(loaded):
        st.lost.append(seed)
        continue
      v = q.value(loaded)
      if v is None or not math.isfinite(v):
        continue
      st.seeds.append(seed)
      st.values.append(float(v))
      st.loaded.append(loaded)
    out[q.name] = st
  return out


def close(a: Stat, b: Stat) -> bool:
  """Whether two settings differ by less than twice the larger spread of their seeds."""
  return abs(a.mean - b.mean) < 2 * max(a.sd, b.sd)


def lost_seeds(claim: Claim, store: S.Store, name: str, n: int) -> list[tuple[RunSpec, list]]:
  """(last run, lost parts) of the seeds below ``n`` of a setting whose run lost a part."""
  out = []
  for seed in range(n):
    s = claim.settings[name](seed)[-1]
    loaded = store.load(s.key)
    lost = S.lost_parts(loaded) if loaded is not None else []
    if lost:
      out.append((s, lost))
  return out


def _seeds_for(claim: Claim, store: S.Store, name: str, wanted: int) -> int:
  """How many seeds of a setting to train so that ``wanted`` of them did not lose a part (a
  seed not finished yet counts as one that will not), replacing at most MAX_LOST."""
  n = lost = 0
  while n - lost < wanted:
    loaded = store.load(claim.settings[name](n)[-1].key)
    n += 1
    if loaded is not None and S.lost_parts(loaded):
      lost += 1
      if lost > MAX_LOST:
        break
  return n


def seeds_needed(claim: Claim, store: S.Store, seeds: int = 2):
  """({setting: seeds to train}, [settings whose third seed waits for their first two]); a
  seed whose run lost a part does not count, the next one is trained in its place."""
  seeds = max(int(seeds), 2)
  count = functools.cache(lambda name, k: _seeds_for(claim, store, name, k))
  wanted = {name: seeds for name in claim.settings}
  waiting = set()
  if seeds < 3:
    first = stats(claim, store, {name: count(name, 2)
                                 for name in claim.settings})
    for a, b in claim.pairs:
      sa, sb = first[a], first[b]
      qa, qb = claim.quantity(a).setting, claim.quantity(b).setting
      if sa.n == 2 and sb.n == 2:
        if close(sa, sb):
          wanted[qa] = wanted[qb] = 3
      else:
        waiting |= {qa, qb}
  need = {name: count(name, wanted[name]) for name in claim.settings}
  return need, sorted(w for w in waiting if wanted[w] < 3)


@dataclasses.dataclass
class Result:
  claim: Claim
  status: str            # 'holds', 'does not hold', 'not settled', 'not yet run'
  text: str              # the verdict as a sentence
  stats: dict
  finished: int
  total: int
  seeds: dict
  unconverged: list      # (label, change in points) of runs that did not converge
  lost: list = dataclasses.field(default_factory=list)   # (RunSpec, parts) of runs left out
  held: dict = dataclasses.field(default_factory=dict)   # {quantity: Stat} of pending checks


def needed_runs(claim: Claim, need: dict) -> list[RunSpec]:
  """The runs of ``need[setting]`` seeds of each setting (none of a setting not in ``need``)."""
  out = {}
  for name, chain in claim.settings.items():
    for seed in range(need.get(name, 0)):
      for s in chain(seed):
        out.setdefault(s.key, s)
  return list(out.values())


def evaluate(claim: Claim, store: S.Store, seeds: int = 2) -> Result:
  need, _ = seeds_needed(claim, store, seeds)
  runs = needed_runs(claim, need)
  finished = sum(store.finished(s.key) for s in runs)
  st = stats(claim, store, need)
  lost = {name: lost_seeds(claim, store, name, need[name]) for name in claim.settings}
  lost_runs = list({s.key: (s, parts) for name in lost for s, parts in lost[name]}.values())
  given_up = [name for name in lost if len(lost[name]) > MAX_LOST]
  # A check given up (its runs lost a part in too many seeds) says nothing: the claim is
  # decided without it.
  dropped = [name for name in given_up if name in claim.checks]
  given_up = [name for name in given_up if name not in claim.checks]
  # A check whose runs have not all finished is left out until they have: the claim is decided
  # on its own settings, the verdict saying what the check waits for.
  pending = [name for name in claim.checks if name not in dropped
             and not all(store.finished(s.key) for seed in range(need[name])
                         for s in claim.settings[name](seed))]
  main_runs = needed_runs(claim, {n: k for n, k in need.items() if n not in claim.checks})
  held = {}
  for q in claim.quantities:
    if q.setting in dropped or q.setting in pending:
      if q.setting in pending and st[q.name].n:
        held[q.name] = st[q.name]
      st[q.name] = Stat([], [], [])
  unconverged = []
  last_keys = {claim.settings[name](seed)[-1].key for name in claim.settings
               if name not in dropped and name not in pending for seed in range(need[name])}
  for s in runs:
    loaded = store.load(s.key)
    if (s.key in last_keys and loaded is not None and not S.lost_parts(loaded)
        and not S.converged(loaded, CONVERGENCE_POINTS)):
      change = S.last_change(loaded)
      unconverged.append((s.label, change))
  if not all(store.finished(s.key) for s in main_runs):
    status, text = 'not yet run', f'not yet run ({finished} of {len(runs)} runs finished)'
  elif given_up:
    status = 'not settled'
    text = (f'not settled, because {", ".join(given_up)} lost a part in more than {MAX_LOST} '
            'seeds: ' + _lost_text(lost_runs))
  elif unconverged:
    listed = ', '.join(f'{label} ({"no earlier evaluation" if c is None else f"{c:+.1f}"})'
                       for label, c in unconverged)
    status = 'not settled'
    text = (f'not settled, because {len(unconverged)} of its runs did not converge (final '
            f'evaluation more than {CONVERGENCE_POINTS:g} points from the one before: '
            f'{listed})')
  else:
    ok, why = claim.decide(st)
    status = 'holds' if ok else 'does not hold'
    text = f'holds: {why}' if ok else f'does not hold, because {why}'
    factor = max((chain.factor() for chain in claim.settings.values()
                  if isinstance(chain, Converging)), default=1)
    if factor > 1:
      text += (f' (every setting trained with {factor}x the base schedule\'s steps, a run '
               'having not converged with the shorter one)')
    for name in dropped:
      text += (f' (the check "{name}" is given up: its runs lost a part in '
               f'{len(lost[name])} of {need[name]} seeds)')
    if pending:
      waiting = needed_runs(claim, {n: need[n] for n in pending})
      done = sum(store.finished(s.key) for s in waiting)
      names = ', '.join(f'"{name}"' for name in pending)
      text += (f' (left out until their runs have finished: {names}; {done} of '
               f'{len(waiting)} runs finished)')
    if lost_runs:
      per_setting = '; '.join(
          f'{name}: {len(lost[name])} of {need[name]} seeds, '
          + _lost_text(lost[name])
          for name in claim.settings if lost[name] and name not in dropped)
      if per_setting:
        text += (f' (left out, each replaced by the next seed, as its last output lost a '
                 f'part: {per_setting})')
  return Result(claim, status, text, st, finished, len(runs), need, unconverged, lost_runs,
                held)


def _lost_text(lost_runs) -> str:
  return ', '.join(f'{s.label} ({", ".join(parts)})' for s, parts in lost_runs)


# ----------------------------------------------------------------------- the settings --

class Runs:
  """The runs of the claims, derived from the CPM and recurrent base configs."""

  def __init__(self, cpm_base, recurrent_base):
    self.cpm, self.recurrent_base = cpm_base, recurrent_base

  @functools.lru_cache(maxsize=None)
  def joint(self, stages: int, seed: int, steps: int = 0, check: str = ''
            ) -> tuple[RunSpec, ...]:
    c = overrides.derive(self.cpm, seed=seed, **{'model.num_stages': stages},
                         **self.cpm_check_changes(check))
    if steps:
      c = overrides.derive(c, num_train_steps=steps)
    c = schemes.phases(c, 'joint')[0].config
    base = stages == self.cpm.model.num_stages and not steps and not check
    label = (f'cpm_T{stages}_joint' + (f'_{steps}steps' if steps else '')
             + (f'_{check}' if check else '') + f'_s{seed}')
    return (spec(label, c, pictures=base and seed == 0),)

  @functools.lru_cache(maxsize=None)
  def final_only(self, seed: int, check: str = '') -> tuple[RunSpec, ...]:
    c = overrides.derive(self.cpm, seed=seed, **self.cpm_check_changes(check))
    c = schemes.phases(c, 'final_only')[0].config
    return (spec(f'cpm_T{self.cpm.model.num_stages}_final_only{f"_{check}" if check else ""}'
                 f'_s{seed}', c),)

  def cpm_check_changes(self, check: str) -> dict:
    """The config changes of a check of the CPM claims (see CPM_CHECKS; '' for none)."""
    if not check:
      return {}
    if check == 'sgd':
      return dict(SGD_CHANGES)
    if check == 'heavy':
      return {'data.synthetic_occlusion': 'heavy'}
    if check == 'wide':
      m = self.cpm.model
      return {'model.trunk_widths': tuple(2 * w for w in m.trunk_widths),
              'model.stage_feature_width': 2 * m.stage_feature_width}
    raise ValueError(f'unknown CPM check {check!r}: one of {", ".join(CPM_CHECKS)}')

  def stage_check(self, stages: int, check: str) -> Callable[[int], tuple[RunSpec, ...]]:
    """The chain of a stage check (STAGE_CHECKS): 'long' is the joint run lengthened twice
    over (then with the claim's schedule, as every check), the others a CPM check's changes."""
    if check == 'long':
      return lambda seed: lengthen(self.joint(stages, seed), 2)
    return lambda seed: self.joint(stages, seed, check=check)

  def shorter_stage_runs(self, store, claim) -> tuple[int, dict]:
    """(steps, {T: [final-stage PCKh@0.5 of each finished run]}) of the stage sweep at the
    base's own schedule, where the stage ``claim`` trains longer ((0, {}) where it does not, or
    without a store)."""
    if store is None:
      return 0, {}
    out, steps = {}, 0
    for t in range(1, 7):
      for seed in range(MAX_LOST + 3):
        spec_ = self.joint(t, seed)[0]
        loaded = store.load(spec_.key)
        if loaded is not None and claim.settings[f'T={t}'](seed)[-1].key != spec_.key:
          out.setdefault(t, []).append(_final(loaded))
          steps = spec_.config.num_train_steps
    return steps, out

  def wide_text(self) -> str:
    """The wide check's widths against the base's, in words."""
    m, w = self.cpm.model, self.cpm_check_changes('wide')
    slash = lambda ws: '/'.join(str(x) for x in ws)  # noqa: E731
    return (f'trunk {slash(m.trunk_widths)} -> {slash(w["model.trunk_widths"])} channels, '
            f'stage features {m.stage_feature_width} -> {w["model.stage_feature_width"]}')

  @functools.lru_cache(maxsize=None)
  def stagewise(self, seed: int, finetune: bool) -> tuple[RunSpec, ...]:
    t = self.cpm.model.num_stages
    out = []
    for phase in schemes.phases(overrides.derive(self.cpm, seed=seed), 'stagewise_finetune'):
      if phase.name == 'finetune' and not finetune:
        break
      name = 'finetune' if phase.name == 'finetune' else f'stagewise{phase.name[len("stage"):]}'
      out.append(spec(f'cpm_T{t}_{name}_s{seed}', phase.config, parent=out[-1] if out else None))
    return tuple(out)

  def stagewise_steps(self) -> int:
    return sum(p.config.num_train_steps for p in schemes.phases(self.cpm, 'stagewise_finetune'))

  @functools.lru_cache(maxsize=None)
  def rf_config(self, trunk: int, stage: int):
    from posemachines.analyses import runner
    base = schemes.phases(self.cpm, 'joint')[0].config
    return runner.match_parameters(base, trunk, stage, runner._params(base))  # noqa: SLF001

  @functools.lru_cache(maxsize=None)
  def rf(self, trunk: int, stage: int, seed: int) -> tuple[RunSpec, ...]:
    c = overrides.derive(self.rf_config(trunk, stage), seed=seed)
    return (spec(f'cpm_rf{trunk}-{stage}_s{seed}', c),)

  @functools.lru_cache(maxsize=None)
  def receptive_field(self, trunk: int | None, stage: int | None) -> float:
    return output_fields(self.cpm if trunk is None else self.rf_config(trunk, stage))[-1]

  @functools.lru_cache(maxsize=None)
  def stage_fields(self) -> dict:
    """{'model'|'paper': ([receptive field of each stage's output, px], crop size, px)} of the
    6-stage CPM base and of the paper's 6-stage model."""
    from posemachines.core import configs
    return {name: (output_fields(c), float(c.data.crop_size))
            for name, c in (('model', overrides.derive(self.cpm, **{'model.num_stages': 6})),
                            ('paper', configs.cpm_release(6)))}

  @functools.lru_cache(maxsize=None)
  def parameters(self, trunk: int | None, stage: int | None) -> int:
    from posemachines.analyses import runner
    return runner._params(self.cpm if trunk is None else self.rf_config(trunk, stage))  # noqa

  @functools.lru_cache(maxsize=None)
  def recurrent(self, occlusion: str, limbs: bool, seed: int,
                iterations: int | None = None, check: str = '') -> tuple[RunSpec, ...]:
    """A variant of the recurrent base (``iterations``: another number of iterations than the
    base's, for the separate models of the iteration claim; ``check``: one of CHECKS, a change
    made to find out why a claim does not hold)."""
    changes = {'loss.occlusion': occlusion, 'model.limb_heatmaps': limbs}
    if iterations is not None:
      changes['model.num_iterations'] = iterations
    if check:
      changes.update(self.check_changes(check))
    c = overrides.derive(self.recurrent_base, seed=seed, **changes)
    data = c.data.get('synthetic_occlusion', 'light')   # the data's occlusion level, if not light
    return (spec(f'recurrent_{"" if data == "light" else data + "_"}{occlusion}'
                 f'{"_limbs" if limbs else ""}{f"_{check}" if check else ""}'
                 f'{"" if iterations is None else f"_it{iterations}"}_s{seed}', c),)

  def limb_blob_scale(self) -> float:
    """How much longer the limbs are in output pixels at the paper's input (248 px) than in
    the recurrent base's crops, the person filling the crop alike."""
    return PAPER_RECURRENT_INPUT / self.recurrent_base.data.crop_size

  def check_changes(self, check: str) -> dict:
    """The config changes of a check (see CHECKS)."""
    base = self.recurrent_base
    if check == 'paperblobs':
      f = self.limb_blob_scale()
      return {'targets.limb_along': base.targets.limb_along * f,
              'targets.limb_across': base.targets.limb_across * f}
    if check == 'half':
      return {'model.widths': tuple(max(1, w // 2) for w in base.model.widths)}
    if check == 'light':
      return {'data.synthetic_occlusion': 'light'}
    raise ValueError(f'unknown check {check!r}: one of {", ".join(CHECKS)}')

  @functools.lru_cache(maxsize=None)
  def recurrent_parameters(self, check: str = '') -> int:
    from posemachines.analyses import runner
    changes = {'model.limb_heatmaps': False}
    if check:
      changes.update(self.check_changes(check))
    return runner._params(overrides.derive(self.recurrent_base, **changes))  # noqa: SLF001

  def person_height(self) -> float:
    """Height of the normalised person in the CPM's crop (px)."""
    return person_height(self.cpm)

  @functools.lru_cache(maxsize=None)
  def recurrent_fields(self) -> dict:
    """{'model'|'paper': ([receptive field of each output, px], normalised person's height, px)}
    of the recurrent base (2 iterations, as the paper's rows) and of the paper's model."""
    from posemachines.core import configs
    out = {}
    for name, c in (('model', self.recurrent_base), ('paper', configs.recurrent_paper())):
      c = overrides.derive(c, **{'model.num_iterations': 2, 'model.limb_heatmaps': False})
      out[name] = (output_fields(c), person_height(c))
    return out


def output_fields(config) -> list[float]:
  """The receptive field (px, along the rows) of each of the model's outputs on its crops."""
  from posemachines import models
  from posemachines.tools import receptive_field
  fields = receptive_field.receptive_fields(models.build(config), config.data.crop_size)
  return [float(f[0].size) for f in fields]


def person_height(config) -> float:
  """Height of the normalised person in the crop (px): 200 px x target_dist at 368."""
  d = config.data
  return 200 * d.target_dist * d.crop_size / 368


def lengthen(chain: tuple[RunSpec, ...], factor: int) -> tuple[RunSpec, ...]:
  """The same chain of runs with every phase trained ``factor`` times as many steps (label
  ``..._x{factor}_s{seed}``; gradients recorded before the last update move with the end)."""
  if factor == 1:
    return chain
  out = []
  for s in chain:
    c = s.config
    steps = c.num_train_steps * factor
    changes = {'num_train_steps': steps}
    if 'gradients' in c and tuple(c.gradients.at_steps) == (c.num_train_steps - 1,):
      changes['gradients.at_steps'] = (steps - 1,)
    stem, _, seed = s.label.rpartition('_s')
    stem, times = _times(stem)
    out.append(spec(f'{stem}_x{times * factor}_s{seed}', overrides.derive(c, **changes),
                    parent=out[-1] if out else None, pictures=s.pictures))
  return tuple(out)


def _times(stem: str) -> tuple[str, int]:
  """('cpm_T4_joint', 2) for 'cpm_T4_joint_x2'; (stem, 1) for a stem not lengthened."""
  head, sep, tail = stem.rpartition('_x')
  return (head, int(tail)) if sep and tail.isdigit() else (stem, 1)


class Schedule:
  """The length factor shared by the chains of one claim: the shortest of ``LENGTHS`` at which
  every finished run of every chain, every seed, has converged. Computed once per state of the
  store (a run finishing, or a new store, computes it again)."""

  def __init__(self, chains, store: S.Store, seeds: int = 3, floor: Schedule | None = None):
    self.chains, self.store, self.seeds, self.floor = tuple(chains), store, seeds, floor
    self._memo = None

  def _unconverged(self, factor: int) -> bool:
    """Whether a finished run at this length has not converged (a run that lost a part, left
    out of the numbers, does not count; the seeds replacing such runs do)."""
    for chain in self.chains:
      for seed in range(self.seeds + MAX_LOST):
        loaded = self.store.load(lengthen(chain(seed), factor)[-1].key)
        if (loaded is not None and not S.lost_parts(loaded)
            and not S.converged(loaded, CONVERGENCE_POINTS)):
          return True
    return False

  def factor(self) -> int:
    """(With ``floor``, another group's Schedule: no shorter than its factor.)"""
    state = self.store.state()
    if self._memo is None or self._memo[0] != state:
      lengths = [f for f in LENGTHS if self.floor is None or f >= self.floor.factor()]
      f = next((f for f in lengths[:-1] if not self._unconverged(f)), lengths[-1])
      self._memo = (state, f)
    return self._memo[1]


class Converging:
  """A setting's chain of runs at the length its claim's ``Schedule`` gives (``group``: the
  chains of the claim, or their shared ``Schedule``; by default this chain alone): every seed of
  every setting of a group has the same schedule."""

  def __init__(self, chain: Callable, store: S.Store, seeds: int = 3, group=None):
    self.chain, self.store, self.seeds = chain, store, seeds
    if isinstance(group, Schedule):
      self.schedule = group
    else:
      self.schedule = Schedule(group if group is not None else (chain,), store, seeds)

  def factor(self) -> int:
    return self.schedule.factor()

  def __call__(self, seed: int) -> tuple[RunSpec, ...]:
    return lengthen(self.chain(seed), self.factor())

  def superseded(self, seed: int) -> list[RunSpec]:
    """The runs of the shorter schedules (trained, or to be reported, before this one)."""
    return [s for f in LENGTHS if f < self.factor() for s in lengthen(self.chain(seed), f)]


RECURRENT_VARIANTS = (('include', True), ('include', False), ('exclude', True), ('ignore', True))


def recurrent_name(occlusion: str, limbs: bool) -> str:
  return f'{occlusion} + limbs' if limbs else f'{occlusion}, no limbs'


# ------------------------------------------------------------------------ the claims --

def _final(loaded):
  return S.pck(loaded)


def _stage(t):
  return lambda loaded: S.pck(loaded, t)


def _parts(parts, t):
  return lambda loaded: S.part_pck(loaded, parts, t)


def _grad_log_std(loaded):
  g = loaded.get('gradients')
  if not g:
    return None
  layer = g['layers'][0]
  return math.log10(g['std'][layer][-1])


def _seq(stats, names, digits=1):
  return ', '.join(f'{n} {stats[n].text(digits)}' for n in names)


def _rises(stats, names):
  """The first consecutive pair whose mean does not rise, or None."""
  for a, b in zip(names, names[1:]):
    if not stats[b].mean > stats[a].mean:
      return a, b
  return None


def decide_gradients(st):
  w, wo = st['with intermediate supervision'], st['without (final stage only)']
  by_seed = dict(zip(wo.seeds, wo.loaded))
  ratios = []
  for seed, lw in zip(w.seeds, w.loaded):
    if seed in by_seed:
      ratios.append(10 ** (_grad_log_std(lw) - _grad_log_std(by_seed[seed])))
  g = w.loaded[0]['gradients']
  layer, steps = g['layers'][0], g['steps']
  first = next((i for i, s in enumerate(steps) if s > 0), 0)

  def kept(stat):
    return np.mean([l['gradients']['std'][layer][-1] / l['gradients']['std'][layer][first]
                    for l in stat.loaded])
  ratio = float(np.exp(np.mean(np.log(ratios))))
  text = (f'at {layer}, nearest the input, the standard deviation of the gradient values at '
          f'the last recording (step {steps[-1]}) is {ratio:.2f} times that without '
          f'intermediate supervision (the geometric mean of the seeds\' ratios: '
          f'{", ".join(f"{r:.2f}" for r in ratios)}); from '
          f'the first recording after initialisation (step {steps[first]}) to the last it went '
          f'to {100 * kept(w):.0f}% of its value with intermediate supervision and to '
          f'{100 * kept(wo):.0f}% without')
  if ratio >= 2 and min(ratios) > 1:
    return True, text
  return False, text + ' (the claim needs a ratio of at least 2 in every seed)'


def decide_stages(st, fields=None, wide='', shorter=None):
  """``fields``: Runs.stage_fields(), ``wide``: Runs.wide_text() and ``shorter``: the finished
  runs of a shorter schedule (Runs.shorter_stage_runs()), for the account of a claim that does
  not hold."""
  names = [q for q in st if not q.endswith(tuple(STAGE_CHECKS))]
  means = [st[n].mean for n in names]
  gains = np.diff(means)
  listed = _seq(st, names)
  upto5 = names[:5]
  stop = _rises(st, upto5)
  if stop:
    return False, (f'the final stage\'s accuracy does not rise from {stop[0]} to {stop[1]} '
                   f'({listed})' + _stage_why(st, fields, wide, shorter))
  if len(gains) < 5:
    return True, f'the final stage\'s accuracy rises with every stage ({listed})'
  if not (gains[4] <= SMALL_GAIN or gains[4] < gains[3]):
    return False, (f'the gain from T=5 to T=6 ({gains[4]:+.1f}) is not smaller than from T=4 '
                   f'to T=5 ({gains[3]:+.1f}) ({listed})' + _stage_why(st, fields, wide, shorter))
  within = [f'{a} -> {b}' for a, b in zip(upto5, upto5[1:]) if close(st[a], st[b])]
  note = (f'; the rises {", ".join(within)} are within twice the seeds\' spread'
          if within else '')
  return True, (f'the final stage\'s accuracy rises with every stage up to 5 and the gain '
                f'from 5 to 6 is {gains[4]:+.1f} points ({listed}){note}')


def _stage_why(st, fields, wide='', shorter=None) -> str:
  """What the receptive fields and the checks (heavy occlusion, wider features, twice the
  steps) say of why the stage claim does not hold ('' for what has no numbers yet); ``wide``:
  the wide check's widths, in words."""
  text = ''
  if fields:
    (ours, crop), (paper, paper_crop) = fields['model'], fields['paper']
    first = lambda fs, c: next((i + 1 for i, f in enumerate(fs) if f >= c), None)  # noqa: E731
    a, b = first(ours, crop), first(paper, paper_crop)
    text += (f'. The outputs of stages 1-6 see {"/".join(f"{f:.0f}" for f in ours)} px of '
             f'the {crop:.0f}-px crop here and {"/".join(f"{f:.0f}" for f in paper)} px of '
             f'the {paper_crop:.0f}-px crop in the paper\'s model: ')
    if a is not None and b is not None and a <= b:
      text += (f'from stage {a} here and stage {b} there every output sees the whole crop, so '
               'the stages after that add depth and refinement, not field, in both, and the '
               'receptive field is not why the gains stop earlier here')
    else:
      text += ('the paper\'s stages reach the whole crop sooner than these, so the receptive '
               'field may be the reason')
  t_lo, t_hi = STAGE_CHECK_TS[0], STAGE_CHECK_TS[-1]
  lo, hi = f'T={t_lo}', f'T={t_hi}'
  if st.get(lo) is not None and st.get(hi) is not None and st[lo].n and st[hi].n:
    inner = float(np.mean([S.pck(l, t_lo - 1) for l in st[hi].loaded]))
    if inner < st[lo].mean - max(st[lo].sd, st[hi].sd):
      text += (f'; inside the {hi} model stage {t_lo} reaches {inner:.1f} against '
               f'{st[lo].mean:.1f} as the last stage of {lo}, and its stages {t_lo + 1}-{t_hi} '
               f'bring it to {st[hi].mean:.1f}: the extra stages make up for weaker earlier '
               'stages rather than adding to them')
  gain = st[hi].mean - st[lo].mean if st.get(hi) and st.get(lo) and st[hi].n and st[lo].n \
      else None
  steps, short = shorter or (0, {})
  if gain is not None and short.get(t_lo) and short.get(t_hi):
    mean = {t: float(np.mean(v)) for t, v in short.items()}
    listed = ', '.join(f'T={t} {mean[t]:.1f}' + (f' ({len(v)} seeds)' if len(v) > 1 else '')
                       for t, v in sorted(short.items()))
    gain_s = mean[t_hi] - mean[t_lo]
    text += (f'; the superseded runs of the shorter schedule ({steps:,} steps, seed 0 where not '
             f'said otherwise): {listed}, {gain_s:+.1f} from {lo} to {hi} against {gain:+.1f} '
             'at the longer one: ')
    text += ('the curve is as flat beyond ' + lo + ' at the shorter schedule, so training '
             'longer lifts every model but does not make more stages pay'
             if gain_s <= max(SMALL_GAIN, gain + 1.0) else
             'more stages paid at the shorter schedule, so the deeper models\' edge there is '
             'faster training, which a longer schedule lets the shallower ones make up')
  pair = _check_pair(st, lo, hi, HEAVY, gain)
  if pair is None:
    return text
  h_lo, h_hi, gain_h, explains = pair
  check = (f'check on heavy occlusion, whose hidden parts must be placed from the rest of the '
           f'body: {lo} {h_lo.text()}, {hi} {h_hi.text()} ({gain_h:+.1f}, against {gain:+.1f} '
           f'on the default data)')
  if explains:
    return text + (f'; {check}: where the data needs the context that later stages bring, the '
                   f'stages after {t_lo} add accuracy, so the default synthetic people, '
                   f'which stage {t_lo} already solves to within a few points, are why the '
                   'gains stop there')
  text += (f'; {check}: more stages do not add accuracy beyond {lo} even where hidden '
           'parts must be placed from the rest of the body, so the occlusion context of '
           'the data is not the reason either')
  pair = _check_pair(st, lo, hi, WIDE, gain)
  if pair is None:
    return text
  w_lo, w_hi, gain_w, explains = pair
  check = (f'check with the shared image features twice as wide{f" ({wide})" if wide else ""}: '
           f'{lo} {w_lo.text()}, {hi} {w_hi.text()} ({gain_w:+.1f}, against {gain:+.1f} with '
           f'the default widths; {w_lo.mean - st[lo].mean:+.1f} at {lo} and '
           f'{w_hi.mean - st[hi].mean:+.1f} at {hi} over the default widths)')
  if explains:
    return text + (f'; {check}: with wider features to share the stages after {t_lo} add '
                   'accuracy, so the narrow image features that every stage of this small '
                   'model reads are why the gains stop there')
  text += (f'; {check}: wider shared features do not make the stages after {t_lo} pay '
           'either, so the features\' width is not the reason')
  pair = _check_pair(st, lo, hi, LONG, gain)
  if pair is None:
    return text
  l_lo, l_hi, gain_l, explains = pair
  steps_of = lambda s: s.loaded[0]['eval'].get('step', 0) if s.loaded else 0  # noqa: E731
  at = lambda k: f' ({k:,} steps)' if k else ''  # noqa: E731
  check = (f'check with twice the steps{at(steps_of(l_lo))}: {lo} {l_lo.text()}, {hi} '
           f'{l_hi.text()} ({gain_l:+.1f}, against {gain:+.1f}{at(steps_of(st[lo]))}; '
           f'{l_lo.mean - st[lo].mean:+.1f} at {lo} and {l_hi.mean - st[hi].mean:+.1f} at {hi} '
           'over the shorter schedule)')
  if explains:
    return text + (f'; {check}: trained longer, the stages after {t_lo} add accuracy, so the '
                   'schedule at which the shallower models converge is too short for the '
                   'deeper ones, and that is why the gains stop there')
  return text + (f'; {check}: training twice as long does not make the stages after {t_lo} '
                 'pay either, so the schedule is not the reason. The data\'s occlusion, the '
                 'receptive field, the width of the shared features and the length of the '
                 f'schedule are ruled out, and the cause of the flat curve beyond {lo} is not '
                 'found')


def _check_pair(st, lo, hi, suffix, gain):
  """(lo's and hi's stats in the check named by ``suffix``, their gain, whether it exceeds the
  base's ``gain`` by more than the seeds' spread), or None before both have numbers (or
  without the base's gain)."""
  c_lo, c_hi = st.get(lo + suffix), st.get(hi + suffix)
  if gain is None or c_lo is None or c_hi is None or not (c_lo.n and c_hi.n):
    return None
  g = c_hi.mean - c_lo.mean
  spread = max(st[lo].sd, st[hi].sd, c_lo.sd, c_hi.sd)
  return c_lo, c_hi, g, g > max(SMALL_GAIN, gain + spread)


def decide_refinement(st):
  stages = [n for n in st if ':' not in n]
  parts = {'all parts': stages, 'wrists': [f'{n}: wrists' for n in stages],
           'elbows': [f'{n}: elbows' for n in stages]}
  texts, ok = [], True
  for what, names in parts.items():
    texts.append(f'{what} ' + ' / '.join(st[n].text() for n in names))
    if _rises(st, names):
      ok = False
  text = (f'PCKh@0.5 of stages {" / ".join(n.split(" ")[1] for n in stages)}: '
          + '; '.join(texts))
  return (True, text) if ok else (False, 'not every stage improves on the one before: ' + text)


def decide_schemes(st):
  i, ii, iii, iv = (st[k] for k in ('(i) joint', '(ii) stage-wise',
                                    '(iii) stage-wise + fine-tuning', '(iv) final stage only'))
  longer = st['(i) joint, as many steps as (iii)']
  parts, ok = [], True
  beats = [n for n, s in (('(ii)', ii), ('(iii)', iii), ('(iv)', iv)) if not i.mean > s.mean]
  ok &= not beats
  parts.append(f'(i) {i.text()} ' + ('beats every other scheme' if not beats else
                                    f'does not beat {", ".join(beats)}'))
  below = ii.mean < i.mean
  ok &= below
  parts.append(f'(ii) stage-wise ends {"below" if below else "above"} (i) at {ii.text()}')
  near = i.mean - iii.mean <= 2.0
  slower = ii.mean < i.mean - max(i.mean - iii.mean, 0)
  ok &= near and slower
  parts.append(f'(iii) reaches {iii.text()} after {iii.loaded[0]["eval"]["step"]} more steps of '
               f'fine-tuning ({"within" if near else "more than"} 2 points of (i); '
               f'{longer.text()} for (i) with as many steps)')
  worst = iv.mean < min(i.mean, ii.mean, iii.mean)
  ok &= worst
  parts.append(f'(iv) final-stage loss only {"is the worst" if worst else "is not the worst"} '
               f'at {iv.text()}' + ('' if worst else _sgd_check(st)))
  return ok, '; '.join(parts)


def _sgd_check(st) -> str:
  """What the SGD check says of why (iv) is not the worst ('' while it has no numbers)."""
  i, iv = st['(i) joint'], st['(iv) final stage only']
  a, b = st.get('(i) joint' + SGD), st.get('(iv) final stage only' + SGD)
  if a is None or b is None or not (a.n and b.n):
    return ''
  gap, gap_sgd = i.mean - iv.mean, a.mean - b.mean
  spread = max(i.sd, iv.sd, a.sd, b.sd)
  check = (f'check with SGD and momentum, the paper\'s optimiser: (i) {a.text()}, (iv) '
           f'{b.text()}: (iv) {-gap_sgd:+.1f} points from (i), against {-gap:+.1f} with Adam')
  if gap_sgd > gap + spread:
    return (f', and with SGD it falls further behind joint training ({check}): Adam, whose '
            'per-parameter steps do not shrink with the gradients, makes up for the gradients '
            'that vanish towards the input without intermediate supervision, which is why '
            '(iv) is not the worst here')
  return (f', and with SGD it falls no further behind beyond the seeds\' spread ({check}): '
          'the optimiser is not the reason')


def decide_receptive_fields(runs: Runs):
  def decide(st):
    fields = {n: runs.receptive_field(*_rf_kernels(n)) for n in st}
    names = sorted(st, key=lambda n: fields[n])
    height = runs.person_height()
    listed = ', '.join(f'{fields[n]:.0f} px {st[n].text()}' for n in names)
    reach = next((i for i, n in enumerate(names) if fields[n] >= AROUND * height), None)
    if reach is None:
      return False, (f'no model\'s field reaches {100 * AROUND:.0f}% of the person\'s height of '
                     f'{height:.0f} px, so the sweep cannot show saturation there ({listed})')
    stop = _rises(st, names[:reach + 1])
    if stop:
      return False, (f'accuracy does not rise from the field of {fields[stop[0]]:.0f} px to '
                     f'{fields[stop[1]]:.0f} px, on the way to the person\'s height of '
                     f'{height:.0f} px ({listed})')
    beyond = [st[n].mean - st[names[reach]].mean for n in names[reach + 1:]]
    tolerance = max(SMALL_GAIN,
                    2 * max([st[n].sd for n in names[reach:]], default=0.0))
    if beyond and max(beyond) > tolerance:
      return False, (f'accuracy keeps rising beyond the person\'s height of {height:.0f} px '
                     f'(+{max(beyond):.1f} points after {fields[names[reach]]:.0f} px; '
                     f'{listed})')
    return True, (f'accuracy rises up to a field of {fields[names[reach]]:.0f} px, the first '
                  f'of at least {100 * AROUND:.0f}% of the person\'s height of {height:.0f} px, '
                  'and gains at most '
                  f'{max(beyond, default=0.0):+.1f} points beyond it ({listed})')
  return decide


def _rf_kernels(name: str):
  if name.startswith('base'):
    return None, None
  trunk, stage = name.split(' ')[0].split('/')
  return int(trunk), int(stage)


def decide_occlusion(st):
  inc, exc, ign = (st[recurrent_name(m, True)] for m in ('include', 'exclude', 'ignore'))
  text = (f'PCKh@0.5 of the last output: include {inc.text()}, exclude {exc.text()}, ignore '
          f'{ign.text()}')
  hidden = [st.get(f'{recurrent_name(m, True)}: {OCCLUDED}') for m in ('include', 'exclude',
                                                                       'ignore')]
  if all(h is not None and h.n for h in hidden):
    text += (f' (on the occluded parts alone: include {hidden[0].text()}, exclude '
             f'{hidden[1].text()}, ignore {hidden[2].text()})')
  if not (inc.mean > exc.mean and inc.mean > ign.mean):
    return False, 'including occluded keypoints is not the best mode: ' + text
  if inc.mean - exc.mean < 1.0:
    return False, (f'excluding them costs only {inc.mean - exc.mean:.1f} points, less than '
                   f'one: ' + text)
  return True, text + f'; excluding them costs {inc.mean - exc.mean:.1f} points'


def _field_text(fields, height):
  return (f'{"/".join(f"{f:.0f}" for f in fields)} px of the {height:.0f}-px person ('
          + '/'.join(f'{f / height:.2f}' for f in fields) + ')')


def decide_iterations(st, parameters=None, fields=None):
  """``parameters``: {'': the base's parameter count, 'half': the half-width check's};
  ``fields``: Runs.recurrent_fields()."""
  names = [n for n in st if ':' not in n and not n.endswith((HALF, LIGHT))]   # 0, 1, 2 its
  ff, it1, it2 = (st[n] for n in names[:3])
  g1, g2 = it1.mean - ff.mean, it2.mean - it1.mean
  text = (f'final-output PCKh@0.5 of separate include models without limbs: '
          f'{names[0]} {ff.text()}, {names[1]} {it1.text()} ({g1:+.1f}), {names[2]} '
          f'{it2.text()} ({g2:+.1f})')
  within = [n for n in st if n.startswith(f'{names[2]}: ')]
  if within and all(st[n].n for n in within):
    text += (f'; the {names[2]} model\'s own outputs after the feed-forward module / each '
             'iteration: ' + ' / '.join(st[n].text() for n in within) + f' / {it2.text()}')
  if g1 <= 0:
    return False, 'the first iteration adds nothing: ' + text
  if not (abs(g2) <= SMALL_GAIN and g2 < g1):
    why = 'the second iteration changes accuracy by more than a point'
    h1, h2 = st.get(names[1] + HALF), st.get(names[2] + HALF)
    if h1 is not None and h1.n and h2.n:
      gh = h2.mean - h1.mean
      size = ''
      if parameters:
        size = (f' ({parameters["half"] / 1e6:.2f}M parameters against '
                f'{parameters[""] / 1e6:.2f}M)')
      check = (f'half as wide{size}, 1 iteration {h1.text()}, 2 iterations {h2.text()} '
               f'({gh:+.1f})')
      if gh > g2 + max(h1.sd, h2.sd, it1.sd, it2.sd):
        why += (f', and more the narrower the model (check: {check}): the second iteration '
                'adds depth a small model lacks, a gain that shrinks as the model widens')
      elif gh < g2 - max(h1.sd, h2.sd, it1.sd, it2.sd):
        why += (f', and less in a narrower model (check: {check}): its gain grows with the '
                'model\'s width, so the small model\'s capacity is not the reason')
      else:
        why += (f', and not more in a narrower model, beyond the seeds\' spread (check: '
                f'{check}): the small model\'s capacity is not the reason')
    l1, l2 = st.get(names[1] + LIGHT), st.get(names[2] + LIGHT)
    if l1 is not None and l1.n and l2.n:
      gl = l2.mean - l1.mean
      check = (f'check: on the default light occlusion, 1 iteration {l1.text()}, 2 iterations '
               f'{l2.text()} ({gl:+.1f})')
      if abs(gl) <= SMALL_GAIN:
        why += (f'; with fewer occluded parts it adds little ({check}): the heavy occlusion, '
                'whose hidden parts are placed from the rest of the body, is what the second '
                'iteration helps with')
      else:
        why += f'; also with fewer occluded parts ({check}): the occluders are not the reason'
    if fields:
      (ours, h), (paper, hp) = fields['model'], fields['paper']
      seen = (f'the receptive fields of the feed-forward output / iteration 1 / iteration 2 are '
              f'{_field_text(ours, h)} here, {_field_text(paper, hp)} in the paper\'s model')
      if ours[1] / h >= paper[2] / hp:
        why += (f'; {seen}: after one iteration this model sees more of the person than the '
                'paper\'s after two, so a field too small for the person is not the reason')
      else:
        why += (f'; {seen}: the second iteration widens a field smaller than the paper\'s '
                'last, so the receptive field may be the reason')
    return False, why + ': ' + text
  return True, text


def decide_limbs(st, scale: float | None = None):
  """``scale``: how much the check's limb blobs are larger than the base's."""
  with_, without = st['include + limbs'], st['include, no limbs']
  text = f'PCKh@0.5 of the last output {with_.text()} with limb heatmaps, {without.text()} without'
  if with_.mean > without.mean:
    return True, text
  why = 'limb heatmaps do not add accuracy'
  check = st.get(LIMB_CHECK)
  if check is not None and check.n:
    gain = check.mean - without.mean
    blobs = f'{scale:.1f}x as large, ' if scale else ''
    text += (f'; with limb blobs at the paper\'s size in output pixels ({blobs}as the limbs '
             f'are that much longer at the paper\'s 248-px input): {check.text()} with limb '
             f'heatmaps ({gain:+.1f} against none)')
    spread = max(check.sd, without.sd)
    if gain > spread:
      why += (' with the limb blobs the paper\'s fractions of the limb length give at this '
              'crop size, too small to learn (sigmas at the floor of half an output pixel); '
              'blobs at the paper\'s size in output pixels make them add accuracy')
    elif check.mean > with_.mean + max(check.sd, with_.sd) and gain >= -spread:
      why += ('; with the paper\'s fractions of the limb length the limb blobs are too small '
              'at this crop size (sigmas at the floor of half an output pixel), which is why '
              'they cost accuracy; with blobs at the paper\'s size in output pixels they cost '
              'nothing, but add no more than the seeds\' spread either')
    elif check.mean > with_.mean + max(check.sd, with_.sd):
      why += (', and larger limb blobs reduce their cost without removing it: the blob size '
              'is part of the reason, not all of it')
    else:
      why += ', and larger limb blobs do not change that: the blob size is not the reason'
  kept = [x for x in (with_, check) if x is not None and x.n]
  if without.lost and not any(x.lost for x in kept):
    tried = lambda x: x.n + len(x.lost)  # noqa: E731
    why += (f'; but without limb heatmaps {len(without.lost)} of {tried(without)} seeds lost a '
            'part\'s map (left out of these numbers), with them none of '
            + ' and '.join(str(tried(x)) for x in kept) + ' (whether limb supervision keeps '
            'the keypoint maps alive would take more seeds to tell)')
  return False, why + ': ' + text


def decide_visibility(st):
  aps = {m: st[recurrent_name(m, True)] for m in ('include', 'exclude', 'ignore')}
  text = 'visibility AP of the last output: ' + ', '.join(f'{m} {s.text()}'
                                                           for m, s in aps.items())
  best = max(aps, key=lambda m: aps[m].mean)
  if best != 'exclude':
    return False, f'{best}, not exclude, gives the best visibility AP ({text})'
  low = [m for m, s in aps.items() if not s.mean > 90]
  if low:
    return False, (f'{", ".join(low)} {"stays" if len(low) == 1 else "stay"} at or below 90% '
                   f'({text})')
  return True, text


def build(cpm_base, recurrent_base, rf_kernels=RF_KERNELS, store: S.Store | None = None
          ) -> list[Claim]:
  """Every claim of the two papers on these base configs (``rf_kernels``: the (trunk, stage)
  kernel pairs of the receptive-field sweep besides the base model). With ``store``, every
  setting follows the convergence rule (``Converging``); without it, the base schedules."""
  runs = Runs(cpm_base, recurrent_base)
  base_t = cpm_base.model.num_stages
  joint = lambda seed: runs.joint(base_t, seed)  # noqa: E731
  claims = []
  claims.append(Claim(
      'gradients', 'gradients', 'Gradients across depth (CPM Fig. 5)',
      'With intermediate supervision the gradients keep their spread at the layers near the '
      'input through training; without it they vanish there.',
      {'joint': joint, 'final_only': runs.final_only},
      [Quantity('with intermediate supervision', 'joint', _grad_log_std, 'log10'),
       Quantity('without (final stage only)', 'final_only', _grad_log_std, 'log10')],
      [('with intermediate supervision', 'without (final stage only)')], decide_gradients))
  claims.append(Claim(
      'refinement', 'stages', 'Every stage refines the previous one (CPM Fig. 6a / 7)',
      'Within one model every stage refines the previous one: per-stage accuracy, and the '
      'belief maps of hard parts such as wrists and elbows.',
      {'joint': joint},
      [Quantity(f'stage {t + 1}', 'joint', _stage(t)) for t in range(base_t)]
      + [Quantity(f'stage {t + 1}: wrists', 'joint', _parts(WRISTS, t)) for t in range(base_t)]
      + [Quantity(f'stage {t + 1}: elbows', 'joint', _parts(ELBOWS, t)) for t in range(base_t)],
      [(f'stage {t}', f'stage {t + 1}') for t in range(1, base_t)], decide_refinement))
  ts = range(1, 7)
  # The checks of why the sweep stops rising: its ends trained on heavy occlusion, with wider
  # shared features and with twice the steps.
  heavy = {f'T={t}' + suffix: runs.stage_check(t, check)
           for suffix, check in STAGE_CHECKS.items() for t in STAGE_CHECK_TS}
  at = len(claims)   # the stage claim's place, for its verdict's look at the shorter runs
  claims.append(Claim(
      'stages', 'stages', 'Number of stages (CPM Fig. 6c)',
      'Accuracy of the final stage rises with the number of stages, monotonically up to about '
      '5, with diminishing returns at 6.',
      {**{f'T={t}': (lambda seed, t=t: runs.joint(t, seed)) for t in ts}, **heavy},
      [Quantity(f'T={t}', f'T={t}', _final) for t in ts]
      + [Quantity(n, n, _final) for n in heavy],
      [(f'T={t}', f'T={t + 1}') for t in ts[:-1]]
      + [tuple(f'T={t}' + suffix for t in STAGE_CHECK_TS) for suffix in STAGE_CHECKS],
      lambda st: decide_stages(st, runs.stage_fields(), runs.wide_text(),
                               runs.shorter_stage_runs(store, claims[at])),
      checks=tuple(heavy)))
  long_steps = runs.stagewise_steps()   # as many as (iii); both lengthened alike
  scheme = Claim(
      'schemes', 'schemes', 'Training schemes (CPM Fig. 6b)',
      '(i) Joint training with intermediate supervision beats every other scheme; (ii) '
      'stage-wise training saturates below it; (iii) stage-wise training then joint '
      'fine-tuning comes close to (i) but needs more iterations; (iv) joint training without '
      'intermediate supervision is worst.',
      {'joint': joint,
       'stagewise': lambda seed: runs.stagewise(seed, False),
       'stagewise_finetune': lambda seed: runs.stagewise(seed, True),
       'final_only': runs.final_only,
       'joint_long': lambda seed: runs.joint(base_t, seed, long_steps),
       # The check of why (iv) is not the worst: (i) and (iv) with the paper's optimiser.
       'joint_sgd': lambda seed: runs.joint(base_t, seed, check='sgd'),
       'final_only_sgd': lambda seed: runs.final_only(seed, 'sgd')},
      [Quantity('(i) joint', 'joint', _final),
       Quantity('(ii) stage-wise', 'stagewise', _final),
       Quantity('(iii) stage-wise + fine-tuning', 'stagewise_finetune', _final),
       Quantity('(iv) final stage only', 'final_only', _final),
       Quantity('(i) joint, as many steps as (iii)', 'joint_long', _final),
       Quantity('(i) joint' + SGD, 'joint_sgd', _final),
       Quantity('(iv) final stage only' + SGD, 'final_only_sgd', _final)],
      [('(i) joint', '(ii) stage-wise'), ('(i) joint', '(iii) stage-wise + fine-tuning'),
       ('(i) joint', '(iv) final stage only'),
       ('(iii) stage-wise + fine-tuning', '(i) joint, as many steps as (iii)'),
       ('(i) joint' + SGD, '(iv) final stage only' + SGD)],
      decide_schemes, checks=('joint_sgd', 'final_only_sgd'))
  claims.append(scheme)
  rf_names = {'base': joint}
  for tk, sk in rf_kernels:
    rf_names[f'{tk}/{sk}'] = lambda seed, tk=tk, sk=sk: runs.rf(tk, sk, seed)
  order = sorted(rf_names, key=lambda n: runs.receptive_field(*_rf_kernels(n)))
  claims.append(Claim(
      'receptive_fields', 'receptive_fields', 'Receptive field (CPM Fig. 4)',
      'Accuracy rises with the receptive field at about constant parameter count and '
      'saturates around the size of the normalised person.',
      rf_names, [Quantity(n, n, _final) for n in rf_names],
      list(zip(order, order[1:])), decide_receptive_fields(runs)))
  rec = {recurrent_name(m, l): (lambda seed, m=m, l=l: runs.recurrent(m, l, seed))
         for m, l in RECURRENT_VARIANTS}
  modes = [recurrent_name(m, True) for m in ('include', 'exclude', 'ignore')]
  claims.append(Claim(
      'recurrent_occlusion', 'recurrent', 'Occluded keypoints in training (recurrent, Table I)',
      'Including occluded keypoints in training gives the best PCKh; excluding them (as '
      'background) costs a few points.',
      {m: rec[m] for m in modes},
      [Quantity(m, m, _final) for m in modes]
      + [Quantity(f'{m}: {OCCLUDED}', m, S.occluded_pck) for m in modes],
      [(modes[0], modes[1]), (modes[0], modes[2])], decide_occlusion))
  no_limbs = recurrent_name('include', False)
  # The paper's rows are separate models with 0, 1 and 2 iterations; the base model's own
  # outputs after the feed-forward module and iteration 1 are given beside them.
  base_its = recurrent_base.model.num_iterations
  models = {f'{i} iteration{"" if i == 1 else "s"}': (
      rec[no_limbs] if i == base_its else
      (lambda seed, i=i: runs.recurrent('include', False, seed, i))) for i in range(3)}
  names = list(models)
  inside = [f'{names[base_its]}: {o}' for o in ['feed-forward output'] + [
      f'iteration {i} output' for i in range(1, base_its)]]
  # The check of why the second iteration adds more than the paper's: the same two models
  # half as wide.
  half = {names[i] + HALF: (lambda seed, i=i: runs.recurrent('include', False, seed, i, 'half'))
          for i in (1, 2)}
  models.update(half)
  # ... and the same two models on light occlusion, where the base trains on heavy.
  light = {}
  if recurrent_base.data.get('synthetic_occlusion', 'light') != 'light':
    light = {names[i] + LIGHT: (lambda seed, i=i: runs.recurrent('include', False, seed, i,
                                                                 'light')) for i in (1, 2)}
  models.update(light)
  claims.append(Claim(
      'recurrent_iterations', 'recurrent', 'Recurrent iterations (recurrent, Table I)',
      'One recurrent iteration adds accuracy over the feed-forward output; a second adds '
      'little.',
      models,
      [Quantity(n, n, _final) for n in names]
      + [Quantity(q, names[base_its], _stage(t)) for t, q in enumerate(inside)]
      + [Quantity(n, n, _final) for n in {**half, **light}],
      [(names[0], names[1]), (names[1], names[2]), tuple(half)] + ([tuple(light)] if light
                                                                    else []),
      lambda st: decide_iterations(st, {'': runs.recurrent_parameters(),
                                        'half': runs.recurrent_parameters('half')},
                                   runs.recurrent_fields()),
      checks=tuple(half) + tuple(light)))
  # The check of why limb heatmaps cost accuracy: limb blobs at the paper's size.
  claims.append(Claim(
      'recurrent_limbs', 'recurrent', 'Limb heatmaps (recurrent, Table I)',
      'Limb (body-part) heatmaps add accuracy on top of the iterations.',
      {'include + limbs': rec['include + limbs'], no_limbs: rec[no_limbs],
       LIMB_CHECK: lambda seed: runs.recurrent('include', True, seed, check='paperblobs')},
      [Quantity('include + limbs', 'include + limbs', _final),
       Quantity(no_limbs, no_limbs, _final), Quantity(LIMB_CHECK, LIMB_CHECK, _final)],
      [('include + limbs', no_limbs), (LIMB_CHECK, no_limbs)],
      lambda st: decide_limbs(st, runs.limb_blob_scale()), checks=(LIMB_CHECK,)))
  claims.append(Claim(
      'recurrent_visibility', 'recurrent', 'Visibility (recurrent, Fig. 7)',
      'Excluding occluded keypoints gives the best visibility AP, all modes above 90%.',
      {m: rec[m] for m in modes}, [Quantity(m, m, S.visibility_ap) for m in modes],
      [(modes[1], modes[0]), (modes[1], modes[2])], decide_visibility))
  for c in claims:
    c.runs = runs
    if store is not None:
      main = Schedule([ch for n, ch in c.settings.items() if n not in c.checks], store)
      checks = Schedule([ch for n, ch in c.settings.items() if n in c.checks], store,
                        floor=main)
      c.settings = {name: Converging(chain, store, group=checks if name in c.checks else main)
                    for name, chain in c.settings.items()}
  return claims


def light_occlusion_runs(claims: list[Claim], seeds: int = 2) -> dict:
  """{(variant, seed): RunSpec} of the recurrent variants on the default ('light') occlusion of
  the synthetic people, for the page's account of why the recurrent claims use heavy occlusion
  (empty where the recurrent base already is light)."""
  runs = next((c.runs for c in claims if c.group == 'recurrent'), None)
  if runs is None or runs.recurrent_base.data.get('synthetic_occlusion', 'light') == 'light':
    return {}
  light = Runs(runs.cpm, overrides.derive(runs.recurrent_base,
                                          **{'data.synthetic_occlusion': 'light'}))
  return {(recurrent_name(m, l), seed): light.recurrent(m, l, seed)[0]
          for m, l in RECURRENT_VARIANTS if l for seed in range(seeds)}


def superseded_runs(claim: Claim, need: dict) -> list[RunSpec]:
  """The claim's runs at schedules given up because a run of theirs did not converge."""
  out = {}
  for name, chain in claim.settings.items():
    for seed in range(need[name]):
      for s in getattr(chain, 'superseded', lambda seed: [])(seed):
        out.setdefault(s.key, s)
  return list(out.values())
