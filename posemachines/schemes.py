"""``python -m posemachines.schemes``: training schemes of CPM Fig. 6b, selected by ``config.scheme``.

Flags and the entry point; the work is done in posemachines/training/schemes.py.
"""
from __future__ import annotations

from absl import flags

from posemachines.core import config_files, errors, logs
from posemachines.training import loop
from posemachines.training import schemes as schemes_lib


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  for name, result in schemes_lib.run(flags.FLAGS.config, flags.FLAGS.workdir):
    print(f'{name}: {loop.format_eval(result)}')


if __name__ == '__main__':
  config_files.define_config_flag('analyses_cpu', lock=False)
  flags.DEFINE_string('workdir', 'workdirs/scheme', 'One sub-directory per phase.')
  logs.run(main, 'posemachines.schemes')
