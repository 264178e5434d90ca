"""Checking a config before anything is built: ``check(config)``.

Every field with a range (sizes, rates, fractions, crop sizes, step counts) or a fixed set of
values (model, optimizer, schedule, ...) is checked, and every bad field is reported at once,
one line each, as an ``errors.BadFlag``. Only the fields a config has are checked, so a CPM
config and a recurrent-model config go through the same function.

The sets of known values are repeated here because this module sits below the layers that use
them (models, objectives, data, training); tests/test_validate.py checks that they agree.
"""
from __future__ import annotations

import math
import numbers

from posemachines.core import errors, skeleton

MODELS = ('cpm', 'recurrent')                      # posemachines/models
WEIGHT_INITS = ('gaussian', 'he')                  # models/layers.py kernel_init
CPM_LAYERS = ('custom', 'flax')                    # models/layers.py LAYERS
CPM_REMAT = ('none', 'stage', 'block')             # models/layers.py REMAT
PRECISIONS = ('fp32', 'bf16')                      # models PRECISIONS
OPTIMIZERS = ('sgd', 'adam')                       # training/optim.py
SCHEDULES = ('step', 'cosine', 'constant')         # training/optim.py
ON_NAN = ('stop', 'skip')                          # training/loop.py
SCHEMES = ('joint', 'stagewise', 'stagewise_finetune', 'final_only')   # training/schemes.py
OCCLUSION_MODES = ('ignore', 'include', 'exclude')  # objectives/losses.py
SYNTHETIC_OCCLUSION = ('light', 'heavy')   # data/synthetic.py OCCLUSION
DATASETS = ('synthetic_people', 'json_people', 'mpii', 'lsp', 'lsp_extended', 'flic',  # data
            'coco')


class _Report:
  """Collects one line per bad field."""

  def __init__(self, config):
    self.config = config
    self.lines = []

  def get(self, name):
    """The value of a dotted field, or ``_MISSING`` when the config does not have it."""
    node = self.config
    for part in name.split('.'):
      try:
        if part not in node:
          return _MISSING
      except TypeError:
        return _MISSING
      node = node[part]
    return node

  def bad(self, name, value, why):
    self.lines.append(f'--config.{name}={_show(value)}: {why}')


_MISSING = object()


def _show(value):
  if isinstance(value, (list, tuple)):
    return '(' + ','.join(map(_show, value)) + (',)' if len(value) == 1 else ')')
  return repr(value) if isinstance(value, str) else str(value)


def _is_int(v):
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _int(r, name, low, high=None, also=()):
  """An integer in [low, high] (or one of ``also``). Returns the value when the field is good."""
  v = r.get(name)
  if v is _MISSING:
    return None
  if _is_int(v) and v in also:
    return v
  if not _is_int(v):
    r.bad(name, v, 'must be an integer')
  elif v < low or (high is not None and v > high):
    rng = f'>= {low}' if high is None else f'in {low}..{high}'
    r.bad(name, v, f'must be {rng}' + (f' (or {", ".join(map(str, also))})' if also else ''))
  else:
    return v
  return None


def _number(r, name, low=None, high=None, low_open=False, high_open=False):
  """A finite number in the range; ``*_open`` excludes that end. Returns it when good."""
  v = r.get(name)
  if v is _MISSING:
    return None
  if not _is_number(v):
    r.bad(name, v, 'must be a finite number')
    return None
  if ((low is not None and (v < low or (low_open and v == low))) or
      (high is not None and (v > high or (high_open and v == high)))):
    lo = '' if low is None else ('(' if low_open else '[') + f'{low:g}'
    hi = '' if high is None else f'{high:g}' + (')' if high_open else ']')
    if high is None:
      r.bad(name, v, f'must be {">" if low_open else ">="} {low:g}')
    elif low is None:
      r.bad(name, v, f'must be {"<" if high_open else "<="} {high:g}')
    else:
      r.bad(name, v, f'must be in {lo}, {hi}')
    return None
  return float(v)


def _choice(r, name, choices):
  v = r.get(name)
  if v is _MISSING:
    return None
  if v not in choices:
    r.bad(name, v, f'must be one of {", ".join(choices)}')
    return None
  return v


def _ints(r, name, low, length=None, like='the fields it goes with'):
  """A sequence of integers >= low (of ``length`` when given). Returns it when good."""
  v = r.get(name)
  if v is _MISSING:
    return None
  if not isinstance(v, (list, tuple)) or not all(_is_int(x) for x in v):
    r.bad(name, v, 'must be a sequence of integers')
    return None
  if any(x < low for x in v):
    r.bad(name, v, f'every entry must be >= {low}')
    return None
  if length is not None and len(v) != length:
    r.bad(name, v, f'must have {length} entries, like {like}')
    return None
  return tuple(v)


