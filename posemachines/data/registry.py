"""From a config's ``data`` section to prepared tfds builders and their native part orders.

``config.data.dataset`` names one dataset, or a mixture of datasets joined by '+' (for example
'mpii+lsp_extended', as the papers trained): training then draws from every component in the
proportions of ``config.data.mixture_weights`` (default: the components' sizes), each converted to
the model's part order (``config.data.parts``); evaluation uses ``config.data.eval_dataset``
(default: the first component).

The real datasets are prepared on first use from the archives in ``config.data.manual_dir``
(default: tfds' ``<data_dir>/downloads/manual``); see each builder's download instructions.
"""
from __future__ import annotations

import os

from posemachines.core import errors

DATASETS = ('synthetic_people', 'json_people', 'mpii', 'lsp', 'lsp_extended', 'flic', 'coco')


def data_dir(config) -> str:
  return os.path.expanduser(config.data.data_dir or os.environ.get(
      'TFDS_DATA_DIR', os.path.join('~', 'tensorflow_datasets')))


def dataset_names(config) -> list[str]:
  """The datasets that ``config.data.dataset`` names (one, or a mixture's components)."""
  names = [n.strip() for n in str(config.data.dataset).split('+')]
  for name in names:
    if name not in DATASETS:
      raise errors.BadFlag(f'No dataset builder named {name!r} (config.data.dataset = '
                       f'{config.data.dataset!r}); available: {", ".join(DATASETS)}, '
                       "or a mixture such as 'mpii+lsp_extended'")
  if len(set(names)) != len(names):
    raise errors.BadFlag(f'config.data.dataset {config.data.dataset!r} repeats a dataset')
  return names


def eval_dataset_name(config) -> str:
  names = dataset_names(config)
  name = config.data.eval_dataset or names[0]
  if name not in DATASETS:
    raise errors.BadFlag(f'config.data.eval_dataset {name!r} is not one of {", ".join(DATASETS)}')
  return name


def mixture_weights(config, sizes: list[int]) -> list[float]:
  """The sampling weight of each component (normalised); default proportional to ``sizes``."""
  weights = tuple(config.data.mixture_weights or ())
  if not weights:
    weights = tuple(float(s) for s in sizes)
  if len(weights) != len(sizes):
    raise errors.BadFlag(f'config.data.mixture_weights {weights} has {len(weights)} entries for '
                     f'{len(sizes)} datasets ({config.data.dataset})')
  if any(not w >= 0 for w in weights) or not sum(weights) > 0:
    raise errors.BadFlag(f'config.data.mixture_weights {weights} must be >= 0 with a positive sum')
  total = float(sum(weights))
  return [w / total for w in weights]


def get_builder(config, name: str | None = None):
  """The prepared tfds builder of dataset ``name`` (prepared on first use).

  ``name`` defaults to the dataset evaluated on: ``config.data.dataset``, or for a mixture
  ``config.data.eval_dataset`` (default its first component).
  """
  data = config.data
  name = name or eval_dataset_name(config)
  manual_dir = data.manual_dir or None
  if name == 'synthetic_people':
    from posemachines.data import synthetic
    return synthetic.builder(data_dir(config), image_size=data.synthetic_image_size,
                             num_train=data.synthetic_num_train,
                             num_validation=data.synthetic_num_validation,
                             seed=data.synthetic_seed, occlusion=data.synthetic_occlusion)
  if name == 'json_people':
    from posemachines.data import json_people
    annotations = data.annotations
    if not annotations:
      raise errors.BadFlag(
          'json_people needs its annotation file (a JSON list of person records): '
          '--config.data.annotations=FILE for train, --annotations=FILE for evaluate')
    return json_people.builder(annotations, data_dir(config),
                               image_dir=data.image_dir or None,
                               validation_fraction=data.validation_fraction)
  if name == 'mpii':
    from posemachines.data import mpii
    return mpii.builder(data_dir(config), manual_dir,
                        validation_file=data.mpii_validation_file or '')
  if name in ('lsp', 'lsp_extended'):
    from posemachines.data import lsp
    return lsp.builder(name, data_dir(config), manual_dir)
  if name == 'flic':
    from posemachines.data import flic
    return flic.builder(data_dir(config), manual_dir)
  if name == 'coco':
    from posemachines.data import coco
    return coco.builder(data_dir(config), manual_dir,
                        aspect_ratio=data.coco_aspect_ratio, padding=data.coco_padding)
  raise errors.BadFlag(f'No dataset builder named {name!r}; available: {", ".join(DATASETS)}')


def get_builders(config, names=None) -> dict:
  """{name: prepared builder} of ``names`` (default: every dataset the config trains or
  evaluates on). Every missing real dataset is named in one MissingDataset, not just the first."""
  from posemachines.data import manual
  if names is None:
    names = dataset_names(config)
    names += [n for n in [eval_dataset_name(config)] if n not in names]
  out, missing = {}, []
  for name in names:
    try:
      out[name] = get_builder(config, name)
    except manual.MissingDataset as e:
      missing.extend(e.missing)
  if missing:
    raise manual.MissingDataset(missing)
  return out


def require_split(config, name: str, split: str, field: str):
  """The prepared builder of dataset ``name``; raises BadFlag when it has no split ``split``
  (named by config field ``field``), saying how to get one."""
  builder = get_builder(config, name)
  splits = sorted(builder.info.splits)
  if split in splits:
    return builder
  if name == 'json_people':
    hint = ('set --config.data.validation_fraction (for example 0.1) to hold out that fraction '
            'of the images, or mark records\' split ("split": "validation")'
            if split == 'validation' else
            f'mark some records "split": "{split}", or set --config.data.{field}')
    where = f'json_people {config.data.annotations}'
  else:
    hint, where = f'set --config.data.{field} to one of them', name
  raise errors.BadFlag(f'{where} has no split {split!r} (config.data.{field}; it has '
                       f'{", ".join(splits) or "none"}): {hint}')


def check_splits(config) -> None:
  """Prepares every dataset the run trains or evaluates on and checks that each has its split
  (train split of every component, eval split of the evaluation dataset), before training."""
  for name in dataset_names(config):
    require_split(config, name, config.data.train_split, 'train_split')
  require_split(config, eval_dataset_name(config), config.data.eval_split, 'eval_split')


def skeleton_name(builder) -> str:
  """The native part order of a builder's examples (posemachines.skeleton name)."""
  return builder.info.metadata.get('skeleton', 'mpii') if builder.info.metadata else 'mpii'


def metric_name(builder) -> str:
  return builder.info.metadata.get('metric', 'pckh') if builder.info.metadata else 'pckh'
