"""The released 6-stage CPM on MPII at 368x368 (31,219,866 parameters).

Trains on MPII's train people (the standard 2,958 validation people held out) and evaluates
PCKh on the validation people. The archives are read from --config.data.manual_dir (see
posemachines/data/mpii.py). Paper: 87.95 PCKh@0.5 on MPII test.
"""
from posemachines.core import configs


def get_config():
  c = configs.cpm_release(num_stages=6)
  c.data.dataset = 'mpii'
  c.data.eval_split = 'validation'
  return c
