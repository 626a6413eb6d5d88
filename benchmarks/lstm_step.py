"""Training step of the LSTM baselines against the machine's memory-bound floor.

    .venv/bin/python benchmarks/lstm_step.py              # motion capture's LSTM (joint)
    .venv/bin/python benchmarks/lstm_step.py --single     # LSTM (single) at the same sizes

At motion capture's sizes (31 joints x hidden 64 = a 1984-unit, two-layer LSTM, batch 8,
49 frames) every frame's step multiplies 8 rows by each layer's [2 x 1984, 4 x 1984]
weights (63 MB each): too few rows to reuse weights from cache, so the step's cost is
reading them. The floor printed is one read of every LSTM weight forward and one backward
per frame, at the rate this run measures for the same matmul shape; the ratios say how far
the forward pass and the training step (forward + backward + Adam) are from it.
"""

from __future__ import annotations

import argparse

import keras
import tensorflow as tf
import timing

from nri_tf.baselines.lstm import LSTM_LAYERS, LSTMPredictor


def matmul_seconds(rows: int, inner: int, cols: int, repeats: int = 10) -> float:
    """Best-of-3 seconds of one [rows, inner] x [inner, cols] float32 product."""
    weights = tf.Variable(tf.random.normal([inner, cols]))
    x = tf.random.normal([rows, inner])

    @tf.function
    def products():
        total = tf.zeros([])
        for _ in range(repeats):        # each reads the whole weight matrix
            total += tf.reduce_sum(tf.matmul(x, weights)[:, :1])
        return total

    products().numpy()
    return 1 / timing.best_rate(lambda: products().numpy(), repeats, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=31)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--dims", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="frames predicted from the model's own output")
    parser.add_argument("--single", action="store_true", help="LSTM (single) instead of LSTM (joint)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args()

    model = LSTMPredictor(args.dims, args.hidden, joint=not args.single, num_nodes=args.nodes)
    trajectories = tf.random.normal([args.batch, args.nodes, args.frames, args.dims])
    optimizer = keras.optimizers.Adam(1e-3)
    model(trajectories, None, prediction_steps=args.steps)

    @tf.function
    def forward():
        return model(trajectories, None, prediction_steps=args.steps, training=True)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            predictions = forward()
            loss = tf.reduce_mean((predictions - trajectories[:, :, 1:]) ** 2)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    print(timing.load_average("before"), flush=True)
    rows = args.batch * (1 if model.joint else args.nodes)
    layer_seconds = matmul_seconds(rows, 2 * model.units, 4 * model.units)
    layer_bytes = 2 * model.units * 4 * model.units * 4
    per_frame = args.frames - 1
    floor_forward = LSTM_LAYERS * layer_seconds * per_frame
    timings = {}
    for name, step in (("forward", forward), ("training step", train_step)):
        step()
        timings[name] = 1 / timing.best_rate(lambda: tf.nest.map_structure(lambda t: t.numpy(), step()), 1,
                                             args.repeats)
    kind = "single" if args.single else "joint"
    print(f"LSTM ({kind}): {model.units} units x {LSTM_LAYERS} layers, batch {args.batch}, {args.frames} frames")
    print(f"  [{rows}, {2 * model.units}] x [{2 * model.units}, {4 * model.units}] matmul: "
          f"{1e3 * layer_seconds:.2f} ms = {layer_bytes / layer_seconds / 1e9:.1f} GB/s of weights")
    print(f"  forward        {timings['forward']:.2f} s = {timings['forward'] / floor_forward:.2f}x "
          f"its floor ({floor_forward:.2f} s: each layer's weights once per frame)")
    print(f"  training step  {timings['training step']:.2f} s = "
          f"{timings['training step'] / (2 * floor_forward):.2f}x its floor ({2 * floor_forward:.2f} s: "
          f"once forward and once backward)")
    print(timing.load_average("after"))


if __name__ == "__main__":
    main()
