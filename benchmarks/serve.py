"""Latency of the exported encoder signature, as a served model answers requests.

    .venv/bin/python benchmarks/serve.py                      # paper sizes, N = 5 and 10
    .venv/bin/python benchmarks/serve.py --repeats 50 --nodes 5

Builds an NRI model at the paper's sizes (MLP encoder, hidden 256, 49 frames, 4 dims,
2 edge types) with *randomly initialised* weights (latency does not depend on their
values), wraps it in `nri_tf.serving.ServingModule` exactly as `python -m nri_tf.export`
does, saves it as a SavedModel, loads it back with `tf.saved_model.load` and times calls
of its ``serving_default`` signature (in-graph validation and normalisation included) on
random raw trajectories [batch, nodes, 49, 4]. Prints p50 / p99 latency per request and
the systems per second at the median, for batch 1 and 128 and N = 5 and 10.

The timings are of an in-process signature call (what TF Serving runs per request, plus
the Python call overhead of a concrete function, minus its RPC and JSON/protobuf
decoding). Run it on a quiet machine (check ``uptime``): on a shared CPU the p99 mostly
measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from data_pipelines.normalisation import Normaliser
from nri_tf.config import NRIConfig
from nri_tf.model import NRI
from nri_tf.serving import INPUT_TRAJECTORIES, SIGNATURE_DEFAULT, ServingModule


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    parser.add_argument("--hidden", type=int, default=256, help="encoder and decoder hidden size")
    parser.add_argument("--repeats", type=int, default=200, help="timed requests per setting")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per setting first")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="threads that run independent ops of one request concurrently (TF "
                             "Serving: --tensorflow_inter_op_parallelism); 0: TensorFlow's choice. "
                             "1 cuts batch-1 latency on 2 cores (no hand-offs between threads)")
    parser.add_argument("--reference-json", metavar="PATH",
                        help="benchmarks/reference_serve.py's output: print each p50's ratio to the "
                             "reference PyTorch encoder's")
    return parser.parse_args(argv)


def export_random_model(directory: str, hidden: int) -> tuple[str, NRIConfig]:
    """Saves a randomly initialised paper-size model's serving module; returns (path, config)."""
    config = NRIConfig(encoder_hidden=hidden, decoder_hidden=hidden).validate()
    model = NRI(config)
    model(tf.zeros([1, 5, config.frames, config.dims]))
    # Springs-like statistics: positions in [-5, 5], velocities in [-1, 1].
    normaliser = Normaliser([-5.0, -5.0, -1.0, -1.0], [5.0, 5.0, 1.0, 1.0])
    module = ServingModule(model, normaliser)
    path = os.path.join(directory, "1")
    tf.saved_model.save(module, path, signatures=module.signatures())
    return path, config


def time_requests(signature, trajectories: tf.Tensor, repeats: int, warmup: int) -> np.ndarray:
    """Seconds per call of ``signature`` on ``trajectories`` [batch, nodes, frames, dims]."""
    for _ in range(warmup):
        signature(**{INPUT_TRAJECTORIES: trajectories})["edge_probs"].numpy()
    seconds = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        signature(**{INPUT_TRAJECTORIES: trajectories})["edge_probs"].numpy()
        seconds[i] = time.perf_counter() - start
    return seconds


def main(argv=None) -> None:
    args = parse_args(argv)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    with tempfile.TemporaryDirectory() as directory:
        path, config = export_random_model(directory, args.hidden)
        signature = tf.saved_model.load(path).signatures[SIGNATURE_DEFAULT]
        print(f"encoder signature '{SIGNATURE_DEFAULT}': MLP encoder, hidden {args.hidden}, "
              f"{config.frames} frames, {config.dims} dims, {config.edge_types} edge types, "
              f"random weights; {args.repeats} timed requests each, {os.cpu_count()} CPU cores, "
              f"inter-op threads {args.inter_op_threads or 'TensorFlow default'}")
        reference = {}
        if args.reference_json:
            with open(args.reference_json) as stream:
                reference = json.load(stream)["p50_seconds"]
        print(f"{'nodes':>5} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'systems/s':>10}"
              + (f" {'reference p50 ms':>17} {'ours / reference':>17}" if reference else ""))
        rng = np.random.default_rng(0)
        for nodes in args.nodes:
            for batch in args.batch:
                trajectories = tf.constant(rng.uniform(-1, 1, [batch, nodes, config.frames, config.dims])
                                           .astype(np.float32))
                seconds = time_requests(signature, trajectories, args.repeats, args.warmup)
                p50, p99 = np.percentile(seconds, [50, 99])
                theirs = reference.get(f"{nodes}x{batch}")
                versus = "" if theirs is None else f" {1e3 * theirs:>17.2f} {p50 / theirs:>17.2f}"
                print(f"{nodes:>5} {batch:>5} {1e3 * p50:>9.2f} {1e3 * p99:>9.2f} {batch / p50:>10.0f}"
                      + versus, flush=True)


if __name__ == "__main__":
    main()
