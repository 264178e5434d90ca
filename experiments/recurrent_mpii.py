"""The recurrent pose model on MPII at 248x248: 16 keypoints and 15 limb heatmaps, 2 iterations."""
from posemachines import configs


def get_config():
  c = configs.recurrent_paper()
  c.data.dataset = 'mpii'
  c.data.parts = 'mpii'
  return c
