"""The base of every dataset builder here: data prepared from local files, never downloaded.

tfds announces every preparation as "Downloading and preparing dataset ..." and ends it with
"downloaded and prepared to ...". Nothing is downloaded by these builders (synthetic people are
drawn, the real datasets read from the files the user downloaded), so they say what they do.
"""
from __future__ import annotations

import tensorflow_datasets as tfds


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A GeneratorBasedBuilder whose preparation messages do not speak of downloading."""

  def _log_download_bytes(self) -> None:
    print(f'Preparing dataset {self.name} in {self.data_dir} (nothing is downloaded)...',
          flush=True)

  def _log_download_done(self) -> None:
    print(f'Dataset {self.name} prepared in {self.data_dir}.', flush=True)
