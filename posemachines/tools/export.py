"""Export: ``python -m posemachines.export --workdir=DIR --output=ART [--saved_model]``.

Writes a self-contained artifact directory (see artifact.py for its layout and loader): the
prediction function of the newest checkpoint serialized with jax.export with a symbolic batch
size, its parameters, and the config, part names, skeleton, input size and normalisation. Loading
it needs only jax and numpy. ``--saved_model`` also writes a TensorFlow SavedModel (jax2tf).
"""
from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from posemachines.core import crops
from posemachines.tools import artifact
from posemachines.tools import loading

PLATFORMS = ('cpu', 'cuda', 'tpu')


def _flat_params(variables):
  leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  names = ['/'.join(str(getattr(k, 'key', k)) for k in path) for path, _ in leaves]
  return names, [np.asarray(x) for _, x in leaves], treedef


def export(workdir: str, output: str, platforms=PLATFORMS, saved_model: bool = False) -> str:
  """Exports the newest checkpoint of ``workdir`` to the directory ``output``; returns it."""
  model = loading.load_workdir(workdir)
  names, leaves, treedef = _flat_params(model.variables)
  forward = model.forward

  def fn(params, crops):
    return forward(crops, jax.tree_util.tree_unflatten(treedef, list(params)))

  size = model.crop_size  # S, or (H, W)
  h, w = crops.size_hw(size)
  batch, = jax.export.symbolic_shape('batch')
  specs = (tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves),
           jax.ShapeDtypeStruct((batch, h, w, 3), jnp.uint8))
  exported = jax.export.export(jax.jit(fn), platforms=tuple(platforms))(*specs)
  os.makedirs(output, exist_ok=True)
  with open(os.path.join(output, artifact.FUNCTION), 'wb') as f:
    f.write(exported.serialize())
  np.savez(os.path.join(output, artifact.PARAMS), **dict(zip(names, leaves)))
  skel = model.skeleton
  out_shape = exported.out_avals[0].shape
  meta = {
      'format_version': artifact.FORMAT_VERSION,
      'source': model.source,
      'input_size': size if isinstance(size, int) else [h, w], 'stride': model.stride,
      'num_stages': int(out_shape[0]),
      'map_size': int(out_shape[2]) if h == w else [int(out_shape[2]), int(out_shape[3])],
      'platforms': list(exported.platforms),
      'input': f'uint8 [batch, {h}, {w}, 3] RGB crop with the person centred',
      'output': f'float32 [stages, batch, {out_shape[2]}, {out_shape[3]}, parts + 1] belief '
                'maps (background last)',
      'normalisation': {'pixels': 'x / 256 - 0.5',
                        'center_map': 'Gaussian at the crop centre, sigma '
                                      f'{model.config["targets"]["center_sigma"]} px (built in)'},
      'map_pixel_centre': 'map pixel (i, j) is centred on crop pixel (j * stride + (stride - 1) '
                          '/ 2, i * stride + (stride - 1) / 2)',
      'target_dist': model.target_dist,
      'person_size': f'a person of MPII scale s (height / 200 px) is resized by '
                     f'{h} / 368 * target_dist / s, h the crop height',
      'skeleton': {'name': skel.name, 'parts': list(skel.parts),
                   'limbs': [list(l) for l in skel.limbs],
                   'flip_permutation': skel.flip_permutation.tolist()},
      'parameters': names,
      'config': model.config,
  }
  with open(os.path.join(output, artifact.META), 'w') as f:
    json.dump(meta, f, indent=2)
  shutil.copy(artifact.__file__, os.path.join(output, 'artifact.py'))
  if saved_model:
    write_saved_model(fn, leaves, (h, w), os.path.join(output, 'saved_model'))
  return output


def write_saved_model(fn, leaves, size, path: str) -> None:
  """The function with its parameters as a TensorFlow SavedModel: serving_default(crops);
  ``size`` is the crop: S or (H, W)."""
  h, w = crops.size_hw(size)
  import tensorflow as tf
  from jax.experimental import jax2tf
  module = tf.Module()
  module.params = [tf.Variable(x, trainable=False) for x in leaves]
  converted = jax2tf.convert(fn, polymorphic_shapes=[None, '(b, ...)'], with_gradient=False)
  module.forward = tf.function(
      lambda crops: converted(tuple(module.params), crops), autograph=False,
      input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name='crops')])
  tf.saved_model.save(module, path, signatures={'serving_default': module.forward})
