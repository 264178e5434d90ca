"""Command-line flags shared by the data tools (inspect, benchmark): which dataset, where."""
from __future__ import annotations

from absl import flags

from posemachines.core import config_files, configs, logs
from posemachines.data import manual


def define_flags() -> None:
  """Defines --config, --dataset, --split, --data_dir, --manual_dir and --annotations."""
  config_files.define_config_flag(None, lock=False, help_text='Experiment config (optional: '
                                  'its data section is used, the flags below override it)')
  flags.DEFINE_string('dataset', None, "Dataset name or mixture (e.g. 'mpii', "
                      "'mpii+lsp_extended'); default: the config's.")
  flags.DEFINE_string('split', 'train', 'Split to read.')
  flags.DEFINE_string('data_dir', None, 'tfds data directory (default: $TFDS_DATA_DIR or '
                      '~/tensorflow_datasets).')
  flags.DEFINE_string('manual_dir', None, 'Folder holding the downloaded archives (default: '
                      '<data_dir>/downloads/manual).')
  flags.DEFINE_string('annotations', None, 'JSON annotation file (dataset json_people).')


def config_from_flags():
  """The config the flags describe: --config (or the released CPM's) with the overrides."""
  fl = flags.FLAGS
  c = fl.config if fl.config is not None else configs.cpm_release()
  with c.unlocked():
    if fl.dataset:
      c.data.dataset = fl.dataset
      if fl.config is None:
        c.data.parts = {'flic': 'flic', 'coco': 'coco17'}.get(fl.dataset, 'cpm14')
        if fl.dataset == 'coco':  # top-down crops: the padded box fills 256 x 192
          c.data.update(dict(crop_size=256, crop_width=192, target_dist=368 / 200))
    if fl.data_dir:
      c.data.data_dir = fl.data_dir
    if fl.manual_dir:
      c.data.manual_dir = fl.manual_dir
    if fl.annotations:
      c.data.annotations = fl.annotations
  return c


def run(main, program: str) -> None:
  """Runs a data tool's ``main`` as every command runs (posemachines/core/logs.py); a missing
  dataset names the tool's own ``--manual_dir`` flag."""

  def wrapped(argv):
    with manual.manual_dir_flag('--manual_dir'):
      return main(argv)

  logs.run(wrapped, program)
