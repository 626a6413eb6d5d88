"""`python -m nri_tf.refit`: retrain a trained run on its refined graphs (beyond the paper).

    python -m nri_tf.refit --run runs/springs5-1a2b3c4d
    python -m nri_tf.refit --run runs/springs5-1a2b3c4d --output runs/springs5-refit --epochs 30
    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d-refit --refine-sweeps 10

Each training system's graph is fixed to the encoder's most likely one, improved against the
decoder for --refine-sweeps sweeps (`nri_tf.refinement`); the decoder is then trained on
those hard graphs for --epochs, and the encoder to output them (--no-distill keeps the
encoder as it is), each keeping its epoch with the best validation score (on the validation
systems' graphs, fixed the same way). No labels are used. The result is a new run directory
(default: RUN-refit, beside RUN; never an existing path) that evaluate and export read like
any other; its results.json scores the test systems on the encoder's graphs and on refined
ones. See `trainers.refit` for what it holds and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from data_pipelines.errors import report_known_errors
from data_pipelines.tf_startup import import_tensorflow
from nri_tf.cli.train import format_summary
from trainers import run_directory
from trainers.refit_options import RefitOptions, default_output


def parse_args(argv=None) -> argparse.Namespace:
    defaults = RefitOptions()
    parser = argparse.ArgumentParser(prog="python -m nri_tf.refit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by nri_tf.train")
    parser.add_argument("--output", help="the new run directory (default: RUN-refit)")
    parser.add_argument("--refine-sweeps", type=int, default=defaults.refine_sweeps, metavar="N",
                        help="refinement sweeps per training system (mlp decoder; 0: the encoder's "
                             "most likely graphs as they are; default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="passes over the training systems (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="Adam learning rate of the decoder (default: %(default)s)")
    parser.add_argument("--distill", action=argparse.BooleanOptionalAction, default=defaults.distill,
                        help="also train the encoder to output the refined graphs, so that the "
                             "exported model gives them without a search (default: %(default)s)")
    parser.add_argument("--encoder-lr", type=float, default=defaults.encoder_lr,
                        help="Adam learning rate of the encoder (--distill; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="batch order and dropout (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    return report_known_errors(lambda: refit(args), "nothing was written")


def refit(args: argparse.Namespace) -> int:
    """Refits as ``args`` say and prints the summary; returns 0."""
    # Imported here: it imports TensorFlow, which --help must not wait for.
    from trainers.refit import refit_run

    options = RefitOptions(**{field.name: getattr(args, field.name) for field in dataclasses.fields(RefitOptions)})
    output = args.output or default_output(args.run)
    results = refit_run(args.run, output, options)
    print(format_summary(results, output, os.path.join(output, run_directory.RESULTS_FILE)))
    return 0
