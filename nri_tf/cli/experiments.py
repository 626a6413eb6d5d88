"""`python -m nri_tf.experiments`: the paper's Tables 1 and 2, at a chosen compute budget.

    python -m nri_tf.experiments table1 --simulation springs --num-nodes 5 --budget cpu
    python -m nri_tf.experiments table2 --simulation charged --budget smoke --seeds 2
    python -m nri_tf.experiments table2 --data data/cmu35 --budget cpu --edge-types 2
    python -m nri_tf.experiments report experiments/springs5-cpu experiments/charged5-cpu --output docs

Flags of `python -m nri_tf.train` (``--decoder rnn``, ...) change every NRI-type model of
the budget (learned, sim., full / true graph; a learned decoder's own flags, such as
``--inverse-square``, not NRI (sim.)'s); ``--batch-size`` changes every model's.
The data's source brings its rule (`nri_tf.presets`): motion capture gets the paper's model
and, in the cpu and paper budgets, its 200 epochs of batch 8 for every model, baselines too.

Table 1 is edge accuracy (%) on the test systems: Corr. (path), Corr. (LSTM), NRI (sim.),
NRI (learned), Supervised. Table 2 is the MSE of the frames predicted 1, 10 and 20 steps
after the 49 the models see: Static, LSTM (single), LSTM (joint), NRI (full graph),
NRI (learned), NRI (true graph). Definitions: paper appendix D.1.1 and `nri_tf.baselines`.

The command simulates the dataset the budget asks for (cached like the training command's
built-in data) unless ``--data`` names one, trains every model of the table for every seed,
and writes into the output directory (default ``experiments/<source><nodes>-<budget>``):

  table1.md / table2.md       the table, ours (mean +- standard error over seeds) next to
                              the paper's numbers
  table1.json / table2.json   the same numbers, per-seed values and wall times
  models/<model>-seed<S>.json each finished model's test metrics: a re-run (after an
                              interruption, or for the other table) reuses them
  runs/                       the NRI runs (`nri_tf.train` run directories, resumable)

Both tables share the output directory, so NRI (learned) is trained once for both.
Seeds vary the models' initialisation, shuffling and sampling; the dataset stays the same.
On data without a true graph (motion capture, basketball: ``--data``) the models that need
one (correlation thresholds, supervised, true graph) are reported as not applicable.
On candidate edges (data stored with edge lists, or ``--candidate-edges knn|radius``) only
NRI (learned) and Supervised run, on the same candidates: the encoder trained
unsupervised against the same encoder trained on the true edges, its ceiling:

    python -m nri_tf.experiments table1 --data data/local100 --rows nri_learned supervised --batch-size 8

``report DIR...`` writes the results page (docs/results.md) from finished tables: see
``python -m nri_tf.experiments report --help`` and `nri_tf.cli.report`.
"""

from __future__ import annotations

import argparse
import os
import sys

from data_pipelines.errors import report_known_errors
from data_pipelines.simulations import SIMULATION_NAMES
from data_pipelines.storage.reader import read_metadata
from data_pipelines.tf_startup import import_tensorflow
from nri_tf.cli.budgets import budgets
from nri_tf.cli.common import log_to_stderr
from nri_tf.cli.paper_results import TABLE_ROWS
from nri_tf.cli.train import ensure_default_data
from nri_tf.config import MAX_SEED
from nri_tf.flags import add_config_arguments, config_overrides

