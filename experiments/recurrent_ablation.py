"""The recurrent model's ablation (the paper's Table I and Fig. 7) at CPU scale, with seeds:
the recurrent claims of experiments/results.py.

  python experiments/recurrent_ablation.py [--workdir=workdirs/results] [--seeds=2]
      [--max_runs=N] [--plan] [--commit]

is ``python experiments/results.py --only=recurrent``: it trains, from
experiments/recurrent_analyses_cpu.py, the four variants

  include + limbs   occluded parts trained as visible, keypoint and limb heatmaps
  include, no limbs the same without limb heatmaps
  exclude + limbs   occluded parts as background
  ignore + limbs    no gradient in occluded parts' regions

with at least two seeds each (a third where two compared variants are within twice their
seeds' spread), skipping runs whose summaries are in docs/results/runs/ and resuming an
interrupted one, and writes the ablation table (PCKh@0.5 after the feed-forward module and
every iteration, visibility AP of every output, mean ± spread over the seeds), its figure and
the recurrent claims' verdicts into docs/results.md.
"""
import os
import runpy
import sys

if __name__ == '__main__':
  sys.argv = [sys.argv[0], '--only=recurrent'] + sys.argv[1:]
  runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.py'),
                 run_name='__main__')
