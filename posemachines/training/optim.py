"""optax optimizers with the release's per-layer learning-rate multipliers.

The released CPM trains stage-1 layers at 5x the base rate, biases at 2x their weights' rate, and
applies weight decay to weights only. Multipliers are a pytree of floats shaped like the params.
Parameters matching ``frozen`` (top-level module names) get multiplier 0, so zero updates: the
stage-wise schemes freeze earlier stages this way.
"""
from __future__ import annotations

import flax.traverse_util as tu
import jax
import optax


def schedule(optim, num_steps: int):
  lr = optim.learning_rate
  if optim.schedule == 'step':
    sched = optax.exponential_decay(lr, optim.decay_every, optim.decay_factor, staircase=True)
  elif optim.schedule == 'cosine':
    sched = optax.cosine_decay_schedule(lr, max(num_steps - optim.warmup_steps, 1))
  elif optim.schedule == 'constant':
    sched = optax.constant_schedule(lr)
  else:
    raise ValueError(f'Unknown schedule {optim.schedule!r} (config.optim.schedule); '
                     'use step, cosine or constant')
  if optim.warmup_steps:
    warm = optax.linear_schedule(0.0, lr, optim.warmup_steps)
    sched = optax.join_schedules([warm, sched], [optim.warmup_steps])
  return sched


def lr_multipliers(params, optim, frozen=()):
  """1 for weights, x bias_lr_mult for biases, x stage1_lr_mult for everything in stage 1, and 0
  for every parameter of a module named in ``frozen``."""
  def mult(path, _):
    if path[0] in frozen:
      return 0.0
    m = optim.bias_lr_mult if path[-1] == 'bias' else 1.0
    if path[0] == 'stage1':
      m *= optim.stage1_lr_mult
    return m
  flat = tu.flatten_dict(params)
  return tu.unflatten_dict({k: mult(k, v) for k, v in flat.items()})


def is_weight(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)


def make(optim, params, num_steps: int, frozen=()):
  """The optax transformation for ``config.optim`` over ``params`` (a param pytree or shapes)."""
  unknown = set(frozen) - set(params)
  if unknown:
    raise ValueError(f'frozen names unknown modules {sorted(unknown)}; the model has '
                     f'{sorted(params)}')
  mults = lr_multipliers(params, optim, frozen)
  sched = schedule(optim, num_steps)
  if optim.name == 'sgd':
    core = [optax.add_decayed_weights(optim.weight_decay, mask=is_weight(params)),
            optax.trace(decay=optim.momentum)]
  elif optim.name == 'adam':
    core = [optax.scale_by_adam()]
    if optim.weight_decay:
      core.append(optax.add_decayed_weights(optim.weight_decay, mask=is_weight(params)))
  else:
    raise ValueError(f'Unknown optimizer {optim.name!r} (config.optim.name); use sgd or adam')
  tx = optax.chain(*core, optax.scale_by_schedule(lambda step: -sched(step)),
                   _scale_by_tree(mults))
  return tx, sched


def _scale_by_tree(mults):
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, m: u * m, updates, mults), state
  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)
