"""What a command prints on stderr: its own logs and every error, not the libraries' chatter.

JAX, orbax, TensorFlow and tensorflow-datasets log hundreds of INFO and WARNING lines per run
(backends they could not load, checkpoint bookkeeping, dataset info being read). Every
command-line entry point runs its ``main`` through ``run``, which shows only the log records of
posemachines itself (and of the experiments' scripts) plus every record at ERROR or above;
``--library_logs`` shows them all. A user error (posemachines/core/errors.py) is printed as one
line with exit status 2.

TensorFlow's C++ start-up banners are kept off by environment defaults set in
posemachines/__init__.py before TensorFlow is imported.
"""
from __future__ import annotations

import logging as std_logging
import os

from absl import app, flags
from absl import logging

from posemachines.core import errors

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Our own code: the package, and the experiments' scripts and configs (installed as
# posemachines.experiments, or the experiments/ folder beside the package in a checkout).
OWN_DIRS = (_PACKAGE_DIR + os.sep, os.path.join(os.path.dirname(_PACKAGE_DIR), 'experiments')
            + os.sep)


class OwnLogsOnly(std_logging.Filter):
  """Lets through posemachines' own log records and every error; drops library chatter."""

  def filter(self, record):
    if record.levelno >= std_logging.ERROR:
      return True
    path = os.path.abspath(record.pathname or '')
    return path.startswith(OWN_DIRS)


def define_flags() -> None:
  """``--library_logs`` (defined once, whichever entry point asks first)."""
  if 'library_logs' not in flags.FLAGS:
    flags.DEFINE_bool('library_logs', False, 'Also show the INFO/WARNING logs of jax, orbax, '
                      'tensorflow and tensorflow-datasets (by default only posemachines logs '
                      'and errors show).')


def own_logs_only() -> None:
  """Hides library log records on the absl handler (the one every Python logger reaches)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, OwnLogsOnly) for f in handler.filters):
    handler.addFilter(OwnLogsOnly())


def quiet(main):
  """``main`` with library logs hidden unless ``--library_logs`` is given."""

  def wrapped(argv):
    if not flags.FLAGS['library_logs'].value:
      own_logs_only()
    return main(argv)

  return wrapped


def run(main, program: str) -> None:
  """``app.run(main)`` as every posemachines command runs: library logs hidden, user errors as
  one line on stderr with exit status 2 (``program`` names the command in that line)."""
  define_flags()
  app.run(errors.exit_on_user_error(quiet(main), program))
