"""From a config's ``data`` section to a prepared tfds builder and its native part order."""
from __future__ import annotations

import os

DATASETS = ('synthetic_people', 'json_people')


def data_dir(config) -> str:
  return os.path.expanduser(config.data.data_dir or os.environ.get(
      'TFDS_DATA_DIR', os.path.join('~', 'tensorflow_datasets')))


def get_builder(config):
  """The prepared tfds builder for ``config.data.dataset`` (prepared on first use)."""
  data = config.data
  name = data.dataset
  if name == 'synthetic_people':
    from posemachines.data import synthetic
    return synthetic.builder(data_dir(config), image_size=data.synthetic_image_size,
                             num_train=data.synthetic_num_train,
                             num_validation=data.synthetic_num_validation,
                             seed=data.synthetic_seed)
  if name == 'json_people':
    from posemachines.data import json_people
    return json_people.builder(data.annotations, data_dir(config),
                               image_dir=data.get('image_dir') or None,
                               validation_fraction=data.get('validation_fraction', 0.0))
  raise ValueError(f'No dataset builder named {name!r} (config.data.dataset); '
                   f'available: {", ".join(DATASETS)}')


def skeleton_name(builder) -> str:
  """The native part order of a builder's examples (posemachines.skeleton name)."""
  return builder.info.metadata.get('skeleton', 'mpii') if builder.info.metadata else 'mpii'


def metric_name(builder) -> str:
  return builder.info.metadata.get('metric', 'pckh') if builder.info.metadata else 'pckh'
