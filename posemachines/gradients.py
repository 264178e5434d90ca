"""``python -m posemachines.gradients``: gradient values at layers across the depth of the network (CPM Fig. 5).

Flags and the entry point; the work is done in posemachines/training/gradients.py.
"""
from __future__ import annotations

import os

from absl import flags

from posemachines.core import errors, logs
from posemachines.training import gradients as gradients_lib


def _runs(items: list[str]) -> dict:
  """{label: recording} of the --run LABEL=WORKDIR flags; every missing recording is named."""
  if not items:
    raise errors.BadFlag('give at least one --run=LABEL=WORKDIR (a workdir trained with '
                         '--config.gradients.every_steps=N)')
  paths, missing = {}, []
  for item in items:
    label, sep, workdir = item.partition('=')
    if not sep or not label or not workdir:
      raise errors.BadFlag(f'--run={item}: write it as LABEL=WORKDIR, e.g. --run=with=workdirs/a')
    path = os.path.join(workdir, gradients_lib.FILENAME)
    paths[label] = path
    if not os.path.isfile(path):
      missing.append(path if os.path.isdir(workdir) else f'{workdir} (no such folder)')
  if missing:
    raise errors.MissingData(
        f'no gradient recording in {", ".join(missing)}: train those runs with '
        '--config.gradients.every_steps=N (or --config.gradients.at_steps=...)')
  return {label: gradients_lib.load(path) for label, path in paths.items()}


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (write each run as --run=LABEL=DIR)')
  runs = _runs(flags.FLAGS.run)
  layers = flags.FLAGS.layers or None
  if layers:
    unknown = sorted({l for l in layers for r in runs.values() if l not in r['layers']})
    if unknown:
      known = next(iter(runs.values()))['layers']
      raise errors.BadFlag(f'--layers {unknown} were not recorded; recorded: {", ".join(known)}')
  gradients_lib.figure(runs, flags.FLAGS.out, layers)
  print(f'wrote {flags.FLAGS.out}')


if __name__ == '__main__':
  flags.DEFINE_multi_string('run', [], 'LABEL=WORKDIR of a run that recorded gradients (a row).')
  flags.DEFINE_string('out', 'gradients.png', 'Output PNG.')
  flags.DEFINE_list('layers', [], 'Layers (columns); default: those recorded.')
  logs.run(main, 'posemachines.gradients')
