"""Two layouts for message passing on candidate edges, timed on the same work (issue 15).

    .venv/bin/python benchmarks/edge_layout.py                  # N = 1000, k = 16, batch 8
    .venv/bin/python benchmarks/edge_layout.py --nodes 300 --degree 8 --xla

The work is one round of NRI message passing, forward and backward: node features
[batch, nodes, features] -> [receiver, sender] features on every edge -> Dense(features)
-> ReLU -> the sum over each node's incoming edges. Layouts:

  fixed degree   `nri_tf.graph` with `CandidateEdges`: edge tensors [batch, nodes * k, ...];
                 receivers a broadcast, senders a batched gather of [batch, nodes, k],
                 incoming edges a reshape to [batch, nodes, k, ...] and a sum
  flat list      the whole batch as one graph of batch * nodes nodes, edges [batch * nodes * k]
                 with receiver and sender index vectors (node index + b * nodes): both ends a
                 `tf.gather`, incoming edges `tf.math.unsorted_segment_sum` over the receivers
                 (the layout that also holds a different edge count per system)

Prints milliseconds per step (the best of ``--repeats`` runs) and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import best_rate, load_average   # noqa: E402
from data_pipelines.tf_startup import import_tensorflow   # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--degree", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--xla", action="store_true", help="jit_compile the steps")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tf = import_tensorflow()
    import numpy as np
    from nri_tf import graph

    rng = np.random.default_rng(0)
    b, n, k, f = args.batch, args.nodes, args.degree, args.features
    # k distinct senders per receiver, none the receiver itself, sorted (receiver-major).
    offsets = np.stack([np.sort(rng.choice(n - 1, k, replace=False)) for _ in range(b * n)])
    receivers = np.repeat(np.arange(n), k)[None].repeat(b, 0).reshape(b, n, k)
    senders = ((receivers + 1 + offsets.reshape(b, n, k)) % n).astype(np.int32)
    nodes = tf.constant(rng.normal(size=(b, n, f)).astype(np.float32))
    kernel = tf.Variable((rng.normal(size=(2 * f, f)) / np.sqrt(2 * f)).astype(np.float32))
    edges = graph.CandidateEdges(tf.constant(senders))
    flat_receivers = tf.constant((receivers + n * np.arange(b)[:, None, None]).reshape(-1).astype(np.int32))
    flat_senders = tf.constant((senders + n * np.arange(b)[:, None, None]).reshape(-1).astype(np.int32))

    def fixed_degree(x):
        messages = tf.nn.relu(tf.tensordot(graph.node_to_edge(x, edges), kernel, 1))
        return graph.edge_to_node(messages, edges=edges)

    def flat_list(x):
        flat = tf.reshape(x, [b * n, f])
        pairs = tf.concat([tf.gather(flat, flat_receivers), tf.gather(flat, flat_senders)], -1)
        messages = tf.nn.relu(pairs @ kernel)
        return tf.reshape(tf.math.unsorted_segment_sum(messages, flat_receivers, b * n), [b, n, f])

    def timed(layer):
        @tf.function(jit_compile=args.xla)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(layer(x)))
            return tape.gradient(loss, [x, kernel])

        def run():
            for _ in range(args.steps):
                gradients = step(nodes)
            gradients[0].numpy()
        run()
        return 1000.0 / best_rate(run, args.steps, args.repeats)

    np.testing.assert_allclose(fixed_degree(nodes).numpy(), flat_list(nodes).numpy(), rtol=1e-4, atol=1e-4)
    print(f"N={n} k={k} batch={b} features={f} xla={'on' if args.xla else 'off'}; "
          f"{load_average('before')}")
    for name, layer in (("fixed degree", fixed_degree), ("flat list", flat_list)):
        print(f"  {name:12s} {timed(layer):8.2f} ms per forward+backward step")
    print(f"  {load_average('after')}")


if __name__ == "__main__":
    main()
