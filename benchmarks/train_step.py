"""Training throughput of one NRI configuration, with and without XLA.

    .venv/bin/python benchmarks/train_step.py                # springs5 at the paper's sizes
    .venv/bin/python benchmarks/train_step.py --decoder rnn --steps 3

Prints, for each of jit_compile=False/True, the training samples per second of
`NRI.fit` on batches of [batch, nodes, frames, dims] (uniform random values: the cost does
not depend on them), then the machine's float32 matmul rate and the estimated FLOPs of one
training step (matmuls only, backward = 2 x forward), so the note can say how close the
step comes to the matmul rate. For scale: the reference PyTorch code takes about 2.1 s per
batch of 128 springs5 systems on the 2-core development machine (about 60 samples/s).
Run it on a quiet machine (check ``uptime``).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import keras
import tensorflow as tf

from nri_tf.config import NRIConfig
from nri_tf.model import NRI

REFERENCE_SAMPLES_PER_S = 128 / 2.1


def matmul_gflops(size: int = 4096, repeats: int = 10) -> float:
    """Best-of-3 float32 matmul rate of a [size, size] x [size, size] product, GFLOP/s."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    product = tf.function(tf.matmul)
    product(a, b).numpy()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            c = product(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size ** 3 / best / 1e9


def _mlp_block(rows: int, inputs: int, hidden: int) -> int:
    return 2 * rows * (inputs * hidden + hidden * hidden)


def forward_flops(config: NRIConfig, batch: int, nodes: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass, MLP encoder and decoder only."""
    edges = nodes * (nodes - 1)
    h, k, d, t = config.encoder_hidden, config.edge_types, config.dims, config.frames
    encoder = (_mlp_block(batch * nodes, t * d, h) + _mlp_block(batch * edges, 2 * h, h)
               + _mlp_block(batch * nodes, h, h)
               + _mlp_block(batch * edges, 3 * h if config.factor else 2 * h, h)
               + 2 * batch * edges * h * k)
    m = config.prediction_steps
    positions = math.ceil((t - 1) / m) * m                # chunk starts x M steps each
    hd = config.decoder_hidden
    message_types = k - int(config.skip_first)
    decoder = positions * (message_types * _mlp_block(batch * edges, 2 * d, hd)
                           + 2 * batch * nodes * ((d + hd) * hd + hd * hd + hd * d))
    return float(encoder + decoder)


def samples_per_second(config: NRIConfig, batch: int, nodes: int, jit_compile: bool,
                       warmup: int, measured: int, repeats: int) -> tuple[float, float]:
    """(samples/s, seconds to trace/compile + warm up) of `model.fit` on repeated batches.

    The rate is the best of ``repeats`` timed runs of ``measured`` steps (other processes
    on a shared machine only ever slow a run down).
    """
    keras.utils.set_random_seed(config.seed)
    trajectories = tf.random.uniform([batch, nodes, config.frames, config.dims], -1.0, 1.0)
    labels = tf.cast(tf.random.uniform([batch, nodes * (nodes - 1)]) < 0.5, tf.int32)
    data = tf.data.Dataset.from_tensors((trajectories, labels)).repeat()
    model = NRI(config)
    model.compile(optimizer=keras.optimizers.Adam(config.lr), jit_compile=jit_compile)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=warmup, epochs=1, shuffle=False, verbose=0)
    warm = time.perf_counter() - start
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=measured, epochs=1, shuffle=False, verbose=0)
        best = min(best, time.perf_counter() - start)
    return batch * measured / best, warm


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--steps", type=int, default=10, help="prediction_steps M")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--edge-types", type=int, default=2)
    parser.add_argument("--encoder", default="mlp")
    parser.add_argument("--decoder", default="mlp")
    parser.add_argument("--skip-first", action="store_true")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--measured", type=int, default=8, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both")
    args = parser.parse_args(argv)

    config = NRIConfig(frames=args.frames, encoder=args.encoder, decoder=args.decoder,
                       edge_types=args.edge_types, encoder_hidden=args.hidden,
                       decoder_hidden=args.hidden, prediction_steps=args.steps,
                       skip_first=args.skip_first, batch_size=args.batch).validate()
    print(f"config: encoder={config.encoder} decoder={config.decoder} hidden={args.hidden} "
          f"batch={args.batch} nodes={args.nodes} frames={args.frames} M={args.steps} "
          f"edge_types={args.edge_types} skip_first={args.skip_first}; "
          f"TF {tf.__version__}, {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} "
          f"intra-op threads")
    print(_load_average("before"), flush=True)
    gflops = matmul_gflops()
    step_flops = None
    if config.encoder == "mlp" and config.decoder == "mlp":
        step_flops = 3 * forward_flops(config, args.batch, args.nodes)
    xla_modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    for jit in xla_modes:
        rate, warm = samples_per_second(config, args.batch, args.nodes, jit, args.warmup,
                                        args.measured, args.repeats)
        step_s = args.batch / rate
        line = (f"jit_compile={str(jit):5s}: {rate:7.1f} samples/s, {step_s:.3f} s/step "
                f"({rate / REFERENCE_SAMPLES_PER_S:.2f}x the reference's ~{REFERENCE_SAMPLES_PER_S:.0f}"
                f" samples/s; warm-up {warm:.0f} s)")
        if step_flops:
            line += f", {step_flops / step_s / 1e9:.0f} GFLOP/s effective"
        print(line, flush=True)
    print(f"float32 matmul 4096^3: {gflops:.0f} GFLOP/s")
    if step_flops:
        print(f"estimated training step: {step_flops / 1e9:.1f} GFLOP (matmuls, forward x 3)")
    print(_load_average("after"))


def _load_average(when: str) -> str:
    """The 1/5/15-minute load averages: other processes on the machine slow the timings."""
    return "load average {}: {:.1f} {:.1f} {:.1f} on {} cores".format(when, *os.getloadavg(),
                                                                     os.cpu_count())


if __name__ == "__main__":
    main()
