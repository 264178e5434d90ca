"""The base of the CPU-scale analyses (experiments/{stages,schemes,gradients,receptive_fields}.py).

A 3-stage CPM on 64x64 crops of the built-in synthetic people, narrower than the default model,
trained 300 steps of batch 16 with Adam: three to six minutes per run on a 2-core CPU, so every
analysis together fits in about an hour. Every field the results depend on is set here, so changes
to the project's default config do not change these runs.
"""
import ml_collections

from posemachines.core import configs


def get_config():
  c = configs.cpm_small()
  c.model.update(dict(
      num_stages=3, trunk_kernels=(5, 5, 5), trunk_widths=(16, 24, 24),
      trunk_pools=(True, True, False), stage1_kernels=(5, 9, 1), stage1_widths=(24, 48, 48),
      stage1_dropout=(False, False, False), stage_feature_kernel=3, stage_feature_width=16,
      stage_kernels=(5, 5, 5, 1), stage_widths=(32, 32, 32, 32), use_center_map=True,
      dropout_rate=0.0, weight_init='he', batch_norm=False))
  c.data.update(dict(
      dataset='synthetic_people', data_dir='', crop_size=64, target_dist=41 / 35,
      scale_min=0.7, scale_max=1.3, max_rotation=40.0, flip=True, max_shift=7.0, max_others=1,
      cache=True, synthetic_image_size=160, synthetic_num_train=4000,
      synthetic_num_validation=500, synthetic_seed=0))
  # Peak widths relative to the crop as in the default model (7 px at 96x96).
  c.targets.update(dict(sigma=7.0 * 64 / 96, center_sigma=21.0 * 64 / 368, others_in_stage1=True))
  c.loss = ml_collections.ConfigDict(dict(intermediate_supervision=True, stage_weights=()))
  c.optim.update(dict(name='adam', learning_rate=3e-3, schedule='cosine', warmup_steps=50,
                      weight_decay=0.0, stage1_lr_mult=1.0, bias_lr_mult=1.0))
  c.seed = 0
  c.batch_size = 16
  c.num_train_steps = 300
  c.log_every_steps = 20
  c.eval_every_steps = 10_000      # evaluate once, at the end
  c.checkpoint_every_steps = 100
  c.keep_checkpoints = 2
  c.num_eval_examples = -1         # all 500 validation people
  c.eval_batch_size = 50
  c.num_pictures = 0
  c.on_nan = 'stop'
  c.scheme = 'joint'
  c.frozen = ()
  c.init_from = ''
  # Stage-wise phases: 0 = an equal share of num_train_steps; fine-tuning: 0 = half of it.
  c.schemes = ml_collections.ConfigDict(dict(stage_steps=0, finetune_steps=0))
  # Gradient values of default layers (gradients.default_layers) every 50 steps.
  c.gradients = ml_collections.ConfigDict(dict(layers=(), every_steps=50, at_steps=()))
  return c
