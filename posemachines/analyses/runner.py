"""The CPM paper's analyses as sweeps of ordinary training runs.

Each analysis derives run configs from one base config, trains them (``Runs``: a finished run is
skipped, an unfinished one resumes from its checkpoint), and writes a markdown table and PNG
figures into its output directory:

  stages            accuracy against the number of stages (Fig. 6c)
  schemes           the four training schemes (Fig. 6b; posemachines/schemes.py)
  gradients         gradient values across depth with and without intermediate supervision (Fig. 5)
  receptive_fields  accuracy against receptive field at about constant parameter count (Fig. 4)

Runs live in ``runs_dir`` under ``<label>-<hash of the config>``, so analyses that need the same
run (the 3-stage joint run is in the stage sweep, the schemes and the gradients) train it once.
The commands are experiments/{stages,schemes,gradients,receptive_fields}.py.
"""
from __future__ import annotations

import json
import os

import numpy as np

from posemachines import models
from posemachines.core import config_files, overrides
from posemachines.training.runs import Runs, wall_time
from posemachines.tools import abstract, receptive_field
from posemachines.training import gradients, schemes

_derive = overrides.derive


# ---------------------------------------------------------------------------------- runs --

def pck(result, stage=-1) -> float:
  return 100 * result['stages'][stage]['pck@0.5']


def _write(outdir: str, name: str, lines, data):
  os.makedirs(outdir, exist_ok=True)
  with open(os.path.join(outdir, f'{name}.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with open(os.path.join(outdir, f'{name}.json'), 'w') as f:
    json.dump(data, f, indent=2)
  print('\n'.join(lines), flush=True)


def _plt():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def _header(title, config):
  return [f'# {title}', '',
          f'{config.model.name} on {config.data.dataset} at {config.data.crop_size}x'
          f'{config.data.crop_size}, batch {config.batch_size}, {config.num_train_steps} steps '
          f'per run; PCK@0.5 ({_metric(config)}) on {_eval_people(config)} validation people.', '']


def _metric(config):
  return 'PCKh' if config.data.dataset in ('mpii', 'synthetic_people') else 'PCK'


def _eval_people(config):
  n = config.num_eval_examples
  return 'all' if n is None or n < 0 else n


# -------------------------------------------------------------------------------- stages --

def stages(config, outdir: str, runs: Runs, num_stages=(1, 2, 3, 4, 5, 6)):
  """Fig. 6c: one joint run (intermediate supervision) per number of stages."""
  rows = []
  for t in num_stages:
    c = schemes.phases(_derive(config, **{'model.num_stages': t}), 'joint')[0].config
    d, result = runs(c, None, f'stages_T{t}')
    model = models.build(c)
    rows.append({'num_stages': t, 'workdir': d, 'pck_per_stage': [pck(result, s) for s in
                                                                 range(t)],
                 'per_part': result['stages'][-1]['per_part'],
                 'parameters': abstract.count_parameters(model, c.data.crop_size),
                 'seconds': wall_time(d)})
  lines = _header('Accuracy against the number of stages (CPM Fig. 6c)', config)
  lines += ['| stages | parameters | final-stage PCK@0.5 | every stage | train time (s) |',
            '|---|---|---|---|---|']
  for r in rows:
    every = ' / '.join(f'{p:.1f}' for p in r['pck_per_stage'])
    secs = f'{r["seconds"]:.0f}' if r['seconds'] else '-'
    lines.append(f'| {r["num_stages"]} | {r["parameters"]:,} | {r["pck_per_stage"][-1]:.1f} | '
                 f'{every} | {secs} |')
  _write(outdir, 'stages', lines, rows)
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 3.6))
  ts = [r['num_stages'] for r in rows]
  for t, r in zip(ts, rows):
    ax.plot(range(1, t + 1), r['pck_per_stage'], '-', color='0.75', lw=1, zorder=1)
  ax.plot(ts, [r['pck_per_stage'][-1] for r in rows], 'o-', color='C0', zorder=2,
          label='final stage of a T-stage model')
  ax.plot([], [], '-', color='0.75', label='every stage of each model')
  ax.set_ylim(bottom=0)
  ax.set_xlabel('number of stages T')
  ax.set_ylabel('PCK@0.5 (%)')
  ax.set_xticks(ts)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, 'stages.png'), dpi=100)
  plt.close(fig)
  return rows


