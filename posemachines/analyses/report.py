"""docs/results.md and its figures, from the claims' results (posemachines/analyses/claims.py).

Every number on the page comes from the committed run summaries; a claim whose runs have not
all finished shows what has finished so far, marked as such. Figures draw the mean across
seeds with error bars of one standard deviation.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from posemachines.analyses import claims as claims_lib
from posemachines.analyses import summaries as S
from posemachines.evaluation import metrics

FIGURES = ('gradients.png', 'gradient_spread.png', 'stages.png', 'refinement.png',
           'belief_maps.png', 'schemes.png', 'receptive_fields.png', 'recurrent.png',
           'convergence.png', 'occlusion.png', 'limb_blobs.png', 'lost_part.png')


def _plt():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def _ms(values):
  values = [v for v in values if v is not None and np.isfinite(v)]
  if not values:
    return float('nan'), float('nan')
  return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _fmt(values, digits=1):
  m, s = _ms(values)
  if not np.isfinite(m):
    return '-'
  n = sum(v is not None and np.isfinite(v) for v in values)
  return f'{m:.{digits}f}' + (f' ± {s:.{digits}f}' if n > 1 else ' (1 seed)')


def _pm(m, s, n, digits=1):
  return f'{m:.{digits}f}' + (f' ± {s:.{digits}f}' if n > 1 else '')


def per_stage(stat: claims_lib.Stat, metric=S.pck):
  """[(mean, sd)] per stage (output) across the stat's seeds."""
  if not stat.loaded:
    return []
  n = len(stat.loaded[0]['eval']['stages'])
  return [_ms([metric(l, t) for l in stat.loaded]) for t in range(n)]


def _cpu_minutes(stat):
  return _ms([(S.cpu_seconds(l) or np.nan) / 60 for l in stat.loaded])[0]


def _seeds(stat, need):
  return f'{stat.n}/{need}'


def shown(result, quantity: str, setting: str | None = None):
  """The stat a table shows for ``quantity`` (of ``setting``, by default the setting of that
  name) and its seeds cell. A check still training has an empty stat, as it is left out of the
  verdict; the seeds of it that have finished are shown, marked as left out."""
  need = result.seeds[setting or quantity]
  if quantity in result.held:
    s = result.held[quantity]
    return s, f'{s.n}/{need} (left out until all have run)'
  s = result.stats[quantity]
  return s, _seeds(s, need)


def _visible_share(v: dict) -> float:
  """The visible fraction of the annotated parts of a visibility summary: a random ranking's
  AP."""
  return v['num_visible'] / max(v['num_visible'] + v['num_occluded'], 1)


def _n_seeds(n: int) -> str:
  return f'{n} seed' + ('' if n == 1 else 's')


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  _plt().close(fig)


# ---------------------------------------------------------------------------- figures --

def figure_gradients(result, outdir):
  w = result.stats['with intermediate supervision']
  wo = result.stats['without (final stage only)']
  if not (w.loaded and wo.loaded):
    return []
  plt = _plt()
  runs = (('with intermediate supervision', w.loaded[0]['gradients']),
          ('without (final stage only)', wo.loaded[0]['gradients']))
  layers = runs[0][1]['layers']
  fig, axes = plt.subplots(2, len(layers), squeeze=False, figsize=(2.5 * len(layers), 5.2))
  for c, layer in enumerate(layers):
    limit = max(g['histogram'][layer]['limit'] for _, g in runs)
    for r, (label, g) in enumerate(runs):
      ax = axes[r, c]
      h = g['histogram'][layer]
      edges = np.linspace(-h['limit'], h['limit'], len(h['counts'][0]) + 1)
      centres = 0.5 * (edges[1:] + edges[:-1])
      keep = [i for i, s in enumerate(g['steps']) if s > 0]
      colours = plt.get_cmap('viridis')(np.linspace(0, 0.9, max(len(keep), 1)))
      for colour, i in zip(colours, keep):
        counts = np.asarray(h['counts'][i], float)
        ax.plot(centres, np.maximum(counts / max(g['size'][layer], 1), 1e-5), color=colour,
                lw=1, label=f'step {g["steps"][i]}')
      ax.set_yscale('log')
      ax.set_ylim(1e-5, 1)
      ax.set_xlim(-limit, limit)
      ax.tick_params(labelsize=6)
      ax.xaxis.get_offset_text().set_fontsize(6)
      if r == 0:
        ax.set_title(layer, fontsize=8)
      if c == 0:
        ax.set_ylabel(f'{label}\nfraction of weights', fontsize=7)
      if r == 1:
        ax.set_xlabel('gradient value', fontsize=7)
  axes[0, -1].legend(fontsize=5, loc='upper right')
  fig.suptitle('gradient values per layer, input side on the left (seed 0; one curve per '
               'recording after initialisation)', fontsize=8)
  _save(fig, os.path.join(outdir, 'gradients.png'))
  fig, axes = plt.subplots(1, len(layers), squeeze=False, figsize=(2.4 * len(layers), 2.8))
  for ax, layer in zip(axes[0], layers):
    for stat, label, style in ((w, 'with', '-'), (wo, 'without', '--')):
      steps = stat.loaded[0]['gradients']['steps']
      rows = [l['gradients']['std'][layer] for l in stat.loaded
              if len(l['gradients']['std'][layer]) == len(steps)]
      arr = np.asarray(rows)
      sd = arr.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(steps))
      ax.errorbar(steps, arr.mean(axis=0), yerr=sd, fmt=style, capsize=2, lw=1,
                  label=f'{label} ({_n_seeds(len(rows))})')
    ax.set_yscale('log')
    ax.set_title(layer, fontsize=8)
    ax.set_xlabel('step', fontsize=7)
    ax.tick_params(labelsize=6)
  axes[0, 0].set_ylabel('std of gradient values', fontsize=7)
  axes[0, -1].legend(fontsize=6)
  _save(fig, os.path.join(outdir, 'gradient_spread.png'))
  return ['gradients.png', 'gradient_spread.png']


def figure_lost_part(results, store: S.Store, outdir):
  """The picture of the first run left out for a lost part that has one."""
  for r in results:
    for spec, _ in r.lost:
      loaded = store.load(spec.key)
      if loaded is not None and 'lost_picture' in loaded:
        shutil.copyfile(loaded['lost_picture'], os.path.join(outdir, 'lost_part.png'))
        return ['lost_part.png']
  return []


