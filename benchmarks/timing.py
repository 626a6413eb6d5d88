"""Timing helpers shared by the benchmark scripts (no TensorFlow or PyTorch imports).

Building blocks:
  best_rate      items/s of the fastest of several timed runs of the same work
  load_average   the machine's load averages, printed beside every timing
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable


def best_rate(run: Callable[[], object], items: int, repeats: int) -> float:
    """``items`` per second of the fastest of ``repeats`` calls of ``run``.

    Other processes on a shared machine only ever slow a run down, so the fastest run is
    the best estimate of what the code itself costs.
    """
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return items / best


def load_average(when: str) -> str:
    """The 1/5/15-minute load averages: other processes on the machine slow the timings."""
    return "load average {}: {:.1f} {:.1f} {:.1f} on {} cores".format(when, *os.getloadavg(),
                                                                     os.cpu_count())
