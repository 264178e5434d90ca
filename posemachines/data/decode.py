"""Decoding fused with the crop warp: decode only the pixels the crop needs, at the resolution it
needs.

The crop is one affine warp of the image (``crop_to_image``: crop pixel -> image pixel, pixel
centres at integers). For a JPEG, ``decode_warp``

  1. picks the DCT scaling ratio r in {1, 2, 4, 8}: the largest with r x (crop px per image px)
     <= 1, so the decoded image is never sparser than the crop's pixels (no upsampling); the JPEG
     decoder then makes each decoded pixel from an r x r block, which is cheaper and anti-aliased;
  2. decodes only the window of the (scaled) image that the warp samples: the bounding box of the
     crop's corners, plus the bilinear neighbours, clipped to the image;
  3. warps that window with the matrix moved to it: decoded pixel u of ratio r is centred on image
     pixel r u + (r - 1) / 2, so window pixel (u, v) samples image point
     (r (u + x0) + (r - 1) / 2, r (v + y0) + (r - 1) / 2).

Keypoints go through ``crop_to_image`` unchanged, so they land exactly where the pixels land
(tests check this with markers). Other formats (PNG) are decoded whole. ``crop_size`` is an int
(a square crop) or a (height, width) pair (posemachines/core/crops.py).
"""
from __future__ import annotations

import tensorflow as tf

from posemachines.core import crops

GREY = 128.0
RATIOS = (1, 2, 4, 8)


def warp(image, crop_to_image, crop_size):
  """Bilinear warp with grey padding: output pixel (x, y) samples ``image`` at A (x, y, 1)."""
  h, w = crops.size_hw(crop_size)
  a = tf.reshape(tf.cast(crop_to_image, tf.float32), [6])
  transform = tf.concat([a, tf.zeros([2])], axis=0)[None]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.cast(image, tf.float32)[None], transforms=transform,
      output_shape=tf.constant([h, w]), fill_value=GREY,
      interpolation='BILINEAR', fill_mode='CONSTANT')[0]
  return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def choose_ratio(crop_to_image):
  """The index into RATIOS of the coarsest DCT scaling that does not upsample the crop."""
  image_px_per_crop_px = tf.sqrt(tf.abs(tf.linalg.det(crop_to_image[:, :2])))
  fits = tf.constant(RATIOS, tf.float32) <= image_px_per_crop_px * (1 + 1e-4)
  return tf.maximum(tf.reduce_sum(tf.cast(fits, tf.int32)) - 1, 0)


def scaled_window(crop_to_image, crop_size, height, width, ratio: int):
  """(window [y0, x0, h, w] in the ratio-scaled image, window-pixel -> crop matrix inputs).

  Returns the crop window to decode and the 2x3 matrix taking crop pixels to window pixels.
  """
  ch, cw = crops.size_hw(crop_size)
  sx, sy = float(cw - 1), float(ch - 1)
  corners = tf.constant([[0.0, 0.0], [sx, 0.0], [0.0, sy], [sx, sy]])
  image_pts = tf.linalg.matvec(crop_to_image[None, :, :2], corners) + crop_to_image[:, 2]
  scaled = (image_pts - (ratio - 1) / 2.0) / ratio
  dims = tf.stack([(width + ratio - 1) // ratio, (height + ratio - 1) // ratio])  # x, y
  lo = tf.cast(tf.floor(tf.reduce_min(scaled, 0)), tf.int32) - 1
  hi = tf.cast(tf.floor(tf.reduce_max(scaled, 0)), tf.int32) + 3
  lo = tf.clip_by_value(lo, 0, dims - 1)
  hi = tf.clip_by_value(hi, lo + 1, dims)
  local = tf.concat([crop_to_image[:, :2] / ratio,
                     ((crop_to_image[:, 2] - (ratio - 1) / 2.0) / ratio
                      - tf.cast(lo, tf.float32))[:, None]], axis=1)
  size = hi - lo
  return tf.stack([lo[1], lo[0], size[1], size[0]]), local


def decode_full(encoded):
  return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def decode_window(encoded, crop_to_image, crop_size):
  """For a JPEG: the uint8 window of it that the crop samples, decoded at the chosen DCT ratio,
  and the 2x3 matrix taking crop pixels to window pixels."""
  crop_to_image = tf.cast(crop_to_image, tf.float32)
  shape = tf.image.extract_jpeg_shape(encoded)
  height, width = shape[0], shape[1]

  def branch(ratio):
    def fn():
      window, local = scaled_window(crop_to_image, crop_size, height, width, ratio)
      return tf.image.decode_and_crop_jpeg(encoded, window, channels=3, ratio=ratio), local
    return fn

  return tf.switch_case(choose_ratio(crop_to_image), [branch(r) for r in RATIOS])


def decode_warp(encoded, crop_to_image, crop_size, fast: bool = True):
  """The uint8 crop [H, W, 3] that ``crop_to_image`` cuts from the encoded image."""
  crop_to_image = tf.cast(crop_to_image, tf.float32)
  if not fast:
    return warp(decode_full(encoded), crop_to_image, crop_size)

  def jpeg():
    pixels, local = decode_window(encoded, crop_to_image, crop_size)
    return warp(pixels, local, crop_size)

  out = tf.cond(tf.io.is_jpeg(encoded), jpeg,
                lambda: warp(decode_full(encoded), crop_to_image, crop_size))
  return tf.ensure_shape(out, [*crops.size_hw(crop_size), 3])
