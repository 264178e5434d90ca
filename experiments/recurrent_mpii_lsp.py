"""The recurrent pose model trained on MPII + LSP-extended and tested on LSP (the paper's
Table IV: 2 iterations, 85.2 PCK@0.2), 14 keypoints at 248x248.

The two training sets are drawn in proportion to their sizes (--config.data.mixture_weights).
"""
from posemachines.core import configs


def get_config():
  c = configs.recurrent_paper()
  c.data.dataset = 'mpii+lsp_extended'
  c.data.eval_dataset = 'lsp'
  c.data.eval_split = 'test'
  c.num_train_steps = 70_000         # about 40 epochs of the ~35,000 people at batch 20
  c.optim.decay_every = 35_000
  return c
