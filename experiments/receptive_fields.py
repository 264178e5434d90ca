"""Accuracy against receptive field at about constant parameter count (CPM Fig. 4).

  python experiments/receptive_fields.py [--config=experiments/analyses_cpu.py]
      [--workdir=workdirs/analyses] [--kernels=3:1,3:3,7:7]

Each TRUNK:STAGE pair sets the kernel size of the trunk convs (and stage 1's first head conv) and
of the other non-1x1 convs; the widths are then scaled so the model has about as many parameters
as the base config, whose own joint run is the first row. Receptive fields come from posemachines.summary. Writes
receptive_fields.{md,json,png} into --workdir; finished runs are skipped.
"""
from absl import flags

from posemachines.analyses import runner as analyses
from posemachines.core import errors, logs

flags.DEFINE_list('kernels', ['3:1', '3:3', '7:7'], 'TRUNK:STAGE kernel sizes.')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  kernels = [tuple(int(k) for k in pair.split(':')) for pair in flags.FLAGS.kernels]
  analyses.receptive_fields(flags.FLAGS.config, flags.FLAGS.workdir,
                            analyses.runs_from_flags('receptive_fields', len(kernels) + 1), kernels)


if __name__ == '__main__':
  analyses.define_flags()
  logs.run(main, 'experiments/receptive_fields.py')
