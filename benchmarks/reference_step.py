"""Training throughput of the original NRI PyTorch code (ethanfetaya/NRI), for comparison.

    /tmp/torchvenv/bin/python benchmarks/reference_step.py --reference /tmp/nri_ref
    /tmp/torchvenv/bin/python benchmarks/reference_step.py --reference /tmp/nri_ref \\
        --encoder cnn --decoder rnn --json /tmp/reference_cnn_rnn.json

The reference code is not part of this project: ``--reference`` names a directory holding
the reference's own ``modules.py`` and ``utils.py`` (unchanged), and this script imports its
encoder, decoder, Gumbel-softmax and losses from there. It runs in a separate virtualenv with
PyTorch (not this project's TensorFlow one).

It builds the encoder and decoder the way the reference ``train.py`` does for the given
flags (factor graph on, dropout 0, Adam at lr 5e-4) and times the body of the reference's
training loop, ``train()``, on one fixed batch of [batch, nodes, frames, dims] uniform
random values in [-1, 1] (the cost does not depend on them): zero_grad, encoder, soft
Gumbel-softmax sample (tau 0.5), edge-type softmax, decoder (the RNN decoder with burn-in of
frames - steps ground-truth steps, as train.py passes it), Gaussian NLL (variance 5e-5) +
KL to the uniform prior, backward, Adam step. Left out: train.py's per-step edge accuracy and
loss logging (bookkeeping, not model work) and its per-epoch LR scheduler step.

Prints the rate as the best of ``--repeats`` timed runs of ``--measured`` steps after
``--warmup`` untimed steps, like benchmarks/train_step.py does for this project's model;
``--json PATH`` also writes it for train_step.py to read. Run it on a quiet machine (check
``uptime``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import timing
import torch

# The reference train.py's defaults for everything this script does not expose.
DIMS = 4
TEMP = 0.5
VARIANCE = 5e-5
LR = 5e-4
DROPOUT = 0.0
FACTOR = True
SEED = 42
RNN_PRED_STEPS = 100      # train.py passes 100 to the RNN decoder; unused once burn_in=True


def load_reference(directory: str):
    """The reference's ``modules`` and ``utils`` modules, imported from ``directory``."""
    directory = os.path.abspath(directory)
    for name in ("modules.py", "utils.py"):
        if not os.path.isfile(os.path.join(directory, name)):
            raise SystemExit(f"--reference {directory}: no {name} there")
    sys.path.insert(0, directory)       # modules.py itself does `from utils import ...`
    import modules
    import utils
    for module in (modules, utils):
        if os.path.dirname(os.path.abspath(module.__file__)) != directory:
            raise SystemExit(f"imported {module.__name__} from {module.__file__}, "
                             f"not from {directory}")
    return modules, utils


