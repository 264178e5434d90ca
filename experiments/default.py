"""The default: a small 3-stage CPM on built-in synthetic people, minutes on a laptop CPU."""
from posemachines.core import configs


def get_config():
  return configs.cpm_small()
