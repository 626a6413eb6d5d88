"""Graph refinement's throughput: the exact search of small graphs against the sweeps.

    .venv/bin/python benchmarks/refinement.py                  # springs5 sizes, directed and undirected
    .venv/bin/python benchmarks/refinement.py --hidden 64 --batch 256

Times `nri_tf.refinement.refine_edge_types` on one batch of a randomly initialised model
(the cost does not depend on the weights' values, only the sweeps' early stop does, so the
sweeps run their full count here: their cost is an upper bound), with the exact search
(`best_edge_types`, what 5-node graphs get) and with the 10 sweeps it replaced (forced by
lowering `EXACT_RECEIVER_ASSIGNMENTS`), and prints systems/s and their ratio, measured in
the same run. Also the refinement's share of one decoder pass, as a machine-independent
figure.
"""

from __future__ import annotations

import argparse

import tensorflow as tf
from timing import best_rate, load_average

from nri_tf import refinement
from nri_tf.config import NRIConfig
from nri_tf.model import NRI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(load_average("before"))
    window = tf.random.stateless_uniform([args.batch, args.nodes, args.frames, 4], seed=[1, 2], minval=-1, maxval=1)
    start = tf.random.stateless_uniform([args.batch, args.nodes * (args.nodes - 1)], seed=[3, 4], maxval=2,
                                        dtype=tf.int32)
    for symmetric in (False, True):
        config = NRIConfig(dims=4, frames=args.frames, encoder_hidden=args.hidden, decoder_hidden=args.hidden,
                           skip_first=True, symmetric=symmetric)
        model = NRI(config)
        model(window)
        decoder_pass = best_rate(lambda: refinement.graph_cost(model, window, start), args.batch, args.repeats)
        rates = {}
        for search in ("exact", "sweeps"):
            limit = refinement.EXACT_RECEIVER_ASSIGNMENTS
            if search == "sweeps":
                refinement.EXACT_RECEIVER_ASSIGNMENTS = 0
            try:
                refinement.refine_edge_types(model, window, start, 1)           # warm-up
                rates[search] = best_rate(lambda: _full_sweeps(model, window, start, args.sweeps),
                                          args.batch, args.repeats)
            finally:
                refinement.EXACT_RECEIVER_ASSIGNMENTS = limit
        kind = "undirected" if symmetric else "directed"
        print(f"{kind}, {args.nodes} nodes, hidden {args.hidden}, batch {args.batch}: exact search "
              f"{rates['exact']:.0f} systems/s, {args.sweeps} sweeps {rates['sweeps']:.0f} systems/s "
              f"(exact / sweeps = {rates['exact'] / rates['sweeps']:.2f}); one decoder pass "
              f"{decoder_pass:.0f} systems/s, so the exact search costs "
              f"{decoder_pass / rates['exact']:.1f} decoder passes")
    print(load_average("after"))


def _full_sweeps(model, window, start, sweeps: int):
    """``refine_edge_types`` with every sweep run: the early stop disabled."""
    if refinement.EXACT_RECEIVER_ASSIGNMENTS:
        return refinement.refine_edge_types(model, window, start, sweeps)
    types = start
    for _ in range(sweeps):
        types = refinement.refine_edge_types(model, window, types, 1)
    return types


if __name__ == "__main__":
    main()
