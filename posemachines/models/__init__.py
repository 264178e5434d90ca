"""Pose models: the Convolutional Pose Machine and the recurrent pose model."""

import jax.numpy as jnp

from posemachines.core import errors, skeleton

MODELS = ('cpm', 'recurrent')
PRECISIONS = {'fp32': None, 'bf16': jnp.bfloat16}


def compute_dtype(config):
  """The models' computation type for ``config.precision``: None (float32) for 'fp32';
  bfloat16 for 'bf16' (parameters, optimizer state and loss stay float32)."""
  precision = config.precision
  if precision not in PRECISIONS:
    raise errors.BadFlag(f'Unknown precision {precision!r} (config.precision); use one of '
                         f'{", ".join(PRECISIONS)}')
  return PRECISIONS[precision]


def build(config):
  """The model named by ``config.model.name`` for the part set ``config.data.parts``.

  The CPM predicts P parts + background; the recurrent model P keypoints, then one body-part
  (limb) heatmap per limb of the skeleton when ``config.model.limb_heatmaps`` is set.
  """
  skel = skeleton.get(config.data.parts)
  dtype = compute_dtype(config)
  if config.model.name == 'cpm':
    from posemachines.models import cpm
    return cpm.from_config(config.model, skel.num_parts + 1, dtype)
  if config.model.name == 'recurrent':
    from posemachines.models import recurrent
    num_limbs = len(skel.limbs) if config.model.limb_heatmaps else 0
    return recurrent.from_config(config.model, skel.num_parts, num_limbs, dtype)
  raise errors.BadFlag(f'Unknown model {config.model.name!r} (config.model.name); '
                   f'known: {", ".join(MODELS)}')


def output_names(config) -> list[str]:
  """What the model's outputs are called in tables, logs and pictures: 'stage 1', 'stage 2', ...
  for the CPM; 'feed-forward', 'iteration 1', ... for the recurrent model."""
  return build(config).output_names
