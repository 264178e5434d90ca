"""The recurrent pose model on COCO keypoints 2017, top-down at 256 x 192: 17 keypoints and
COCO's 19 links as body-part heatmaps, 2 iterations, stride 4 (64 x 48 heatmaps).

The recurrent paper pre-trains on COCO before fine-tuning on MPII. This config is the COCO
stage: the paper's recipe (SGD momentum 0.95, batch 20, lr 1e-5 decreasing to 1e-6, keypoint
sigma 1.3 map pixels, heatmap mode 12, limb Gaussians 0.15 / 0.1 of the limb's length) on COCO's
people, boxes grown to 3 : 4, padded by 1.25 and filling the crop (target_dist 368 / 200), about
40 epochs of COCO's 149,813 training people. Not yet run on full data here. Scored by COCOeval
(posemachines/evaluation/coco_eval.py).
"""
from posemachines.core import configs

TRAIN_PEOPLE = 149_813


def get_config():
  c = configs.recurrent_paper()
  height, width = 256, 192
  c.data.update(dict(dataset='coco', parts='coco17', eval_split='validation',
                     crop_size=height, crop_width=width, target_dist=368 / 200,
                     coco_aspect_ratio=width / height, coco_padding=1.25, max_shift=0.0,
                     max_others=0))
  c.targets.center_sigma = 21.0 * height / 368
  c.num_train_steps = 40 * TRAIN_PEOPLE // c.batch_size
  c.optim.decay_every = int(c.num_train_steps * 0.75)
  c.eval_every_steps = 20_000
  return c
