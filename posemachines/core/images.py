"""Every image read from a file becomes 8-bit RGB here, whatever mode PIL reads it in.

``to_rgb`` is the one conversion used wherever images are decoded from files (dataset builders,
predict, benchmarks). PIL's own ``convert('RGB')`` clips instead of scaling for deep modes: a
16-bit greyscale PNG becomes all white and a float image in [0, 1] all black. Here:

  RGB                      kept as is
  1, L, P, CMYK, YCbCr,    PIL's conversion (exact for these: 1 and L are grey, P a palette,
  LAB, HSV, RGBX           CMYK, YCbCr, LAB and HSV colour spaces)
  LA, La, PA, RGBA, RGBa,  composited over mid-grey (128, the colour the crops are padded with),
  P with transparency      so that transparent pixels neither keep hidden colours nor turn black
  I;16, I;16B, I;16L, ...  16-bit grey, scaled: v * 255 / 65535, rounded
  I                        32-bit integer grey: values within 0-65535 (what PIL makes of 16-bit
                           PNG and PGM files) are scaled as 16-bit; any other range is stretched
                           from its minimum to its maximum
  F                        32-bit float grey: values within [0, 1] are scaled by 255, values
                           within [0, 255] kept, any other range stretched from its minimum to its
                           maximum; NaN becomes 0

Any other mode goes through PIL's conversion, or raises ValueError naming the mode.
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from posemachines.core import errors

GREY = 128
_PIL_CONVERTS = ('1', 'L', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX')
_ALPHA = ('LA', 'La', 'PA', 'RGBA', 'RGBa')


def _grey(values: np.ndarray) -> Image.Image:
  return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), 'L').convert('RGB')


def _stretched(values: np.ndarray) -> np.ndarray:
  lo, hi = float(values.min()), float(values.max())
  return np.zeros_like(values) if hi <= lo else (values - lo) * (255.0 / (hi - lo))


def _over_grey(image: Image.Image) -> Image.Image:
  if image.mode == 'La':
    image = image.convert('LA')
  rgba = image.convert('RGBA')
  background = Image.new('RGBA', rgba.size, (GREY, GREY, GREY, 255))
  return Image.alpha_composite(background, rgba).convert('RGB')


def to_rgb(image: Image.Image) -> Image.Image:
  """``image`` as an 8-bit RGB image, scaled (not clipped) from deep modes; see the module doc."""
  mode = image.mode
  if mode == 'RGB':
    return image
  if mode in _ALPHA or (mode in ('P', 'L', 'RGB') and 'transparency' in image.info):
    return _over_grey(image)
  if mode in _PIL_CONVERTS:
    return image.convert('RGB')
  if mode.startswith('I;16'):
    return _grey(np.asarray(image).astype(np.float64) * (255.0 / 65535.0))
  if mode == 'I':
    values = np.asarray(image).astype(np.float64)
    if values.size and values.min() >= 0 and values.max() <= 65535:
      return _grey(values * (255.0 / 65535.0))
    return _grey(_stretched(values) if values.size else values)
  if mode == 'F':
    values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0,
                           neginf=0.0)
    if not values.size or (values.min() >= 0 and values.max() <= 1):
      return _grey(values * 255.0)
    if values.min() >= 0 and values.max() <= 255:
      return _grey(values)
    return _grey(_stretched(values))
  try:
    return image.convert('RGB')
  except Exception as e:  # PIL raises ValueError or OSError for conversions it lacks
    raise ValueError(f'cannot convert PIL mode {mode} to RGB: {e}') from e


def to_rgb_array(image: Image.Image) -> np.ndarray:
  """``to_rgb(image)`` as uint8 [H, W, 3]."""
  return np.asarray(to_rgb(image))


def decode(data: bytes, where: str | os.PathLike = '<bytes>') -> np.ndarray:
  """The fully decoded image in ``data`` (a file's contents) as uint8 [H, W, 3]; raises
  ``errors.BadFile`` naming ``where`` when it is not a readable image."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      return to_rgb_array(image)
  except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
    raise errors.BadFile(f'{os.fspath(where)} is not a readable image: {e}') from e


def read(path: str | os.PathLike) -> np.ndarray:
  """The image file at ``path`` as uint8 [H, W, 3]; raises ``errors.MissingData`` when there
  is no such file and ``errors.BadFile`` when it is not a readable image."""
  if not os.path.isfile(path):
    raise errors.MissingData(f'no such image: {os.fspath(path)}')
  with open(path, 'rb') as f:
    return decode(f.read(), path)
