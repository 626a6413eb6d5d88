"""`python -m nri_tf.evaluate`: re-evaluate a trained run on any compatible dataset.

    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d
    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d --data data/springs10
    python -m nri_tf.evaluate --run runs/mocap --dynamic-graph --image mocap_edges.png
    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d --image graph.png --system 3 --plots plots
    python -m nri_tf.evaluate --run runs/springs10-1a2b3c4d --refine-sweeps 10

Writes the same JSON as training's results.json (edge accuracy when the data has labels,
NLL, KL, MSE per predicted step 1..20) to RUN/evaluations/<dataset>.json, or --output;
a file there that holds the evaluation of other data (another dataset of the same name)
is never replaced: that is an error. The test split is checked record by record first.
The dataset must have the run's dims and at least its context frames; the node count may
differ (the model is node-count agnostic). Data without a true graph (metadata
``edge_labels: "none"``: motion capture, basketball) gets no edge accuracy.

The test systems are scaled to [-1, 1] with the run's training statistics, as its
SavedModel does (`nri_tf.serving`): the model sees other data in the units it learned,
and the MSE is in the run's normalised units. ``--normalisation data`` scales by the
evaluated dataset's own training split instead (the reference code's habit, which gives a
different result on data of another range, e.g. springs10 for a
springs5 run). The summary and the JSON (``normalisation``) say which was used.

--dynamic-graph re-infers the graph before every predicted frame from the last frames seen,
the model's own predictions among them; --graph-window recorded slides it over the test
system's recorded frames instead, ending one frame before the decoder's input as the
reference code's test does: from the third predicted frame on, the graph is inferred from
recorded frames that include the targets of the earlier predictions (an oracle, for
comparison with the paper's figures).

--image PATH also writes a PNG of the graph inferred for test system --system N (default
0): for skeleton data its first frame with the learned edges of each edge type, one panel
per type; otherwise the true graph (left) and the inferred one (right, with its share of
edges right in the title, missed and spurious edges marked) over the system's trajectories,
or the inferred one alone without labels (`nri_tf.visualise.graph_figures`, the same
drawing as the TensorBoard images). --plots DIR writes the run's edge accuracy over its
epochs (DIR/accuracy.png) and this evaluation's MSE over the predicted frames (DIR/mse.png).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from data_pipelines.contract import has_edge_labels, position_dims
from data_pipelines.errors import DatasetError, UserError, report_known_errors
from data_pipelines.files import check_creatable, read_json, write_json_atomic
from data_pipelines.normalisation import Normaliser
from data_pipelines.storage.reader import check_split, read_metadata
from data_pipelines.tf_startup import import_tensorflow
from nri_tf.cli.train import format_summary
from nri_tf.presets import fitting_batch_size
from trainers import run_directory

NORMALISATIONS = ("run", "data")
GRAPH_WINDOWS = ("predictions", "recorded")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nri_tf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by nri_tf.train")
    parser.add_argument("--data", help="dataset directory (default: the run's own dataset)")
    parser.add_argument("--dynamic-graph", action=argparse.BooleanOptionalAction,
                        help="re-infer the graph on a sliding window while predicting (RNN decoder; "
                             "default: the run's --dynamic-graph setting)")
    parser.add_argument("--graph-window", choices=GRAPH_WINDOWS, default="predictions",
                        help="what the dynamic graph's window reads after the context: predictions, "
                             "the model's own (what a deployed model has); recorded, the test "
                             "system's recorded frames, the targets of earlier predictions "
                             "included (the reference code's test: an oracle, for comparison "
                             "with the paper) "
                             "(default: %(default)s)")
    parser.add_argument("--refine-sweeps", type=int, metavar="N",
                        help="also improve the inferred graph against the decoder, up to N sweeps "
                             "per batch (small complete graphs, e.g. 5 nodes: any N > 0 searches "
                             "exactly), and score it beside the encoder's (mlp decoder, data with a "
                             "true graph; nri_tf.refinement; 0: the paper's evaluation alone; default: "
                             "as training's, the exact search where it is cheap, else 0)")
    parser.add_argument("--batch-size", type=int,
                        help="test batch size (default: the run's, cut on larger systems than it "
                             "trained on to what fits in memory as training's default is; results "
                             "depend on it only through the order of the edge samples)")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="run",
                        help="statistics that scale the test systems to [-1, 1]: run, those of the "
                             "run's training data (what the model learned and what its SavedModel "
                             "applies); data, those of --data's own training split (default: run)")
    parser.add_argument("--output", help="JSON file to write (default: RUN/evaluations/<dataset>.json)")
    parser.add_argument("--image", metavar="PATH",
                        help="also write a PNG of the graph inferred for test system --system")
    parser.add_argument("--system", type=int, default=0,
                        help="the test system --image draws, from 0 (default: %(default)s)")
    parser.add_argument("--plots", metavar="DIR",
                        help="also write DIR/accuracy.png (edge accuracy over the run's epochs; the "
                             "validation nll for data without a true graph) and DIR/mse.png (MSE over "
                             "the predicted frames)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import_tensorflow()
    return report_known_errors(lambda: evaluate_run(args), "nothing was written")


def evaluate_run(args: argparse.Namespace) -> int:
    """Evaluates as ``args`` say, writes the JSON and prints the summary; returns 0."""
    # Imported here: they import TensorFlow, which --help must not wait for.
    from data_pipelines.datasets import make_dataset
    from nri_tf import evaluation
    from trainers.loop import candidate_spec, dataset_description, default_refine_sweeps, refinement_progress

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.image:
        check_file_path("--image", args.image, "graph.png")
    if args.plots and os.path.exists(args.plots) and not os.path.isdir(args.plots):
        raise UserError(f"--plots {args.plots} is a file; give a directory")
    config = run_directory.load_config(args.run)
    run_data = read_json(os.path.join(args.run, run_directory.DATASET_FILE))["path"]
    data_dir = args.data or run_data
    dataset = dataset_description(data_dir, config.frames)
    run_directory.check_dataset(args.run, dataset, same_nodes=False)
    dynamic_graph = config.dynamic_graph if args.dynamic_graph is None else args.dynamic_graph
    if args.refine_sweeps is not None and args.refine_sweeps < 0:
        raise UserError(f"--refine-sweeps must be >= 0, got {args.refine_sweeps}")
    if args.refine_sweeps and config.decoder != "mlp":
        raise UserError(f"--refine-sweeps needs a run with the mlp decoder, this one has the "
                        f"{config.decoder} decoder")
    recorded_window = args.graph_window == "recorded"
    if recorded_window and not dynamic_graph:
        raise UserError("--graph-window recorded is the dynamic graph's window; add --dynamic-graph")
    name = (os.path.basename(os.path.normpath(data_dir)) + ("-dynamic" if dynamic_graph else "")
            + ("-recorded" if recorded_window else "")
            + (f"-refined{args.refine_sweeps}" if args.refine_sweeps else ""))
    output = args.output or os.path.join(args.run, "evaluations", f"{name}.json")
    check_file_path("--output", output, "evaluation.json")
    check_output(output, dataset["path"])
    if dynamic_graph and config.decoder != "rnn":
        raise UserError("--dynamic-graph needs a run with the rnn decoder")
    metadata = read_metadata(data_dir)
    if not 0 <= args.system < metadata.splits["test"]:
        raise UserError(f"--system {args.system}: the test split of {data_dir} has "
                        f"{metadata.splits['test']} systems (0..{metadata.splits['test'] - 1})")
    evaluation.prediction_horizon(metadata.frames["test"], config.frames, data_dir=data_dir)
    candidates = candidate_spec(config).check(metadata)
    check_split(data_dir, "test", metadata)
    model, _ = run_directory.load_best_model(args.run, dataset["nodes"])
    labelled = has_edge_labels(metadata)
    normaliser, normalised_by = evaluation_normaliser(args.normalisation, run_data, data_dir)
    batch_size = (fitting_batch_size(metadata, dataclasses.asdict(config)) if args.batch_size is None
                  else args.batch_size)
    test_data = make_dataset(data_dir, "test", batch_size, shuffle=False, normaliser=normaliser,
                             candidates=candidates)
    if not labelled:
        test_data = evaluation.trajectories_only(test_data)
    refine_sweeps = args.refine_sweeps
    if refine_sweeps is None:
        refine_sweeps = default_refine_sweeps(config, dataset["nodes"], labelled)
    with refinement_progress(metadata.splits["test"], refine_sweeps if labelled else 0,
                             sys.stderr) as refine_progress:
        results = evaluation.evaluate(model, test_data, config.frames, dynamic_graph=dynamic_graph,
                                      normaliser=normaliser, position_dims=position_dims(metadata),
                                      refine_sweeps=refine_sweeps, recorded_window=recorded_window,
                                      refine_progress=refine_progress)
    if args.image:
        write_image(args.image, model, data_dir, metadata, labelled, normaliser, args.system, candidates)
    if args.plots:
        write_plots(args.plots, args.run, results, os.path.basename(os.path.normpath(data_dir)))
    results.update(**run_directory.training_progress(args.run),
                   data=dataset["path"], dynamic_graph=dynamic_graph,
                   graph_window=args.graph_window if dynamic_graph else None,
                   normalisation={"statistics": args.normalisation, "dataset": os.path.abspath(normalised_by)})
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    write_json_atomic(output, results)
    print(format_summary(results, args.run, output))
    print(f"normalisation: the training statistics of {normalised_by}"
          + (" (the run's)" if args.normalisation == "run" else " (--normalisation data)"))
    if args.plots:
        print(f"plots: {os.path.join(args.plots, 'accuracy.png')}, {os.path.join(args.plots, 'mse.png')}")
    if args.image:
        print(f"image: {args.image}")
    return 0


def evaluation_normaliser(choice: str, run_data: str, data_dir: str):
    """(the `Normaliser` for the test systems, the dataset whose statistics it holds).

    ``choice`` "run": the statistics of the run's training dataset ``run_data``; "data":
    those of ``data_dir`` itself. UserError when the run's dataset is gone.
    """
    source = run_data if choice == "run" else data_dir
    try:
        return Normaliser.from_metadata(read_metadata(source)), source
    except DatasetError as error:
        raise UserError(f"the run's training dataset holds the normalisation statistics but cannot "
                        f"be read ({error}); restore it, or pass --normalisation data to scale "
                        f"{data_dir} by its own") from None


def check_output(path: str, data_path: str) -> None:
    """UserError if ``path`` holds the evaluation of other data (say, another dataset of
    the same name): an earlier result is never replaced by one of something else."""
    if os.path.exists(path):
        earlier = read_json(path).get("data")
        if earlier is not None and earlier != data_path:
            raise UserError(f"{path} holds the evaluation of {earlier}; pass --output for {data_path}")


def check_file_path(flag: str, path: str, example: str) -> None:
    """UserError, before any work, when the file ``path`` (of option ``flag``) cannot be
    written: it is a directory (``example`` names a file to give instead), or its nearest
    existing ancestor is not a writable directory."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a directory; give a file name such as {os.path.join(path, example)}")
    check_creatable(path, f"{flag} {path}")


