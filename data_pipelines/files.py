"""Files and directories that appear complete or not at all, with the permissions the umask
gives (datasets, run directories and exports all use these).

`tempfile` creates private files (0600) and directories (0700) whatever the umask, so
anything built in a temporary place and renamed into view gets `apply_umask` first: a TF
Serving process or a colleague running as another user can then read it as it could read
any other file this process writes.

A staging directory is a hidden sibling named ``.NAME.KIND-HOST-PID-SUFFIX`` (KIND is
"partial" or "old"). A process killed outright (SIGKILL, a lost machine) cannot remove its
own (SIGTERM is made an interrupt, `interrupt_on_sigterm`, so cleanup code runs); the next
`staging_directory` for the same NAME removes those whose process no longer runs on this
host, so interrupted work is cleaned up by the next run.

Building blocks:
  `umask`                the process's umask, read without changing it
  `apply_umask`          chmod to what open()/mkdir() would have given (0666/0777 & ~umask)
  `write_text_atomic`    replace a file so that readers see the old or the new text, never half
  `write_json_atomic`, `read_json`   the same for strict JSON objects (run files, caches)
  `check_creatable`      before any work: a path's nearest existing ancestor is a writable directory
  `staging_directory`    a fresh hidden sibling to build into, stale ones removed first
  `remove_stale`         remove the staging directories of NAME that dead processes left
  `interrupt_on_sigterm` SIGTERM raises KeyboardInterrupt like Ctrl-C, so cleanup code runs
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile

from data_pipelines.errors import UserError

STAGING_KINDS = ("partial", "old")


def umask() -> int:
    """The process's umask (e.g. 0o022), read from /proc where possible so that it is never
    changed, not even for a moment (another thread might create a file meanwhile)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def apply_umask(path: str) -> None:
    """Gives ``path`` the mode a plain open() (files) or mkdir() (directories) would have."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask())


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a hidden temporary sibling (``.tmp-*``) and a
    rename, so that readers see the old file or the new one, never half; the new file gets
    the umask's permissions. Raises OSError (nothing left behind) when it cannot."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        apply_umask(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _host() -> str:
    return socket.gethostname() or "localhost"


def staging_directory(parent: str, name: str, kind: str = "partial") -> str:
    """Creates and returns ``parent/.NAME.KIND-HOST-PID-SUFFIX`` (SUFFIX: mkdtemp's random
    letters; mode 0700 until `apply_umask`), after removing the staging directories of ``name`` that processes no
    longer running left (`remove_stale`). Raises OSError when ``parent`` is unwritable."""
    remove_stale(parent, name)
    return tempfile.mkdtemp(prefix=f".{name}.{kind}-{_host()}-{os.getpid()}-", dir=parent)


def remove_stale(parent: str, name: str) -> list[str]:
    """Removes the staging directories of ``name`` in ``parent`` whose process, on this
    host, no longer runs; returns their paths. Those of live processes, of other hosts and
    anything else are left alone."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.({'|'.join(STAGING_KINDS)})-"
                         rf"{re.escape(_host())}-(\d+)-[^/]+$")
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = pattern.match(entry)
        if match and not _process_runs(int(match.group(2))):
            path = os.path.join(parent, entry)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_runs(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def interrupt_on_sigterm() -> None:
    """Makes SIGTERM (``kill``, a job scheduler, ``docker stop``) raise KeyboardInterrupt in
    the main thread as Ctrl-C does, so that staging directories are removed and `finally`
    blocks run instead of the process vanishing mid-write. For command-line mains."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def check_creatable(path: str, what: str) -> None:
    """UserError, before any work, when ``path`` (a file or directory to create, ``what`` in
    the message, e.g. "--output out/run") could not be made: its nearest existing ancestor
    is not a writable directory (a file, or no permission)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"{what} cannot be written: {parent} is not a writable directory")


def write_json_atomic(path: str, payload: dict) -> None:
    """Writes ``payload`` as strict JSON (no NaN) so that readers see the old file or the
    new one, never half, with the umask's permissions (`write_text_atomic`).

    Raises:
      UserError naming the path when it cannot be written (disk full, permissions).
    """
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"
    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def read_json(path: str) -> dict:
    """A JSON object from ``path``; UserError naming the file if it is missing,
    unreadable or not a JSON object."""
    try:
        with open(path) as stream:
            payload = json.load(stream)
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is unreadable ({error})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return payload
