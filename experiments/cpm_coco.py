"""The released 6-stage CPM on COCO keypoints 2017, top-down at 256 x 192 (``cpm_coco:384x288``
for the larger input).

Trains on COCO train2017's people (17 keypoints, skeleton 'coco17') and is scored by COCOeval on
val2017 (posemachines/evaluation/coco_eval.py), on ground-truth boxes or on a person detector's
boxes. The official files are read from --config.data.manual_dir (posemachines/data/coco.py).

Recipe (not yet run on full data here):
  - person boxes grown to 3 : 4 and padded by 1.25 (the builder), target_dist 368 / 200 so that
    the padded box fills the crop, as top-down methods crop;
  - augmentation as the CPM release (scale 0.7-1.3, rotation +-40 degrees, flips with left and
    right swapped) but no random shift: the box already places the person;
  - belief-map sigma 8 px (one stride-8 map pixel; the release's 7 px at 368 is under one), the
    center-map sigma scaled with the crop height;
  - Adam 5e-4 with cosine decay and 1,000 warm-up steps, batch 32, about 140 epochs of COCO's
    149,813 training people.
Reference: a CPM of this kind reaches 62.7 AP at 256 x 192 and 65.2 at 384 x 288 on val2017 with
a detector of 56.4 human AP.
"""
from posemachines.core import configs

SIZES = {'256x192': (256, 192), '384x288': (384, 288)}
TRAIN_PEOPLE = 149_813


def get_config(size: str = '256x192'):
  if size not in SIZES:
    raise ValueError(f'cpm_coco: size {size!r} is not one of {", ".join(SIZES)}')
  height, width = SIZES[size]
  c = configs.cpm_release(num_stages=6)
  c.data.update(dict(dataset='coco', parts='coco17', eval_split='validation',
                     crop_size=height, crop_width=width, target_dist=368 / 200,
                     coco_aspect_ratio=width / height, coco_padding=1.25,
                     scale_min=0.7, scale_max=1.3, max_rotation=40.0, flip=True, max_shift=0.0,
                     max_others=4))
  c.targets.update(dict(sigma=8.0 * height / 256, center_sigma=21.0 * height / 368))
  c.optim.update(dict(name='adam', learning_rate=5e-4, schedule='cosine', warmup_steps=1000,
                      weight_decay=0.0, stage1_lr_mult=1.0, bias_lr_mult=1.0))
  c.batch_size = 32
  c.eval_batch_size = 32
  c.num_train_steps = 140 * TRAIN_PEOPLE // c.batch_size
  c.eval_every_steps = 20_000
  c.checkpoint_every_steps = 5_000
  return c
