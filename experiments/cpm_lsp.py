"""The released 6-stage CPM on LSP (person-centric, PCK@0.2) at 368x368."""
from posemachines import configs


def get_config():
  c = configs.cpm_release(num_stages=6)
  c.data.dataset = 'lsp'
  c.data.eval_split = 'test'
  return c
