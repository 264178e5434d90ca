"""Training schemes of CPM Fig. 6b, selected by ``config.scheme``.

  joint               all stages together, every stage's loss (intermediate supervision)
  stagewise           stage t trained in turn (t = 1..T) on its own loss, earlier stages frozen
  stagewise_finetune  stagewise, then joint training with intermediate supervision from it
  final_only          all stages together on the final stage's loss only

A scheme is a chain of phases; each phase is an ordinary ``train.train_and_evaluate`` run in its
own workdir with ``frozen``, ``loss.stage_weights`` and ``num_train_steps`` set, initialised
(``init_from``) from the previous phase's last checkpoint.

Stage-wise training and the shared image features: x' (the ``features`` module) first feeds
stage 2, so it is trained with stage 2 (phase 2) and frozen from phase 3 on, like the stage-2
layers. Phase t trains ``stage{t}`` (and ``features`` when t = 2) and freezes every other module.

  python -m posemachines.schemes --config=experiments/analyses_cpu.py --config.scheme=stagewise \
      --workdir=workdirs/stagewise
"""
from __future__ import annotations

import dataclasses
import os


from posemachines.core import overrides
from posemachines.training import runs

SCHEMES = ('joint', 'stagewise', 'stagewise_finetune', 'final_only')
DESCRIPTIONS = {
    'joint': '(i) joint, intermediate supervision',
    'stagewise': '(ii) stage-wise',
    'stagewise_finetune': '(iii) stage-wise + joint fine-tuning',
    'final_only': '(iv) joint, final-stage loss only',
}


@dataclasses.dataclass
class Phase:
  name: str           # workdir name within the scheme's directory
  config: object      # the run's config (init_from is set by the runner)
  init_from: str | None = None   # name of the phase whose checkpoint starts this one


def module_names(num_stages: int) -> list[str]:
  return ['stage1'] + (['features'] if num_stages > 1 else []) + [
      f'stage{t}' for t in range(2, num_stages + 1)]


def trained_in_phase(t: int) -> list[str]:
  """Modules that stage-wise phase t trains; the shared features x' go with stage 2."""
  return ['stage1'] if t == 1 else ['features', 'stage2'] if t == 2 else [f'stage{t}']


def stage_steps(config) -> int:
  """Steps of each stage-wise phase: config.schemes.stage_steps, else an equal share of
  num_train_steps (so the stage-wise scheme makes as many updates as the joint one)."""
  s = config.schemes.stage_steps
  return int(s) or max(config.num_train_steps // config.model.num_stages, 1)


def finetune_steps(config) -> int:
  s = config.schemes.finetune_steps
  return int(s) or max(config.num_train_steps // 2, 1)


def phases(config, scheme: str | None = None) -> list[Phase]:
  """The chain of runs that makes up ``scheme`` (default ``config.scheme``)."""
  scheme = scheme or config.scheme
  num_stages = config.model.num_stages
  joint = dict(scheme=scheme, frozen=(), init_from='')
  if scheme == 'joint':
    return [Phase('joint', overrides.derive(config, **joint, **{
        'loss.intermediate_supervision': True, 'loss.stage_weights': ()}))]
  if scheme == 'final_only':
    return [Phase('final_only', overrides.derive(config, **joint, **{
        'loss.intermediate_supervision': False, 'loss.stage_weights': ()}))]
  if scheme not in ('stagewise', 'stagewise_finetune'):
    raise ValueError(f'Unknown scheme {scheme!r} (config.scheme); use one of {SCHEMES}')
  out = []
  for t in range(1, num_stages + 1):
    weights = tuple(float(s == t) for s in range(1, num_stages + 1))
    frozen = tuple(m for m in module_names(num_stages) if m not in trained_in_phase(t))
    # Named 'stagewise' in both stage-wise schemes, so the two can share these runs.
    out.append(Phase(f'stage{t}', overrides.derive(config, scheme='stagewise', frozen=frozen, init_from='',
                                          num_train_steps=stage_steps(config), **{
                                              'loss.stage_weights': weights}),
                     out[-1].name if out else None))
  if scheme == 'stagewise_finetune':
    out.append(Phase('finetune', overrides.derive(config, scheme=scheme, frozen=(), init_from='',
                                         num_train_steps=finetune_steps(config), **{
                                             'loss.intermediate_supervision': True,
                                             'loss.stage_weights': ()}),
                     out[-1].name))
  return out


def run(config, workdir: str, scheme: str | None = None, runner=None):
  """Runs (or resumes) every phase of the scheme under ``workdir``; returns [(phase, result)].

  ``runner(config, workdir, label) -> (workdir used, result)`` trains one phase (default:
  runs.run_once, which skips a finished phase and resumes an unfinished one).
  """
  runner = runner or runs.run_once
  done = {}
  results = []
  for phase in phases(config, scheme):
    c = phase.config
    if phase.init_from:
      c = overrides.derive(c, init_from=os.path.abspath(done[phase.init_from]))
    d, result = runner(c, os.path.join(workdir, phase.name), phase.name)
    results.append((phase.name, result))
    done[phase.name] = d
  return results
