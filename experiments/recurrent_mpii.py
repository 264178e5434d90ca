"""The recurrent pose model on MPII at 248x248: 16 keypoints and 15 limb heatmaps, 2 iterations
(the paper's Table I: 84.6 PCKh@0.5 on MPII validation with body parts and 2 iterations)."""
from posemachines.core import configs


def get_config():
  c = configs.recurrent_paper()
  c.data.dataset = 'mpii'
  c.data.parts = 'mpii'
  return c
