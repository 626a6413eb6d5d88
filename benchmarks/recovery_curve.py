"""Unsupervised edge recovery over wall time: runs `python -m nri_tf.train` and prints the
validation edge accuracy after every epoch against the cumulative training time.

    python benchmarks/recovery_curve.py                    # the default command
    python benchmarks/recovery_curve.py --preset paper --epochs 5 --logdir runs/paper-curve
    python benchmarks/recovery_curve.py --run runs/x       # just print an existing run's curve

Any flag after the script's own is passed to nri_tf.train unchanged. The wall time printed
at the end covers the whole command: simulating the data if it is not cached, training,
and the test evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nri_tf.cli.report import training_curve  # noqa: E402
from data_pipelines.files import read_json  # noqa: E402
from nri_tf.cli.common import log_to_stderr  # noqa: E402
from trainers import run_directory  # noqa: E402


def print_curve(run_dir: str) -> None:
    print(f"{'epoch':>5} {'train s':>8} {'val acc %':>9} {'val nll':>10} {'val mse':>10}")
    for point in training_curve(run_dir):
        epoch, elapsed, record = point.epoch, point.seconds, point.record
        accuracy = record.get("val_edge_accuracy", float("nan")) * 100
        print(f"{epoch:>5} {elapsed:>8.1f} {accuracy:>9.1f} {record['val_nll']:>10.4g} "
              f"{record.get('val_mse', float('nan')):>10.3g}")
    results_path = os.path.join(run_dir, run_directory.RESULTS_FILE)
    if os.path.exists(results_path):
        results = read_json(results_path)
        accuracy = results.get("edge_accuracy")
        print(f"test edge accuracy (best epoch {results['best_epoch']}): "
              + (f"{100 * accuracy:.2f}%" if accuracy is not None else "n/a"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="print the curve of this existing run instead of training")
    args, train_argv = parser.parse_known_args()
    if args.run:
        print_curve(args.run)
        return 0

    from nri_tf.cli import train

    started = time.perf_counter()
    results, run_dir = train.run(train.parse_args(train_argv), log_to_stderr)
    wall = time.perf_counter() - started
    print(train.format_summary(results, run_dir, os.path.join(run_dir, "results.json")))
    print_curve(run_dir)
    print(f"wall time of the whole command: {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
