"""The one exception type for problems the user can fix.

`UserError` is raised where input enters the program (command-line flags, dataset
files, run directories, export and serving arguments) with a message that names the
problem and the fix. Only the command-line entry points (`report_known_errors`) turn it
into a one-line ``error: ...`` message; every other exception, a ValueError from a bug
included, keeps its traceback. It derives from ValueError so that library callers
catching ValueError keep working.

  `UserError`            base of every such error (ConfigError, RunDirectoryError, ExportError, ...)
  `DatasetError`         a dataset cannot be written or read (storage, readers, normalisation)
  `KNOWN_ERRORS`         what a command reports on one line, without a traceback: UserError,
                         file-system errors (OSError) and a diverged run (FloatingPointError)
  `report_known_errors`  run a command, turning `KNOWN_ERRORS` into ``error: ...`` and exit 2
"""

from __future__ import annotations

import sys
from typing import Callable


class UserError(ValueError):
    """Bad input that the user can fix; the message names the problem and what to do."""


class DatasetError(UserError):
    """A dataset cannot be written or read; the one-line message names the file and problem."""


KNOWN_ERRORS = (UserError, OSError, FloatingPointError)
USER_ERROR_EXIT = 2


def report_known_errors(command: Callable[[], int], interrupted: str) -> int:
    """Runs ``command``; returns its exit code, or prints a one-line message for a
    `KNOWN_ERRORS` exception (exit 2) or Ctrl-C / SIGTERM (``interrupted``, exit 130).

    Args:
      command: the command's work, returning its exit code (0 on success).
      interrupted: what the user learns on an interruption, e.g. "nothing was written".
    """
    try:
        return command()
    except KNOWN_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return 130
