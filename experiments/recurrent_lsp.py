"""The recurrent pose model on LSP (person-centric, PCK@0.2) at 248x248, 14 keypoints.

Trains on LSP's 1,000 training people and tests on its 1,000 test people; add LSP-extended with
--config.data.dataset=lsp+lsp_extended (and about 11x the steps).
"""
from posemachines.core import configs


def get_config():
  c = configs.recurrent_paper()
  c.data.dataset = 'lsp'
  c.data.eval_split = 'test'
  c.num_train_steps = 2_000          # 40 epochs of LSP's 1,000 training people at batch 20
  c.optim.decay_every = 1_000
  return c
