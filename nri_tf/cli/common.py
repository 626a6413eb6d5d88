"""What the command-line entry points share: progress output that suits the terminal or a
log file, and the one policy for errors.

Building blocks:
  `keras_verbose`        the Keras ``verbose`` for "auto": a progress bar on a terminal,
                         one line per epoch otherwise
  `log_to_stderr`        progress messages of a command
  `KNOWN_ERRORS`         what a command reports on one line, without a traceback
  `report_known_errors`  run a command, turning `KNOWN_ERRORS` into ``error: ...`` and exit 2

Error policy: input is validated where it enters (flags, dataset reader, run directories,
export and serving arguments), which raise `data_pipelines.errors.UserError` (DatasetError,
ConfigError, RunDirectoryError, ExportError, ...). Those, file-system errors (OSError: a
missing file, a full disk, no permission) and a diverged training run (FloatingPointError)
are reported on one line; any other exception, an internal ValueError included, propagates
with its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from data_pipelines.errors import UserError

KNOWN_ERRORS = (UserError, OSError, FloatingPointError)
USER_ERROR_EXIT = 2


def keras_verbose(verbose: int | str) -> int:
    """Keras' ``verbose`` for a command's ``--verbose``: "auto" is 1 (a progress bar
    redrawn in place) when stdout is a terminal and 2 (one line per epoch) when it is a
    file or a pipe, where the bar's carriage returns would fill the log."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
