"""Abstract evaluations of a model at an input size: its inputs, variables, parameters per
module and the output shape of every stage. No weights are initialised and nothing is run."""
from __future__ import annotations
import functools
import math
import re
from typing import Callable
import jax
import jax.numpy as jnp


# ---------------------------------------------------------------------------------------------
# Inputs and parameters.


def size_hw(input_shape) -> tuple[int, int]:
  """(H, W) from an int (square crop) or an (H, W) pair."""
  if isinstance(input_shape, int):
    return input_shape, input_shape
  h, w = input_shape
  return int(h), int(w)


def model_inputs(model, input_shape, batch: int = 1) -> tuple:
  """Abstract inputs for ``model``: the image [B, H, W, 3], plus the center map [B, H, W, 1]
  when the model takes one (``use_center_map``)."""
  h, w = size_hw(input_shape)
  inputs = (jax.ShapeDtypeStruct((batch, h, w, 3), jnp.float32),)
  if getattr(model, 'use_center_map', False):
    inputs += (jax.ShapeDtypeStruct((batch, h, w, 1), jnp.float32),)
  return inputs


def abstract_variables(model, input_shape) -> dict:
  """Shapes and dtypes of ``model.init``'s variables, without initialising anything."""
  return jax.eval_shape(model.init, jax.random.key(0), *model_inputs(model, input_shape))


def parameters_per_module(model, input_shape) -> dict[str, int]:
  """Number of parameters of every top-level module (stage1, features, stage2, ...)."""
  params = abstract_variables(model, input_shape).get('params', {})
  return {name: sum(math.prod(x.shape) for x in jax.tree.leaves(params[name]))
          for name in sorted(params, key=_natural_key)}


def _natural_key(name: str):
  """Sort key that puts stage2 before stage10."""
  return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def count_parameters(model, input_shape) -> int:
  """Total number of parameters (the ``params`` collection)."""
  return sum(parameters_per_module(model, input_shape).values())


def stages_fn(model) -> tuple[Callable, bool]:
  """The function giving every stage's output: ``model.stages``, else ``__call__`` whose output
  is stacked over stages; and whether its output is stacked."""
  if hasattr(model, 'stages'):
    return functools.partial(model.apply, method='stages'), False
  return model.apply, True


def stage_output_shapes(model, input_shape) -> list[tuple[int, ...]]:
  """Shape of every stage's belief maps (``model.stages``, else ``__call__``'s stack), batch 1."""
  variables = abstract_variables(model, input_shape)
  fn, stacked = stages_fn(model)
  outs = jax.eval_shape(fn, variables, *model_inputs(model, input_shape))
  if stacked:
    return [tuple(outs.shape[1:])] * outs.shape[0]
  return [tuple(o.shape) for o in outs]
