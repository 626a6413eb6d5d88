"""Inference latency of the original NRI PyTorch encoder (ethanfetaya/NRI), for comparison
with `benchmarks/serve.py`.

    /tmp/torchvenv/bin/python benchmarks/reference_serve.py --reference /tmp/nri_ref --json ref_serve.json
    .venv/bin/python benchmarks/serve.py --reference-json ref_serve.json

As `benchmarks/reference_step.py`, ``--reference`` names a directory with the reference's
own ``modules.py`` and ``utils.py`` (not part of this project), run in a PyTorch virtualenv.
Times what the reference does to infer a graph at test time: its ``MLPEncoder`` (hidden 256,
49 frames, 4 dims, 2 edge types, factor graph, eval mode, ``torch.no_grad``) on random
[batch, nodes, 49, 4] input, plus the softmax over edge types, eagerly from Python, for the
same batches and node counts as serve.py. No request validation or normalisation (the
served signature does both in its graph). Prints p50 / p99 per call; ``--json`` writes the
p50s for serve.py to print ratios against.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import timing
from reference_step import DIMS, FACTOR, load_reference, relation_matrices

FRAMES, EDGE_TYPES = 49, 2


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True,
                        help="directory with the reference's modules.py and utils.py")
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per setting")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per setting first")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the p50s to PATH")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modules, utils = load_reference(args.reference)
    torch.manual_seed(0)
    encoder = modules.MLPEncoder(FRAMES * DIMS, args.hidden, EDGE_TYPES, 0.0, FACTOR).eval()
    print(f"reference MLPEncoder, hidden {args.hidden}, {FRAMES} frames, eval mode, no_grad; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.repeats} timed calls each")
    print(timing.load_average("before"), flush=True)
    print(f"{'nodes':>5} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'systems/s':>10}")
    p50s = {}
    for nodes in args.nodes:
        rel_rec, rel_send = relation_matrices(utils, nodes)
        for batch in args.batch:
            x = torch.rand(batch, nodes, FRAMES, DIMS) * 2 - 1

            def call():
                with torch.no_grad():
                    return torch.softmax(encoder(x, rel_rec, rel_send), dim=-1).numpy()

            for _ in range(args.warmup):
                call()
            seconds = np.empty(args.repeats)
            for i in range(args.repeats):
                start = time.perf_counter()
                call()
                seconds[i] = time.perf_counter() - start
            p50, p99 = np.percentile(seconds, [50, 99])
            p50s[f"{nodes}x{batch}"] = p50
            print(f"{nodes:>5} {batch:>5} {1e3 * p50:>9.2f} {1e3 * p99:>9.2f} {batch / p50:>10.0f}", flush=True)
    print(timing.load_average("after"))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"p50_seconds": p50s, "torch": torch.__version__, "threads": torch.get_num_threads()},
                      stream, indent=2)
            stream.write("\n")


if __name__ == "__main__":
    main()
