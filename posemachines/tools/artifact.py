"""Loading an exported pose model: needs only jax and numpy (no posemachines training code).

This file is also copied into every artifact directory, so ``import artifact`` from there works
without posemachines installed. An artifact directory holds:

  artifact.json     input size (S for a square crop, or [H, W]), stride, stages, skeleton (part
                    names, limbs, flip permutation), normalisation, the person-size convention
                    and the full training config
  forward.jax       the prediction function serialized with jax.export (symbolic batch size):
                    (parameters, uint8 crops [B, H, W, 3]) ->
                    belief maps [T, B, H / stride, W / stride, P + 1]
  params.npz        its parameters, in the order artifact.json lists them
  saved_model/      optional: the same function as a TensorFlow SavedModel (jax2tf)

Usage::

  art = load('ART')
  beliefs = art.forward(crops)      # crops: uint8 [B, H, W, 3], person centred
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

META = 'artifact.json'
FUNCTION = 'forward.jax'
PARAMS = 'params.npz'
FORMAT_VERSION = 1


class Artifact:
  """An exported model: ``meta`` (artifact.json), ``params`` and the deserialized function."""

  def __init__(self, path: str):
    self.path = path
    meta_path = os.path.join(path, META)
    if not os.path.isfile(meta_path):
      raise FileNotFoundError(f'{path} is not an exported model: {META} is missing')
    with open(meta_path) as f:
      self.meta = json.load(f)
    if self.meta.get('format_version') != FORMAT_VERSION:
      raise ValueError(f'{meta_path}: format_version {self.meta.get("format_version")!r}, this '
                       f'loader reads {FORMAT_VERSION}')
    with open(os.path.join(path, FUNCTION), 'rb') as f:
      self.exported = jax.export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(path, PARAMS)) as npz:
      names = self.meta['parameters']
      missing = [n for n in names if n not in npz.files]
      if missing:
        raise ValueError(f'{os.path.join(path, PARAMS)} lacks parameters {missing[:5]}')
      self.params = tuple(npz[n] for n in names)

  @property
  def input_hw(self) -> tuple[int, int]:
    """The crop's (height, width)."""
    size = self.meta['input_size']
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

  def forward(self, crops):
    """uint8 crops [B, H, W, 3] -> every stage's belief maps [T, B, h, w, P + 1]."""
    h, w = self.input_hw
    shape = tuple(getattr(crops, 'shape', ()))
    if len(shape) != 4 or shape[1:] != (h, w, 3):
      raise ValueError(f'crops must be [batch, {h}, {w}, 3] uint8, got shape {shape}')
    return self.exported.call(self.params, crops)


def load(path: str) -> Artifact:
  return Artifact(path)
