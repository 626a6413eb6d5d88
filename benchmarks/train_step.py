"""Training throughput of the NRI encoder/decoder pairs, with and without XLA.

    .venv/bin/python benchmarks/train_step.py                     # MLP/MLP, springs5, paper sizes
    .venv/bin/python benchmarks/train_step.py --pairs all         # all four encoder/decoder pairs
    .venv/bin/python benchmarks/train_step.py --precision both    # float32 and bfloat16 decoder layers
    .venv/bin/python benchmarks/train_step.py --pairs all \\
        --reference-json /tmp/reference_mlp_mlp.json --reference-json /tmp/reference_cnn_rnn.json

For each pair and each of jit_compile=False/True it prints the training samples per second
of `NRI.fit` on batches of [batch, nodes, frames, dims] (uniform random values: the cost does
not depend on them), the model's FLOPs per step as GFLOP/s, and that rate as a share of the
machine's float32 matmul rate measured in the same run, for two shapes: one
[4096, 256] x [256, 256] product (the shape of the message MLPs' big layer) and one
[4096, 4096] x [4096, 4096] product. It marks which XLA setting NRI's ``jit_compile="auto"``
picks for the pair.

FLOPs are the model's, counted in the reference implementation's evaluation order (every
edge MLP on gathered [receiver, sender] features, the MLP decoder's 48 predictions of a
49-frame trajectory), 2 per multiply-add, matmuls and convolutions only, training step =
3 x forward; this project evaluates some of them with fewer operations (see
`nri_tf.graph.node_pairs_matmul`), which shows up as a higher effective rate.

The comparison with the reference PyTorch code uses the figure `benchmarks/reference_step.py`
measured on the same machine (``--reference-json``, one file per pair); without it, the
published figure for MLP/MLP on the first development machine (about 2.1 s per batch of
128, ~61 samples/s) is shown instead. Run it on a quiet machine (check ``uptime``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import keras
import tensorflow as tf
import timing

from nri_tf.config import NRIConfig
from nri_tf.model import NRI

PUBLISHED_REFERENCE_SAMPLES_PER_S = 128 / 2.1
PAIRS = (("mlp", "mlp"), ("cnn", "mlp"), ("mlp", "rnn"), ("cnn", "rnn"))
CONV_KERNEL, POOL = 5, 2          # nri_tf.layers.ConvAttentionBlock


def matmul_gflops(rows: int, inner: int, cols: int, repeats: int) -> float:
    """Best-of-3 float32 rate of a [rows, inner] x [inner, cols] product, GFLOP/s."""
    a = tf.random.normal([rows, inner])
    b = tf.random.normal([inner, cols])
    product = tf.function(tf.matmul)
    product(a, b).numpy()

    def run():
        for _ in range(repeats):
            c = product(a, b)
        c.numpy()

    return timing.best_rate(run, 2 * rows * inner * cols * repeats, 3) / 1e9


def _mlp_block(rows: int, inputs: int, hidden: int) -> int:
    """Multiply-adds of a two-layer MLP (inputs -> hidden -> hidden) on ``rows`` rows."""
    return rows * (inputs * hidden + hidden * hidden)


def encoder_macs(config: NRIConfig, batch: int, nodes: int) -> int:
    """Multiply-adds of one encoder forward pass (reference evaluation order)."""
    edges = batch * nodes * (nodes - 1)
    h, d, t = config.encoder_hidden, config.dims, config.frames
    tail = edges * h * config.edge_types                                  # fc_out
    if config.encoder == "mlp":
        macs = _mlp_block(batch * nodes, t * d, h) + _mlp_block(edges, 2 * h, h)
        if config.factor:
            macs += _mlp_block(batch * nodes, h, h) + _mlp_block(edges, 3 * h, h)
        else:
            macs += _mlp_block(edges, h, h) + _mlp_block(edges, 2 * h, h)
        return macs + tail
    length1 = t - CONV_KERNEL + 1
    length2 = length1 // POOL - CONV_KERNEL + 1
    macs = edges * (length1 * CONV_KERNEL * 2 * d * h + length2 * CONV_KERNEL * h * h
                    + length2 * h * (h + 1))                            # conv1, conv2, 1x1 convs
    macs += _mlp_block(edges, h, h)
    if config.factor:
        macs += _mlp_block(batch * nodes, h, h) + _mlp_block(edges, 3 * h, h)
    return macs + tail


def decoder_macs(config: NRIConfig, batch: int, nodes: int) -> int:
    """Multiply-adds of one decoder forward pass over frames 1..T-1 (reference order)."""
    edges = batch * nodes * (nodes - 1)
    h, d = config.decoder_hidden, config.dims
    message_types = config.edge_types - int(config.skip_first)
    predictions = config.frames - 1
    if config.decoder == "mlp":
        per_frame = (message_types * _mlp_block(edges, 2 * d, h)
                     + batch * nodes * ((d + h) * h + h * h + h * d))
    else:
        per_frame = (message_types * _mlp_block(edges, 2 * h, h)
                     + batch * nodes * (d * 3 * h + h * 3 * h + 2 * h * h + h * d))
    return predictions * per_frame


def samples_per_second(config: NRIConfig, batch: int, nodes: int, jit_compile: bool,
                       warmup: int, measured: int, repeats: int) -> tuple[float, float]:
    """(samples/s, seconds to trace/compile + warm up) of `model.fit` on repeated batches:
    the best of ``repeats`` timed runs of ``measured`` steps."""
    keras.utils.set_random_seed(config.seed)
    trajectories = tf.random.uniform([batch, nodes, config.frames, config.dims], -1.0, 1.0)
    labels = tf.cast(tf.random.uniform([batch, nodes * (nodes - 1)]) < 0.5, tf.int32)
    data = tf.data.Dataset.from_tensors((trajectories, labels)).repeat()
    model = NRI(config)
    model.compile(optimizer=keras.optimizers.Adam(config.lr), jit_compile=jit_compile)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=warmup, epochs=1, shuffle=False, verbose=0)
    warm = time.perf_counter() - start

    def run():
        model.fit(data, steps_per_epoch=measured, epochs=1, shuffle=False, verbose=0)

    return timing.best_rate(run, batch * measured, repeats), warm


def auto_uses_xla(config: NRIConfig) -> bool:
    """Whether ``jit_compile="auto"`` compiles this configuration with XLA here."""
    model = NRI(config)
    model.compile(optimizer="adam", jit_compile="auto")
    return model.jit_compile is True


SIZE_KEYS = ("encoder", "decoder", "batch", "nodes", "frames", "hidden", "edge_types", "skip_first")


def reference_rates(paths: list[str]) -> dict:
    """{(encoder, decoder, batch, nodes, frames, hidden, edge_types, skip_first): samples/s}
    from `benchmarks/reference_step.py --json` files."""
    rates = {}
    for path in paths:
        with open(path) as stream:
            result = json.load(stream)
        rates[tuple(result["config"][key] for key in SIZE_KEYS)] = result["samples_per_s"]
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", choices=("one", "all"), default="one",
                        help="one: --encoder/--decoder; all: every encoder/decoder pair")
    timing.add_training_step_arguments(parser)
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "both"), default="float32",
                        help="NRIConfig.precision of the decoder's hidden layers (both: each, same run)")
    parser.add_argument("--reference-json", action="append", default=[], metavar="PATH",
                        help="a benchmarks/reference_step.py --json result (repeatable); used "
                             "for the pair and sizes it was measured at")
    args = parser.parse_args(argv)

    pairs = PAIRS if args.pairs == "all" else ((args.encoder, args.decoder),)
    references = reference_rates(args.reference_json)
    print(f"batch={args.batch} nodes={args.nodes} frames={args.frames} M={args.steps} "
          f"hidden={args.hidden} edge_types={args.edge_types} skip_first={args.skip_first}; "
          f"TF {tf.__version__}, {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} "
          f"intra-op threads")
    print(timing.load_average("before"), flush=True)
    rates = {"[4096,256]x[256,256]": matmul_gflops(4096, 256, 256, 50),
             "4096^3": matmul_gflops(4096, 4096, 4096, 5)}
    print("float32 matmul: " + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in rates.items()),
          flush=True)
    xla_modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    precisions = ("float32", "bfloat16") if args.precision == "both" else (args.precision,)
    for (encoder, decoder), precision in itertools.product(pairs, precisions):
        config = NRIConfig(frames=args.frames, encoder=encoder, decoder=decoder,
                           edge_types=args.edge_types, encoder_hidden=args.hidden,
                           decoder_hidden=args.hidden, prediction_steps=args.steps,
                           skip_first=args.skip_first, batch_size=args.batch,
                           precision=precision).validate()
        step_flops = 3 * 2 * (encoder_macs(config, args.batch, args.nodes)
                              + decoder_macs(config, args.batch, args.nodes))
        sizes = {"encoder": encoder, "decoder": decoder, "batch": args.batch, "nodes": args.nodes,
                 "frames": args.frames, "hidden": args.hidden, "edge_types": args.edge_types,
                 "skip_first": args.skip_first}
        reference = references.get(tuple(sizes[key] for key in SIZE_KEYS))
        paper_sizes = (args.batch, args.nodes, args.frames, args.hidden) == (128, 5, 49, 256)
        if reference is None and (encoder, decoder) == ("mlp", "mlp") and paper_sizes and not references:
            reference, source = PUBLISHED_REFERENCE_SAMPLES_PER_S, "published, another machine"
        else:
            source = "measured here"
        auto = auto_uses_xla(config)
        print(f"{encoder}/{decoder} {precision}: {step_flops / 1e9:.1f} GFLOP per training step; "
              f"jit_compile='auto' uses XLA: {auto}", flush=True)
        for jit in xla_modes:
            rate, warm = samples_per_second(config, args.batch, args.nodes, jit, args.warmup,
                                            args.measured, args.repeats)
            gflops = step_flops * rate / args.batch / 1e9
            shares = ", ".join(f"{100 * gflops / r:.0f}% of {name}" for name, r in rates.items())
            line = (f"  jit_compile={str(jit):5s}: {rate:7.1f} samples/s, {args.batch / rate:.3f} "
                    f"s/step, {gflops:.0f} GFLOP/s ({shares}); warm-up {warm:.0f} s")
            if reference:
                line += f"; {rate / reference:.2f}x the reference's {reference:.1f} samples/s ({source})"
            print(line, flush=True)
    print(timing.load_average("after"))


if __name__ == "__main__":
    main()