def parse_args(argv=None) -> tuple[argparse.Namespace, dict]:
    """(the command's own arguments, NRIConfig overrides from `python -m nri_tf.train` flags)."""
    all_budgets = budgets()
    parser = argparse.ArgumentParser(prog="python -m nri_tf.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLE_ROWS),
                        help="table1: edge accuracy of the graph-inference models; table2: MSE of "
                             "future-state prediction after 1, 10 and 20 frames (and `report DIR...`: "
                             "the results page from finished tables, see `report --help`)")
    parser.add_argument("--simulation", choices=SIMULATION_NAMES, default="springs",
                        help="the simulated dataset to build (default: %(default)s; ignored with --data)")
    parser.add_argument("--num-nodes", type=int, default=5,
                        help="nodes of the simulated dataset (default: %(default)s; ignored with --data)")
    parser.add_argument("--budget", choices=sorted(all_budgets), default="cpu",
                        help="(default: %(default)s) " + "; ".join(f"{name}: {b.help}" for name, b in sorted(all_budgets.items())))
    parser.add_argument("--seeds", type=int, default=1,
                        help="independent runs of every model (default: %(default)s)")
    parser.add_argument("--first-seed", type=int, default=42,
                        help="the first run's seed; the others count up from it (default: "
                             "%(default)s). With --rows, seeds an existing table's row lacks are "
                             "added to it: --rows ROW --first-seed 43 measures a second seed "
                             "without the first one's models")
    parser.add_argument("--data", help="use this native dataset (any source) instead of simulating one")
    parser.add_argument("--output", help="output directory (default: experiments/<source><nodes>-<budget>)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0,
                        help="Keras progress output while training (0: a line per model, and a "
                             "line a minute about a model that trains longer)")
    parser.add_argument("--rows", nargs="+", metavar="ROW",
                        help="train and tabulate only these rows, e.g. nri_learned first (a later "
                             "full run reuses them); into an existing table of the same settings "
                             "they replace its rows of those names (re-run a row after a fix: "
                             "delete its models/ROW-seedS.json first; add a seed to a row: "
                             "--rows ROW --seeds 2, the other rows keep theirs); table1: " + " ".join(TABLE_ROWS["table1"])
                             + "; table2: " + " ".join(TABLE_ROWS["table2"]) + " (default: all)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    unknown = [row for row in args.rows or () if row not in TABLE_ROWS[args.table]]
    if unknown:
        parser.error(f"--rows: {', '.join(unknown)} not in {args.table} ({', '.join(TABLE_ROWS[args.table])})")
    if args.num_nodes < 2:
        parser.error(f"--num-nodes must be >= 2, got {args.num_nodes}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if not 0 <= args.first_seed <= MAX_SEED + 1 - args.seeds:
        parser.error(f"--first-seed must be in [0, {MAX_SEED + 1 - args.seeds}] (the last seed "
                     f"at most {MAX_SEED}), got {args.first_seed}")
    return args, config_overrides(args)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["report"]:
        import_tensorflow()
        # Imported here: the report reads the tables module, which imports TensorFlow.
        from nri_tf.cli import report

        return report.main(argv[1:])
    args, nri_overrides = parse_args(argv)
    import_tensorflow()
    return report_known_errors(lambda: _run(args, nri_overrides), "finished models are cached; "
                               "the same command goes on with the others")


def _run(args: argparse.Namespace, nri_overrides: dict) -> int:
    # Imported here: the models import TensorFlow, which --help must not wait for.
    from nri_tf.cli.experiment_models import Experiment
    from nri_tf.cli.tables import run_table
    from nri_tf.evaluation import prediction_horizon

    budget = budgets()[args.budget]
    data_dir = args.data or ensure_default_data(
        {"simulation": args.simulation, "num_nodes": args.num_nodes, **budget.data, "seed": 42},
        log_to_stderr)
    metadata = read_metadata(data_dir)
    prediction_horizon(metadata.frames["test"], metadata.frames["train"], data_dir=data_dir)
    root = args.output or os.path.join("experiments", f"{metadata.source}{metadata.nodes}-{args.budget}")
    experiment = Experiment(data_dir, metadata, budget, root, args.verbose, log_to_stderr, nri_overrides)
    experiment.nri_config(42)       # bad flags fail here, before anything is written
    os.makedirs(root, exist_ok=True)
    seeds = [args.first_seed + k for k in range(args.seeds)]
    result = run_table(args.table, experiment, metadata.source, seeds, args.budget, args.rows)
    print(result["markdown"])
    print(f"wall time {result['wall_seconds']:.0f} s; written to {os.path.join(root, args.table)}.md/.json")
    return 0
