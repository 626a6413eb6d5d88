"""Atomic files and staging directories (`data_pipelines.files`): the umask is honoured,
killed processes' leftovers are cleaned, live ones and anything else are left alone."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from data_pipelines import files


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def dead_pid() -> int:
    """The id of a process that has just exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_umask_is_read_without_changing_it(umask_027):
    assert files.umask() == 0o027
    assert files.umask() == 0o027


def test_atomic_text_and_staging_get_the_umask_permissions(tmp_path, umask_027):
    path = tmp_path / "a.json"
    files.write_text_atomic(str(path), "{}\n")
    assert mode(path) == 0o640 and path.read_text() == "{}\n"
    staging = files.staging_directory(str(tmp_path), "data")
    assert mode(staging) == 0o700  # private while it is being built ...
    files.apply_umask(staging)
    assert mode(staging) == 0o750  # ... and as readable as any directory once published
    assert sorted(os.listdir(tmp_path)) == sorted(["a.json", os.path.basename(staging)])


def test_failed_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    path.write_text("old")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        files.write_text_atomic(str(path), "new")
    assert os.listdir(tmp_path) == ["a.json"] and path.read_text() == "old"


def test_stale_staging_of_dead_processes_is_removed_and_nothing_else(tmp_path):
    host, pid = socket.gethostname(), dead_pid()
    stale = [tmp_path / f".data.partial-{host}-{pid}-abc", tmp_path / f".data.old-{host}-{pid}-def"]
    kept = [tmp_path / f".data.partial-{host}-{os.getpid()}-live",       # this (live) process
            tmp_path / f".data.partial-otherhost-{pid}-x",              # another machine's
            tmp_path / f".other.partial-{host}-{pid}-x",                # another output's
            tmp_path / ".data.partial-legacy", tmp_path / "data"]       # not ours to judge
    for directory in stale + kept:
        directory.mkdir()
        (directory / "shard").write_bytes(b"x" * 10)
    new = files.staging_directory(str(tmp_path), "data")
    assert all(not path.exists() for path in stale)
    assert all(path.exists() for path in kept) and os.path.isdir(new)


def test_sigterm_interrupts_like_ctrl_c_so_cleanup_runs(tmp_path):
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    files.interrupt_on_sigterm()
    staging = files.staging_directory(str(tmp_path), "data")
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signal.SIGTERM)   # handled before the next line runs
            finally:
                os.rmdir(staging)   # what a writer's cleanup does
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.listdir(tmp_path) == []
