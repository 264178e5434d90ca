"""Config defaults. Experiment files under experiments/ start from these and change a few fields.

A config is an ml_collections.ConfigDict with sections:
  model      architecture (see posemachines/models/cpm.py and recurrent.py for their fields)
  data       dataset, splits, crop size and augmentation
  targets    belief-map and center-map widths (in input pixels)
  loss       intermediate supervision, per-stage weights (the recurrent model: occlusion mode)
  optim      optax optimizer, schedule and per-layer learning-rate multipliers
  + training-loop fields (steps, batch size, logging, checkpointing, evaluation)
"""
from __future__ import annotations

import ml_collections


def cpm_release(num_stages: int = 6) -> ml_collections.ConfigDict:
  """The released CPM (Wei et al. 2016) at 368x368: architecture and training setup."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(
      name='cpm', num_stages=num_stages,
      trunk_kernels=(9, 9, 9), trunk_widths=(128, 128, 128), trunk_pools=(True, True, True),
      stage1_kernels=(5, 9, 1), stage1_widths=(32, 512, 512), stage1_dropout=(False, True, True),
      stage_feature_kernel=5, stage_feature_width=32,
      stage_kernels=(11, 11, 11, 1), stage_widths=(128, 128, 128, 128),
      use_center_map=True, dropout_rate=0.5, weight_init='gaussian',
      batch_norm=False,             # BatchNorm after every convolution (the release has none)
      # 'custom': convolutions and ReLU + max-pools with hand-written backward passes
      # (posemachines/models/ops.py: faster, far less memory on CPU); 'flax': nn.Conv and
      # nn.max_pool with JAX's own gradients. Same parameters and the same sums.
      layers='custom',
      # What the backward pass recomputes instead of keeping: 'none'; 'stage' (keeps only the
      # inputs of the two trunks and of every later stage, and recomputes their forward passes:
      # one more forward pass of FLOPs, less memory); 'block' (keeps every conv block's output
      # and recomputes inside blocks: with layers='custom' a block keeps nothing more anyway).
      remat='none'))
  c.data = ml_collections.ConfigDict(dict(
      dataset='mpii', data_dir='', train_split='train', eval_split='validation',
      # Real datasets are read from the archives in manual_dir (default: tfds' manual dir,
      # <data_dir>/downloads/manual). A mixture 'a+b' trains on both, drawn in proportion to
      # mixture_weights (default: their sizes), and evaluates on eval_dataset (default: a).
      manual_dir='', eval_dataset='', mixture_weights=(), mpii_validation_file='',
      fast_decode=True,              # decode only the crop's JPEG window, DCT-scaled
      # json_people (your own people): the JSON list of records, the folder its image paths are
      # relative to (default: the list's folder), and the fraction held out for validation
      # (when no record names its split).
      annotations='', image_dir='', validation_fraction=0.0,
      # coco: person boxes are grown to this aspect ratio (width / height) and padded by this
      # factor (posemachines/data/coco.py); target_dist 368 / 200 makes such a box fill the crop.
      coco_aspect_ratio=192 / 256, coco_padding=1.25,
      parts='cpm14',                 # model part order (posemachines/skeleton.py)
      crop_size=368,                 # the crop's height (and width, unless crop_width is set)
      crop_width=0,                  # 0: a square crop; else its width (e.g. 256 x 192)
      target_dist=41 / 35,           # person height after normalisation = 200 * target_dist px at 368
      scale_min=0.7, scale_max=1.3, max_rotation=40.0, flip=True, max_shift=40.0,
      max_others=4,                  # other people kept for stage-1 peaks
      shuffle_buffer=2048, prefetch=2, num_parallel_calls=-1, cache=False,
      # synthetic-people settings (used when dataset == 'synthetic_people')
      synthetic_image_size=160, synthetic_num_train=4000, synthetic_num_validation=500,
      synthetic_seed=0,
      # 'light' (about 6% of the parts hidden) or 'heavy' (about 28%): data/synthetic.py
      synthetic_occlusion='light'))
  c.targets = ml_collections.ConfigDict(dict(
      sigma=7.0,                     # belief-map Gaussian, input pixels
      center_sigma=21.0,             # center-map Gaussian, input pixels
      others_in_stage1=True,         # stage 1 also peaks at the other people of the image
      peak=1.0))                     # the targets' mode (belief maps peak at 1)
  c.loss = ml_collections.ConfigDict(dict(
      intermediate_supervision=True,  # a loss after every stage (False: the final stage only)
      stage_weights=()))              # per-stage loss weights; () = from intermediate_supervision
  c.optim = ml_collections.ConfigDict(dict(
      name='sgd', learning_rate=8e-5, momentum=0.9, weight_decay=5e-4,
      schedule='step', decay_factor=0.333, decay_every=136_106, warmup_steps=0,
      stage1_lr_mult=5.0, bias_lr_mult=2.0))
  c.batch_size = 16
  c.num_train_steps = 600_000
  c.log_every_steps = 50
  c.eval_every_steps = 10_000
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.num_eval_examples = -1           # -1: the whole eval split
  c.eval_batch_size = 16
  c.num_pictures = 8                 # validation images drawn at the end of training
  c.on_nan = 'stop'                  # 'stop' or 'skip'
  # A restart in a workdir whose config.json differs (in fields a restart may not change, see
  # posemachines/training/identity.py MAY_CHANGE) stops with an error; True continues the run
  # with the requested config and records the change in <workdir>/config_changes.jsonl.
  c.allow_config_change = False
  # Training schemes (posemachines/training/schemes.py, the CPM paper's Fig. 6b): 'joint',
  # 'final_only', 'stagewise' or 'stagewise_finetune'; the steps of each stage-wise phase and of
  # the fine-tuning phase (0: num_train_steps / stages, num_train_steps / 2).
  c.scheme = 'joint'
  c.schemes = ml_collections.ConfigDict(dict(stage_steps=0, finetune_steps=0))
  c.frozen = ()                      # top-level modules whose parameters are not trained
  c.init_from = ''                   # a new run starts from this workdir's newest checkpoint
  # With init_from: copy only the parameters whose name and shape match the new model and start
  # the rest afresh (a COCO-trained model fine-tuned on MPII: the prediction layers of another
  # part set); False: the other run must be the same model.
  c.init_from_matching = False
  # Gradient recordings (posemachines/training/gradients.py, Fig. 5): every N steps and/or at
  # these steps, of these layers (default: the first kernel of every stage and the trunk).
  c.gradients = ml_collections.ConfigDict(dict(every_steps=0, at_steps=(), layers=()))
  # Computation type: 'fp32', or 'bf16' (bfloat16 activations and convolution inputs with
  # float32 accumulation; float32 parameters, optimizer state, loss and gradients' update).
  c.precision = 'fp32'
  return c


def cpm_small() -> ml_collections.ConfigDict:
  """A small CPM on the built-in synthetic people that trains in minutes on a laptop CPU."""
  c = cpm_release(num_stages=3)
  c.model.update(dict(
      trunk_kernels=(5, 5, 5), trunk_widths=(16, 32, 32), trunk_pools=(True, True, False),
      stage1_kernels=(5, 9, 1), stage1_widths=(32, 64, 64), stage1_dropout=(False, False, False),
      stage_feature_kernel=3, stage_feature_width=16,
      stage_kernels=(5, 5, 5, 1), stage_widths=(48, 48, 48, 48),
      dropout_rate=0.0, weight_init='he'))
  # The person fills more of the crop than in the release (vertical extent 78 of 96 px, not 56),
  # with milder augmentation: at 96x96 and stride 4 the PCKh@0.5 threshold of a 56 px person is
  # under one map pixel and its limbs are 2-3 px wide. Measured over 1,500 steps (batch 16):
  # 44% PCKh@0.5 with the release's settings, 75% with target_dist 1.5 and this augmentation.
  c.data.update(dict(dataset='synthetic_people', crop_size=96, max_shift=10.0, cache=True,
                     max_others=1, target_dist=1.65, scale_min=0.85, scale_max=1.15,
                     max_rotation=15.0))
  # Peaks wider than the release's relative width: 7 * 96 / 368 = 1.8 px is under half a map pixel
  # at stride 4, and reached 10% PCKh@0.5 after 500 steps where 4-7 px reached 28-29%.
  c.targets.update(dict(sigma=7.0, center_sigma=21.0 * 96 / 368))
  c.optim.update(dict(name='adam', learning_rate=3e-3, schedule='cosine', warmup_steps=100,
                      weight_decay=0.0, stage1_lr_mult=1.0, bias_lr_mult=1.0))
  # Batch 8 for twice the updates of batch 16 on the same images: 70.6% against 59.4% PCKh@0.5
  # after 8,000 images, 85.0% against 77.8% after 16,000 (target_dist 1.5, cosine over 24,000).
  c.batch_size = 8
  c.num_train_steps = 2500
  c.log_every_steps = 20
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 500
  c.num_eval_examples = -1
  c.eval_batch_size = 50
  return c


def recurrent_paper() -> ml_collections.ConfigDict:
  """The recurrent pose model (Belagiannis and Zisserman 2017): 248x248 input, 62x62 heatmaps,
  2 iterations, keypoint and body-part heatmaps, SGD momentum 0.95, batch 20, lr 1e-5 -> 1e-6.

  The paper gives no channel widths; these give 10.9M parameters with 16 keypoints and 15 limbs,
  about a third of the 6-stage CPM (31.2M), as the paper says of its model.
  """
  c = cpm_release()
  c.model = ml_collections.ConfigDict(dict(
      name='recurrent', num_iterations=2, limb_heatmaps=True,
      kernels=(3, 3, 3, 9, 1, 9, 1),               # layers 1-7: 3x3 first, then large and 1x1
      widths=(64, 128, 128, 256, 128, 192, 128),
      pools=(True, True, False, False, False, False, False),   # 2x2 max-pools: stride 4
      batch_norm=True, output_relu=True, weight_init='he', scan=True, unroll=True))
  c.data.update(dict(crop_size=248, max_shift=40.0 * 248 / 368, max_others=0))
  c.targets = ml_collections.ConfigDict(dict(
      keypoint_sigma=1.3,            # output-map pixels
      peak=12.0,                     # heatmaps are scaled so that their mode is about 12
      limb_along=0.15, limb_across=0.1,   # limb Gaussian sigmas as fractions of its length
      foreground=0.1,                # foreground: target above this fraction of the peak
      center_sigma=21.0 * 248 / 368))  # unused by the model; the shared input code builds it
  c.loss = ml_collections.ConfigDict(dict(
      intermediate_supervision=True,  # auxiliary losses after the feed-forward module and
      occlusion='include',            # every iteration; occluded parts: include/exclude/ignore
      stage_weights=()))              # per-output loss weights; () = from intermediate_supervision
  c.optim.update(dict(name='sgd', learning_rate=1e-5, momentum=0.95, weight_decay=5e-4,
                      schedule='step', decay_factor=0.1, decay_every=25_000, warmup_steps=0,
                      stage1_lr_mult=1.0, bias_lr_mult=1.0))
  c.batch_size = 20
  c.num_train_steps = 50_000         # about 40 epochs of MPII's training people at batch 20
  c.eval_batch_size = 20
  return c


def recurrent_small() -> ml_collections.ConfigDict:
  """A small recurrent model on the built-in synthetic people that trains in minutes on a CPU."""
  c = recurrent_paper()
  c.model.update(dict(kernels=(3, 3, 3, 7, 1, 7, 1), widths=(16, 32, 32, 64, 32, 64, 32)))
  c.data.update(dict(dataset='synthetic_people', crop_size=96, max_shift=10.0, cache=True,
                     max_others=0))
  c.targets.center_sigma = 21.0 * 96 / 368
  # Adam as for the small CPM: plain SGD at the paper's rate would need far more steps.
  c.optim.update(dict(name='adam', learning_rate=3e-3, schedule='cosine', warmup_steps=100,
                      weight_decay=0.0))
  c.batch_size = 16
  c.num_train_steps = 600
  c.log_every_steps = 20
  c.eval_every_steps = 200
  c.checkpoint_every_steps = 250
  c.eval_batch_size = 50
  return c


def upgrade(saved) -> ml_collections.ConfigDict:
  """A config saved by an earlier version (a workdir's config.json, an artifact's), with every
  field declared since then added at its default, so that the code reads every field as an
  attribute. Fields the saved config has are kept as saved."""
  saved = ml_collections.ConfigDict(saved.to_dict() if isinstance(
      saved, ml_collections.ConfigDict) else dict(saved))
  model = saved.model.name if 'model' in saved and 'name' in saved.model else 'cpm'
  defaults = recurrent_paper() if model == 'recurrent' else cpm_release()

  def fill(into, source):
    for key, value in source.items():
      if key not in into:
        into[key] = value
      elif isinstance(value, ml_collections.ConfigDict) and isinstance(
          into[key], ml_collections.ConfigDict):
        fill(into[key], value)

  with saved.unlocked():
    fill(saved, defaults)
  return saved
