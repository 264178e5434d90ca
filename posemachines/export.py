"""``python -m posemachines.export``: export: ``python -m posemachines.export --workdir=DIR --output=ART [--saved_model]``.

Flags and the entry point; the work is done in posemachines/tools/export.py.
"""
from __future__ import annotations

from absl import app, flags, logging

from posemachines.core import errors
from posemachines.tools import export as export_lib


def define_flags():
  flags.DEFINE_string('workdir', None, 'Training workdir (its newest readable checkpoint).',
                      required=True)
  flags.DEFINE_string('output', None, 'Artifact directory to write.', required=True)
  flags.DEFINE_list('platforms', list(export_lib.PLATFORMS), 'Platforms the function is lowered for.')
  flags.DEFINE_bool('saved_model', False, 'Also write a TensorFlow SavedModel (jax2tf).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  fl = flags.FLAGS
  out = export_lib.export(fl.workdir, fl.output, fl.platforms, fl.saved_model)
  logging.info('Exported %s', out)
  print(f'Exported {fl.workdir} to {out}')


if __name__ == '__main__':
  define_flags()
  app.run(errors.exit_on_user_error(main, 'posemachines.export'))