def _flags(r, name, length=None, like='the fields it goes with'):
  v = r.get(name)
  if v is _MISSING:
    return None
  if not isinstance(v, (list, tuple)) or not all(isinstance(x, bool) or x in (0, 1) for x in v):
    r.bad(name, v, 'must be a sequence of True/False')
    return None
  if length is not None and len(v) != length:
    r.bad(name, v, f'must have {length} entries, like {like}')
    return None
  return tuple(v)


def check(config, num_devices: int | None = None) -> None:
  """Raises errors.BadFlag, one line per bad field, if ``config`` cannot make a run.

  ``num_devices``: the devices the global batch is split over (batch_size must divide).
  """
  r = _Report(config)
  _check_loop(r, num_devices)
  _check_model(r)
  _check_data(r)
  _check_targets_and_loss(r)
  _check_optim(r)
  if len(r.lines) == 1:
    raise errors.BadFlag(r.lines[0])
  if r.lines:
    raise errors.BadFlag(f'{len(r.lines)} config fields are bad:\n  ' + '\n  '.join(r.lines))


def _check_loop(r, num_devices):
  batch = _int(r, 'batch_size', 1)
  if batch is not None and num_devices and batch % num_devices:
    r.bad('batch_size', batch, f'must be divisible by the {num_devices} devices the batch is '
          f'split over (e.g. {-(-batch // num_devices) * num_devices})')
  _int(r, 'eval_batch_size', 1)
  _int(r, 'num_train_steps', 1)
  for name in ('log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
               'keep_checkpoints'):
    _int(r, name, 1)
  _int(r, 'num_eval_examples', 1, also=(-1,))
  _int(r, 'num_pictures', 0)
  _int(r, 'seed', 0)
  _choice(r, 'on_nan', ON_NAN)
  _choice(r, 'precision', PRECISIONS)
  _choice(r, 'scheme', SCHEMES)
  _int(r, 'schemes.stage_steps', 0)
  _int(r, 'schemes.finetune_steps', 0)
  _int(r, 'gradients.every_steps', 0)
  _ints(r, 'gradients.at_steps', 1)


def _check_model(r):
  name = _choice(r, 'model.name', MODELS)
  _choice(r, 'model.weight_init', WEIGHT_INITS)
  if name == 'cpm':
    _int(r, 'model.num_stages', 1)
    n = r.get('model.trunk_kernels')
    n = len(n) if isinstance(n, (list, tuple)) else None
    _ints(r, 'model.trunk_kernels', 1)
    _ints(r, 'model.trunk_widths', 1, n, 'model.trunk_kernels')
    _flags(r, 'model.trunk_pools', n, 'model.trunk_kernels')
    m = r.get('model.stage1_kernels')
    m = len(m) if isinstance(m, (list, tuple)) else None
    _ints(r, 'model.stage1_kernels', 1)
    _ints(r, 'model.stage1_widths', 1, m, 'model.stage1_kernels')
    _flags(r, 'model.stage1_dropout', m, 'model.stage1_kernels')
    _int(r, 'model.stage_feature_kernel', 1)
    _int(r, 'model.stage_feature_width', 1)
    k = r.get('model.stage_kernels')
    k = len(k) if isinstance(k, (list, tuple)) else None
    _ints(r, 'model.stage_kernels', 1)
    _ints(r, 'model.stage_widths', 1, k, 'model.stage_kernels')
    _number(r, 'model.dropout_rate', 0.0, 1.0, high_open=True)
    _choice(r, 'model.layers', CPM_LAYERS)
    _choice(r, 'model.remat', CPM_REMAT)
  elif name == 'recurrent':
    _int(r, 'model.num_iterations', 0)
    _ints(r, 'model.kernels', 1, 7, 'the 7 layers of the model')
    _ints(r, 'model.widths', 1, 7, 'the 7 layers of the model')
    _flags(r, 'model.pools', 7, 'the 7 layers of the model')


