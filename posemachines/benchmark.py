"""``python -m posemachines.benchmark``: speed and memory of a config's model: the forward pass and the real train step.

Flags and the entry point; the work is done in posemachines/tools/benchmark.py.
"""
from __future__ import annotations

import json
import sys

from absl import flags

from posemachines.core import config_files, errors, logs
from posemachines.tools import benchmark as benchmark_lib


# ---------------------------------------------------------------------------------------------
# Command line.


def _define_flags() -> None:
  """Flags exist only when run as a program: the measuring subprocesses import this module and
  posemachines.train, which defines its own --config."""
  config_files.define_config_flag('default')
  flags.DEFINE_integer('batch_size', None, 'Batch size (default: the config\'s batch_size).')
  flags.DEFINE_integer('steps', None, 'Timed steps of each measurement (default: 5 forward, '
                       '3 train).')
  flags.DEFINE_integer('warmup', 1, 'Untimed steps after compilation.')
  flags.DEFINE_bool('json', False, 'Print one JSON object instead of a table.')
  flags.DEFINE_bool('compare_cpu_flags', False, 'Compare XLA CPU flag settings (CPU only).')
  flags.DEFINE_bool('loop', False, 'The bare train step, then the training loop (input '
                    'pipeline, prefetching, logging, checkpoint) on the config\'s dataset, one '
                    'after the other: the loop\'s images/s against the step\'s (--steps: timed '
                    'steps of each, default 60).')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  args = (fl.config, fl.batch_size, fl.steps, fl.warmup)
  try:
    if fl.loop:
      result = benchmark_lib.loop_versus_step(*args)
    elif fl.compare_cpu_flags:
      result = benchmark_lib.compare_cpu_flags(*args)
    else:
      result = benchmark_lib.benchmark(*args)
  except benchmark_lib.BenchmarkError as e:
    sys.exit(f'posemachines.benchmark: error: {e}')
  if fl.json:
    sys.stdout.write(json.dumps(result) + '\n')
  elif fl.loop:
    print(benchmark_lib.format_loop(result))
  elif fl.compare_cpu_flags:
    print(benchmark_lib.format_comparison(result))
  else:
    print(benchmark_lib.format_report(result))


if __name__ == '__main__':
  _define_flags()
  logs.run(main, 'posemachines.benchmark')
