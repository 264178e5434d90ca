"""The recurrent model fine-tuned on MPII from its COCO pre-training, as the recurrent paper
trained its model (COCO first, then MPII; Table I).

  python -m posemachines.train --config=recurrent_coco --workdir=workdirs/recurrent_coco
  python -m posemachines.train --config=recurrent_coco_mpii \
      --config.init_from=workdirs/recurrent_coco --workdir=workdirs/recurrent_coco_mpii

The second run starts from the COCO run's newest checkpoint: every layer whose name and shape
match is copied (the feed-forward and recurrent modules), and the prediction layers, which
predict COCO's 17 keypoints and 19 links there and MPII's 16 keypoints and 15 limbs here, start
afresh (``init_from_matching``). The MPII input is 248x248 as in the paper; the convolutions do
not depend on the input size, so the COCO run's 256x192 weights fit.
"""
from posemachines.core import configs


def get_config():
  c = configs.recurrent_paper()
  c.data.dataset = 'mpii'
  c.data.parts = 'mpii'
  c.init_from_matching = True
  return c
