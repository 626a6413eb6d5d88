"""Progress output of long loops: a one-line bar and durations as a person reads them.

Building blocks:
  `ProgressBar`     a one-line progress bar with the time left, for ``progress(done)`` callbacks
                    (the simulators', the graph refinement's)
  `progress_bar`    a context giving a bar's ``progress`` callback (None without a stream)
  `progress_stream` the stream of a ``progress: bool | TextIO`` argument
  `duration_text`   seconds as "88 s", "12 min", "4.7 h"
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, TextIO


def duration_text(seconds: float) -> str:
    """``seconds`` as a person reads a duration: "88 s", "12 min", "4.7 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressBar:
    """A one-line progress bar on a text stream (stderr by default), no dependencies.

        train  [############------------------]  20480/50000   4310 sims/s   4.8 s, about 7 s left

    On a terminal the line is redrawn in place at most every ``interval`` seconds; on
    anything else (a log file, CI) a new line is written at most every ``log_interval``
    seconds while the work goes on, and the finished line (`close`). ``unit`` names what
    is counted; the time left is the rate so far applied to what remains.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30,
                 interval: float = 0.2, log_interval: float = 60.0, unit: str = "sims"):
        self.label, self.total, self.width, self.unit = label, total, width, unit
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if self.interactive else log_interval
        self.start = time.perf_counter()
        self._last_draw = -float("inf") if self.interactive else self.start
        self._drawn = 0                      # the length of the line last redrawn in place
        self.done = 0

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        filled = int(self.width * self.done / self.total) if self.total else self.width
        rate = self.done / elapsed if elapsed > 0 else 0.0
        digits = len(str(self.total))
        line = (f"{self.label:<5}  [{'#' * filled}{'-' * (self.width - filled)}]  "
                f"{self.done:>{digits}}/{self.total}  {rate:7.{0 if rate >= 100 else 1}f} {self.unit}/s  "
                f"{elapsed:6.1f} s")
        if 0 < self.done < self.total:
            line += f", about {duration_text((self.total - self.done) / rate)} left"
        return line

    def update(self, done: int) -> None:
        """Records ``done`` items finished (a ``progress`` callback)."""
        self.done = done
        now = time.perf_counter()
        if now - self._last_draw >= self.interval and (self.interactive or done < self.total):
            self._last_draw = now
            self.stream.write(self._redrawn() if self.interactive else self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write((self._redrawn() if self.interactive else self.line()) + "\n")
        self.stream.flush()

    def _redrawn(self) -> str:
        """The line to redraw in place: padded over a longer one drawn before."""
        line = self.line()
        padded, self._drawn = "\r" + line.ljust(self._drawn), len(line)
        return padded


def progress_stream(progress: bool | TextIO) -> TextIO | None:
    """Where a function's ``progress`` argument sends bars: True stderr, False nowhere,
    otherwise the text stream it is."""
    if progress is False:
        return None
    return sys.stderr if progress is True else progress


@contextlib.contextmanager
def progress_bar(label: str, total: int, stream: TextIO | None,
                 unit: str = "sims") -> Iterator[Callable[[int], None] | None]:
    """The ``progress`` callback of a `ProgressBar` on ``stream``, its finished line written
    when the block ends normally; None (no output) when ``stream`` is None."""
    if stream is None:
        yield None
        return
    bar = ProgressBar(label, total, stream, unit=unit)
    yield bar.update
    bar.close()