def relation_matrices(utils, nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot receiver/sender matrices [nodes * (nodes - 1), nodes], built as in train.py."""
    off_diag = np.ones([nodes, nodes]) - np.eye(nodes)
    rel_rec = np.array(utils.encode_onehot(np.where(off_diag)[1]), dtype=np.float32)
    rel_send = np.array(utils.encode_onehot(np.where(off_diag)[0]), dtype=np.float32)
    return torch.FloatTensor(rel_rec), torch.FloatTensor(rel_send)


def build_models(modules, args) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Encoder and decoder with the constructor arguments train.py passes for these flags."""
    if args.encoder == "mlp":
        encoder = modules.MLPEncoder(args.frames * DIMS, args.hidden, args.edge_types,
                                     DROPOUT, FACTOR)
    else:
        encoder = modules.CNNEncoder(DIMS, args.hidden, args.edge_types, DROPOUT, FACTOR)
    if args.decoder == "mlp":
        decoder = modules.MLPDecoder(n_in_node=DIMS, edge_types=args.edge_types,
                                     msg_hid=args.hidden, msg_out=args.hidden,
                                     n_hid=args.hidden, do_prob=DROPOUT,
                                     skip_first=args.skip_first)
    else:
        decoder = modules.RNNDecoder(n_in_node=DIMS, edge_types=args.edge_types,
                                     n_hid=args.hidden, do_prob=DROPOUT,
                                     skip_first=args.skip_first)
    return encoder, decoder


def make_step(utils, encoder, decoder, optimizer, data, rel_rec, rel_send, args):
    """One call = one training step of the reference train.py's train() loop on ``data``."""
    nodes = data.size(1)

    def step() -> float:
        optimizer.zero_grad()
        logits = encoder(data, rel_rec, rel_send)
        edges = utils.gumbel_softmax(logits, tau=TEMP, hard=False)
        prob = utils.my_softmax(logits, -1)
        if args.decoder == "rnn":
            output = decoder(data, edges, rel_rec, rel_send, RNN_PRED_STEPS, burn_in=True,
                             burn_in_steps=args.frames - args.steps)
        else:
            output = decoder(data, edges, rel_rec, rel_send, args.steps)
        target = data[:, :, 1:, :]
        loss_nll = utils.nll_gaussian(output, target, VARIANCE)
        loss_kl = utils.kl_categorical_uniform(prob, nodes, args.edge_types)
        loss = loss_nll + loss_kl
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def samples_per_second(step, batch: int, warmup: int, measured: int,
                       repeats: int) -> tuple[float, float]:
    """(samples/s, seconds to warm up) of repeated training steps: the best of ``repeats``
    timed runs of ``measured`` steps (`timing.best_rate`)."""
    start = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    warm = time.perf_counter() - start
    if warmup and not math.isfinite(loss):
        raise SystemExit(f"warm-up loss is {loss}")

    def run():
        for _ in range(measured):
            step()

    return timing.best_rate(run, batch * measured, repeats), warm


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True,
                        help="directory with the reference's modules.py and utils.py")
    timing.add_training_step_arguments(parser)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the result to PATH")
    args = parser.parse_args(argv)
    if not 1 <= args.steps < args.frames:
        parser.error("--steps must be at least 1 and below --frames")
    if min(args.warmup, args.measured - 1, args.repeats - 1) < 0:
        parser.error("--measured and --repeats must be at least 1, --warmup at least 0")

    if args.threads:
        torch.set_num_threads(args.threads)
    modules, utils = load_reference(args.reference)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    rel_rec, rel_send = relation_matrices(utils, args.nodes)
    encoder, decoder = build_models(modules, args)
    encoder.train()
    decoder.train()
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()),
                                 lr=LR)
    data = torch.rand(args.batch, args.nodes, args.frames, DIMS) * 2 - 1
    step = make_step(utils, encoder, decoder, optimizer, data, rel_rec, rel_send, args)

    config = {"encoder": args.encoder, "decoder": args.decoder, "hidden": args.hidden,
              "batch": args.batch, "nodes": args.nodes, "frames": args.frames, "dims": DIMS,
              "prediction_steps": args.steps, "edge_types": args.edge_types,
              "skip_first": args.skip_first, "warmup": args.warmup, "measured": args.measured,
              "repeats": args.repeats, "torch": torch.__version__,
              "threads": torch.get_num_threads()}
    print(f"config: encoder={args.encoder} decoder={args.decoder} hidden={args.hidden} "
          f"batch={args.batch} nodes={args.nodes} frames={args.frames} M={args.steps} "
          f"edge_types={args.edge_types} skip_first={args.skip_first}; reference code from "
          f"{os.path.abspath(args.reference)}")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")
    print(timing.load_average("before"), flush=True)
    rate, warm = samples_per_second(step, args.batch, args.warmup, args.measured, args.repeats)
    step_s = args.batch / rate
    print(f"reference: {rate:.1f} samples/s, {step_s:.3f} s/step (best of {args.repeats} runs "
          f"of {args.measured} steps after {args.warmup} warm-up steps)", flush=True)
    print(f"warm-up: {warm:.1f} s")
    print(timing.load_average("after"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples_per_s": rate, "seconds_per_step": step_s, "config": config},
                      f, indent=2)
            f.write("\n")



if __name__ == "__main__":
    main()
