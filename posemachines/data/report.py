"""Bookkeeping of bad input in dataset builders, and a strict image reader.

Every dataset builder of the project meets bad records: missing or corrupt images, non-finite
coordinates, degenerate boxes. A builder either skips such an item or keeps it (possibly adjusted),
and a ``SkipReport`` counts both, by a short reason, with a few example items per reason, so that
what was left out of a prepared dataset is visible at the end of preparation and stays on disk next
to the data (``summary`` is JSON-ready, ``from_summary`` reads it back).

``read_image`` fully decodes an image before accepting it, so that a truncated or corrupt file is
caught while building instead of failing (or silently producing grey pixels) during training.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import os

from absl import logging
from PIL import Image

from posemachines.core import images

_EXAMPLES_PER_REASON = 5
# PIL modes of JPEGs that decoders read as three channels as they are (their bytes are kept).
_DIRECT_JPEG_MODES = ('RGB', 'L')
# PIL names camera JPEGs with extra frames MPO; decoders read their first frame like any JPEG.
_JPEG_FORMATS = ('JPEG', 'MPO')


class SkipReport:
  """Counts skipped items and kept-but-adjusted items by reason, and the good examples."""

  def __init__(self, name: str = '', examples_per_reason: int = _EXAMPLES_PER_REASON):
    self.name = name
    self.examples_per_reason = examples_per_reason
    self.num_kept = 0
    self._skips = collections.OrderedDict()  # reason -> [count, [items]]
    self._notes = collections.OrderedDict()  # note -> [count, [items]]

  def skip(self, reason: str, item: str) -> None:
    """Counts ``item`` (a record, a file) as left out for ``reason``."""
    self._add(self._skips, reason, item)

  def keep(self, note: str, item: str) -> None:
    """Counts ``item`` as kept although ``note`` applies (e.g. it was adjusted)."""
    self._add(self._notes, note, item)

  def kept(self) -> None:
    """Counts one good example written to the dataset."""
    self.num_kept += 1

  @property
  def num_skipped(self) -> int:
    return sum(count for count, _ in self._skips.values())

  def count(self, reason: str) -> int:
    """How many items were skipped for, or kept with, ``reason``."""
    entry = self._skips.get(reason) or self._notes.get(reason)
    return entry[0] if entry else 0

  def _add(self, table: dict, reason: str, item: str) -> None:
    entry = table.setdefault(reason, [0, []])
    entry[0] += 1
    if len(entry[1]) < self.examples_per_reason:
      entry[1].append(str(item))

  def summary(self) -> dict:
    """A JSON-ready dict: totals, and per reason its count and a few example items."""
    table = lambda t: {r: {'count': c, 'examples': list(ex)} for r, (c, ex) in t.items()}
    return {'name': self.name, 'kept': self.num_kept, 'skipped': self.num_skipped,
            'skips': table(self._skips), 'notes': table(self._notes)}

  @classmethod
  def from_summary(cls, summary: dict) -> SkipReport:
    """The report that ``summary()`` described (only its example items are kept)."""
    report = cls(summary.get('name', ''))
    report.num_kept = int(summary.get('kept', 0))
    for key, table in (('skips', report._skips), ('notes', report._notes)):
      for reason, entry in summary.get(key, {}).items():
        table[reason] = [int(entry['count']), list(entry['examples'])]
    return report

  def format(self) -> str:
    """A readable multi-line report: totals, then each reason with its count and examples."""
    title = f'{self.name}: ' if self.name else ''
    lines = [f'{title}kept {self.num_kept} examples, skipped {self.num_skipped} items']
    for heading, table in (('skipped', self._skips), ('kept', self._notes)):
      for reason, (count, examples) in table.items():
        lines.append(f'  {heading} {count} x {reason}')
        lines.extend(f'    {item}' for item in examples)
        if count > len(examples):
          lines.append(f'    ... and {count - len(examples)} more')
    return '\n'.join(lines)

  def log(self) -> None:
    """Logs ``format()``, as a warning when something was skipped."""
    level = logging.WARNING if self.num_skipped else logging.INFO
    logging.log(level, '%s', self.format())

  def __str__(self) -> str:
    return self.format()


class BadImage(ValueError):
  """An image file that cannot be used; ``reason`` is a SkipReport reason."""

  def __init__(self, reason: str, path: str | os.PathLike, detail: str):
    super().__init__(f'{reason}: {os.fspath(path)}: {detail}')
    self.reason = reason
    self.path = os.fspath(path)
    self.detail = detail


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """Size, file format (as PIL names it) and PIL mode of a fully decoded image."""
  height: int
  width: int
  format: str
  mode: str


def _open(path: str | os.PathLike) -> tuple[Image.Image, str, str]:
  """The fully decoded image at ``path`` in 8-bit RGB (core/images.py), its file format and its
  original mode."""
  if not os.path.isfile(path):
    raise BadImage('missing image', path, 'no such file')
  with open(path, 'rb') as f:
    return _decode(f.read(), path)


def _decode(data: bytes, path: str | os.PathLike) -> tuple[Image.Image, str, str]:
  """As ``_open``, for the contents ``data`` of the file named ``path``."""
  try:
    image = Image.open(io.BytesIO(data))
    image.load()  # full decode: raises on truncated or corrupt data
  except Image.UnidentifiedImageError as e:
    raise BadImage('corrupt image', path, 'not in an image format PIL can identify') from e
  except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
    raise BadImage('corrupt image', path, f'{type(e).__name__}: {e}') from e
  if image.width < 1 or image.height < 1:
    raise BadImage('corrupt image', path, f'empty image of size {image.size}')
  fmt, mode = image.format or '', image.mode
  try:
    image = images.to_rgb(image)
  except Exception as e:
    raise BadImage('unsupported image', path, f'cannot convert {mode} to RGB: {e}') from e
  return image, fmt, mode


def inspect_image(path: str | os.PathLike) -> ImageInfo:
  """Fully decodes the image at ``path``; raises ``BadImage`` naming the path if it is unusable."""
  image, fmt, mode = _open(path)
  return ImageInfo(image.height, image.width, fmt, mode)


def read_image(path: str | os.PathLike, encoding: str = 'jpeg') -> tuple[bytes, tuple[int, int]]:
  """The encoded image at ``path`` and its (height, width), after fully decoding it.

  A JPEG whose pixels are RGB or grey keeps its original bytes (no re-encoding, no quality loss);
  any other image (PNG, BMP, CMYK JPEG, palette, RGBA, 16-bit, float, ...) is converted to 8-bit
  RGB as ``posemachines.core.images.to_rgb`` does (deep modes scaled, not clipped) and encoded in
  ``encoding`` ('jpeg' or 'png'), the builder's feature encoding. Raises ``BadImage`` (a
  ValueError naming the path) for a missing file, a truncated or corrupt image, or one that cannot
  be converted to RGB (``reason`` 'missing image', 'corrupt image' or 'unsupported image').
  """
  if not os.path.isfile(path):
    raise BadImage('missing image', path, 'no such file')
  with open(path, 'rb') as f:
    return read_image_bytes(f.read(), path, encoding)


def read_image_bytes(data: bytes, path: str | os.PathLike,
                     encoding: str = 'jpeg') -> tuple[bytes, tuple[int, int]]:
  """As ``read_image``, for the contents ``data`` of the file (or archive member) ``path``."""
  if encoding not in ('jpeg', 'png'):
    raise ValueError(f'encoding must be jpeg or png, got {encoding!r}')
  image, fmt, mode = _decode(data, path)
  size = (image.height, image.width)
  if fmt in _JPEG_FORMATS and mode in _DIRECT_JPEG_MODES:
    return data, size
  buf = io.BytesIO()
  if encoding == 'jpeg':
    image.save(buf, format='JPEG', quality=95)
  else:
    image.save(buf, format='PNG')
  return buf.getvalue(), size
