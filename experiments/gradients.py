"""Gradient values across depth with and without intermediate supervision (CPM Fig. 5).

  python experiments/gradients.py [--config=experiments/analyses_cpu.py] [--workdir=workdirs/analyses]
      [--config.gradients.every_steps=50] [--config.gradients.layers=stage1/trunk/conv1,...]

Trains (or reuses) the joint and the final-stage-only runs with gradient recording on, and writes
gradients.png (rows: with / without intermediate supervision; columns: layers from the input side;
a curve per recording), gradient_spread.png, and gradients.md with the standard deviations and
their ratios at the first and last recordings.
"""
from absl import flags

from posemachines.analyses import runner as analyses
from posemachines.core import errors, logs


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  analyses.gradient_histograms(flags.FLAGS.config, flags.FLAGS.workdir,
                               analyses.runs_from_flags('gradients', 2))


if __name__ == '__main__':
  analyses.define_flags()
  logs.run(main, 'experiments/gradients.py')
