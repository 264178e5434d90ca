"""The base of the recurrent model's ablation (experiments/recurrent_ablation.py, and the
recurrent claims of experiments/results.py).

The small recurrent model of ``configs.recurrent_small`` (2 iterations, keypoint and limb
heatmaps, BatchNorm; 0.52M parameters at 96x96) trained on the same data and schedule as the
CPM analyses (experiments/analyses_cpu.py): 96x96 crops of the built-in synthetic people with
the default CPM's person scale and augmentation, 2,500 steps of batch 8 with Adam and cosine
decay, PCKh@0.5 and visibility AP of every output on all 500 validation people every 500 steps
(a run counts as converged when its final evaluation is within 1 point of the one before).
Every field the results depend on is written out here.

The synthetic people are drawn with heavy occlusion (``data.synthetic_occlusion='heavy'``: about
28% of the annotated parts hidden, against 6% by default): with the default's few occluded
parts, the modes of training them differed by 11 points on the occluded parts but by only 0.2
on all parts (docs/results.md, "Why heavy occlusion").
"""
import ml_collections

from posemachines.core import configs


def get_config():
  c = configs.recurrent_small()
  c.model = ml_collections.ConfigDict(dict(
      name='recurrent', num_iterations=2, limb_heatmaps=True,
      kernels=(3, 3, 3, 7, 1, 7, 1), widths=(16, 32, 32, 64, 32, 64, 32),
      pools=(True, True, False, False, False, False, False),
      batch_norm=True, output_relu=True, weight_init='he', scan=True, unroll=True))
  c.data.update(dict(
      dataset='synthetic_people', data_dir='', train_split='train', eval_split='validation',
      parts='cpm14', crop_size=96, target_dist=1.65, scale_min=0.85, scale_max=1.15,
      max_rotation=15.0, flip=True, max_shift=10.0, max_others=0, shuffle_buffer=2048,
      prefetch=2, num_parallel_calls=-1, cache=True, fast_decode=True,
      synthetic_image_size=160, synthetic_num_train=4000, synthetic_num_validation=500,
      synthetic_seed=0, synthetic_occlusion='heavy'))
  c.targets = ml_collections.ConfigDict(dict(
      keypoint_sigma=1.3, peak=12.0, limb_along=0.15, limb_across=0.1, foreground=0.1,
      center_sigma=21.0 * 96 / 368))
  c.loss = ml_collections.ConfigDict(dict(intermediate_supervision=True, occlusion='include',
                                          stage_weights=()))
  c.optim.update(dict(name='adam', learning_rate=3e-3, momentum=0.95, schedule='cosine',
                      warmup_steps=100, weight_decay=0.0, decay_factor=0.1, decay_every=25_000,
                      stage1_lr_mult=1.0, bias_lr_mult=1.0))
  c.seed = 0
  c.batch_size = 8
  c.num_train_steps = 2500
  c.log_every_steps = 20
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 2
  c.num_eval_examples = -1
  c.eval_batch_size = 50
  c.num_pictures = 0
  c.on_nan = 'stop'
  c.scheme = 'joint'
  c.frozen = ()
  c.init_from = ''
  c.schemes = ml_collections.ConfigDict(dict(stage_steps=0, finetune_steps=0))
  c.gradients = ml_collections.ConfigDict(dict(layers=(), every_steps=0, at_steps=()))
  return c
