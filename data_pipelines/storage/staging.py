"""Atomic output directories: a dataset appears complete or not at all.

Building blocks:
  `StagingDirectory`   a temporary sibling of the output, moved into place by `commit`
  `check_output_dir`   whether a dataset could be written to a directory now
  `foreign_entries`    what in a directory no dataset of this package would hold
"""

from __future__ import annotations

import os
import re
import shutil

from data_pipelines import files
from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.storage.metadata import METADATA_FILE, SHARD_NAME

# The names of what this package writes into a dataset directory: --overwrite replaces only
# directories holding nothing else (native: metadata and shards; reference: the .npy files).
_REFERENCE_NAME = rf"(loc|vel|edges|feat)_({'|'.join(SPLITS)})_[A-Za-z]+\d+\.npy"
_OWN_FILE_PATTERN = re.compile(rf"{re.escape(METADATA_FILE)}|{SHARD_NAME}|{_REFERENCE_NAME}")


def foreign_entries(directory: str) -> list[str]:
    """The entries of ``directory`` (sorted) that no dataset of this package would hold."""
    return sorted(entry for entry in os.listdir(directory) if not _OWN_FILE_PATTERN.fullmatch(entry))


class StagingDirectory:
    """A temporary sibling of ``output_dir`` that `commit` moves into place atomically.

    Creating it is the writability check: it fails (DatasetError) before any work is done
    if the output exists and is not empty (unless ``overwrite``, which replaces only a
    dataset directory: `foreign_entries` must find nothing) or cannot be created. Staging
    directories that killed runs left for the same output are removed first
    (`data_pipelines.files.staging_directory`); the committed directory gets the umask's
    permissions.
    """

    def __init__(self, output_dir: str, overwrite: bool = False):
        self.output_dir = os.path.abspath(output_dir)
        self.overwrite = overwrite
        self._check_target()
        parent, self._name = os.path.split(self.output_dir)
        self._created_parent = _first_missing_ancestor(parent)
        existing = os.path.dirname(self._created_parent) if self._created_parent else parent
        if not os.path.isdir(existing):
            raise DatasetError(f"cannot write dataset to {output_dir}: {existing} is not a directory")
        try:
            os.makedirs(parent, exist_ok=True)
            self.path = files.staging_directory(parent, self._name)
        except OSError as error:
            self._remove_created_parents()
            raise DatasetError(f"cannot write dataset to {output_dir}: "
                               f"{error.strerror or error}") from None

    def _check_target(self) -> None:
        target = self.output_dir
        if os.path.isdir(target):
            if not os.listdir(target):
                return
            if not self.overwrite:
                raise DatasetError(f"{target} already exists and is not empty; "
                                   "choose another output or pass overwrite (--overwrite)")
            foreign = foreign_entries(target)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise DatasetError(f"{target} is not a dataset directory (it holds {shown}); "
                                   "overwrite only replaces datasets: remove it yourself or "
                                   "choose another output")
        elif os.path.lexists(target):
            raise DatasetError(f"{target} exists and is not a directory")

    def commit(self) -> None:
        """Moves the staged directory to ``output_dir`` (replacing it if ``overwrite``)."""
        self._check_target()
        files.apply_umask(self.path)
        parent = os.path.dirname(self.output_dir)
        old = None
        if os.path.isdir(self.output_dir) and os.listdir(self.output_dir):
            old = files.staging_directory(parent, self._name, kind="old")
            os.replace(self.output_dir, os.path.join(old, "dataset"))
        os.replace(self.path, self.output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Removes everything staged, and parent directories this object created."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created_parents()

    def _remove_created_parents(self) -> None:
        if self._created_parent is None:
            return
        directory = os.path.dirname(self.output_dir)
        while True:
            try:
                os.rmdir(directory)
            except OSError:
                return
            if directory == self._created_parent:
                return
            directory = os.path.dirname(directory)


def check_output_dir(output_dir: str, overwrite: bool = False) -> None:
    """Raises DatasetError unless a dataset could be written to ``output_dir`` now: it
    must be absent or empty (or ``overwrite``) and its parent creatable and writable.
    Leaves nothing behind."""
    StagingDirectory(output_dir, overwrite).abort()


def _first_missing_ancestor(path: str) -> str | None:
    """The outermost directory on ``path`` that does not exist yet (None if path exists)."""
    missing = None
    while not os.path.exists(path):
        missing = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing

