"""The mistakes a user can make, as one small set of error types.

Command-line entry points catch ``UserError`` and print it as one line (what is wrong, which
file or flag, what to do) with a non-zero exit status; tracebacks are left for bugs.
"""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
  """A mistake of the user's (not a bug): printed as one line by the command-line tools."""


class BadFlag(UserError, ValueError):
  """A flag or config field that is missing, misspelt or out of range."""


class BadFile(UserError, ValueError):
  """A file that exists but does not hold what it should (wrong format, shape or contents)."""


class MissingData(UserError, FileNotFoundError):
  """A file, folder or dataset that is not where the user said it would be."""


class ConfigMismatch(UserError):
  """A workdir whose saved run differs from the one asked for (config fields or arrays)."""


EXIT_USER_ERROR = 2


def exit_on_user_error(main, program: str | None = None):
  """Wraps an absl ``main(argv)``: a UserError becomes one line on stderr and exit status 2."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      name = program or (argv[0].rsplit('/', 1)[-1] if argv else 'posemachines')
      print(f'{name}: error: {e}', file=sys.stderr)
      sys.exit(EXIT_USER_ERROR)

  return wrapped