# ------------------------------------------------------------------------------- schemes --

def training_schemes(config, outdir: str, runs: Runs, which=schemes.SCHEMES):
  """Fig. 6b: the four training schemes on the same model."""
  rows = []
  for s in which:
    results = schemes.run(config, '', s,
                          runner=lambda c, d, label, s=s: runs(c, d, f'{s}_{label}'))
    phases = schemes.phases(config, s)
    steps = sum(p.config.num_train_steps for p in phases)
    final = results[-1][1]
    rows.append({'scheme': s, 'description': schemes.DESCRIPTIONS[s], 'steps': steps,
                 'phases': [p.name for p in phases],
                 'pck_per_stage': [pck(final, t) for t in range(len(final['stages']))],
                 'phase_results': [[pck(r, t) for t in range(len(r['stages']))]
                                   for _, r in results]})
  longest = max(r['steps'] for r in rows)
  if 'joint' in which and longest > config.num_train_steps:
    # (iii) makes more updates than the others: joint training with as many, for comparison.
    c = schemes.phases(_derive(config, num_train_steps=longest), 'joint')[0].config
    _, final = runs(c, None, f'joint_{longest}steps')
    rows.append({'scheme': 'joint', 'description': '(i) joint, as many steps as (iii)',
                 'steps': longest,
                 'phases': ['joint'], 'phase_results': [],
                 'pck_per_stage': [pck(final, t) for t in range(len(final['stages']))]})
  num_stages = config.model.num_stages
  lines = _header('Training schemes (CPM Fig. 6b)', config)
  lines += [f'Stage-wise phases train {schemes.stage_steps(config)} steps each; fine-tuning '
            f'{schemes.finetune_steps(config)} steps. The shared features x\' are trained with '
            'stage 2 and frozen afterwards.', '',
            '| scheme | steps | ' + ' | '.join(f'stage {t + 1}' for t in range(num_stages)) + ' |',
            '|---|---|' + '---|' * num_stages]
  for r in rows:
    lines.append(f'| {r["description"]} | {r["steps"]} | ' +
                 ' | '.join(f'{p:.1f}' for p in r['pck_per_stage']) + ' |')
  _write(outdir, 'schemes', lines, rows)
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3.6))
  width = 0.8 / len(rows)
  for i, r in enumerate(rows):
    x = np.arange(num_stages) + (i - (len(rows) - 1) / 2) * width
    ax.bar(x, r['pck_per_stage'], width, label=f'{r["description"]} ({r["steps"]} steps)')
  ax.set_xticks(range(num_stages), [f'stage {t + 1}' for t in range(num_stages)])
  ax.set_ylabel('PCK@0.5 (%)')
  ax.legend(fontsize=7)
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, 'schemes.png'), dpi=100)
  plt.close(fig)
  return rows


# ----------------------------------------------------------------------------- gradients --

