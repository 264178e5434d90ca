"""The released 6-stage CPM on LSP (person-centric, PCK@0.2) at 368x368.

As the release trained it: LSP's 1,000 training people and LSP-extended's 10,000, drawn in
proportion to their sizes, in the model's 14-part order; evaluated on LSP's 1,000 test people.
Paper: 84.32 PCK@0.2.
"""
from posemachines.core import configs


def get_config():
  c = configs.cpm_release(num_stages=6)
  c.data.dataset = 'lsp+lsp_extended'
  c.data.eval_dataset = 'lsp'
  c.data.eval_split = 'test'
  return c
