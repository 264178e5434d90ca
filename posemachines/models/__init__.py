"""Pose models: the Convolutional Pose Machine and the recurrent pose model."""

from posemachines.core import errors, skeleton

MODELS = ('cpm', 'recurrent')


def build(config):
  """The model named by ``config.model.name`` for the part set ``config.data.parts``.

  The CPM predicts P parts + background; the recurrent model P keypoints, then one body-part
  (limb) heatmap per limb of the skeleton when ``config.model.limb_heatmaps`` is set.
  """
  skel = skeleton.get(config.data.parts)
  if config.model.name == 'cpm':
    from posemachines.models import cpm
    return cpm.from_config(config.model, skel.num_parts + 1)
  if config.model.name == 'recurrent':
    from posemachines.models import recurrent
    num_limbs = len(skel.limbs) if config.model.limb_heatmaps else 0
    return recurrent.from_config(config.model, skel.num_parts, num_limbs)
  raise errors.BadFlag(f'Unknown model {config.model.name!r} (config.model.name); '
                   f'known: {", ".join(MODELS)}')


def output_names(config) -> list[str]:
  """What the model's outputs are called in tables, logs and pictures: 'stage 1', 'stage 2', ...
  for the CPM; 'feed-forward', 'iteration 1', ... for the recurrent model."""
  return build(config).output_names
