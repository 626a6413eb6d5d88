"""`python -m nri_tf.evaluate`: re-evaluate a trained run on any compatible dataset.

    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d
    python -m nri_tf.evaluate --run runs/springs5-1a2b3c4d --data data/springs10
    python -m nri_tf.evaluate --run runs/mocap --dynamic-graph

Writes the same JSON as training's results.json (edge accuracy when the data has labels,
NLL, KL, MSE per predicted step 1..20) to RUN/evaluations/<dataset>.json, or --output.
The dataset must have the run's dims and at least its context frames; the node count may
differ (the model is node-count agnostic).
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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from data_pipelines.datasets import make_dataset
    from nri_tf import evaluation
    from nri_tf.train import format_summary
    from trainers import run_directory
    from trainers.loop import dataset_description

    try:
        config = run_directory.load_config(args.run)
        data_dir = args.data or run_directory.read_json(
            os.path.join(args.run, run_directory.DATASET_FILE))["path"]
        dataset = dataset_description(data_dir, config.frames)
        run_directory.check_dataset(args.run, dataset, same_nodes=False)
        if args.dynamic_graph and config.decoder != "rnn":
            raise ValueError("--dynamic-graph needs a run with the rnn decoder")
        model, _ = run_directory.load_best_model(args.run, dataset["nodes"])
        test_data = make_dataset(data_dir, "test", args.batch_size or config.batch_size, shuffle=False)
        results = evaluation.evaluate(model, test_data, config.frames, dynamic_graph=args.dynamic_graph)
    except (ValueError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    state = run_directory.read_json(os.path.join(args.run, run_directory.RESULTS_FILE)) \
        if os.path.exists(os.path.join(args.run, run_directory.RESULTS_FILE)) else {}
    results.update(best_epoch=state.get("best_epoch"), epochs=state.get("epochs"),
                   data=dataset["path"], dynamic_graph=args.dynamic_graph)
    name = os.path.basename(os.path.normpath(data_dir)) + ("-dynamic" if args.dynamic_graph else "")
    output = args.output or os.path.join(args.run, "evaluations", f"{name}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    run_directory.write_json_atomic(output, results)
    print(format_summary(results, args.run, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
