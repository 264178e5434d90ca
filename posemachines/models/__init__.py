"""Pose models: the Convolutional Pose Machine and the recurrent pose model."""

from posemachines import skeleton


def build(config):
  """The model named by ``config.model.name``, with P+1 outputs for ``config.data.parts``."""
  num_outputs = skeleton.get(config.data.parts).num_parts + 1
  if config.model.name == 'cpm':
    from posemachines.models import cpm
    return cpm.from_config(config.model, num_outputs)
  raise ValueError(f'Unknown model {config.model.name!r} (config.model.name); known: cpm')
