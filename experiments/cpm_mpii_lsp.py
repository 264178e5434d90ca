"""The released 6-stage CPM trained on MPII + LSP + LSP-extended ("with LSP data added").

The three training sets are drawn in proportion to their sizes (as one merged list, like the
release; change with --config.data.mixture_weights), all in the model's 14-part order.
Evaluates PCKh on MPII validation; for the LSP figure use
--config.data.eval_dataset=lsp --config.data.eval_split=test.
Paper: 88.52 PCKh@0.5 on MPII test, 90.5 PCK@0.2 on LSP.
"""
from posemachines.core import configs


def get_config():
  c = configs.cpm_release(num_stages=6)
  c.data.dataset = 'mpii+lsp+lsp_extended'
  c.data.eval_dataset = 'mpii'
  c.data.eval_split = 'validation'
  return c
