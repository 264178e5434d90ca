"""The recurrent model's ablation: iterations, limb heatmaps and occlusion modes (the paper's
Table I and Fig. 7, at CPU scale on synthetic people).

  python experiments/recurrent_ablation.py [--workdir=workdirs/recurrent_ablation] [--steps=N]
      [--config=experiments/recurrent_synthetic.py] [--config.FIELD=VALUE ...]

Trains four variants of the config from scratch with the same data, steps and seed:

  include + limbs   occluded parts trained as visible, keypoint and limb heatmaps
  include           the same without limb heatmaps
  exclude + limbs   occluded parts as background
  ignore + limbs    no gradient in occluded parts' regions

and evaluates each on the validation people: PCKh@0.5 after the feed-forward module and after
every iteration, and the visibility AP of every output (each part's heatmap maximum ranks the
visible parts above the occluded ones). Writes ablation.md (the table), ablation.json and
ablation.png (PCKh per output; precision-recall curves of the last output). A finished variant is
skipped and an interrupted one resumes from its checkpoint, so rerunning the command continues.
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags
import ml_collections
import numpy as np

from posemachines import models
from posemachines.core import config_files, errors, logs
from posemachines.training import loop as train
from posemachines.training import runs as runs_lib
from posemachines.evaluation import visibility

VARIANTS = (('include', True), ('include', False), ('exclude', True), ('ignore', True))
DEFAULT_STEPS = 200


def define_flags():
  config_files.define_config_flag('recurrent_synthetic', lock=False,
                                  help_text='Base config of every variant')
  flags.DEFINE_string('workdir', 'workdirs/recurrent_ablation', 'Runs, table and figure.')
  flags.DEFINE_integer('steps', DEFAULT_STEPS, 'Training steps per variant.')


def label(occlusion: str, limbs: bool) -> str:
  return f'{occlusion} + limbs' if limbs else occlusion


def variant_config(base, occlusion: str, limbs: bool, steps: int):
  c = ml_collections.ConfigDict(base.to_dict())
  c.loss.occlusion = occlusion
  c.model.limb_heatmaps = limbs
  c.num_train_steps = steps
  c.eval_every_steps = steps
  c.checkpoint_every_steps = min(c.checkpoint_every_steps, steps)
  c.num_pictures = 0
  return c


SCORES = 'visibility_scores.npz'


def save_scores(config, state, workdir: str):
  """The final evaluation again, keeping every part's score for the precision-recall curves."""
  mesh = train.make_mesh()
  eval_fn = train.build(config, mesh).eval_step
  result = train.run_evaluation(config, state.variables, eval_fn, mesh, keep_predictions=True)
  np.savez(os.path.join(workdir, SCORES), scores=result['predictions'][..., 2],
           visible=result['visible'], annotated=result['annotated'])


def run_variant(config, runs: runs_lib.Runs, name: str):
  """Trains and evaluates one variant unless it finished earlier; its summary and scores."""
  workdir, result = runs(config, None, name, on_trained=lambda state, _, d: save_scores(
      config, state, d), outputs=(SCORES,))
  summary = {'name': name, 'steps': config.num_train_steps,
             'minutes': (runs_lib.wall_time(workdir) or 0) / 60,
             'num_people': result['num_people'], 'visibility': result.get('visibility'),
             'pckh': [s['pck@0.5'] for s in result['stages']],
             'visibility_ap': [s.get('visibility_ap') for s in result['stages']]}
  return summary, dict(np.load(os.path.join(workdir, SCORES)))


def _pct(x):
  return '-' if x is None or not np.isfinite(x) else f'{100 * x:.1f}'


def table(base, steps: int, summaries) -> list[str]:
  n_out = len(summaries[0]['pckh'])
  outputs = models.output_names(base)
  vis = summaries[0]['visibility'] or {}
  lines = [
      '# Recurrent pose model: iterations, limb heatmaps, occlusion modes', '',
      f'`python experiments/recurrent_ablation.py --steps={steps}` '
      f'({" ".join(sys.argv[1:]) or "no other flags"})', '',
      f'{base.data.dataset} at {base.data.crop_size}x{base.data.crop_size}, '
      f'{base.model.num_iterations} iterations, batch {base.batch_size}, {steps} steps '
      f'({base.optim.name}, lr {base.optim.learning_rate}) per variant; '
      f'{summaries[0]["num_people"]} validation people, {vis.get("num_visible", "?")} visible and '
      f'{vis.get("num_occluded", "?")} occluded parts.', '',
      '| variant | ' + ' | '.join(f'PCKh@0.5 {o}' for o in outputs)
      + ' | visibility AP ' + ' / '.join(o.replace('iteration ', 'it') for o in outputs)
      + ' | minutes |',
      '|---' * (n_out + 3) + '|']
  for s in summaries:
    lines.append(f'| {s["name"]} | ' + ' | '.join(_pct(p) for p in s['pckh'])
                 + ' | ' + ' / '.join(_pct(a) for a in s['visibility_ap'])
                 + f' | {s["minutes"]:.1f} |')
  chance = vis['num_visible'] / max(vis['num_visible'] + vis['num_occluded'], 1) if vis else None
  lines += ['', 'Visibility AP: every annotated part ranked by its heatmap maximum, visible parts '
            f'the positives (precision-recall in ablation.png); a random ranking scores the '
            f'visible fraction, {_pct(chance)}.']
  return lines


def figure(base, summaries, scores, path: str):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  n_out = len(summaries[0]['pckh'])
  ticks = models.output_names(base)
  for s in summaries:
    left.plot(range(n_out), [100 * p for p in s['pckh']], marker='o', label=s['name'])
  left.set_xticks(range(n_out), ticks)
  left.set_ylabel('PCKh@0.5 (%)')
  left.set_ylim(0, max(100 * max(s['pckh']) for s in summaries) + 5)
  left.set_title('accuracy after each output', fontsize=10)
  left.grid(alpha=0.3)
  left.legend(fontsize=8)
  curves = {}
  for s in summaries:
    sc = scores[s['name']]
    ann = sc['annotated'] > 0
    curves[s['name']] = (sc['scores'][-1][ann], sc['visible'][ann] > 0)
  visibility.draw_precision_recall(right, curves, "visibility from the last output's maxima")
  chance = np.mean(next(iter(curves.values()))[1])
  right.axhline(chance, ls='--', lw=1, color='grey')
  right.text(0.01, chance, f'chance {100 * chance:.1f}', ha='left', va='bottom', fontsize=8,
             color='grey')
  right.legend(fontsize=8, loc='upper right')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  base, workdir, steps = flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.steps
  if base.model.name != 'recurrent':
    raise errors.BadFlag(f'--config must configure the recurrent model, not {base.model.name!r}')
  os.makedirs(workdir, exist_ok=True)
  summaries, scores = [], {}
  runs = runs_lib.Runs(workdir, len(VARIANTS), 'ablation')
  for occlusion, limbs in VARIANTS:
    name = label(occlusion, limbs)
    summary, scores[name] = run_variant(variant_config(base, occlusion, limbs, steps), runs, name)
    summaries.append(summary)
  lines = table(base, steps, summaries)
  with open(os.path.join(workdir, 'ablation.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with open(os.path.join(workdir, 'ablation.json'), 'w') as f:
    json.dump(summaries, f, indent=2)
  figure(base, summaries, scores, os.path.join(workdir, 'ablation.png'))
  print('\n'.join(lines))
  print(f'Wrote {workdir}/ablation.md, ablation.json and ablation.png')


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'experiments/recurrent_ablation.py')
