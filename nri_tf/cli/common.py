"""What the command-line entry points share: progress output that suits the terminal or a
log file (the one policy for errors, `report_known_errors`, is the data layer's:
`data_pipelines.errors`, which `python -m data_pipelines.generate` uses too).

Building blocks:
  `keras_verbose`        the Keras ``verbose`` for "auto": a progress bar on a terminal,
                         one line per epoch otherwise
  `log_to_stderr`        progress messages of a command

Error policy: input is validated where it enters (flags, dataset reader, run directories,
export and serving arguments), which raise `data_pipelines.errors.UserError` (DatasetError,
ConfigError, RunDirectoryError, ExportError, ...). Those, file-system errors (OSError: a
missing file, a full disk, no permission) and a diverged training run (FloatingPointError)
are reported on one line; any other exception, an internal ValueError included, propagates
with its traceback.
"""

from __future__ import annotations

import sys


def keras_verbose(verbose: int | str) -> int:
    """Keras' ``verbose`` for a command's ``--verbose``: "auto" is 1 (a progress bar
    redrawn in place) when stdout is a terminal and 2 (one line per epoch) when it is a
    file or a pipe, where the bar's carriage returns would fill the log."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
