"""Crop sizes: square (an int, S x S) or rectangular (a (height, width) pair, e.g. 256 x 192).

A config sets ``data.crop_size`` (the height) and ``data.crop_width`` (0: square). Person size is
always normalised by the crop's height: a person of scale s (height / 200 px) is resized by
height / 368 x target_dist / s.
"""
from __future__ import annotations


def size_hw(crop) -> tuple[int, int]:
  """(height, width) from an int (square crop) or a (height, width) pair."""
  if isinstance(crop, (int, float)) and not isinstance(crop, bool):
    return int(crop), int(crop)
  h, w = crop
  return int(h), int(w)


def from_config(data) -> int | tuple[int, int]:
  """A config's ``data`` section -> its crop: ``crop_size`` for a square crop (``crop_width`` 0
  or equal), else (``crop_size``, ``crop_width``)."""
  h, w = int(data.crop_size), int(data.crop_width or 0)
  if h <= 0 or w < 0:
    raise ValueError(f'config.data.crop_size {h} and crop_width {w} must be positive (width 0: '
                     'square)')
  return h if w in (0, h) else (h, w)


def describe(crop) -> str:
  """'368x368' style: height x width."""
  h, w = size_hw(crop)
  return f'{h}x{w}'
