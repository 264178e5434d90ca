"""The four training schemes (CPM Fig. 6b) on the base config's model.

  python experiments/schemes.py [--config=experiments/analyses_cpu.py] [--workdir=workdirs/analyses]
      [--schemes=joint,stagewise,stagewise_finetune,final_only] [--config.FIELD=VALUE ...]

(i) joint with intermediate supervision, (ii) stage-wise (stage t trained in turn, earlier stages
frozen; the shared features x' train with stage 2), (iii) (ii) then joint fine-tuning from its
checkpoint, (iv) joint with the final stage's loss only; see posemachines/schemes.py.
--config.schemes.stage_steps and --config.schemes.finetune_steps set the phase lengths.
Stage-wise + fine-tuning makes more updates than the others, so the joint scheme is also trained
with that many steps. Writes schemes.md, schemes.json and schemes.png into --workdir; finished
runs are skipped.
"""
from absl import flags

from posemachines.analyses import runner as analyses
from posemachines.core import errors, logs
from posemachines.training import schemes

flags.DEFINE_list('schemes', list(schemes.SCHEMES), 'Schemes to train.')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  which = flags.FLAGS.schemes
  config = flags.FLAGS.config
  total = sum(len(schemes.phases(config, s)) for s in which) + ('joint' in which)
  analyses.training_schemes(config, flags.FLAGS.workdir,
                            analyses.runs_from_flags('schemes', total), which)


if __name__ == '__main__':
  analyses.define_flags()
  logs.run(main, 'experiments/schemes.py')
