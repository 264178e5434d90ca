"""Training: ``python -m posemachines.train --config=NAME_OR_FILE --workdir=DIR``.

With no flags it trains the default small CPM on built-in synthetic people into ./workdirs/default.
Flags and the entry point; the loop is posemachines/training/loop.py.
"""
from __future__ import annotations

from absl import flags, logging
import jax

from posemachines.core import config_files, errors, logs
from posemachines.training import distributed, loop


def define_flags():
  """Command-line flags, defined only when this module runs as the program."""
  config_files.define_config_flag('default')
  flags.DEFINE_string('workdir', 'workdirs/default', 'Checkpoints, logs and pictures.')
  distributed.define_flags()


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  FLAGS = flags.FLAGS
  distributed.initialize(FLAGS.multihost, FLAGS.coordinator_address, FLAGS.num_processes,
                         FLAGS.process_id, FLAGS.coordinator_timeout_s)
  config, workdir = FLAGS.config, FLAGS.workdir
  logging.info('Devices: %s; process %d of %d', jax.devices(), jax.process_index(),
               jax.process_count())
  state, result = loop.train_and_evaluate(config, workdir)
  if result is None:
    print(f'Stopped by SIGTERM at step {int(state.step)}; checkpoint saved in {workdir}.')
  elif jax.process_index() != 0:  # every process has the same result; process 0 prints it
    pass
  elif not result['stages']:
    print(f'Final evaluation: {loop.format_eval(result)}; {workdir}/eval.json')
  else:
    print(f'Final {loop.format_eval(result)} ({result["num_people"]} people, '
          f'{workdir}/eval.json)')


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'posemachines.train')