def figure_stages(result, outdir):
  st = result.stats
  names = [n for n in st if st[n].n and not n.endswith(tuple(claims_lib.STAGE_CHECKS))]
  if not names:
    return []
  t_of = lambda n: int(n.split('=')[1].split(',')[0])  # noqa: E731
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 5))
  for n in names:
    ms = per_stage(st[n])
    ax.plot(range(1, t_of(n) + 1), [m for m, _ in ms], '-', color='0.75', lw=1, zorder=1)
  ts = [t_of(n) for n in names]
  ax.errorbar(ts, [st[n].mean for n in names], yerr=[st[n].sd for n in names], fmt='o-',
              capsize=3, color='C0', zorder=2, label='final stage of a T-stage model')
  checks = ((claims_lib.HEAVY, 'C3', '#f0a0a0', 's--',
             'the same, trained and evaluated on heavy occlusion (check)'),
            (claims_lib.WIDE, 'C2', '#a0d8a0', 'D:',
             'the same, shared image features twice as wide (check)'),
            (claims_lib.LONG, 'C4', '#c8b4e0', 'v-.', 'the same, trained twice as long (check)'))
  for suffix, color, light, fmt, label in checks:
    ns = [n for n in st if st[n].n and n.endswith(suffix)]
    for n in ns:
      ms = per_stage(st[n])
      ax.plot(range(1, t_of(n) + 1), [m for m, _ in ms], fmt[1:], color=light, lw=1, zorder=1)
    if ns:
      ax.errorbar([t_of(n) for n in ns], [st[n].mean for n in ns],
                  yerr=[st[n].sd for n in ns], fmt=fmt, capsize=3, color=color, zorder=2,
                  label=label)
  ax.plot([], [], '-', color='0.75', label='every stage of each model (mean)')
  ax.set_xlabel('number of stages T')
  ax.set_ylabel('PCKh@0.5 (%)')
  ax.set_xticks(range(1, 7))
  ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16))
  ax.grid(alpha=0.3)
  _save(fig, os.path.join(outdir, 'stages.png'))
  return ['stages.png']


def figure_refinement(result, outdir):
  st = result.stats
  stages = sorted({int(n.split(' ')[1].rstrip(':')) for n in st})
  if not st['stage 1'].n:
    return []
  plt = _plt()
  fig, ax = plt.subplots(figsize=(4.6, 3.4))
  for what, suffix in (('all parts', ''), ('wrists', ': wrists'), ('elbows', ': elbows')):
    names = [f'stage {t}{suffix}' for t in stages]
    ax.errorbar(stages, [st[n].mean for n in names], yerr=[st[n].sd for n in names], fmt='o-',
                capsize=3, label=what)
  ax.set_xticks(stages)
  ax.set_xlabel('stage')
  ax.set_ylabel('PCKh@0.5 (%)')
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  _save(fig, os.path.join(outdir, 'refinement.png'))
  out = ['refinement.png']
  picture = next((l['belief_maps'] for l in st['stage 1'].loaded if 'belief_maps' in l), None)
  if picture:
    shutil.copyfile(picture, os.path.join(outdir, 'belief_maps.png'))
    out.append('belief_maps.png')
  return out


def figure_schemes(result, outdir):
  st = result.stats
  names = [n for n in st if st[n].n]
  if not names:
    return []
  plt = _plt()
  num = max(len(st[n].loaded[0]['eval']['stages']) for n in names)
  fig, ax = plt.subplots(figsize=(8.4, 3.8))
  width = 0.8 / len(names)
  for i, n in enumerate(names):
    ms = per_stage(st[n])
    x = np.arange(len(ms)) + (i - (len(names) - 1) / 2) * width
    ax.bar(x, [m for m, _ in ms], width, yerr=[s for _, s in ms], capsize=2,
           label=f'{n} ({_n_seeds(st[n].n)})')
  ax.set_xticks(range(num), [f'stage {t + 1}' for t in range(num)])
  ax.set_ylabel('PCKh@0.5 (%)')
  ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))   # beside the bars
  ax.grid(axis='y', alpha=0.3)
  _save(fig, os.path.join(outdir, 'schemes.png'))
  return ['schemes.png']


def figure_receptive_fields(result, outdir):
  st, runs = result.stats, result.claim.runs
  names = sorted((n for n in st if st[n].n),
                 key=lambda n: runs.receptive_field(*claims_lib._rf_kernels(n)))  # noqa: SLF001
  if not names:
    return []
  plt = _plt()
  fields = [runs.receptive_field(*claims_lib._rf_kernels(n)) for n in names]  # noqa: SLF001
  fig, ax = plt.subplots(figsize=(5, 3.6))
  ax.errorbar(fields, [st[n].mean for n in names], yerr=[st[n].sd for n in names], fmt='o-',
              capsize=3)
  for f, n in zip(fields, names):
    ax.annotate(n, (f, st[n].mean), fontsize=7, textcoords='offset points', xytext=(4, -10))
  ax.margins(x=0.1)   # room for the last label
  height = runs.person_height()
  ax.axvline(height, color='0.5', ls=':', lw=1)
  ax.text(height, ax.get_ylim()[0], ' person height', fontsize=7, color='0.4', va='bottom')
  ax.set_xlabel('receptive field of the final stage (input px)')
  ax.set_ylabel('final-stage PCKh@0.5 (%)')
  ax.grid(alpha=0.3)
  _save(fig, os.path.join(outdir, 'receptive_fields.png'))
  return ['receptive_fields.png']


def figure_occlusion(outdir, seed: int = 0, size: int = 160, count: int = 5):
  """The first validation people of the synthetic data at both occlusion levels, annotated
  parts visible (green) and occluded (red)."""
  from posemachines.data import synthetic
  plt = _plt()
  fig, axes = plt.subplots(2, count, figsize=(2 * count, 4.3))
  for row, level in enumerate(('light', 'heavy')):
    for i in range(count):
      ex = synthetic.render_example(seed, 'validation', i, size, level)
      ax = axes[row, i]
      ax.imshow(ex['image'])
      vis = ex['joints_visible']
      for mask, colour in ((vis, 'lime'), (~vis, 'red')):
        ax.scatter(ex['joints'][mask, 0], ex['joints'][mask, 1], s=9, c=colour,
                   edgecolors='black', linewidths=0.4)
      ax.set_xticks([]), ax.set_yticks([])
      if i == 0:
        ax.set_ylabel(f'{level} occlusion', fontsize=8)
  fig.suptitle('synthetic validation people: visible (green) and occluded (red) parts',
               fontsize=8)
  _save(fig, os.path.join(outdir, 'occlusion.png'))
  return ['occlusion.png']


