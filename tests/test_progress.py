"""Progress output of long loops (`data_pipelines.progress`): bars with the time left."""

import io

import pytest

from data_pipelines import progress
from data_pipelines.progress import ProgressBar, duration_text, progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A settable clock in place of `time.perf_counter` (seconds in ``clock[0]``)."""
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    return now


def test_progress_bar_reports_rate():
    stream = io.StringIO()
    bar = ProgressBar("train", 2048, stream)
    bar.update(1024)
    assert stream.getvalue() == ""  # not a terminal: only the finished line
    bar.update(2048)
    bar.close()
    line = stream.getvalue()
    assert line.count("\n") == 1 and line.startswith("train  [####")
    assert "2048/2048" in line and "sims/s" in line and "left" not in line


def test_progress_bar_writes_lines_to_a_log_now_and_then():
    stream = io.StringIO()
    bar = ProgressBar("train", 2048, stream, log_interval=0.0)
    bar.update(1024)
    bar.update(2048)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1024/2048", "2048/2048"]   # the finished line once
    assert "\r" not in stream.getvalue()


def test_the_time_left_is_the_rate_so_far_applied_to_what_remains(clock):
    stream = io.StringIO()
    bar = ProgressBar("refining", 1000, stream, log_interval=60.0, unit="systems")
    clock[0] += 30.0
    bar.update(100)                  # under a minute since the start: nothing yet
    clock[0] += 30.0
    bar.update(200)                  # 200 in 60 s: 800 more take 240 s
    clock[0] += 600.0
    bar.update(1000)                 # under a minute since the last line: nothing
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("200/1000      3.3 systems/s    60.0 s, about 4 min left")
    assert lines[1].endswith("1000/1000      1.5 systems/s   660.0 s")


def test_a_bar_redrawn_on_a_terminal_covers_its_longer_line(clock):
    stream = _Terminal()
    bar = ProgressBar("test", 10, stream, width=4, unit="systems")
    clock[0] += 1.0
    bar.update(5)                    # "..., about 1 s left"
    clock[0] += 1.0
    bar.update(10)
    bar.close()
    drawn = stream.getvalue().split("\r")[1:]
    assert drawn[0].endswith(", about 1 s left")
    assert len(drawn[1]) == len(drawn[0]) and drawn[1].rstrip().endswith("2.0 s")
    assert drawn[2].rstrip() == drawn[1].rstrip() and stream.getvalue().endswith("\n")


def test_progress_bar_context_gives_a_callback_and_the_finished_line():
    with progress_bar("refining", 3, None) as callback:
        assert callback is None
    stream = io.StringIO()
    with progress_bar("refining", 3, stream, unit="systems") as callback:
        callback(3)
    assert stream.getvalue().startswith("refining  [") and "3/3" in stream.getvalue()
    assert stream.getvalue().count("\n") == 1


def test_durations_read_as_seconds_minutes_or_hours():
    assert [duration_text(s) for s in (5, 89, 90, 600, 5399, 5400, 18000)] == [
        "5 s", "89 s", "2 min", "10 min", "90 min", "1.5 h", "5.0 h"]
