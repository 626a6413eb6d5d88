"""Wall time of the README's main job, ``python -m nri_tf.train``, from a clean data cache.

    .venv/bin/python benchmarks/default_command.py                 # the default preset
    .venv/bin/python benchmarks/default_command.py -- --epochs 5   # extra train flags

Runs the command in a fresh temporary directory (its own data cache, so the built-in
dataset is simulated as a first-time user's run does; its own run directory), then reads
the run's history.jsonl and results.json and prints: the whole command's wall time, the
epochs' seconds and validation's share of them, the rest (imports, simulating the data,
set-up, test evaluation), and the final test edge accuracy. The previous figure on
this kind of machine was 639 s (issue 13, stop 11's code). Run it on a quiet machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import timing

from data_pipelines.files import read_json
from trainers.run_directory import RESULTS_FILE, read_history


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    print(timing.load_average("before"), flush=True)
    with tempfile.TemporaryDirectory(prefix="nri-default-") as scratch:
        run_dir = os.path.join(scratch, "run")
        env = {**os.environ, "NRI_TF_DATA": os.path.join(scratch, "cache")}
        command = [sys.executable, "-m", "nri_tf.train", "--logdir", run_dir, "--verbose", "2", *extra]
        start = time.perf_counter()
        with open(os.path.join(scratch, "log.txt"), "w") as log:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - start
        epochs = read_history(run_dir)
        results = read_json(os.path.join(run_dir, RESULTS_FILE))
    epoch_seconds = sum(e["seconds"] for e in epochs)
    validation = sum(e["validation_seconds"] for e in epochs)
    print(f"command: {' '.join(command[1:])}")
    print(f"wall time {wall:.0f} s: {epoch_seconds:.0f} s in {len(epochs)} epochs "
          f"(validation {validation:.0f} s = {100 * validation / epoch_seconds:.0f}% of them), "
          f"{wall - epoch_seconds:.0f} s outside the epochs (imports, simulating the data, "
          f"set-up, test evaluation)")
    print(f"test edge accuracy {results.get('edge_accuracy', float('nan')):.4f}; "
          f"best epoch {results.get('best_epoch')}")
    print(timing.load_average("after"))


if __name__ == "__main__":
    main()
