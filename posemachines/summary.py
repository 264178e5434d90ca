"""``python -m posemachines.summary``: model summary: parameters, forward FLOPs, stage output shapes and receptive fields.

Flags and the entry point; the work is done in posemachines/tools/summary.py.
"""
from __future__ import annotations

import json
import sys

from absl import flags

from posemachines.core import config_files, errors, logs
from posemachines.tools import summary as summary_lib


def define_flags():
  """Command-line flags, defined only when this module runs as the program."""
  config_files.define_config_flag('default')
  flags.DEFINE_bool('json', False, 'Print one JSON object instead of a table.')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  s = summary_lib.summarize(flags.FLAGS.config)
  if flags.FLAGS.json:
    sys.stdout.write(json.dumps(s) + '\n')
  else:
    print(summary_lib.format_summary(s))


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'posemachines.summary')
