"""Training cost on large systems: peak memory and samples/s, complete graph against candidate
edges (issue 15).

    .venv/bin/python benchmarks/large_systems.py                       # N = 100, 300, 1000
    .venv/bin/python benchmarks/large_systems.py --nodes 1000 --settings knn16 --batch 4

For each N a small local-springs dataset is simulated into ``--data-root`` (once; reused).
Each setting then trains in a process of its own, so that its peak memory is its own: the
real training path, `trainers.loop.build_model` + `data_pipelines.datasets.make_dataset`
(records parsed and given their candidates in tf.data, cached) + ``model.fit``, with the
fast preset's model (MLP encoder and decoder, hidden 64, 2 edge types, type 0 = no edge,
M = 10, 49 frames, XLA as ``jit_compile="auto"`` decides). Settings:

  complete   the complete graph, N*(N-1) edges per system (today's path)
  knn8, knn16   each node receives from its 8 / 16 nearest nodes on the first frame
  knn16-symmetric   knn16 with ``--symmetric`` (the mutual pairs' directions tied)

Printed per (N, setting): edges per system, samples (systems) per second over the timed
epochs (the first epoch, with tracing and XLA compilation, is not timed), the process's
peak resident memory (ru_maxrss) and its resident memory after building the model (the
runtime and model, before any batch), and peak minus that, per edge of a batch. A complete
graph whose estimate (that per-edge figure of the largest candidate run of the same N, times
its edges) exceeds ``--memory-budget-gb`` is not run; its estimate is printed instead.
The load average is printed before and after: other processes slow the timings.

``--allocators malloc bfc`` runs each setting under both of TensorFlow's CPU allocators
(``TF_CPU_ALLOCATOR_USE_BFC`` false / true in the child's environment) and prints the bfc
run's samples/s as a multiple of the malloc run's: large tensors from malloc are fresh
pages on every step (page faults, system time), the BFC pool keeps and reuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import load_average   # noqa: E402

ALLOCATORS = {"malloc": "false", "bfc": "true"}   # -> TF_CPU_ALLOCATOR_USE_BFC
# setting -> (candidate method, k, symmetric)
SETTINGS = {"complete": ("complete", None, False), "knn8": ("knn", 8, False), "knn16": ("knn", 16, False),
            "knn16-symmetric": ("knn", 16, True)}
MODEL = {"encoder_hidden": 64, "decoder_hidden": 64, "lr": 1e-3, "skip_first": True}


def child(args) -> None:
    """Trains one setting on one dataset and prints one JSON line (see the module notes)."""
    from data_pipelines.tf_startup import import_tensorflow

    import_tensorflow()
    import keras

    from data_pipelines.datasets import make_dataset
    from data_pipelines.storage.reader import read_metadata
    from nri_tf.config import NRIConfig
    from trainers.loop import build_model, candidate_spec

    method, k, symmetric = SETTINGS[args.setting]
    metadata = read_metadata(args.data)
    config = NRIConfig(dims=metadata.dims, frames=metadata.frames["train"], batch_size=args.batch,
                       candidate_edges=method, candidate_k=k or 16, epochs=1 + args.epochs,
                       symmetric=symmetric, **MODEL)
    steps = metadata.splits["train"] // args.batch
    keras.utils.set_random_seed(0)
    model = build_model(config, metadata.nodes, steps)
    built_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = make_dataset(args.data, "train", args.batch, shuffle=True, seed=0, drop_remainder=True,
                        repeat=True, cache=True, candidates=candidate_spec(config))
    times = []

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(data, epochs=1 + args.epochs, steps_per_epoch=steps, verbose=0, callbacks=[EpochTimes()])
    degree = metadata.nodes - 1 if method == "complete" else min(k, metadata.nodes - 1)
    print(json.dumps({
        "samples_per_s": steps * args.batch * args.epochs / sum(times[1:]),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "built_rss_kb": built_rss,
        "edges": metadata.nodes * degree, "jit_compile": str(model.jit_compile),
        "first_epoch_s": times[0]}))


def ensure_data(root: str, nodes: int, systems: int) -> str:
    """A local-springs dataset of ``systems`` training systems of ``nodes`` nodes (simulated once)."""
    from data_pipelines.generation import generate_dataset

    path = os.path.join(root, f"local-springs{nodes}-{systems}")
    if not os.path.exists(os.path.join(path, "metadata.json")):
        start = time.perf_counter()
        generate_dataset(path, simulation="local-springs", num_nodes=nodes, num_train=systems,
                         num_valid=1, num_test=1, length_test=5100, seed=0, progress=False)
        print(f"  simulated {path} in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def run_child(args, data: str, setting: str, allocator: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", "--data", data, "--setting", setting,
               "--batch", str(args.batch), "--epochs", str(args.epochs)]
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": ALLOCATORS[allocator]}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["knn8", "knn16", "complete"])
    parser.add_argument("--batch", type=int, default=8, help="systems per batch")
    parser.add_argument("--steps", type=int, default=3, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the first")
    parser.add_argument("--allocators", nargs="+", choices=sorted(ALLOCATORS), default=["bfc"],
                        help="TensorFlow CPU allocators to run each setting under (default: bfc, "
                             "the commands' choice; both: the bfc/malloc speed ratio)")
    parser.add_argument("--memory-budget-gb", type=float, default=16.0,
                        help="complete graphs estimated above this are not run")
    parser.add_argument("--data-root", default=os.path.join("/tmp", "nri-large-systems"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"batch {args.batch}, {args.steps} steps per epoch, {args.epochs} timed epochs; "
          f"model {MODEL}; {load_average('before')}", flush=True)
    print(f"{'N':>5} {'setting':>15} {'alloc':>6} {'edges/system':>12} {'samples/s':>10} {'peak GB':>8} "
          f"{'built GB':>8} {'KB/edge':>8}  notes", flush=True)
    for nodes in args.nodes:
        data = ensure_data(args.data_root, nodes, args.batch * args.steps)
        per_edge = None
        for setting in args.settings:
            method, k, _ = SETTINGS[setting]
            edges = nodes * (nodes - 1 if method == "complete" else min(k, nodes - 1))
            if method == "complete" and per_edge is not None:
                estimate = per_edge * edges * args.batch / 2 ** 20
                if estimate > args.memory_budget_gb:
                    print(f"{nodes:5d} {setting:>15} {'-':>6} {edges:12d} {'-':>10} {'-':>8} {'-':>8} {'-':>8}  "
                          f"not run: estimated {estimate:.0f} GB above the built model "
                          f"(> --memory-budget-gb {args.memory_budget_gb:g})", flush=True)
                    continue
            rates = {}
            for allocator in args.allocators:
                result = run_child(args, data, setting, allocator)
                if "error" in result:
                    print(f"{nodes:5d} {setting:>15} {allocator:>6} {edges:12d}  failed: {result['error']}",
                          flush=True)
                    continue
                rates[allocator] = result["samples_per_s"]
                extra = (result["peak_rss_kb"] - result["built_rss_kb"]) / (edges * args.batch)
                if method != "complete":
                    per_edge = extra if per_edge is None else max(per_edge, extra)
                ratio = (f", bfc/malloc {rates['bfc'] / rates['malloc']:.2f}x"
                         if len(rates) == 2 else "")
                print(f"{nodes:5d} {setting:>15} {allocator:>6} {edges:12d} {result['samples_per_s']:10.2f} "
                      f"{result['peak_rss_kb'] / 2 ** 20:8.2f} {result['built_rss_kb'] / 2 ** 20:8.2f} "
                      f"{extra:8.2f}  XLA {result['jit_compile']}, first epoch {result['first_epoch_s']:.1f} s"
                      f"{ratio}", flush=True)
    print(load_average("after"))


if __name__ == "__main__":
    main()
