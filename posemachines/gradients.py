"""``python -m posemachines.gradients``: gradient values at layers across the depth of the network (CPM Fig. 5).

Flags and the entry point; the work is done in posemachines/training/gradients.py.
"""
from __future__ import annotations

import os

from absl import app, flags

from posemachines.core import errors
from posemachines.training import gradients as gradients_lib


def main(argv):
  del argv
  runs = {}
  for item in flags.FLAGS.run:
    label, _, workdir = item.partition('=')
    runs[label] = gradients_lib.load(os.path.join(workdir, gradients_lib.FILENAME))
  gradients_lib.figure(runs, flags.FLAGS.out, flags.FLAGS.layers or None)
  print(f'wrote {flags.FLAGS.out}')


if __name__ == '__main__':
  flags.DEFINE_multi_string('run', [], 'LABEL=WORKDIR of a run that recorded gradients (a row).')
  flags.DEFINE_string('out', 'gradients.png', 'Output PNG.')
  flags.DEFINE_list('layers', [], 'Layers (columns); default: those recorded.')
  app.run(errors.exit_on_user_error(main, 'posemachines.gradients'))
