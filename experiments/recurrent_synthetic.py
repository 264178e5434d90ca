"""The small recurrent pose model (2 iterations, limb heatmaps) on built-in synthetic people."""
from posemachines.core import configs


def get_config():
  return configs.recurrent_small()
