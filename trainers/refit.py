"""Refitting a trained run's decoder on hard graphs (beyond the paper).

NRI's decoder learns from the encoder's soft, sampled graphs, but predicts from one hard
graph. On springs5 (the cpu budget's run, seed 42) the trained decoder rolled out on the
*true* graph still errs 12x more after one step than a decoder trained on true graphs
(2.7e-7 against 2.2e-8): the decoder holds the prediction error back, not only the graph.
A refit keeps the encoder and retrains the decoder alone, on each training system's graph
fixed to the encoder's most likely one improved against the decoder (`nri_tf.refinement`).
The result is a new run directory, which ``evaluate`` (best with ``--refine-sweeps``, the
graphs the decoder was refit on) and ``export`` read like any other:

    NEW_RUN/
      config.json, dataset.json   the source run's (same model, same data)
      best.weights.h5             the source run's encoder, the refit decoder of the epoch
                                  with the lowest validation nll (on refined graphs)
      history.jsonl               one line per refit epoch: seconds, nll, val_nll
      results.json                the test evaluation, with the refined graphs' ("refined")
      refit.json                  what was refit from what, how (`REFIT_FILE`)

The output appears only when the refit has finished (it is written to a hidden directory
first); an interrupted refit leaves nothing and is started again. `prepare` refuses to
train into a refit's directory (its weights are not a training run's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from data_pipelines.errors import UserError
from data_pipelines.files import read_json, write_json_atomic
from data_pipelines.storage.reader import read_metadata
from nri_tf import evaluation, refinement
from nri_tf.model import unpack_batch
from trainers import run_directory
from trainers.loop import evaluate_test_split, split_dataset
from trainers.refit_options import RefitOptions

REFIT_FILE = run_directory.REFIT_FILE
# Systems per refinement call: its sweeps run eagerly, so small batches pay per-call
# overhead (springs5's 10k training systems: 223 s in the run's batches of 32).
REFINE_BATCH = 256


def fixed_graphs(model, dataset: tf.data.Dataset, frames: int, sweeps: int) -> tuple[list, float]:
    """Every system's graph, fixed for the refit: the encoder's most likely, refined.

    Args:
      model: the trained `nri_tf.model.NRI` (learned graph, MLP decoder when ``sweeps``).
      dataset: batches (trajectories [batch, nodes, frames', dims], labels[, candidates]),
        in a fixed order.
      frames: the frames the encoder sees (and the refinement scores).
      sweeps: refinement sweeps (0: none).
    Returns:
      ([(trajectories, candidates or None, edge types [batch, edges] int32)] per batch,
       the share of the real edges the refinement changed).
    """
    graphs, changed, total = [], 0, 0
    for batch in dataset:                        # read once: the encoder's window and the decoder's frames
        trajectories, _, candidates = unpack_batch(batch)
        window, edges, types, real = evaluation.infer_batch(model, trajectories, candidates, frames)
        refined = refinement.refine_edge_types(model, window, types, sweeps, edges) if sweeps else types
        changed += int(tf.reduce_sum(tf.cast((refined != types) & real, tf.int32)))
        total += int(tf.reduce_sum(tf.cast(real, tf.int32)))
        graphs.append((trajectories, candidates, refined))
    return graphs, changed / max(total, 1)


def rebatched(graphs: list, batch_size: int) -> list:
    """`fixed_graphs`' batches cut into batches of at most ``batch_size`` systems (in order)."""
    out = []
    for trajectories, candidates, types in graphs:
        for start in range(0, int(trajectories.shape[0]), batch_size):
            part = slice(start, start + batch_size)
            out.append((trajectories[part], None if candidates is None else
                        {name: value[part] for name, value in candidates.items()}, types[part]))
    return out


def mean_nll(model, graphs: list) -> float:
    """The decoder's nll per node (as val_nll) over ``graphs`` (`fixed_graphs`' batches)."""
    total = systems = 0.0
    for trajectories, candidates, types in graphs:
        total += float(tf.reduce_sum(model.nll_on_graph(trajectories, types, candidates)))
        systems += int(trajectories.shape[0]) * int(trajectories.shape[1])
    return total / max(systems, 1)


def fit_decoder(model, train: list, valid: list, options: RefitOptions,
                log: Callable[[str], None] = print) -> tuple[list, int]:
    """Trains ``model.decoder`` alone on the fixed graphs ``train``; leaves it with the
    weights of the epoch with the lowest nll on ``valid`` (the start counts as epoch 0).

    Returns:
      (one {"epoch", "seconds", "nll", "val_nll"} per epoch (nll: the mean training nll),
       the best epoch: 0 when none improved on the run's decoder).
    Raises:
      FloatingPointError when the training nll becomes NaN or infinite (the decoder is
      left as it was at the best epoch so far).
    """
    variables = model.decoder.trainable_variables
    optimizer = keras.optimizers.Adam(options.lr)
    optimizer.build(variables)

    @tf.function(reduce_retracing=True)
    def step(trajectories, candidates, types):
        with tf.GradientTape() as tape:
            per_system = model.nll_on_graph(trajectories, types, candidates, training=True)
            loss = tf.reduce_sum(per_system) / tf.cast(tf.shape(trajectories)[0] * tf.shape(trajectories)[1],
                                                       per_system.dtype)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    best_epoch, best_nll, best_weights = 0, mean_nll(model, valid), [v.numpy() for v in variables]
    log(f"refit epoch 0: val_nll {best_nll:.4g} (the run's decoder)")
    order = np.random.default_rng(options.seed)
    history = []
    for epoch in range(1, options.epochs + 1):
        start, losses = time.perf_counter(), []
        for index in order.permutation(len(train)):
            losses.append(float(step(*train[index])))
            if not np.isfinite(losses[-1]):
                for variable, value in zip(variables, best_weights):
                    variable.assign(value)
                raise FloatingPointError(f"the refit's training nll became {losses[-1]} in epoch {epoch}; "
                                         f"lower --lr (now {options.lr})")
        val_nll = mean_nll(model, valid)
        record = {"epoch": epoch, "seconds": time.perf_counter() - start, "nll": float(np.mean(losses)),
                  "val_nll": val_nll}
        history.append(record)
        better = val_nll < best_nll
        if better:
            best_epoch, best_nll, best_weights = epoch, val_nll, [v.numpy() for v in variables]
        log(f"refit epoch {epoch}/{options.epochs}: nll {record['nll']:.4g}, val_nll {val_nll:.4g}"
            f"{' (best)' if better else ''}, {record['seconds']:.0f} s")
    for variable, value in zip(variables, best_weights):
        variable.assign(value)
    return history, best_epoch


def refit_run(run_dir: str, output: str, options: RefitOptions,
              log: Callable[[str], None] = print) -> dict:
    """Refits the decoder of the trained run ``run_dir`` into the new run directory ``output``.

    Returns:
      the test results written to ``output/results.json`` (`nri_tf.evaluation.evaluate`,
      with "refined" scored with ``options.refine_sweeps`` when the data has labels).
    Raises:
      UserError: ``output`` exists, the run's graph cannot be refined (not the MLP decoder)
        while ``refine_sweeps`` asks for it, or its dataset is gone.
      FloatingPointError: the refit diverged (nothing is written).
    """
    options.check()
    if os.path.lexists(output):
        raise UserError(f"{output} exists; a refit writes a new run directory: give another --output")
    config = run_directory.load_config(run_dir)
    if options.refine_sweeps and config.decoder != "mlp":
        raise UserError(f"refining the graphs needs the mlp decoder, {run_dir} has the {config.decoder} "
                        "decoder; pass --refine-sweeps 0 to refit on the encoder's graphs")
    dataset = read_json(os.path.join(run_dir, run_directory.DATASET_FILE))
    data_dir = dataset["path"]
    metadata = read_metadata(data_dir)
    model, _ = run_directory.load_best_model(run_dir, dataset["nodes"])
    keras.utils.set_random_seed(options.seed)

    def split(name: str) -> tf.data.Dataset:   # refined in large batches, trained in the run's
        batch = dataclasses.replace(config, batch_size=max(config.batch_size, REFINE_BATCH))
        return split_dataset(data_dir, name, batch, training=False, seed=options.seed,
                             frames=metadata.frames["train"], labelled=True)

    started = time.perf_counter()
    search = ("the encoder's graphs as they are" if not options.refine_sweeps else
              "refined by exact search" if refinement.exact_search_fits(config, dataset["nodes"])
              else f"{options.refine_sweeps} refinement sweeps")
    log(f"fixing the graphs of {metadata.splits['train']} training and {metadata.splits['valid']} "
        f"validation systems ({search})")
    train, changed = fixed_graphs(model, split("train"), config.frames, options.refine_sweeps)
    train = rebatched(train, config.batch_size)
    valid, _ = fixed_graphs(model, split("valid"), config.frames, options.refine_sweeps)
    log(f"the refinement changed {changed:.1%} of the training edges "
        f"({time.perf_counter() - started:.0f} s)")
    history, best_epoch = fit_decoder(model, train, valid, options, log)

    staging = os.path.join(os.path.dirname(os.path.abspath(output)), f".{os.path.basename(output)}.tmp-refit")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
        for name in (run_directory.CONFIG_FILE, run_directory.DATASET_FILE):
            shutil.copy2(os.path.join(run_dir, name), os.path.join(staging, name))
        model.save_weights(os.path.join(staging, run_directory.BEST_WEIGHTS_FILE))
        with open(os.path.join(staging, run_directory.HISTORY_FILE), "w") as stream:
            stream.writelines(json.dumps(record) + "\n" for record in history)
        results = evaluate_test_split(model, config, data_dir, metadata, options.refine_sweeps)
        results.update(best_epoch=best_epoch, epochs=options.epochs, data=data_dir)
        write_json_atomic(os.path.join(staging, run_directory.RESULTS_FILE), results)
        write_json_atomic(os.path.join(staging, REFIT_FILE), {
            "source": os.path.abspath(run_dir), **dataclasses.asdict(options), "changed": changed,
            "seconds": time.perf_counter() - started})
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)   # an interrupted refit leaves nothing
        raise
    return results