def gradient_histograms(config, outdir: str, runs: Runs):
  """Fig. 5: gradient values across depth, with and without intermediate supervision."""
  if not gradients.enabled(config):
    config = _derive(config, **{'gradients.every_steps': max(config.num_train_steps // 8, 1)})
  recs = {}
  for label, s in (('with intermediate supervision', 'joint'),
                   ('without (final stage only)', 'final_only')):
    d, _ = runs(schemes.phases(config, s)[0].config, None, s)
    recs[label] = gradients.load(os.path.join(d, gradients.FILENAME))
  (lw, w_all), (lo, wo_all) = recs.items()
  w, wo = gradients.after_initialisation(w_all), gradients.after_initialisation(wo_all)
  os.makedirs(outdir, exist_ok=True)
  gradients.figure({lw: w, lo: wo}, os.path.join(outdir, 'gradients.png'))
  first, last = 0, len(w['steps']) - 1
  rows = []
  for layer in w['layers']:
    sw, so = gradients.spread(w, layer), gradients.spread(wo, layer)
    rows.append({'layer': layer, 'steps': [int(w['steps'][first]), int(w['steps'][last])],
                 'std_with': [float(sw[first]), float(sw[last])],
                 'std_without': [float(so[first]), float(so[last])],
                 'ratio': [float(sw[first] / so[first]), float(sw[last] / so[last])],
                 'all_steps': [int(x) for x in w_all['steps']],
                 'all_std_with': [float(x) for x in gradients.spread(w_all, layer)],
                 'all_std_without': [float(x) for x in gradients.spread(wo_all, layer)]})
  ep = w['epoch_steps']
  when = [gradients._label(s, ep) for s in rows[0]['steps']]  # noqa: SLF001
  lines = _header('Gradient values across depth (CPM Fig. 5)', config)
  lines += ['Standard deviation of the gradient values of each layer\'s kernel on one training '
            f'batch, with / without intermediate supervision, at the first recording after '
            f'initialisation ({when[0]}) and the last ({when[1]}); the ratio is with / without. '
            'Layers are listed from the input side.', '',
            f'| layer | std with, {when[0]} | std without | ratio | std with, {when[1]} | '
            'std without | ratio |', '|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f'| {r["layer"]} | {r["std_with"][0]:.3g} | {r["std_without"][0]:.3g} | '
                 f'{r["ratio"][0]:.2f} | {r["std_with"][1]:.3g} | {r["std_without"][1]:.3g} | '
                 f'{r["ratio"][1]:.2f} |')
  _write(outdir, 'gradients', lines, rows)
  plt = _plt()
  layers = w['layers']
  fig, axes = plt.subplots(1, len(layers), figsize=(2.4 * len(layers), 2.6), squeeze=False)
  for ax, layer in zip(axes[0], layers):
    for rec, label, style in ((w_all, lw, '-'), (wo_all, lo, '--')):
      ax.plot(rec['steps'], gradients.spread(rec, layer), style, label=label)
    ax.set_yscale('log')
    ax.set_title(layer, fontsize=8)
    ax.set_xlabel('step', fontsize=8)
    ax.tick_params(labelsize=7)
  axes[0, 0].set_ylabel('std of gradient values', fontsize=8)
  axes[0, -1].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, 'gradient_spread.png'), dpi=100)
  plt.close(fig)
  return rows


# ---------------------------------------------------------------------- receptive fields --

_WIDTHS = ('trunk_widths', 'stage1_widths', 'stage_widths')


def with_kernels(config, trunk_kernel: int, stage_kernel: int, width_scale: float = 1.0):
  """Every trunk conv (and stage 1's first head conv) trunk_kernel wide, every non-1x1 conv of
  the later stages and of stage 1's head stage_kernel wide, widths scaled by width_scale."""
  m = config.model
  s1 = [trunk_kernel] + [stage_kernel if k > 1 else 1 for k in m.stage1_kernels[1:]]
  fields = {'model.trunk_kernels': tuple(trunk_kernel for _ in m.trunk_kernels),
            'model.stage1_kernels': tuple(s1),
            'model.stage_kernels': tuple(stage_kernel if k > 1 else 1 for k in m.stage_kernels)}
  for name in _WIDTHS:
    fields[f'model.{name}'] = tuple(max(4, round(w * width_scale)) for w in m[name])
  fields['model.stage_feature_width'] = max(4, round(m.stage_feature_width * width_scale))
  return _derive(config, **fields)


def _params(config):
  return abstract.count_parameters(models.build(config), config.data.crop_size)


def match_parameters(config, trunk_kernel, stage_kernel, target: int):
  """with_kernels(...) with the width scale whose parameter count is nearest ``target``."""
  lo, hi = 0.05, 20.0
  for _ in range(12):  # parameters grow with the scale: bisect on its logarithm
    mid = (lo * hi) ** 0.5
    if _params(with_kernels(config, trunk_kernel, stage_kernel, mid)) < target:
      lo = mid
    else:
      hi = mid
  c = min((with_kernels(config, trunk_kernel, stage_kernel, s) for s in (lo, hi)),
          key=lambda c: abs(_params(c) - target))
  return c


def receptive_fields(config, outdir: str, runs: Runs, kernels=((3, 1), (3, 3), (7, 7))):
  """Fig. 4: accuracy against the final stage's receptive field at ~constant parameters: the
  base config (its joint run) and one model per (trunk, stage) kernel pair."""
  target = _params(config)
  rows = []
  m = config.model
  variants = [('base', None, None)] + [(f'{tk}/{sk}', tk, sk) for tk, sk in kernels]
  for name, tk, sk in variants:
    c = config if tk is None else match_parameters(config, tk, sk, target)
    c = schemes.phases(c, 'joint')[0].config
    field = receptive_field.receptive_fields(models.build(c), c.data.crop_size)[-1][0]
    d, result = runs(c, None, 'joint' if tk is None else f'rf_k{tk}-{sk}')
    if tk is None:
      name = (f'base: {"/".join(map(str, m.trunk_kernels))} / '
              f'{"/".join(map(str, m.stage1_kernels))} / {"/".join(map(str, m.stage_kernels))}')
    rows.append({'name': name, 'trunk_kernel': tk, 'stage_kernel': sk,
                 'parameters': _params(c),
                 'receptive_field_px': field.size, 'workdir': d,
                 'widths': {n: list(c.model[n]) for n in _WIDTHS},
                 'pck_per_stage': [pck(result, t) for t in range(len(result['stages']))]})
  crop = config.data.crop_size
  lines = _header('Accuracy against receptive field (CPM Fig. 4)', config)
  lines += [f'Kernel sizes vary; widths are scaled so every model has about {target:,} '
            'parameters (the base config\'s count). Receptive field of the final stage\'s belief '
            f'maps in input pixels (crop {crop}x{crop}), from posemachines.summary. A pair '
            'k/s: trunk convs and stage 1\'s first head conv k x k, every other non-1x1 conv '
            's x s; the base row lists trunk / stage-1 head / later-stage kernels.', '',
            '| kernels | parameters | receptive field (px) | final-stage PCK@0.5 |'
            ' every stage |', '|---|---|---|---|---|']
  for r in sorted(rows, key=lambda r: r['receptive_field_px']):
    every = ' / '.join(f'{p:.1f}' for p in r['pck_per_stage'])
    lines.append(f'| {r["name"]} | {r["parameters"]:,} | '
                 f'{r["receptive_field_px"]:.0f} | {r["pck_per_stage"][-1]:.1f} | {every} |')
  _write(outdir, 'receptive_fields', lines, rows)
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 3.6))
  rows_s = sorted(rows, key=lambda r: r['receptive_field_px'])
  ax.plot([r['receptive_field_px'] for r in rows_s], [r['pck_per_stage'][-1] for r in rows_s],
          'o-')
  for r in rows_s:
    ax.annotate(r['name'].split(':')[0],
                (r['receptive_field_px'], r['pck_per_stage'][-1]), fontsize=7,
                textcoords='offset points', xytext=(4, -10))
  ax.set_ylim(bottom=0)
  ax.axvline(crop, color='0.6', ls=':', lw=1)
  ax.text(crop, ax.get_ylim()[0], ' crop size', fontsize=7, color='0.4', va='bottom')
  ax.margins(x=0.08)
  ax.set_xlabel('receptive field of the final stage (input px)')
  ax.set_ylabel('final-stage PCK@0.5 (%)')
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, 'receptive_fields.png'), dpi=100)
  plt.close(fig)
  return rows


# ------------------------------------------------------------------------- command lines --

def define_flags():
  """--config (the base config), --workdir (tables, figures) and --runs_dir (training runs)."""
  from absl import flags
  config_files.define_config_flag('analyses_cpu', lock=False,
                                  help_text='Base config of every run')
  flags.DEFINE_string('workdir', 'workdirs/analyses', 'Where the tables and figures go.')
  flags.DEFINE_string('runs_dir', '', 'Training runs (default: WORKDIR/runs); analyses that '
                      'share it share identical runs.')


def runs_from_flags(name: str, total: int | None = None) -> Runs:
  from absl import flags
  f = flags.FLAGS
  return Runs(f.runs_dir or os.path.join(f.workdir, 'runs'), total, name)
