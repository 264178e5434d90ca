"""The released 4-stage CPM on FLIC (9 parts, 21,323,816 parameters) at 368x368.

Trains on FLIC's 3,987 training people (labels made person-centric as the release did) and
evaluates PCK on its 1,016 test people. Paper: PCK@0.2 elbows 97.59, wrists 95.03.
"""
from posemachines.core import configs


def get_config():
  c = configs.cpm_release(num_stages=4)
  c.data.dataset = 'flic'
  c.data.parts = 'flic'
  c.data.eval_split = 'test'
  return c
