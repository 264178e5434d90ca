"""Accuracy against the number of stages (CPM Fig. 6c): a joint run for each T.

  python experiments/stages.py [--config=experiments/analyses_cpu.py] [--workdir=workdirs/analyses]
      [--stages=1,2,3,4,5,6] [--config.FIELD=VALUE ...]

Writes stages.md, stages.json and stages.png into --workdir; runs go to --runs_dir (default
WORKDIR/runs). Rerunning skips finished runs and resumes an unfinished one. Full scale: choose a
config, e.g. --config=experiments/cpm_mpii.py --config.data.manual_dir=DIR
"""
from absl import flags

from posemachines.analyses import runner as analyses
from posemachines.core import errors, logs

flags.DEFINE_list('stages', ['1', '2', '3', '4', '5', '6'], 'Numbers of stages to train.')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  ts = [int(t) for t in flags.FLAGS.stages]
  analyses.stages(flags.FLAGS.config, flags.FLAGS.workdir,
                  analyses.runs_from_flags('stages', len(ts)), ts)


if __name__ == '__main__':
  analyses.define_flags()
  logs.run(main, 'experiments/stages.py')
