"""Reading the files users download into a tfds manual directory, and a builder base for them.

The real datasets cannot be downloaded by the library: their owners distribute them after a
registration. The user puts the archives (or what they extract to) in a manual directory:
``--config.data.manual_dir``, or tfds' default ``<data_dir>/downloads/manual``. A dataset's files
are looked for in ``<manual_dir>/<dataset name>/`` first, then in ``<manual_dir>/`` itself.

``locate`` finds a dataset's files there as an ``Archive``: a zip, a tar (streamed once, in its own
order, so a 12 GB tar.gz is never extracted) or an extracted folder, with the member prefix under
which the dataset's files lie.
"""
from __future__ import annotations

from concurrent import futures
import contextlib
import json
import os
import tarfile
from typing import Iterable, Iterator
import zipfile

import tensorflow_datasets as tfds

from posemachines.core import errors
from posemachines.data import local_builder
from posemachines.data import report as report_lib

REPORT_FILE = 'skip_report.json'
MANUAL_DIR_FLAG = '--config.data.manual_dir'


class MissingDataset(errors.MissingData):
  """Real datasets whose downloaded files are not in the manual directory, each with what is
  missing and how to get it; one line that ends by naming the flag that says where they are."""

  def __init__(self, missing: list[tuple[str, str]], flag: str = MANUAL_DIR_FLAG):
    self.missing, self.flag = list(missing), flag
    what = '; '.join(f'{name}: {detail}' for name, detail in self.missing)
    head = f'{len(self.missing)} datasets are missing. ' if len(self.missing) > 1 else ''
    super().__init__(f'{head}{what}. Put the downloaded files in a folder and give it with '
                     f'{flag}=DIR')

  def with_flag(self, flag: str) -> MissingDataset:
    return MissingDataset(self.missing, flag)


@contextlib.contextmanager
def manual_dir_flag(flag: str):
  """Within it, a MissingDataset names ``flag`` (e.g. a command's own ``--manual_dir``)."""
  try:
    yield
  except MissingDataset as e:
    raise e.with_flag(flag) from None


