"""``python -m posemachines.convert_caffe``: the CPM release's Caffe models in JAX:
``python -m posemachines.convert_caffe --prototxt=DEPLOY --caffemodel=WEIGHTS --output=DIR
[--config=cpm_lsp] [--workdir=WORKDIR]``.

Writes an exported artifact to DIR and a training workdir (default DIR_workdir) of the config
(default: cpm_mpii for a 6-stage, 15-output deploy, cpm_flic for a 4-stage, 10-output one; give
cpm_lsp or cpm_mpii_lsp for the LSP models). Flags and the entry point; the work is done in
posemachines/tools/convert_caffe.py.
"""
from __future__ import annotations

from absl import flags

from posemachines.core import errors, logs
from posemachines.tools import convert_caffe as convert_lib


def define_flags():
  flags.DEFINE_string('prototxt', None, 'The release\'s deploy .prototxt.', required=True)
  flags.DEFINE_string('caffemodel', None, 'Its trained weights (.caffemodel).', required=True)
  flags.DEFINE_string('output', None, 'Artifact directory to write.', required=True)
  flags.DEFINE_string('workdir', None, 'Workdir to write (default: OUTPUT_workdir).')
  flags.DEFINE_string('config', None, 'Experiment config (a name in experiments/ or a path); '
                      'default by the deploy: cpm_mpii (6 stages, 15 outputs) or cpm_flic '
                      '(4 stages, 10 outputs).')
  flags.DEFINE_list('platforms', None, 'Platforms the artifact is lowered for (default: '
                    'cpu, cuda, tpu).')


def main(argv):
  if len(argv) > 1:
    raise errors.BadFlag(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  fl = flags.FLAGS
  out = convert_lib.convert(fl.prototxt, fl.caffemodel, fl.output, fl.config, fl.workdir,
                            fl.platforms)
  print(f'Converted {fl.caffemodel}: {out["layers"]} convolutions, {out["parameters"]:,} '
        f'parameters, {out["stages"]} stages, parts {out["parts"]} (config {out["config"]}, '
        f'input {out["input_size"]} px)')
  if out['unused_layers_with_weights']:
    print(f'not used: {", ".join(out["unused_layers_with_weights"])}')
  print(f'artifact: {out["artifact"]}')
  print(f'workdir:  {out["workdir"]}')


if __name__ == '__main__':
  define_flags()
  logs.run(main, 'posemachines.convert_caffe')
