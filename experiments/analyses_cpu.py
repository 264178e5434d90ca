"""The base of the CPU-scale analyses (experiments/results.py and the single-analysis commands
experiments/{stages,schemes,gradients,receptive_fields}.py).

The project's default model and schedule (the 3-stage CPM of ``configs.cpm_small``: 96x96 crops
of the built-in synthetic people, 2,500 steps of batch 8 with Adam and cosine decay, about 10
minutes per run on an idle 2-core CPU), with every field the results depend on written out here,
so that later changes to the project's defaults do not change these runs (and do not orphan
their committed summaries in docs/results/runs/). On top of the default:

- validation PCKh@0.5 of every stage on all 500 validation people every 500 steps (5 evaluations
  per run), so that convergence is judged from each run's own history: a run counts as
  converged when its final evaluation is within 1 point of the one before it;
- gradient values of the default layers recorded every 250 steps and before the last update
  (CPM Fig. 5), in every run, so that the 3-stage joint run serves the stage, scheme, gradient
  and receptive-field analyses at once (recording does not change the training);
- no pictures.

``seed`` sets the initial weights, the batch order and the augmentation; the synthetic data
set itself (``data.synthetic_seed``) is the same for every seed.
"""
import ml_collections

from posemachines.core import configs


def get_config():
  c = configs.cpm_small()
  c.model.update(dict(
      name='cpm', num_stages=3, trunk_kernels=(5, 5, 5), trunk_widths=(16, 32, 32),
      trunk_pools=(True, True, False), stage1_kernels=(5, 9, 1), stage1_widths=(32, 64, 64),
      stage1_dropout=(False, False, False), stage_feature_kernel=3, stage_feature_width=16,
      stage_kernels=(5, 5, 5, 1), stage_widths=(48, 48, 48, 48), use_center_map=True,
      dropout_rate=0.0, weight_init='he'))
  c.data.update(dict(
      dataset='synthetic_people', data_dir='', train_split='train', eval_split='validation',
      parts='cpm14', crop_size=96, target_dist=1.65, scale_min=0.85, scale_max=1.15,
      max_rotation=15.0, flip=True, max_shift=10.0, max_others=1, shuffle_buffer=2048,
      prefetch=2, num_parallel_calls=-1, cache=True, fast_decode=True,
      synthetic_image_size=160, synthetic_num_train=4000, synthetic_num_validation=500,
      synthetic_seed=0))
  c.targets.update(dict(sigma=7.0, center_sigma=21.0 * 96 / 368, others_in_stage1=True,
                        peak=1.0))
  c.loss = ml_collections.ConfigDict(dict(intermediate_supervision=True, stage_weights=()))
  c.optim.update(dict(name='adam', learning_rate=3e-3, momentum=0.9, schedule='cosine',
                      warmup_steps=100, weight_decay=0.0, decay_factor=0.333,
                      decay_every=136_106, stage1_lr_mult=1.0, bias_lr_mult=1.0))
  c.seed = 0
  c.batch_size = 8
  c.num_train_steps = 2500
  c.log_every_steps = 20
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
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
  # Gradient values of the default layers (gradients.default_layers).
  c.gradients = ml_collections.ConfigDict(dict(layers=(), every_steps=250, at_steps=(2499,)))
  return c