def figure_limb_blobs(config, scale: float, outdir, seed: int = 0, count: int = 2):
  """Training targets of the recurrent base on its crops of the first validation people: the
  keypoint heatmaps, the limb heatmaps with the configured sigmas, and with them ``scale``
  times larger (the limb claim's check), at the output resolution."""
  import jax.numpy as jnp
  from posemachines.codec import targets
  from posemachines.core import skeleton
  from posemachines.data import synthetic
  plt = _plt()
  d, t = config.data, config.targets
  size, stride = d.crop_size, 4
  out = size // stride
  skel = skeleton.get(d.parts)
  conv = skeleton.conversion('mpii', d.parts)
  fig, axes = plt.subplots(count, 4, figsize=(8.4, 2.3 * count), squeeze=False)
  for row in range(count):
    ex = synthetic.render_example(d.synthetic_seed, 'validation', row, d.synthetic_image_size,
                                  d.get('synthetic_occlusion', 'light'))
    s = (size / 368.0) * d.target_dist / float(ex['scale'])
    c = np.asarray(ex['center'], np.float32)
    mid = (size - 1) / 2.0
    joints = (np.asarray(ex['joints'], np.float32)[conv] - c) * s + mid
    kp = jnp.asarray(np.concatenate([joints, np.asarray(ex['joints_annotated'])[conv, None]
                                     .astype(np.float32)], -1))
    maps = [targets.keypoint_heatmaps(kp, out, out, stride, t.keypoint_sigma, 1.0)]
    titles = [f'keypoints (sigma {t.keypoint_sigma:g} output px)']
    for f in (1.0, scale):
      maps.append(targets.limb_heatmaps(kp, skel.limb_indices, out, out, stride,
                                        t.limb_along * f, t.limb_across * f))
      titles.append(f'limbs, sigmas {t.limb_along * f:.2g} / {t.limb_across * f:.2g}')
    h, w = ex['image'].shape[:2]
    extent = ((-0.5 - c[0]) * s + mid, (w - 0.5 - c[0]) * s + mid,
              (h - 0.5 - c[1]) * s + mid, (-0.5 - c[1]) * s + mid)
    for k, ax in enumerate(axes[row]):
      ax.imshow(ex['image'] if k == 0 else ex['image'].mean(-1), extent=extent,
                cmap=None if k == 0 else 'gray', vmin=0, vmax=255 if k == 0 else 600)
      if k:
        m = np.asarray(maps[k - 1]).max(-1)
        fg = int((np.asarray(maps[k - 1]) > t.foreground).sum())
        overlay = plt.get_cmap('inferno')(np.clip(m, 0, 1))
        overlay[..., 3] = 0.9 * np.clip(m, 0, 1)
        ax.imshow(overlay, interpolation='nearest',
                  extent=(-0.5, out * stride - 0.5, out * stride - 0.5, -0.5))
        ax.text(0.03, 0.03, f'{fg} foreground px', color='white', fontsize=6,
                transform=ax.transAxes, va='bottom',
                bbox=dict(facecolor='black', alpha=0.7, pad=1.5, linewidth=0))
        if row == 0:
          ax.set_title(titles[k - 1], fontsize=7)
      elif row == 0:
        ax.set_title(f'{size}x{size} crop', fontsize=7)
      ax.set_facecolor((0.5, 0.5, 0.5))   # the crop's padding
      ax.set_xlim(-0.5, size - 0.5)
      ax.set_ylim(size - 0.5, -0.5)
      ax.set_xticks([]), ax.set_yticks([])
  fig.suptitle(f'recurrent targets at {out}x{out} (stride {stride}): all parts / limbs at once',
               fontsize=8)
  _save(fig, os.path.join(outdir, 'limb_blobs.png'))
  return ['limb_blobs.png']


def figure_recurrent(stats: dict, outdir):
  """stats: {variant name: Stat of its PCKh}."""
  names = [n for n in stats if stats[n].n]
  if not names:
    return []
  plt = _plt()
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  for n in names:
    ms = per_stage(stats[n])
    left.errorbar(range(len(ms)), [m for m, _ in ms], yerr=[s for _, s in ms], fmt='o-',
                  capsize=3, label=f'{n} ({_n_seeds(stats[n].n)})')
  outputs = len(per_stage(stats[names[0]]))
  left.set_xticks(range(outputs), ['feed-forward'] + [f'iteration {i}'
                                                      for i in range(1, outputs)])
  left.set_ylabel('PCKh@0.5 (%)')
  left.set_title('accuracy after each output', fontsize=9)
  left.grid(alpha=0.3)
  left.legend(fontsize=7)
  chance = None
  for n in names:
    v = stats[n].loaded[0].get('visibility')
    if v:
      right.plot(np.r_[0.0, v['recall']], np.r_[v['precision'][0], v['precision']],
                 label=f'{n} (AP {100 * v["ap"]:.1f}, seed 0)')
      chance = _visible_share(v)
  if chance is not None:
    right.axhline(chance, ls='--', lw=1, color='grey')
    right.text(0.01, chance, f'chance {100 * chance:.1f}', fontsize=7, color='grey',
               va='bottom')
  right.set_xlabel('recall (visible parts)')
  right.set_ylabel('precision')
  right.set_xlim(0, 1)
  right.set_title("visibility from the last output's heatmap maxima", fontsize=9)
  right.grid(alpha=0.3)
  if right.get_legend_handles_labels()[0]:   # no curves before a run has its visibility
    right.legend(fontsize=7, loc='lower left')
  _save(fig, os.path.join(outdir, 'recurrent.png'))
  return ['recurrent.png']


