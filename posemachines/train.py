"""Training: ``python -m posemachines.train --config=NAME_OR_FILE --workdir=DIR``.

With no flags it trains the default small CPM on built-in synthetic people into ./workdirs/default.
Flags and the entry point; the loop is posemachines/training/loop.py.
"""
from __future__ import annotations

import logging as std_logging
import os

from absl import app, flags, logging
import jax

from posemachines.core import config_files, errors
from posemachines.training import distributed, loop


def define_flags():
  """Command-line flags, defined only when this module runs as the program."""
  config_files.define_config_flag('default')
  flags.DEFINE_string('workdir', 'workdirs/default', 'Checkpoints, logs and pictures.')
  flags.DEFINE_bool('library_logs', False, 'Also show the INFO/WARNING logs of jax, orbax and '
                    'tensorflow-datasets (by default only posemachines logs and errors show).')
  distributed.define_flags()


class OwnLogsOnly(std_logging.Filter):
  """Lets through posemachines' own log records and every error; drops library chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.ERROR or f'{os.sep}posemachines{os.sep}' in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  FLAGS = flags.FLAGS
  if not FLAGS.library_logs:
    logging.get_absl_handler().addFilter(OwnLogsOnly())
  distributed.initialize(FLAGS.multihost, FLAGS.coordinator_address, FLAGS.num_processes,
                         FLAGS.process_id, FLAGS.coordinator_timeout_s)
  config, workdir = FLAGS.config, FLAGS.workdir
  logging.info('Devices: %s; process %d of %d', jax.devices(), jax.process_index(),
               jax.process_count())
  state, result = loop.train_and_evaluate(config, workdir)
  if result is None:
    print(f'Stopped by SIGTERM at step {int(state.step)}; checkpoint saved in {workdir}.')
  elif not result['stages']:
    print(f'Final evaluation: {loop.format_eval(result)}; {workdir}/eval.json')
  else:
    print(f'Final PCK@0.5 per stage: {loop.format_eval(result)} '
          f'({result["num_people"]} people, {workdir}/eval.json)')


if __name__ == '__main__':
  define_flags()
  app.run(errors.exit_on_user_error(main, 'posemachines.train'))
