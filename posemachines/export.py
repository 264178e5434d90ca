"""``python -m posemachines.export``: export: ``python -m posemachines.export --workdir=DIR --output=ART [--saved_model]``.

Flags and the entry point; the work is done in posemachines/tools/export.py.
"""
from __future__ import annotations

from absl import flags, logging

from posemachines.core import errors, logs
from posemachines.tools import export as export_lib


def define_flags():
  flags.DEFINE_string('workdir', None, 'Training workdir (its newest readable checkpoint).',
                      required=True)
  flags.DEFINE_string('output', None, 'Artifact directory to write.', required=True)
  flags.DEFINE_list('platforms', list(export_lib.PLATFORMS), 'Platforms the function is lowered for.')
  flags.DEFINE_bool('saved_model', False, 'Also write a TensorFlow SavedModel (jax2tf).')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  out = export_lib.export(fl.workdir, fl.output, fl.platforms, fl.saved_model)
  logging.info('Exported %s', out)
  print(f'Exported {fl.workdir} to {out}')


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'posemachines.export')
