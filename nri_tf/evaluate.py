"""`python -m nri_tf.evaluate`: re-evaluate a trained run on any compatible dataset.

    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d
    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d --data data/springs10
    python -m nri_tf.evaluate --run runs/mocap --dynamic-graph --image mocap_edges.png

Writes the same JSON as training's results.json (edge accuracy when the data has labels,
NLL, KL, MSE per predicted step 1..20) to RUN/evaluations/<dataset>.json, or --output;
a file there that holds the evaluation of other data (another dataset of the same name)
is never replaced: that is an error. The test split is checked record by record first.
The dataset must have the run's dims and at least its context frames; the node count may
differ (the model is node-count agnostic). Data without a true graph (metadata
``edge_labels: "none"``: motion capture, basketball) gets no edge accuracy.

--image PATH also writes a PNG of the graph inferred for the first test system: for
skeleton data its first frame with the learned edges of each edge type, one panel per
type; otherwise the true graph (left) and the inferred one (right) on a circle, or the
inferred one alone without labels (`nri_tf.visualise.graph_panels`, the same drawing as
the TensorBoard images).
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nri_tf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by nri_tf.train")
    parser.add_argument("--data", help="dataset directory (default: the run's own dataset)")
    parser.add_argument("--dynamic-graph", action="store_true",
                        help="re-infer the graph on a sliding window while predicting (RNN decoder)")
    parser.add_argument("--batch-size", type=int,
                        help="test batch size (default: the run's; results depend on it only through "
                             "the order of the edge samples)")
    parser.add_argument("--output", help="JSON file to write (default: RUN/evaluations/<dataset>.json)")
    parser.add_argument("--image", metavar="PATH",
                        help="also write a PNG of the graph inferred for the first test system")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from data_pipelines.datasets import make_dataset
    from data_pipelines.storage import check_split, read_metadata
    from nri_tf import evaluation
    from nri_tf.train import format_summary
    from trainers import run_directory
    from trainers.loop import dataset_description

    try:
        if args.image:
            check_image_path(args.image)
        config = run_directory.load_config(args.run)
        data_dir = args.data or run_directory.read_json(
            os.path.join(args.run, run_directory.DATASET_FILE))["path"]
        dataset = dataset_description(data_dir, config.frames)
        run_directory.check_dataset(args.run, dataset, same_nodes=False)
        name = os.path.basename(os.path.normpath(data_dir)) + ("-dynamic" if args.dynamic_graph else "")
        output = args.output or os.path.join(args.run, "evaluations", f"{name}.json")
        check_output(output, dataset["path"])
        if args.dynamic_graph and config.decoder != "rnn":
            raise ValueError("--dynamic-graph needs a run with the rnn decoder")
        metadata = read_metadata(data_dir)
        check_split(data_dir, "test", metadata)
        model, _ = run_directory.load_best_model(args.run, dataset["nodes"])
        labelled = evaluation.has_edge_labels(metadata)
        batch_size = config.batch_size if args.batch_size is None else args.batch_size
        test_data = make_dataset(data_dir, "test", batch_size, shuffle=False)
        if not labelled:
            test_data = evaluation.trajectories_only(test_data)
        results = evaluation.evaluate(model, test_data, config.frames, dynamic_graph=args.dynamic_graph)
        if args.image:
            write_image(args.image, model, data_dir, metadata, labelled)
        results_path = os.path.join(args.run, run_directory.RESULTS_FILE)
        state = run_directory.read_json(results_path) if os.path.exists(results_path) else {}
        results.update(best_epoch=state.get("best_epoch"), epochs=state.get("epochs"),
                       data=dataset["path"], dynamic_graph=args.dynamic_graph)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        run_directory.write_json_atomic(output, results)
    except (ValueError, FloatingPointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(results, args.run, output))
    if args.image:
        print(f"image: {args.image}")
    return 0


def check_output(path: str, data_path: str) -> None:
    """ValueError if ``path`` holds the evaluation of other data (say, another dataset of
    the same name): an earlier result is never replaced by one of something else."""
    from trainers import run_directory

    if os.path.exists(path):
        earlier = run_directory.read_json(path).get("data")
        if earlier is not None and earlier != data_path:
            raise ValueError(f"{path} holds the evaluation of {earlier}; pass --output for {data_path}")


def check_image_path(path: str) -> None:
    """ValueError, before any work, when a PNG cannot be written at ``path``: it is a
    directory, or its nearest existing ancestor is not a writable directory."""
    if os.path.isdir(path):
        raise ValueError(f"--image {path} is a directory; give a file name such as {os.path.join(path, 'graph.png')}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ValueError(f"--image {path} cannot be written: {parent} is not a writable directory")


def write_image(path: str, model, data_dir: str, metadata, labelled: bool) -> None:
    """Writes the `nri_tf.visualise.graph_panels` picture of the first test system to ``path``.

    Raises OSError naming the path when it cannot be written.
    """
    from data_pipelines import graph_image
    from data_pipelines.datasets import make_dataset
    from nri_tf.visualise import graph_panels

    trajectories, labels = next(iter(make_dataset(data_dir, "test", 1, shuffle=False)))
    panels = graph_panels(model, trajectories.numpy(), labels.numpy() if labelled else None, metadata)
    try:
        graph_image.write_png(path, panels.images[0])
    except OSError as error:
        raise OSError(f"cannot write image {path}: {error.strerror or error}") from None


if __name__ == "__main__":
    sys.exit(main())
