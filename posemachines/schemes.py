"""``python -m posemachines.schemes``: training schemes of CPM Fig. 6b, selected by ``config.scheme``.

Flags and the entry point; the work is done in posemachines/training/schemes.py.
"""
from __future__ import annotations

from absl import app, flags

from posemachines.core import config_files, errors
from posemachines.training import schemes as schemes_lib


def main(argv):
  del argv
  for name, result in schemes_lib.run(flags.FLAGS.config, flags.FLAGS.workdir):
    stages = ' '.join(f's{s["stage"]}={100 * s["pck@0.5"]:.1f}' for s in result['stages'])
    print(f'{name}: PCK@0.5 per stage {stages}')


if __name__ == '__main__':
  config_files.define_config_flag('analyses_cpu', lock=False)
  flags.DEFINE_string('workdir', 'workdirs/scheme', 'One sub-directory per phase.')
  app.run(errors.exit_on_user_error(main, 'posemachines.schemes'))