def figure_convergence(rows, outdir):
  """Final-stage PCKh@0.5 at every evaluation of every finished run."""
  if not rows:
    return []
  plt = _plt()
  groups = {}
  for r in rows:
    groups.setdefault(r['group'], []).append(r)
  fig, axes = plt.subplots(1, len(groups), squeeze=False,
                           figsize=(max(3.2 * len(groups), 6.4), 3))
  for ax, (group, rs) in zip(axes[0], groups.items()):
    for r in rs:
      h = r['loaded']['eval'].get('history') or []
      ax.plot([e['step'] for e in h], [100 * e['pck@0.5'][-1] for e in h],
              '-' if r['converged'] else ':', lw=1, marker='.', ms=3)
    ax.set_title(f'{group} ({len(rs)} runs)', fontsize=8)
    ax.set_xlabel('step', fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel('final-stage PCKh@0.5 (%)', fontsize=7)
  fig.suptitle('every evaluation of every finished run (dotted: not converged)', fontsize=8)
  _save(fig, os.path.join(outdir, 'convergence.png'))
  return ['convergence.png']


# ------------------------------------------------------------------------------ tables --

def table_gradients(result):
  w = result.stats['with intermediate supervision']
  wo = result.stats['without (final stage only)']
  if not (w.loaded and wo.loaded):
    return []
  g = w.loaded[0]['gradients']
  first = next((i for i, s in enumerate(g['steps']) if s > 0), 0)
  lines = [f'Standard deviation of each kernel\'s gradient values on one training batch at the '
           f'first recording after initialisation (step {g["steps"][first]}) and the last '
           f'(step {g["steps"][-1]}), mean ± spread over {w.n} / {wo.n} seeds; ratio = with / '
           'without (per seed, then averaged). Layers from the input side.', '',
           f'| layer | with, step {g["steps"][first]} | without | ratio | with, step '
           f'{g["steps"][-1]} | without | ratio |', '|---|---|---|---|---|---|---|']
  by_seed = dict(zip(wo.seeds, wo.loaded))
  for layer in g['layers']:
    cells = []
    for i in (first, -1):
      a = [l['gradients']['std'][layer][i] for l in w.loaded]
      b = [l['gradients']['std'][layer][i] for l in wo.loaded]
      ratios = [lw['gradients']['std'][layer][i] / by_seed[s]['gradients']['std'][layer][i]
                for s, lw in zip(w.seeds, w.loaded) if s in by_seed]
      cells += [_fmt(a, 3) if max(a) < 10 else _fmt(a), _fmt(b, 3), _fmt(ratios, 2)]
    lines.append(f'| {layer} | ' + ' | '.join(cells) + ' |')
  return lines


def table_stages(result):
  lines = ['| stages | steps | seeds | final-stage PCKh@0.5 | every stage (mean) | CPU min per '
           'run |', '|---|---|---|---|---|---|']
  for n in result.stats:
    s, seeds = shown(result, n)
    every = ' / '.join(f'{m:.1f}' for m, _ in per_stage(s)) or '-'
    steps = _steps(result, n)
    lines.append(f'| {n.split("=")[1]} | {steps} | {seeds} | {s.text()} '
                 f'| {every} | {_cpu_minutes(s):.0f} |' if s.n else
                 f'| {n.split("=")[1]} | {steps} | {seeds} | - | - | - |')
  return lines


def _steps(result, setting: str) -> int:
  """Training steps of a setting's chain (at the schedule the convergence rule chose)."""
  return sum(r.config.num_train_steps for r in result.claim.settings[setting](0))


def table_refinement(result, stages_result=None):
  st = result.stats
  stages = sorted({int(n.split(' ')[1].rstrip(':')) for n in st})
  lines = ['| stage | all parts | wrists | elbows |', '|---|---|---|---|']
  for t in stages:
    lines.append(f'| {t} | {st[f"stage {t}"].text()} | {st[f"stage {t}: wrists"].text()} | '
                 f'{st[f"stage {t}: elbows"].text()} |')
  if stages_result is not None and any(s.n for s in stages_result.stats.values()):
    lines += ['', 'Every stage of the other models of the stage sweep (mean over their seeds; '
              'all parts / wrists / elbows):', '',
              '| model | all parts | wrists | elbows |', '|---|---|---|---|']
    for n, s in stages_result.stats.items():
      if not s.n:
        continue
      cols = [' / '.join(f'{m:.1f}' for m, _ in per_stage(s, metric))
              for metric in (S.pck, lambda l, t: S.part_pck(l, claims_lib.WRISTS, t),
                             lambda l, t: S.part_pck(l, claims_lib.ELBOWS, t))]
      lines.append(f'| {n} | ' + ' | '.join(cols) + ' |')
  return lines


def table_schemes(result):
  num = result.claim.runs.cpm.model.num_stages
  lines = ['| scheme | steps | seeds | ' + ' | '.join(f'stage {t + 1}' for t in range(num)) + ' |',
           '|---|---|---|' + '---|' * num]
  for q in result.claim.quantities:
    s, seeds = shown(result, q.name, q.setting)
    steps = _steps(result, q.setting)
    if s.n:
      cells = ' | '.join(_pm(m, sd, s.n) for m, sd in per_stage(s))
    else:
      cells = ' | '.join('-' for _ in range(num))
    lines.append(f'| {q.name} | {steps} | {seeds} | {cells} |')
  return lines


def table_receptive_fields(result):
  st, runs = result.stats, result.claim.runs
  names = sorted(st, key=lambda n: runs.receptive_field(*claims_lib._rf_kernels(n)))  # noqa
  m = runs.cpm.model
  lines = ['| kernels (trunk / stages) | parameters | receptive field (px) | steps | seeds | '
           'final-stage PCKh@0.5 | every stage (mean) |', '|---|---|---|---|---|---|---|']
  for n in names:
    k = claims_lib._rf_kernels(n)  # noqa: SLF001
    label = (f'base: {"/".join(map(str, m.trunk_kernels))} / '
             f'{"/".join(map(str, m.stage_kernels))}' if k[0] is None else n)
    s, seeds = shown(result, n)
    every = ' / '.join(f'{v:.1f}' for v, _ in per_stage(s)) or '-'
    lines.append(f'| {label} | {runs.parameters(*k):,} | {runs.receptive_field(*k):.0f} | '
                 f'{_steps(result, n)} | {seeds} | {s.text()} | {every} |')
  return lines


def recurrent_stats(results):
  """{variant: Stat} of every recurrent variant's last-output PCKh, from the claims' stats."""
  out = {}
  for r in results:
    if r.claim.group != 'recurrent':
      continue
    for q in r.claim.quantities:
      s = r.stats[q.name]
      if q.setting not in out or s.n > out[q.setting][0].n:
        out[q.setting] = (s, r.seeds[q.setting])
  order = [claims_lib.recurrent_name(m, l) for m, l in claims_lib.RECURRENT_VARIANTS]
  return {n: out[n] for n in order if n in out}


def table_iterations(result):
  """The separate models of the iteration claim: PCKh@0.5 of every output of each."""
  lines = ['Separate models (include, no limb heatmaps), PCKh@0.5 of every output:', '',
           '| model | seeds | feed-forward, then each iteration | final output |',
           '|---|---|---|---|']
  for name in result.claim.settings:
    st, seeds = shown(result, name)
    every = ' / '.join(_pm(m, sd, st.n) for m, sd in per_stage(st)) or '-'
    lines.append(f'| {name} | {seeds} | {every} | {st.text()} |')
  return lines


def table_limbs(result):
  """The limb claim's settings, with the limb blobs' sigmas of each."""
  lines = ['PCKh@0.5 of the last output (include, 2 iterations):', '',
           '| setting | seeds | limb blob sigma along / across (of the limb\'s length) | '
           'PCKh@0.5 | visible / occluded parts |', '|---|---|---|---|---|']
  for name, chain in result.claim.settings.items():
    (st, seeds), c = shown(result, name), chain(0)[-1].config
    blobs = (f'{c.targets.limb_along:.3g} / {c.targets.limb_across:.3g}'
             if c.model.limb_heatmaps else 'no limb heatmaps')
    split = ' / '.join(_fmt([f(l) for l in st.loaded]) for f in (S.visible_pck, S.occluded_pck))
    lines.append(f'| {name} | {seeds} | {blobs} | {st.text()} | '
                 f'{split if st.n else "-"} |')
  return lines


def table_recurrent(rstats):
  if not rstats:
    return []
  first = next((s for s, _ in rstats.values() if s.n), None)
  outputs = len(first.loaded[0]['eval']['stages']) if first else 3
  names = ['feed-forward'] + [f'iteration {i}' for i in range(1, outputs)]
  lines = ['| variant | seeds | ' + ' | '.join(f'PCKh@0.5 {o}' for o in names)
           + ' | visibility AP ' + ' / '.join(o.replace('iteration ', 'it') for o in names)
           + ' | PCKh@0.5 visible / occluded parts (last output) | steps | CPU min per run |',
           '|---|---|' + '---|' * (outputs + 4)]
  for n, (s, need) in rstats.items():
    if not s.n:
      lines.append(f'| {n} | 0/{need} | ' + ' | '.join('-' for _ in names)
                   + ' | - | - | - | - |')
      continue
    pck = ' | '.join(_pm(m, sd, s.n) for m, sd in per_stage(s))
    ap = ' / '.join(f'{m:.1f}' for m, _ in per_stage(s, S.visibility_ap))
    split = ' / '.join(_fmt([f(l) for l in s.loaded]) for f in (S.visible_pck, S.occluded_pck))
    steps = s.loaded[0]['summary'].get('config', {}).get('num_train_steps', '-')
    lines.append(f'| {n} | {_seeds(s, need)} | {pck} | {ap} | {split} | {steps} | '
                 f'{_cpu_minutes(s):.0f} |')
  v = next((l.get('visibility') for s, _ in rstats.values() for l in s.loaded
            if l.get('visibility')), None)
  if v:
    chance = 100 * _visible_share(v)
    lines += ['', f'Visibility AP: every annotated part ranked by its heatmap maximum, visible '
              f'parts the positives; a random ranking scores the visible fraction, '
              f'{chance:.1f} ({v["num_visible"]} visible and {v["num_occluded"]} occluded '
              'parts).']
  return lines


def _occlusion(recurrent_results) -> str:
  return recurrent_results[0].claim.runs.recurrent_base.data.get('synthetic_occlusion', 'light')


def section_light_occlusion(results, store: S.Store, rstats) -> list[str]:
  """Why the recurrent claims are tested on heavy occlusion: the same variants on the default
  (light) occlusion, on all parts and on the occluded parts alone."""
  light = claims_lib.light_occlusion_runs([r.claim for r in results])
  found = {}
  for (name, seed), s in light.items():
    loaded = store.load(s.key)
    if loaded is not None:
      found.setdefault(name, []).append(loaded)
  if not found:
    return []
  lines = ['### Why heavy occlusion', '',
           'The same variants trained on the default synthetic people (`data.synthetic_occlusion'
           '=light`), final output, mean ± spread over the seeds finished:', '',
           '| variant | seeds | PCKh@0.5 all parts | visible parts | occluded parts | '
           'visibility AP |', '|---|---|---|---|---|---|']
  for name, ls in found.items():
    cells = [_fmt([f(l) for l in ls]) for f in (S.pck, S.visible_pck, S.occluded_pck,
                                                 S.visibility_ap)]
    lines.append(f'| {name} | {len(ls)} | ' + ' | '.join(cells) + ' |')

  def hidden(loaded_list):
    v = next((l['eval'].get('visibility') for l in loaded_list if l['eval'].get('visibility')),
             None)
    return v and 100 * (1 - _visible_share(v))
  inc, exc = found.get(claims_lib.recurrent_name('include', True)), found.get(
      claims_lib.recurrent_name('exclude', True))
  light_hidden = hidden(sum(found.values(), []))
  heavy_hidden = hidden([l for st, _ in rstats.values() for l in st.loaded])
  if inc and exc:
    d_all = np.mean([S.pck(l) for l in inc]) - np.mean([S.pck(l) for l in exc])
    d_occ = np.nanmean([S.occluded_pck(l) for l in inc]) - np.nanmean(
        [S.occluded_pck(l) for l in exc])
    text = (f'With {light_hidden:.1f}% of the annotated validation parts hidden, including '
            f'occluded keypoints instead of excluding them changes PCKh@0.5 by {d_occ:+.1f} '
            f'points on the occluded parts alone but by {d_all:+.1f} on all parts')
    text += (f'; the claims above are tested with heavy occlusion ({heavy_hidden:.1f}% hidden).'
             if heavy_hidden else '.')
    lines += ['', text]
  return lines + ['']


# -------------------------------------------------------------------------- the page --

# What the synthetic people may lack for a claim that does not hold, and how to find out.
DATA_PLAN = {
    'gradients': (
        'The effect is a property of deep networks trained with a loss at the output only, not '
        'of the data; where it does not show, the model may be too shallow for gradients to '
        'vanish (3 stages: 14 convolutions from the input to the last belief maps). Check: the '
        'same pair of runs with 6 stages.'),
    'refinement': (
        'Later stages can only improve on stage 1 where the image is ambiguous locally and the '
        'beliefs of other parts resolve it. Synthetic people tell left from right by global cues '
        '(face or hair, front or back marks) and occluders hide joints whose position follows '
        'from the rest of the body; if stage 1 already gets wrists and elbows right, there is '
        'nothing to refine. Check: per-part accuracy of stage 1 on occluded parts against '
        'visible ones, and on figures facing away.'),
    'stages': (
        'More stages help only while each adds something the earlier ones lacked. The field '
        'is not it: stage 2 already sees the whole crop here (131 of 96 px), as it does in the '
        'paper\'s model (407 of 368 px), so from stage 3 on the stages add depth and more '
        'rounds of refinement in both, and a larger crop would not change that. What they '
        'refine is what stage 1-3 get wrong from local evidence; on the default synthetic '
        'people the 4-stage model leaves about 6 points, with one image in three lightly '
        'occluded. The first check trains the ends of the flat part of the sweep, '
        f'T={claims_lib.STAGE_CHECK_TS[0]} and T={claims_lib.STAGE_CHECK_TS[-1]}, on heavy '
        'occlusion (2-3 occluders in nine images in ten, about 28% of the parts hidden, as '
        'the recurrent claims), where a hidden part must be placed from the rest of the body: '
        'if the extra stages add accuracy there, the default data is too easy to show the '
        'paper\'s curve; if not, the data\'s occlusion is not the reason either. The next '
        'candidate is the model: every stage after the first reads the same image features, '
        'here 32 channels from a three-layer trunk with 5x5 kernels, reduced to 16 for each '
        'stage (the paper\'s: 128 channels from 9x9 kernels, reduced to 32), and what they carry '
        'bounds what any number of stages can infer from them; inside the 6-stage model stage '
        '1 is weaker than the 1-stage model, as if the later stages took over the trunk. The '
        'second check trains the same two models with the trunk and the stage features twice '
        'as wide (1.5 M parameters at T=6 against 1.1 M, a third more time per step; four '
        'times as wide would take 2.3 times as long per step). The third check is the '
        'schedule: the convergence rule stops lengthening once the last two evaluations agree '
        'within 1.5 points, and the superseded runs of half the steps only show that halving '
        'it keeps the shape, while the deeper models\' early stages are still weaker; it trains '
        'the same two models with twice the steps the claim\'s settings had. Left untried where '
        'no check explains the curve: trunks four times as wide, and another weighting of the '
        'stages\' losses than equal.'),
    'schemes': (
        'Stage-wise training saturates below joint training when the later stages cannot '
        'correct features that stage 1 learnt alone; at this scale each stage-wise phase is '
        'short (a third of the steps) and stage 1 alone is already strong. Check the schedule '
        'first (each phase with the full 2,500 steps), then the data as for the stage claim. '
        'Training with the final stage\'s loss only is worst where the gradients that reach the '
        'first stages are too small to train them. They do shrink here (about 10x near the '
        'input, see the gradient claim), but Adam, used here, divides each parameter\'s step '
        'by the running size of its own gradient, so a weight whose gradient shrank still moves '
        'as fast; the paper trained with SGD, whose steps shrink with the gradient. The check '
        'trains (i) and (iv) with SGD, momentum 0.9 and weight decay 5e-4 as the paper, at a '
        f'learning rate of {claims_lib.SGD_CHANGES["optim.learning_rate"]:g} after a 500-step '
        'warmup (in 1,000-step probes of the base 3e-4 diverged and 1.5e-4 still trained; '
        'with the base\'s 100-step warmup every rate tried diverged): if (iv) falls '
        'further behind (i) with SGD than with Adam, the optimiser is the reason; if not, 6 '
        'stages, whose first stages the final loss reaches through more layers, come next.'),
    'receptive_fields': (
        'The claim needs a task where a field smaller than the person loses information. In '
        'synthetic people a small field still sees each limb, and left/right cues sit on the '
        'head and torso; a field of 29 px misses them. If accuracy keeps rising past the '
        'person\'s height, the larger kernels may help by other means (fewer, wider layers, '
        'more context from the second person); a sweep at constant width would separate the '
        'two.'),
    'recurrent_occlusion': (
        'Including occluded keypoints helps PCKh when their positions follow from the visible '
        'body, and shows in the mean only when many parts are hidden. By default one synthetic '
        'image in three gets one or two textured shapes near a random joint, hiding about 6% of '
        'the annotated parts: there the modes differed on the occluded parts alone but hardly '
        'on all parts ([why heavy occlusion](#why-heavy-occlusion)). The recurrent runs '
        'therefore use `data.synthetic_occlusion=heavy` (2-3 occluders in nine images in ten, '
        'about 28% of the parts hidden). Limbs still never hide each other; if the claim does '
        'not hold on heavy occlusion, self-occlusion by crossing limbs and the second person in '
        'front are what the data would add next.'),
    'recurrent_iterations': (
        'Iterations help where the feed-forward output is wrong in ways context fixes (the '
        'same ambiguities as for the CPM stages). The feed-forward output sees 66 px, the '
        'first iteration 90 px, the second 114 px, the person being about 86 px tall; a joint '
        'at one end of the figure needs a field of about twice that to see the other end, so '
        'the second iteration could still add context for the extremities. But the paper\'s '
        'model (248-px input, 9x9 kernels) sees 82 / 114 / 146 px of a person of about 158 '
        'px, less of the figure at every output than this one, and its second iteration adds '
        'nothing: the verdict compares the two. The paper compares '
        'separate models (+1, +2 iterations), and so does the verdict; within one model every '
        'output is supervised and its later outputs also gain depth, so its own per-output '
        'numbers are given beside them but do not decide. In the first runs the 2-iteration '
        'model matched the 1-iteration one until step 1,500 and drew ahead only as the '
        'learning rate decayed, so a longer schedule would not close the gap. Each iteration '
        'adds two layers (7x7, then 1x1) to a model of 0.5M parameters (the MPII '
        'configuration: 10.9M): one check trains the 1- and 2-iteration models half as wide '
        '(if the second iteration adds more there, its gain here is depth a small model '
        'lacks), another on the default light occlusion (if it adds little there, what it '
        'helps with is placing the parts hidden by heavy occlusion). The half-width models '
        'lose a part\'s map (its output ReLU dies: see Setup, lost parts) in most seeds, so '
        'that check may be given up.'),
    'recurrent_limbs': (
        'Limb heatmaps help where the joints are ambiguous but the limbs between them are not. '
        'The paper gives a limb blob\'s sigmas as fractions of the limb\'s length (0.15 '
        'along it, 0.1 across). At 96x96 the synthetic limbs are about 15 px long (median; 11 '
        'to 23 px), under 4 output pixels, so both sigmas fall to the floor of half an output '
        'pixel: a limb blob has about 5 foreground pixels against 24 for a keypoint (measured '
        'on 50 validation crops), each weighing about 5 times more in the balanced loss, and '
        'the 13 limb maps together weigh as much in the loss as the 14 keypoint maps. At the '
        'paper\'s 248-px input the limbs are 2.6 times longer in output pixels and their blobs '
        'about the size of a keypoint\'s. The check scales both sigmas by 248/96 (25 '
        'foreground pixels per limb blob). If it does not explain the loss: the pair with a '
        'wider model, then data in which limbs cross each other or the second person\'s, so '
        'that which wrist belongs to which elbow is ambiguous.'),
    'recurrent_visibility': (
        'A random ranking scores the visible fraction of the parts: 94.2% of the validation '
        'parts are visible with light occlusion, 72.7% with heavy. The paper\'s 90% bar is so '
        'a weaker test the fewer parts are hidden (compare the light-occlusion runs in [why '
        'heavy occlusion](#why-heavy-occlusion)). Include trains occluded parts to peak like '
        'visible ones, which works against ranking them apart; exclude trains them to stay '
        'dark, which is what the ranking rewards.'),
}


def write(results, store: S.Store, out_md: str, fig_dir: str, command: str,
          base_files=('experiments/analyses_cpu.py', 'experiments/recurrent_analyses_cpu.py')):
  """Writes the page and its figures; returns the figure files written."""
  os.makedirs(fig_dir, exist_ok=True)
  by_key = {r.claim.key: r for r in results}
  rel = os.path.relpath(fig_dir, os.path.dirname(os.path.abspath(out_md)) or '.')
  written = []
  all_runs = {}
  for r in results:
    for s in claims_lib.needed_runs(r.claim, r.seeds):
      all_runs.setdefault(s.key, (s, r.claim.group))
  superseded = {}
  for r in results:
    for s in claims_lib.superseded_runs(r.claim, r.seeds):
      if s.key not in all_runs:
        superseded.setdefault(s.key, (s, r.claim.group))
  notes = {key: 'superseded: trained longer' for key in superseded}
  for s in claims_lib.light_occlusion_runs([r.claim for r in results]).values():
    if s.key not in all_runs and s.key not in superseded:
      superseded[s.key] = (s, 'recurrent')
      notes[s.key] = 'light occlusion: why heavy'
  for r in results:
    for s, parts in r.lost:
      notes[s.key] = f'lost {", ".join(parts)}: left out'
  rows = []
  for key, (s, group) in list(all_runs.items()) + list(superseded.items()):
    loaded = store.load(key)
    if loaded is not None:
      rows.append({'spec': s, 'group': group, 'loaded': loaded, 'note': notes.get(key),
                   'converged': S.converged(loaded, claims_lib.CONVERGENCE_POINTS)})
  cpu_total = sum(S.cpu_seconds(r['loaded']) or 0 for r in rows)
  wall_total = sum(S.wall_seconds(r['loaded']) or 0 for r in rows)
  any_run = next(iter(all_runs.values()), (None, None))[0]
  from posemachines.analyses import plan as plan_lib
  data = plan_lib.data_version(any_run.config) if any_run else '-'

  def fig(name, alt):
    return [f'![{alt}]({rel}/{name})', ''] if name in written else []

  written += figure_lost_part(results, store, fig_dir)
  lost_figure = fig('lost_part.png', 'a lost part')

  lines = [
      "# The papers' claims on synthetic people (CPU scale)", '',
      f'Every claim of the CPM paper (Wei et al. 2016) and of the recurrent pose model '
      f'(Belagiannis and Zisserman 2017), tested by runs of our own on {data}. This page and '
      f'its figures are written by `{command}` from the summaries of the finished runs in '
      '[results/runs/](results/runs/); rerunning it trains what is missing (finished runs are '
      'skipped, an interrupted one resumes) and rewrites the page. `--plan` lists the runs, '
      'which have finished and the CPU time left; `--only=stages,schemes,gradients,'
      'receptive_fields,recurrent` restricts the training to some claims.', '',
      '| claim | verdict | runs finished |', '|---|---|---|']
  for r in results:
    lines.append(f'| [{r.claim.title}](#{_anchor(r.claim.title)}) | **{r.status}** | '
                 f'{r.finished} of {r.total} |')
  lines += ['', f'{len(rows)} {"run has" if len(rows) == 1 else "runs have"} finished so far: '
            f'{cpu_total / 3600:.1f} CPU hours '
            f'({wall_total / 3600:.1f} hours of wall time) on the 2-core machine, shared with '
            'other jobs.', '',
            '## Setup', '',
            f'- CPM runs start from [`{base_files[0]}`](../{base_files[0]}), the recurrent ones '
            f'from [`{base_files[1]}`](../{base_files[1]}): the project\'s default model and '
            'schedule (96x96 crops of the synthetic people, 2,500 steps of batch 8, Adam with '
            'cosine decay), with every field written out; the CPM base is the default 3-stage '
            'model, reaching about 64 / 80 / 88 PCKh@0.5 in stages 1 / 2 / 3.',
            f'- Convergence: every run evaluates all 500 validation people every 500 steps; a '
            f'run counts only when its final evaluation (final stage) is within '
            f'{claims_lib.CONVERGENCE_POINTS:g} points of the one 500 steps before '
            '([convergence](#convergence)). That is how "within about 1 point" is read here: '
            'the first runs of the default schedule moved by +0.7 to +1.3 points over their '
            'last 500 steps, so with a bound of exactly 1 point most settings would need a '
            'longer schedule than the default\'s. When a run of a claim has not converged, '
            'every setting of the claim is trained again from scratch, every seed, with '
            + ', then '.join(f'{f}x' for f in claims_lib.LENGTHS[1:]) + ' the steps (labels '
            '`..._x2_s0`), so that the settings a claim compares share a schedule; the '
            'shorter runs are listed as superseded and their time counts in the total. A run '
            'shared by several claims (the base model) can so have a longer schedule in one '
            'claim than in another: the tables give the steps.',
            '- Seeds: `seed` sets the initial weights, the batch order and the augmentation '
            '(the data set is the same). Every setting has at least 2 seeds; where two '
            'compared settings differ by less than twice the larger of their spreads, both '
            'get a third (decided from the first two). Numbers are mean ± spread, the spread '
            'being the standard deviation across seeds; error bars show one spread.',
            f'- Lost parts: a run whose last output gets below {metrics.LOST_BELOW:g}% PCKh@0.5 '
            f'on one part while reaching {metrics.LOST_OVERALL:g}% or more on all parts has lost '
            'that part\'s map (in the recurrent model, a prediction map whose ReLU died in '
            'training: zero, or nearly, on every crop). It measures the lost map rather than '
            'the setting, so it is left out of the numbers and the setting trains the next '
            f'seed in its place (at most {claims_lib.MAX_LOST} times; more makes the claim not '
            'settled). The verdict '
            'names such runs and the [convergence](#convergence) table marks them (the first '
            'such run\'s maps are drawn below).',
            '- A claim is **not yet run** until all its runs have finished (the tables show '
            'what has), **not settled** while one of them has not converged, and otherwise '
            '**holds** or **does not hold**, with the reason computed from the numbers.', '']
  lines += lost_figure
  sections = (
      ('gradients', figure_gradients, table_gradients,
       [('gradients.png', 'gradient histograms'), ('gradient_spread.png', 'gradient spread')]),
      ('refinement', figure_refinement, None,
       [('refinement.png', 'per-stage accuracy'), ('belief_maps.png', 'belief maps per stage')]),
      ('stages', figure_stages, table_stages, [('stages.png', 'accuracy against stages')]),
      ('schemes', figure_schemes, table_schemes, [('schemes.png', 'training schemes')]),
      ('receptive_fields', figure_receptive_fields, table_receptive_fields,
       [('receptive_fields.png', 'accuracy against receptive field')]))
  for key, figure, table, figs in sections:
    r = by_key.get(key)
    if r is None:
      continue
    written += figure(r, fig_dir)
    if key == 'refinement':
      body = table_refinement(r, by_key.get('stages'))
    else:
      body = table(r)
    lines += _section(r, body, sum((fig(n, a) for n, a in figs), []))
  rstats = recurrent_stats(results)
  rec = [r for r in results if r.claim.group == 'recurrent']
  if rec:
    written += figure_recurrent({n: s for n, (s, _) in rstats.items()}, fig_dir)
    lines += ['## The recurrent model (Table I, Fig. 7)', '',
              'Four variants of the small recurrent model (2 iterations)'
              + (', trained on the synthetic people with heavy occlusion '
                 '([why](#why-heavy-occlusion))' if _occlusion(rec) == 'heavy' else '')
              + ': occluded keypoints included, excluded (as background) or ignored (no '
              'gradient), with limb heatmaps, and included without them. PCKh@0.5 after the '
              'feed-forward module and after each iteration of the same model (every output '
              'is supervised; the iteration claim below compares separate models with 0, 1 '
              'and 2 iterations, as the paper\'s rows do), and the visibility AP of each '
              'output.', '',
              f'`{command.split(" --")[0]} --only=recurrent` (or '
              '`python experiments/recurrent_ablation.py`)', ''] + table_recurrent(rstats) + [
              ''] + fig('recurrent.png', 'recurrent ablation')
    for r in rec:
      lines += [f'### {r.claim.title}', '', f'Claim: {r.claim.statement}', '']
      if r.claim.key == 'recurrent_iterations':
        lines += table_iterations(r) + ['']
      if r.claim.key == 'recurrent_limbs':
        lines += table_limbs(r) + ['']
        if claims_lib.LIMB_CHECK in r.claim.settings and r.finished:
          written += figure_limb_blobs(r.claim.runs.recurrent_base,
                                       r.claim.runs.limb_blob_scale(), fig_dir)
          lines += fig('limb_blobs.png', 'limb blobs at both sizes')
      if r.claim.key not in ('recurrent_iterations', 'recurrent_limbs'):
        lines += ['Seeds (kept / trained) of this claim: '
                  + ', '.join(f'{name} {shown(r, name)[1]}' for name in r.claim.settings)
                  + '; the table above takes every finished seed of a variant.', '']
      lines += [f'**{_cap(r.text)}.**', '']
    light = section_light_occlusion(results, store, rstats)
    if light:
      written += figure_occlusion(fig_dir)
      light[-1:-1] = [''] + fig('occlusion.png', 'occlusion levels')
    lines += light
  lines += ['## Where a claim does not hold: what the synthetic people may lack', '',
            'For each claim, what the data would have to pose for the claim to show, and the '
            'check that tells whether the data, the schedule or the model is the reason. A '
            'new version of the synthetic people is made only on such evidence.', '']
  for r in results:
    lines.append(f'- **{r.claim.title}** ({r.status}): {DATA_PLAN.get(r.claim.key, "")}')
  lines += ['']
  written += figure_convergence(rows, fig_dir)
  lines += ['## Convergence', '', 'Final-stage PCKh@0.5 of the last evaluation and its change '
            'from the one before, the CPU and wall time of every finished run (summed over '
            'interrupted attempts).', ''] + fig('convergence.png', 'convergence') + [
            '| run | key | steps | final PCKh@0.5 | last change | converged | CPU min | '
            'wall min |', '|---|---|---|---|---|---|---|---|']
  for r in rows:
    l, s = r['loaded'], r['spec']
    change = S.last_change(l)
    cpu, wall = S.cpu_seconds(l), S.wall_seconds(l)
    lines.append(f'| {s.label} | [{s.key}](results/runs/{os.path.basename(l["dir"])}) | '
                 f'{s.config.num_train_steps} | {S.pck(l):.1f} | '
                 f'{"-" if change is None else f"{change:+.1f}"} | '
                 f'{"yes" if r["converged"] else "no"}'
                 f'{" (" + r["note"] + ")" if r["note"] else ""} | '
                 f'{"-" if cpu is None else f"{cpu / 60:.0f}"} | '
                 f'{"-" if wall is None else f"{wall / 60:.0f}"} |')
  if not rows:
    lines.append('| (none finished yet) | | | | | | | |')
  lines.append('')
  for name in FIGURES:  # figures of an earlier page that this one no longer draws
    path = os.path.join(fig_dir, name)
    if name not in written and os.path.exists(path):
      os.remove(path)
  with open(out_md, 'w') as f:
    f.write('\n'.join(lines))
  return written


def _anchor(title: str) -> str:
  keep = ''.join(ch for ch in title.lower() if ch.isalnum() or ch in ' -')
  return keep.replace(' ', '-')


def _cap(text: str) -> str:
  return text[:1].upper() + text[1:]


def _section(r, body, figures):
  c = r.claim
  return ([f'## {c.title}', '', f'Claim: {c.statement}', '',
           f'Command: `python experiments/results.py --only={c.group}`', '']
          + body + [''] + figures + [f'**{_cap(r.text)}.**', ''])
