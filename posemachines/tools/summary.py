"""Model summary: parameters, forward FLOPs, stage output shapes and receptive fields.

  python -m posemachines.summary --config=experiments/cpm_mpii.py [--json] [--config.x=y ...]

Everything is read off abstract evaluations of the model at the config's input size
(``config.data.crop_size`` x ``crop_width``, square by default; batch 1); no weights are
initialised and nothing is run.

* Parameters come from ``jax.eval_shape(model.init, ...)`` (the ``params`` collection).
* FLOPs come from walking the jaxpr of the forward pass: every ``conv_general_dilated`` and
  ``dot_general`` counts 2 FLOP per multiply-add, taken from its operand and result shapes, inside
  sub-jaxprs too (jit, custom_jvp/vjp, remat, cond: the costliest branch; scan: times its length;
  while: times its trip count where the loop is a counted one). Other ops are listed apart.
* Receptive fields come from walking the jaxpr of ``model.stages`` and tracking, for every array,
  the field of its elements along each input direction (rows, columns of the image): its size in
  input pixels, the jump (effective stride: input pixels between neighbouring elements) and the
  centre of the first element's field. Convolutions and window reductions grow the field; ops that
  mix values take the union; reductions and contractions over a spatial axis make the field span
  the whole axis. See ``Field`` and ``output_fields``.
"""
from __future__ import annotations

import math


from posemachines import models
from posemachines.core import crops
from posemachines.tools import abstract, flops as flops_lib, receptive_field


# ---------------------------------------------------------------------------------------------
# Summary and command line.


def _number(x):
  """An int when integral, None when unbounded, else the float."""
  if x is None or math.isinf(x):
    return None
  return int(x) if float(x).is_integer() else float(x)


def _per_direction(fields, attr):
  values = [None if f is None else _number(abs(getattr(f, attr)) if attr == 'jump'
                                           else getattr(f, attr)) for f in fields]
  return values[0] if len(set(values)) == 1 else values


def summarize(config) -> dict:
  """Everything the command prints, as a JSON-friendly dict."""
  model = models.build(config)
  size = crops.from_config(config.data)
  per_module = abstract.parameters_per_module(model, size)
  flops = flops_lib.forward_flops(model, size)
  shapes = abstract.stage_output_shapes(model, size)
  fields = receptive_field.receptive_fields(model, size)
  other = {k: v / 1e9 for k, v in sorted(flops.items())
           if k not in ('conv_general_dilated', 'dot_general')}
  layers = model.describe() if hasattr(model, 'describe') else []
  return {
      'model': type(model).__name__,
      'layers': layers,
      'input_size': list(abstract.size_hw(size)),
      'batch_size': 1,
      'parameters': sum(per_module.values()),
      'parameters_per_module': per_module,
      'gflops_forward': flops_lib.primary(flops) / 1e9,
      'gflops_forward_xla': flops_lib.forward_xla_flops(model, size) / 1e9,
      'gflops_other_ops': other,
      'stages': [{'stage': t + 1, 'output_shape': list(shape),
                  'receptive_field_px': _per_direction(f, 'size'),
                  'stride': _per_direction(f, 'jump'),
                  'offset_px': _per_direction(f, 'start')}
                 for t, (shape, f) in enumerate(zip(shapes, fields))],
  }


def format_summary(s: dict) -> str:
  h, w = s['input_size']
  lines = [f"{s['model']} at {h}x{w}, batch {s['batch_size']}",
           f"parameters        {s['parameters']:,}"]
  lines += [f'  {name:<15} {n:,}' for name, n in s['parameters_per_module'].items()]
  if s['layers']:
    lines.append('layers')
    lines += [f'  {line}' for line in s['layers']]
  lines.append(f"forward GFLOP     {s['gflops_forward']:.2f}   (convolutions and matmuls, "
               '2 FLOP per multiply-add)')
  if s['gflops_other_ops']:
    lines.append('other ops (M ops: one per element and window element)')
  lines += [f'  {name:<22} {g * 1e3:.2f}' for name, g in s['gflops_other_ops'].items()]
  lines.append('stage  output shape        receptive field  stride  offset (centre of pixel 0)')
  for st in s['stages']:
    shape = 'x'.join(map(str, st['output_shape']))
    lines.append(f"{st['stage']:<6} {shape:<19} {str(st['receptive_field_px']) + ' px':<16} "
                 f"{str(st['stride']):<7} {st['offset_px']}")
  return '\n'.join(lines)
