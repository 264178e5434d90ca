"""Loading a trained model for inference: from an exported artifact or a training workdir."""
from __future__ import annotations

import json
import os

import jax

from posemachines.core import configs, crops
from posemachines.core import errors
from posemachines.evaluation.inference import Model
from posemachines.tools import artifact
from posemachines.training import checkpoint
from posemachines.training import loop as train
from posemachines.objectives import per_model


def is_artifact(path: str) -> bool:
  return os.path.isfile(os.path.join(path, artifact.META))


def load(path: str) -> Model:
  """A model from an exported artifact directory or a training workdir (newest checkpoint)."""
  if is_artifact(path):
    return load_artifact(path)
  if os.path.isfile(os.path.join(path, 'config.json')):
    return load_workdir(path)
  raise errors.MissingData(f'{path} is neither an exported artifact (no artifact.json) nor a '
                          'training workdir (no config.json)')


def load_artifact(path: str) -> Model:
  art = artifact.load(path)
  meta = art.meta
  size = meta['input_size']
  crop = size if isinstance(size, int) else tuple(int(v) for v in size)
  return Model(forward=art.forward, crop_size=crop, stride=meta['stride'],
               parts=meta['skeleton']['name'], target_dist=meta['target_dist'],
               config=configs.upgrade(meta['config']).to_dict(), source=path)


def workdir_config(workdir: str):
  """The config a workdir was trained with (fields declared since then at their defaults)."""
  with open(os.path.join(workdir, 'config.json')) as f:
    return configs.upgrade(json.load(f))


def load_workdir(workdir: str) -> Model:
  """The newest complete, readable checkpoint in ``workdir``, with the config it was trained
  with.

  The workdir is only read, never changed, so that it can be used while its run is still
  training: the checkpoints are opened read-only (a save in progress, which orbax writes to a
  temporary directory, is neither listed nor cleaned up), and an unreadable checkpoint is passed
  over for an older one but left where it is (the trainer moves it aside when it resumes).
  """
  config = workdir_config(workdir)
  where = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(where) or not os.listdir(where):
    raise errors.MissingData(f'No checkpoint in {where}: the run in {workdir} has not saved one '
                             'yet')
  mesh = train.make_mesh(jax.devices()[:1])
  built = train.build(config, mesh)
  model, abstract = built.model, built.abstract_state
  state, at = checkpoint.restore_latest(
      checkpoint.manager(workdir, config.keep_checkpoints, read_only=True), abstract,
      move_aside=False)
  if state is None:
    raise errors.MissingData(f'No complete, readable checkpoint in {where}')
  variables = jax.device_get(state.variables)
  crop, sigma = crops.from_config(config.data), config.targets.center_sigma

  def forward(crops, variables=variables):
    x, c = per_model.model_inputs(crops, crop, sigma)
    # The recurrent model's keypoint heatmaps (limb heatmaps dropped) and a channel that
    # decoding ignores, in place of the CPM's background.
    return per_model.part_beliefs(model, model.apply(variables, x, c, train=False))

  return Model(forward=forward, crop_size=crop, stride=model.stride, parts=config.data.parts,
               target_dist=config.data.target_dist, config=config.to_dict(),
               source=f'{workdir} (step {at})', variables=variables)


