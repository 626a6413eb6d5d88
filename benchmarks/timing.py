"""Timing helpers shared by the benchmark scripts (no TensorFlow or PyTorch imports).

Building blocks:
  add_training_step_arguments   the flags both training-step benchmarks take (sizes, timing)
  best_rate                     items/s of the fastest of several timed runs of the same work
  load_average                  the machine's load averages, printed beside every timing
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Callable


def add_training_step_arguments(parser: argparse.ArgumentParser) -> None:
    """Encoder/decoder, paper sizes (springs5, hidden 256, batch 128) and timing flags."""
    parser.add_argument("--encoder", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--decoder", choices=("mlp", "rnn"), default="mlp")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--steps", type=int, default=10, help="prediction_steps M")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--edge-types", type=int, default=2)
    parser.add_argument("--skip-first", action="store_true")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--measured", type=int, default=8, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")


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
