"""Every image mode PIL reads from a file becomes correct 8-bit RGB, on every route that decodes
image files (dataset builders, predict, the benchmark)."""
import io

import numpy as np
import pytest
from PIL import Image

from posemachines.core import errors, images
from posemachines.data import benchmark
from posemachines.data import report as report_lib
from posemachines.tools import predict

GREY = images.GREY


def _saved(tmp_path, image, fmt, name, **kw):
  path = tmp_path / name
  image.save(path, fmt, **kw)
  return path


def _cases(tmp_path):
  """(path, the mode PIL reads it in, expected uint8 [H, W, 3], tolerance)."""
  cases = []
  add = lambda path, mode, expected, tol=0: cases.append(
      (path, mode, np.asarray(expected, np.float64), tol))
  grey = np.array([[0, 60, 120, 250]], np.uint8)
  rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
  add(_saved(tmp_path, Image.fromarray(grey > 100), 'PNG', 'one.png'), '1',
      np.repeat(np.where(grey > 100, 255, 0)[..., None], 3, -1))
  add(_saved(tmp_path, Image.fromarray(grey), 'PNG', 'grey.png'), 'L',
      np.repeat(grey[..., None], 3, -1))
  add(_saved(tmp_path, Image.fromarray(rgb), 'PNG', 'rgb.png'), 'RGB', rgb)
  # Alpha: composited over mid-grey. Alpha 255, 0, 128, 255.
  alpha = np.array([[255, 0, 128, 255]], np.uint8)
  over = lambda colour: colour * (alpha[..., None] / 255) + GREY * (1 - alpha[..., None] / 255)
  add(_saved(tmp_path, Image.fromarray(np.dstack([rgb, alpha]), 'RGBA'), 'PNG', 'rgba.png'),
      'RGBA', over(rgb), 1)
  add(_saved(tmp_path, Image.fromarray(np.dstack([grey, alpha]), 'LA'), 'PNG', 'la.png'), 'LA',
      over(np.repeat(grey[..., None], 3, -1)), 1)
  # A palette, then the same with index 1 transparent (PNG tRNS), then with an alpha band.
  palette = Image.fromarray(np.array([[0, 1, 2, 3]], np.uint8), 'P')
  palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 * 3 - 12))
  add(_saved(tmp_path, palette, 'PNG', 'palette.png'), 'P', rgb)
  add(_saved(tmp_path, palette, 'PNG', 'palette_trns.png', transparency=1), 'P',
      [[[255, 0, 0], [GREY] * 3, [0, 0, 255], [10, 20, 30]]])
  pa = palette.convert('PA')
  pa.putalpha(Image.fromarray(alpha))
  add(_saved(tmp_path, pa, 'TIFF', 'pa.tif'), 'PA', over(rgb), 1)
  add(_saved(tmp_path, palette, 'GIF', 'palette.gif'), 'P', rgb)
  # Colour spaces.
  cmyk = Image.frombytes('CMYK', (3, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255]))
  add(_saved(tmp_path, cmyk, 'TIFF', 'cmyk.tif'), 'CMYK', [[[255] * 3, [0, 255, 255], [0] * 3]])
  add(_saved(tmp_path, cmyk, 'JPEG', 'cmyk.jpg', quality=100), 'CMYK',
      [[[255] * 3, [0, 255, 255], [0] * 3]], 8)
  ycc = Image.fromarray(rgb).convert('YCbCr')
  add(_saved(tmp_path, ycc, 'TIFF', 'ycbcr.tif'), 'YCbCr', rgb, 3)
  lab = Image.frombytes('LAB', (2, 1), bytes([255, 0, 0, 0, 0, 0]))   # a*, b* signed: 0
  add(_saved(tmp_path, lab, 'TIFF', 'lab.tif'), 'LAB', [[[255] * 3, [0] * 3]], 2)
  # Deep grey: 16-bit scaled by 255 / 65535, not clipped to white.
  deep = np.array([[0, 257 * 60, 257 * 200, 65535]], np.uint16)
  expected = np.repeat(np.array([[0, 60, 200, 255]])[..., None], 3, -1)
  add(_saved(tmp_path, Image.fromarray(deep), 'PNG', 'grey16.png'), 'I;16', expected)
  big_endian = Image.frombytes('I;16B', (4, 1), deep.astype('>u2').tobytes())
  add(_saved(tmp_path, big_endian, 'TIFF', 'grey16b.tif'), 'I;16B', expected)
  add(_saved(tmp_path, Image.fromarray(deep.astype(np.int32), 'I'), 'TIFF', 'int32.tif'), 'I',
      expected)
  # 32-bit integers outside 0-65535: stretched from the minimum to the maximum.
  wide = np.array([[-1000, 0, 1000, 99000]], np.int32)
  add(_saved(tmp_path, Image.fromarray(wide, 'I'), 'TIFF', 'int32_wide.tif'), 'I',
      np.repeat(np.round((wide[..., None] + 1000) * 255 / 100000), 3, -1))
  # Floats: [0, 1] scaled by 255, [0, 255] kept, anything else stretched; NaN is 0.
  for name, values, out in (('unit', [0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),
                            ('bytes', [0.0, 60.0, 200.4, 255.0], [0, 60, 200, 255]),
                            ('wide', [-1.0, 0.0, 1.0, 3.0], [0, 64, 128, 255]),
                            ('nan', [np.nan, 0.5, 1.0, 0.0], [0, 128, 255, 0])):
    image = Image.fromarray(np.array([values], np.float32), 'F')
    add(_saved(tmp_path, image, 'TIFF', f'float_{name}.tif'), 'F',
        np.repeat(np.array([out])[..., None], 3, -1))
  return cases


def test_every_mode_to_8bit_rgb(tmp_path):
  cases = _cases(tmp_path)
  modes = {mode for _, mode, _, _ in cases}
  assert modes == {'1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'CMYK', 'YCbCr', 'LAB', 'I', 'I;16',
                   'I;16B', 'F'}
  for path, mode, expected, tol in cases:
    with Image.open(path) as im:
      assert im.mode == mode, path                   # the file really holds that mode
    for got in (images.read(path), predict.read_image(str(path))):
      assert got.dtype == np.uint8 and got.shape == expected.shape, path
      assert np.abs(got - expected).max() <= tol, (path, got.tolist())
    # The dataset builders' reader, losslessly re-encoded.
    encoded, (h, w) = report_lib.read_image(path, 'png')
    assert (h, w) == expected.shape[:2]
    decoded = np.asarray(Image.open(io.BytesIO(encoded)))
    assert np.abs(decoded - expected).max() <= tol, (path, decoded.tolist())
    assert report_lib.inspect_image(path).mode == mode


def test_16bit_grey_png_is_not_white(tmp_path):
  """The reported case: a 16-bit greyscale photo-like gradient keeps its tones."""
  ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
  path = tmp_path / 'ramp16.png'
  Image.fromarray(ramp).save(path)
  encoded, _ = report_lib.read_image(path, 'jpeg')
  pixels = np.asarray(Image.open(io.BytesIO(encoded)), np.float64)
  assert abs(pixels.mean() - 127.5) < 2 and pixels.min() < 5 and pixels.max() > 250
  examples = benchmark.examples_from_images(str(path), '32x24')
  small = np.asarray(Image.open(io.BytesIO(examples[0]['image'])), np.float64)
  assert abs(small.mean() - 127.5) < 3


def test_gif_frames_and_unreadable_files(tmp_path):
  frames = [Image.fromarray(np.full((8, 8), v, np.uint8)).convert('P') for v in (10, 200)]
  path = tmp_path / 'clip.gif'
  frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
  video, _ = predict.read_video(str(path))
  assert video.shape == (2, 8, 8, 3) and video[0].max() <= 12 and video[1].min() >= 198
  (tmp_path / 'broken.png').write_bytes(b'\x89PNG not really')
  with pytest.raises(errors.BadFile, match='broken.png is not a readable image'):
    images.read(tmp_path / 'broken.png')
  with pytest.raises(errors.MissingData, match='no such image: .*nowhere.png'):
    images.read(tmp_path / 'nowhere.png')
