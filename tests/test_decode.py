"""Decoding fused with the warp: every DCT ratio and crop window puts pixels where the affine says,
the same as decoding the whole image, for baseline and progressive JPEGs."""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from posemachines.data import decode
from tests import marker

MARK = (600.0, 400.0)
SIZE = 96


def _jpeg(progressive: bool, fmt: str = 'JPEG') -> bytes:
  img = np.full((720, 1280, 3), marker.BACKGROUND, np.uint8)
  x, y = int(MARK[0]), int(MARK[1])
  img[y - 20:y + 21, x - 20:x + 21] = 255  # 41 x 41: still a blob at 1/9 resolution
  buf = io.BytesIO()
  kwargs = dict(quality=95, progressive=progressive) if fmt == 'JPEG' else {}
  Image.fromarray(img).save(buf, format=fmt, **kwargs)
  return buf.getvalue()


def _crop_to_image(image_px_per_crop_px: float, degrees: float, centre=(620.0, 390.0)):
  """The crop -> image matrix of a rotated, scaled crop centred near the marker."""
  t = math.radians(degrees)
  a = image_px_per_crop_px
  m = np.array([[a * math.cos(t), -a * math.sin(t)], [a * math.sin(t), a * math.cos(t)]])
  half = (SIZE - 1) / 2
  return np.concatenate([m, (np.array(centre) - m @ [half, half])[:, None]], 1).astype(np.float32)


def _where(a, point):
  """The crop pixel that image ``point`` maps to under crop -> image matrix ``a``."""
  return np.linalg.solve(a[:, :2], np.asarray(point) - a[:, 2])


@pytest.mark.parametrize('progressive', [False, True])
@pytest.mark.parametrize('scale,ratio', [(1.0, 1), (2.5, 2), (4.5, 4), (9.0, 8)])
def test_every_ratio_lands_the_marker_on_its_keypoint(progressive, scale, ratio):
  data = tf.constant(_jpeg(progressive))
  a = _crop_to_image(scale, 30.0, centre=(620.0, 390.0) if scale < 8 else (500.0, 300.0))
  assert decode.RATIOS[int(decode.choose_ratio(tf.constant(a)))] == ratio
  fast = decode.decode_warp(data, a, SIZE).numpy()
  full = decode.decode_warp(data, a, SIZE, fast=False).numpy()
  expected = _where(a, MARK)
  np.testing.assert_allclose(marker.marker_centre(full), expected, atol=0.3)
  np.testing.assert_allclose(marker.marker_centre(fast), expected, atol=0.3)
  if ratio == 1:  # the same decoder on the same pixels: the same crop
    assert np.abs(fast.astype(int) - full.astype(int)).max() <= 1
  # Grey padding where the crop leaves the image, the same in both up to the border pixels
  # (a pixel decoded at ratio r is centred (r - 1) / 2 image pixels inside the image's edge).
  pad_fast, pad_full = (fast == 128).all(-1), (full == 128).all(-1)
  assert np.mean(pad_fast != pad_full) < 0.01
  assert ratio != 8 or pad_full.mean() > 0.1  # that crop leaves the image


def test_window_covers_exactly_what_the_warp_samples():
  a = tf.constant(_crop_to_image(2.5, 45.0))
  window, local = decode.scaled_window(a, SIZE, 720, 1280, 2)
  y0, x0, h, w = window.numpy()
  corners = np.array([[0, 0], [SIZE - 1, 0], [0, SIZE - 1], [SIZE - 1, SIZE - 1]], float)
  pts = corners @ local.numpy()[:, :2].T + local.numpy()[:, 2]
  assert (pts >= 0).all() and (pts[:, 0] <= w - 2).all() and (pts[:, 1] <= h - 2).all()
  assert w < 640 and h < 360  # a window, not the whole image


def test_crops_outside_the_image_and_pngs():
  data = tf.constant(_jpeg(False))
  outside = _crop_to_image(2.5, 0.0, centre=(5000.0, -3000.0))
  assert (decode.decode_warp(data, outside, SIZE).numpy() == 128).all()
  png = tf.constant(_jpeg(False, fmt='PNG'))
  a = _crop_to_image(2.5, 10.0)
  crop = decode.decode_warp(png, a, SIZE).numpy()
  np.testing.assert_allclose(marker.marker_centre(crop), _where(a, MARK), atol=0.3)