def write_image(path: str, model, data_dir: str, metadata, labelled: bool, normaliser, system: int,
                candidates=None) -> None:
    """Writes the `nri_tf.visualise.graph_figures` picture of test system ``system`` to ``path``
    (on the run's candidate edges ``candidates``, a `CandidateSpec`, if any).

    Raises OSError naming the path when it cannot be written.
    """
    # Imported here: tf.data imports TensorFlow, the figures matplotlib.
    from data_pipelines.datasets import make_dataset
    from nri_tf.figures import save_figure
    from nri_tf.visualise import graph_figures

    test = make_dataset(data_dir, "test", 1, shuffle=False, normaliser=normaliser, candidates=candidates)
    trajectories, labels, *edges = next(iter(test.skip(system)))
    figure, = graph_figures(model, trajectories.numpy(), labels.numpy() if labelled else None, metadata,
                            normaliser, first_system=system, candidates=edges[0] if edges else None)[:1]
    save_figure(figure, path)


def write_plots(directory: str, run_dir: str, results: dict, data_name: str) -> None:
    """DIR/accuracy.png from the run's history.jsonl and DIR/mse.png from ``results``."""
    from nri_tf.figures import history_figure, horizon_figure, save_figure   # matplotlib: only when asked

    history = run_directory.read_history(run_dir)
    run_name = os.path.basename(os.path.normpath(run_dir))
    save_figure(history_figure(history, title=f"run {run_name}"), os.path.join(directory, "accuracy.png"))
    save_figure(horizon_figure({data_name: results["mse_per_step"]},
                               title=f"prediction error of run {run_name} on {data_name} (test)"),
                os.path.join(directory, "mse.png"))