class Archive:
  """Files by relative name ('/'-separated) in a folder, a zip or a tar."""

  def __init__(self, path: str):
    self.path = path

  def read(self, name: str) -> bytes:
    raise NotImplementedError

  def find(self, marker: str) -> str | None:
    """The member prefix under which ``marker`` (a file, or a folder ending in '/') lies."""
    raise NotImplementedError

  def iterate(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
    """(name, contents) for each wanted name (contents None when absent), in a cheap order."""
    for name in names:
      try:
        yield name, self.read(name)
      except KeyError:
        yield name, None

  def describe(self, name: str = '') -> str:
    return f'{self.path}:{name}' if name else self.path


class FolderArchive(Archive):

  def read(self, name: str) -> bytes:
    path = os.path.join(self.path, name)
    if not os.path.isfile(path):
      raise KeyError(name)
    with open(path, 'rb') as f:
      return f.read()

  def find(self, marker: str) -> str | None:
    for depth_prefix in _walk_prefixes(self.path, depth=2):
      target = os.path.join(self.path, depth_prefix, marker)
      if (os.path.isdir(target) if marker.endswith('/') else os.path.isfile(target)):
        return depth_prefix
    return None

  def describe(self, name: str = '') -> str:
    return os.path.join(self.path, name)


def _walk_prefixes(root: str, depth: int) -> list[str]:
  """'' and the relative sub-folders of ``root`` down to ``depth``, shallowest first."""
  out, level = [''], ['']
  for _ in range(depth):
    nxt = []
    for prefix in level:
      try:
        entries = sorted(os.scandir(os.path.join(root, prefix)), key=lambda e: e.name)
      except OSError:
        continue
      nxt.extend(f'{prefix}{e.name}/' for e in entries if e.is_dir())
    out.extend(nxt)
    level = nxt
  return out


def _prefix_of(names: Iterable[str], marker: str) -> str | None:
  best = None
  for name in names:
    if marker.endswith('/'):
      i = name.find(marker)
      if i >= 0 and (i == 0 or name[i - 1] == '/'):
        prefix = name[:i]
      else:
        continue
    elif name == marker or name.endswith('/' + marker):
      prefix = name[:len(name) - len(marker)]
    else:
      continue
    if best is None or len(prefix) < len(best):
      best = prefix
  return best


class ZipArchive(Archive):

  def __init__(self, path: str):
    super().__init__(path)
    try:
      self._zip = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
      raise errors.BadFile(f'{path} is not a readable zip archive: {e}') from e
    self._names = set(self._zip.namelist())

  def read(self, name: str) -> bytes:
    if name not in self._names:
      raise KeyError(name)
    return self._zip.read(name)

  def find(self, marker: str) -> str | None:
    return _prefix_of(self._names, marker)


class TarArchive(Archive):
  """A tar (optionally compressed), read as a stream: ``iterate`` makes one pass."""

  def _open(self):
    try:
      return tarfile.open(self.path, 'r|*')
    except (tarfile.TarError, OSError) as e:
      raise errors.BadFile(f'{self.path} is not a readable tar archive: {e}') from e

  def find(self, marker: str, look: int = 50) -> str | None:
    with self._open() as tar:
      names = []
      for member in tar:
        names.append(member.name[2:] if member.name.startswith('./') else member.name)
        found = _prefix_of(names, marker)
        if found is not None or len(names) >= look:
          return found
    return None

  def read(self, name: str) -> bytes:
    for _, data in self.iterate([name]):
      if data is None:
        raise KeyError(name)
      return data
    raise KeyError(name)

  def iterate(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
    wanted = set(names)
    try:
      with self._open() as tar:
        for member in tar:
          name = member.name[2:] if member.name.startswith('./') else member.name
          if name in wanted and member.isfile():
            wanted.discard(name)
            yield name, tar.extractfile(member).read()
            if not wanted:
              break
    except (tarfile.TarError, OSError, EOFError) as e:  # a truncated archive
      raise errors.BadFile(f'{self.path}: archive unreadable after some members: {e}') from e
    for name in sorted(wanted):
      yield name, None


def open_archive(path: str) -> Archive:
  if os.path.isdir(path):
    return FolderArchive(path)
  if path.endswith('.zip'):
    return ZipArchive(path)
  if any(path.endswith(ext) for ext in ('.tar', '.tar.gz', '.tgz')):
    return TarArchive(path)
  raise errors.BadFile(f'{path}: not a folder, .zip, .tar, .tar.gz or .tgz')


def locate(manual_dir: str, dataset: str, archives: tuple[str, ...], marker: str,
           download: str) -> tuple[Archive, str]:
  """The archive holding ``marker`` for ``dataset`` in the manual directory, and its prefix.

  Looks in ``<manual_dir>/<dataset>/`` then ``<manual_dir>/``: first for the named ``archives``,
  then for ``marker`` in the extracted folders (two levels deep). Raises MissingDataset (a
  FileNotFoundError) saying where it looked and, from ``download``, how to get the files.
  """
  manual_dir = os.path.expanduser(os.fspath(manual_dir))
  bases = [os.path.join(manual_dir, dataset), manual_dir]
  for base in bases:
    for name in archives:
      path = os.path.join(base, name)
      if os.path.isfile(path):
        archive = open_archive(path)
        prefix = archive.find(marker)
        if prefix is None:
          raise errors.BadFile(f'{path} holds no {marker!r}: is it the right archive?')
        return archive, prefix
  for base in bases:
    if os.path.isdir(base):
      folder = FolderArchive(base)
      prefix = folder.find(marker)
      if prefix is not None:
        return folder, prefix
  raise MissingDataset([(dataset, f'found none of {", ".join(archives)} nor an extracted '
                                  f'{marker!r} in {" or ".join(bases)}; {download}')])


def decoded(archive: Archive, names: Iterable[str], encoding: str = 'jpeg',
            workers: int | None = None, chunk: int = 64):
  """(name, (encoded bytes, (height, width)) or BadImage) for each name, images fully decoded in
  parallel while the archive is read in order."""
  workers = workers or min(8, os.cpu_count() or 1)

  def check(item):
    name, data = item
    if data is None:
      return name, report_lib.BadImage('missing image', archive.describe(name),
                                       'not in the archive')
    try:
      return name, report_lib.read_image_bytes(data, archive.describe(name), encoding)
    except report_lib.BadImage as e:
      return name, e

  with futures.ThreadPoolExecutor(max_workers=workers) as pool:
    batch = []
    for item in archive.iterate(names):
      batch.append(item)
      if len(batch) >= chunk:
        yield from pool.map(check, batch)
        batch = []
    yield from pool.map(check, batch)


class ManualBuilder(local_builder.LocalBuilder, skip_registration=True):
  """A builder of files from the manual directory that keeps a SkipReport of bad input.

  Subclasses create ``self._report`` in ``_split_generators``; after preparation the report is
  printed and stored as ``skip_report.json`` next to the data. ``DOWNLOAD`` says in one line
  where the files come from.
  """
  DOWNLOAD = ''

  def _download_and_prepare(self, dl_manager, download_config):
    super()._download_and_prepare(dl_manager, download_config)
    report = getattr(self, '_report', None)
    if report is not None:
      (self.data_path / REPORT_FILE).write_text(json.dumps(report.summary(), indent=2))
      print(report.format(), flush=True)


def skip_report(builder) -> report_lib.SkipReport:
  """The SkipReport stored when ``builder`` was prepared."""
  path = builder.data_path / REPORT_FILE
  if not path.exists():
    raise FileNotFoundError(f'no skip report at {path}: is the dataset prepared?')
  return report_lib.SkipReport.from_summary(json.loads(path.read_text()))


def default_manual_dir(data_dir: str) -> str:
  """tfds' default manual directory of a data directory."""
  return os.path.join(os.path.expanduser(data_dir), 'downloads', 'manual')


def prepare(builder, manual_dir: str | None):
  """Prepares ``builder`` from ``manual_dir`` (tfds' default when empty) unless it is prepared.

  Raises MissingDataset (a FileNotFoundError) saying how to get the files when the manual
  directory is missing or empty, or does not hold the dataset's files.
  """
  if builder.is_prepared():
    return builder
  default = not manual_dir
  manual_dir = os.path.expanduser(manual_dir or default_manual_dir(builder.data_dir_root))
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    state = 'is empty' if os.path.isdir(manual_dir) else 'does not exist'
    raise MissingDataset([(builder.name, f'the manual directory {manual_dir}'
                           f'{" (the default)" if default else ""} {state}; {builder.DOWNLOAD}')])
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False,
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return builder
