"""The released 6-stage CPM on MPII at 368x368 (31,219,866 parameters)."""
from posemachines import configs


def get_config():
  c = configs.cpm_release(num_stages=6)
  c.data.dataset = 'mpii'
  return c