def _ceil_pooled(size: int, window: int, stride: int) -> int:
  return -(-max(size - window, 0) // stride) + 1


def _check_cpm_crop(r):
  """The CPM's later stages concatenate the image features (3x3/2 ceil-mode pools of the trunk)
  with the center map (a 9x9/8 ceil-mode average pool): at some crop sizes the two differ by a
  pixel, which would fail inside the model."""
  pools = r.get('model.trunk_pools')
  if (r.get('model.name') != 'cpm' or r.get('model.use_center_map') is not True
      or not isinstance(pools, (list, tuple)) or r.get('model.num_stages') in (1, _MISSING)):
    return
  stride = 2 ** sum(bool(p) for p in pools)
  for field in ('data.crop_size', 'data.crop_width'):
    size = r.get(field)
    if not _is_int(size) or size < 8 or (field == 'data.crop_width' and size == 0):
      continue
    features = size
    for p in pools:
      features = _ceil_pooled(features, 3, 2) if p else features
    center = _ceil_pooled(size, stride + 1, stride)
    if features != center:
      ok = [s for s in range(max(8, size - 8), size + 9) if _ceil_pooled(s, stride + 1, stride)
            == _pooled_trunk(s, pools)]
      r.bad(field, size, f'gives {features}-pixel image features but a {center}-pixel pooled '
            f'center map (stride {stride}); nearby sizes that fit: {ok}')


def _pooled_trunk(size, pools):
  for p in pools:
    size = _ceil_pooled(size, 3, 2) if p else size
  return size


def _check_data(r):
  names = r.get('data.dataset')
  if names is not _MISSING:
    parts = [n.strip() for n in str(names).split('+')]
    unknown = [n for n in parts if n not in DATASETS]
    if unknown or len(set(parts)) != len(parts):
      r.bad('data.dataset', names, f'must name one of {", ".join(DATASETS)}, or a mixture of '
            "different ones joined by '+' (e.g. 'mpii+lsp_extended')")
  parts = r.get('data.parts')
  if parts is not _MISSING and parts not in skeleton.SKELETONS:
    r.bad('data.parts', parts, f'must be one of {", ".join(skeleton.SKELETONS)}')
  _int(r, 'data.crop_size', 8)
  _int(r, 'data.crop_width', 8, also=(0,))
  _check_cpm_crop(r)
  _number(r, 'data.coco_aspect_ratio', 0.0, low_open=True)
  _number(r, 'data.coco_padding', 0.0, low_open=True)
  _number(r, 'data.target_dist', 0.0, low_open=True)
  lo = _number(r, 'data.scale_min', 0.0, low_open=True)
  hi = _number(r, 'data.scale_max', 0.0, low_open=True)
  if lo is not None and hi is not None and hi < lo:
    r.bad('data.scale_max', r.get('data.scale_max'),
          f'must be >= data.scale_min ({r.get("data.scale_min")})')
  _number(r, 'data.max_rotation', 0.0, 180.0)
  _number(r, 'data.max_shift', 0.0)
  _int(r, 'data.max_others', 0)
  _int(r, 'data.shuffle_buffer', 1)
  _int(r, 'data.prefetch', 0, also=(-1,))
  _int(r, 'data.num_parallel_calls', 1, also=(-1,))
  _number(r, 'data.validation_fraction', 0.0, 1.0)  # 1: every image held out
  weights = r.get('data.mixture_weights')
  if weights is not _MISSING and weights:
    if (not isinstance(weights, (list, tuple)) or not all(_is_number(w) and w >= 0
                                                          for w in weights)
        or not sum(weights) > 0):
      r.bad('data.mixture_weights', weights, 'must be numbers >= 0 with a positive sum')
  _int(r, 'data.synthetic_image_size', 16)
  _int(r, 'data.synthetic_num_train', 1)
  _int(r, 'data.synthetic_num_validation', 0)
  _choice(r, 'data.synthetic_occlusion', SYNTHETIC_OCCLUSION)


def _check_targets_and_loss(r):
  for name in ('targets.sigma', 'targets.center_sigma', 'targets.peak', 'targets.keypoint_sigma',
               'targets.limb_along', 'targets.limb_across'):
    _number(r, name, 0.0, low_open=True)
  _number(r, 'targets.foreground', 0.0, 1.0, low_open=True, high_open=True)
  _choice(r, 'loss.occlusion', OCCLUSION_MODES)
  weights = r.get('loss.stage_weights')
  if weights is not _MISSING and weights:
    if not isinstance(weights, (list, tuple)) or not all(_is_number(w) and w >= 0
                                                         for w in weights):
      r.bad('loss.stage_weights', weights, 'must be numbers >= 0, one per stage')
    else:
      name = r.get('model.name')
      outputs = (r.get('model.num_stages') if name == 'cpm' else
                 r.get('model.num_iterations') + 1 if name == 'recurrent'
                 and _is_int(r.get('model.num_iterations')) else None)
      if _is_int(outputs) and len(weights) != outputs:
        r.bad('loss.stage_weights', weights,
              f'must have one weight per model output ({outputs}), or be () for the default')


def _check_optim(r):
  _choice(r, 'optim.name', OPTIMIZERS)
  _choice(r, 'optim.schedule', SCHEDULES)
  _number(r, 'optim.learning_rate', 0.0, low_open=True)
  _number(r, 'optim.momentum', 0.0, 1.0, high_open=True)
  _number(r, 'optim.weight_decay', 0.0)
  _number(r, 'optim.decay_factor', 0.0, 1.0, low_open=True)
  _int(r, 'optim.decay_every', 1)
  _int(r, 'optim.warmup_steps', 0)
  _number(r, 'optim.stage1_lr_mult', 0.0)
  _number(r, 'optim.bias_lr_mult', 0.0)
