"""The released 4-stage CPM on FLIC (9 parts, 21,323,816 parameters) at 368x368."""
from posemachines import configs


def get_config():
  c = configs.cpm_release(num_stages=4)
  c.data.dataset = 'flic'
  c.data.parts = 'flic'
  c.data.eval_split = 'test'
  return c
