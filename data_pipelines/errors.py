"""The one exception type for problems the user can fix.

`UserError` is raised where input enters the program (command-line flags, dataset
files, run directories, export and serving arguments) with a message that names the
problem and the fix. Only the command-line layer (`nri_tf.cli.common.report_user_errors`)
turns it into a one-line ``error: ...`` message; every other exception, a ValueError from
a bug included, keeps its traceback. It derives from ValueError so that library callers
catching ValueError keep working.

  `UserError`     base of every such error (ConfigError, RunDirectoryError, ExportError, ...)
  `DatasetError`  a dataset cannot be written or read (storage, readers, normalisation)
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input that the user can fix; the message names the problem and what to do."""


class DatasetError(UserError):
    """A dataset cannot be written or read; the one-line message names the file and problem."""
