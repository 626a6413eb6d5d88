"""Refitting a trained run on hard graphs (beyond the paper).

NRI's decoder learns from the encoder's soft, sampled graphs, but predicts from one hard
graph. On springs5 (the cpu budget's run, seed 42) the trained decoder rolled out on the
*true* graph still errs 12x more after one step than a decoder trained on true graphs
(2.7e-7 against 2.2e-8): the decoder holds the prediction error back, not only the graph.
And the encoder's graphs are worse than the best the decoder can find (96.0% against 100.0%
right after an exact search, `nri_tf.refinement`): the amortised inference lags the model.
A refit fixes each training system's graph to the encoder's most likely one improved
against the decoder, then trains on those graphs: the decoder to predict from them, and
(``distill``, the default) the encoder to output them, so that one pass of the encoder (as
an exported model serves it) gives what the search gave. No labels are used: this is
self-training of the model on its own best explanations of the data.
The result is a new run directory, which ``evaluate`` and ``export`` read like any other:

    NEW_RUN/
      config.json, dataset.json   the source run's (same model, same data)
      best.weights.h5             each part at its best epoch: the decoder's lowest
                                  validation nll, the encoder's lowest validation
                                  cross-entropy (on the validation systems' refined graphs)
      history.jsonl               one line per refit epoch (`fit_to_graphs`)
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
from typing import Callable, TextIO

import keras
import numpy as np
import tensorflow as tf

from data_pipelines.candidate_selection import dataset_candidate_degree
from data_pipelines.errors import UserError
from data_pipelines.files import check_creatable, read_json, write_json_atomic
from data_pipelines.progress import progress_stream
from data_pipelines.storage.reader import read_metadata
from nri_tf import evaluation, graph, refinement
from nri_tf.losses import edge_cross_entropy
from nri_tf.model import unpack_batch
from trainers import run_directory
from trainers.loop import candidate_spec, evaluate_test_split, refinement_progress, split_dataset
from trainers.refit_options import RefitOptions

REFIT_FILE = run_directory.REFIT_FILE
# Candidate edges per refinement call: its sweeps run eagerly, so small batches pay
# per-call overhead (springs5's 10k training systems: 223 s in the run's batches of 32),
# and each sweep holds every edge's every type at once, so large systems need few systems
# a call: 256 springs5 systems' edges (`refinement_batch_size`).
REFINE_BATCH_EDGES = 256 * 20


def refinement_batch_size(config, metadata) -> int:
    """Systems per refinement call on a dataset (``metadata``): `REFINE_BATCH_EDGES`
    candidate edges' worth, at least the run's batch (``config``, an `NRIConfig`)."""
    edges = metadata.nodes * dataset_candidate_degree(candidate_spec(config), metadata)
    return max(config.batch_size, REFINE_BATCH_EDGES // edges)


def fixed_graphs(model, dataset: tf.data.Dataset, frames: int, sweeps: int,
                 progress: Callable[[int], None] | None = None) -> tuple[list, float]:
    """Every system's graph, fixed for the refit: the encoder's most likely, refined.

    Args:
      model: the trained `nri_tf.model.NRI` (learned graph, MLP decoder when ``sweeps``).
      dataset: batches (trajectories [batch, nodes, frames', dims], labels[, candidates]),
        in a fixed order.
      frames: the frames the encoder sees (and the refinement scores).
      sweeps: refinement sweeps (0: none).
      progress: told the systems done so far after each batch.
    Returns:
      ([(trajectories, candidates or None, edge types [batch, edges] int32)] per batch,
       the share of the real edges the refinement changed).
    """
    graphs, changed, total, systems = [], 0, 0, 0
    for batch in dataset:                        # read once: the encoder's window and the decoder's frames
        trajectories, _, candidates = unpack_batch(batch)
        window, edges, types, real = evaluation.infer_batch(model, trajectories, candidates, frames)
        refined = refinement.refine_edge_types(model, window, types, sweeps, edges) if sweeps else types
        changed += int(tf.reduce_sum(tf.cast((refined != types) & real, tf.int32)))
        total += int(tf.reduce_sum(tf.cast(real, tf.int32)))
        graphs.append((trajectories, candidates, refined))
        systems += int(trajectories.shape[0])
        if progress is not None:
            progress(systems)
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


def graph_scores(model, graphs: list) -> dict:
    """How well ``model`` fits the fixed ``graphs`` (`fixed_graphs`' batches).

    Returns:
      {"nll": the decoder's nll per node on the graphs (as val_nll),
       "cross_entropy": the encoder's mean cross-entropy against the graphs' types over the
       real edges, "agreement": the share of real edges whose most likely type (the
       encoder's) is the graph's}.
    """
    nll = cross_entropy = agreed = nodes = edges = 0.0
    frames = model.nri_config.frames
    for trajectories, candidates, types in graphs:
        nll += float(tf.reduce_sum(model.nll_on_graph(trajectories, types, candidates)))
        nodes += int(trajectories.shape[0]) * int(trajectories.shape[1])
        logits = model.encode(trajectories[:, :, :frames], candidates)
        mean, weights = edge_cross_entropy(logits, types, graph.CandidateEdges.from_batch(candidates))
        real = float(tf.reduce_sum(weights))
        cross_entropy += float(mean) * real
        same = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == types, tf.float32)
        agreed += float(tf.reduce_sum(same * weights))
        edges += real
    return {"nll": nll / max(nodes, 1), "cross_entropy": cross_entropy / max(edges, 1),
            "agreement": agreed / max(edges, 1)}


class _BestWeights:
    """The weights of one part of the model (the decoder or the encoder) at the epoch where
    its validation score was lowest; the start counts as epoch 0."""

    def __init__(self, variables: list, score: float):
        self.variables, self.score, self.epoch = variables, score, 0
        self.values = [v.numpy() for v in variables]

    def update(self, epoch: int, score: float) -> bool:
        """Keeps the weights of ``epoch`` if ``score`` is the lowest yet; says whether it was."""
        if not score < self.score:
            return False
        self.score, self.epoch, self.values = score, epoch, [v.numpy() for v in self.variables]
        return True

    def restore(self) -> None:
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)


def fit_to_graphs(model, train: list, valid: list, options: RefitOptions,
                  log: Callable[[str], None] = print) -> tuple[list, dict]:
    """Trains ``model.decoder`` on the fixed graphs ``train`` (the nll of its predictions on
    them) and, with ``options.distill``, ``model.encoder`` to output them (cross-entropy of
    its logits against their types); leaves each part with the weights of its epoch with the
    lowest score on ``valid`` (the decoder's nll, the encoder's cross-entropy; the start
    counts as epoch 0). The two losses share no weights, so each part learns as if alone,
    with its own Adam (``options.lr``, ``options.encoder_lr``).

    Returns:
      (one {"epoch", "seconds", "nll", "val_nll"[, "cross_entropy", "val_cross_entropy",
       "val_agreement"]} per epoch (nll, cross_entropy: the means over the training batches),
       {"decoder": its best epoch[, "encoder": its best epoch]}: 0 when none improved on the run's).
    Raises:
      FloatingPointError when a training loss becomes NaN or infinite (each part is left as
      it was at its best epoch so far).
    """
    parts = {"decoder": model.decoder.trainable_variables}
    if options.distill:
        parts["encoder"] = model.encoder.trainable_variables
    rates = {"decoder": options.lr, "encoder": options.encoder_lr}
    optimizers = {name: keras.optimizers.Adam(rates[name]) for name in parts}
    for name, variables in parts.items():
        optimizers[name].build(variables)
    frames = model.nri_config.frames

    @tf.function(reduce_retracing=True)
    def step(trajectories, candidates, types):
        with tf.GradientTape() as tape:
            per_system = model.nll_on_graph(trajectories, types, candidates, training=True)
            nll = tf.reduce_sum(per_system) / tf.cast(tf.shape(trajectories)[0] * tf.shape(trajectories)[1],
                                                      per_system.dtype)
            cross_entropy = tf.zeros([], tf.float32)
            if options.distill:
                logits = model.encode(trajectories[:, :, :frames], candidates, training=True)
                cross_entropy, _ = edge_cross_entropy(logits, types, graph.CandidateEdges.from_batch(candidates))
            loss = tf.cast(nll, tf.float32) + cross_entropy
        gradients = tape.gradient(loss, parts)
        for name, variables in parts.items():
            optimizers[name].apply_gradients(zip(gradients[name], variables))
        return nll, cross_entropy

    scores = graph_scores(model, valid)
    best = {"decoder": _BestWeights(parts["decoder"], scores["nll"])}
    if options.distill:
        best["encoder"] = _BestWeights(parts["encoder"], scores["cross_entropy"])
    log(f"refit epoch 0: {_describe(scores, options.distill)} (the run's model)")
    order = np.random.default_rng(options.seed)
    history = []
    for epoch in range(1, options.epochs + 1):
        start, losses = time.perf_counter(), []
        for index in order.permutation(len(train)):
            losses.append([float(value) for value in step(*train[index])])
            if not np.all(np.isfinite(losses[-1])):
                for part in best.values():
                    part.restore()
                nll, cross_entropy = losses[-1]
                raise FloatingPointError(f"the refit's training loss became non-finite in epoch {epoch} (nll {nll}"
                                         f"{f', cross-entropy {cross_entropy}' if options.distill else ''}); "
                                         f"lower --lr (now {options.lr})")
        scores = graph_scores(model, valid)
        mean_losses = np.mean(losses, axis=0)
        record = {"epoch": epoch, "seconds": time.perf_counter() - start, "nll": float(mean_losses[0]),
                  "val_nll": scores["nll"]}
        if options.distill:
            record.update(cross_entropy=float(mean_losses[1]), val_cross_entropy=scores["cross_entropy"],
                          val_agreement=scores["agreement"])
        history.append(record)
        improved = [name for name, part in best.items()
                    if part.update(epoch, scores["nll" if name == "decoder" else "cross_entropy"])]
        log(f"refit epoch {epoch}/{options.epochs}: nll {record['nll']:.4g}, {_describe(scores, options.distill)}"
            f"{' (best ' + ', '.join(improved) + ')' if improved else ''}, {record['seconds']:.0f} s")
    for part in best.values():
        part.restore()
    return history, {name: part.epoch for name, part in best.items()}


def _describe(scores: dict, distill: bool) -> str:
    """`graph_scores` on the validation graphs, for the log."""
    text = f"val_nll {scores['nll']:.4g}"
    if distill:
        text += (f", val_cross_entropy {scores['cross_entropy']:.4g}, the encoder agrees on "
                 f"{scores['agreement']:.2%} of the edges")
    return text


def refit_run(run_dir: str, output: str, options: RefitOptions,
              log: Callable[[str], None] = print, progress: bool | TextIO = True) -> dict:
    """Refits the decoder of the trained run ``run_dir`` into the new run directory ``output``.

    ``log`` gets a line per stage and epoch; ``progress`` (True: stderr, False: none, or a
    text stream) shows bars while the graphs are refined.

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
    check_creatable(output, f"--output {output}")
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
        batch = dataclasses.replace(config, batch_size=refinement_batch_size(config, metadata))
        return split_dataset(data_dir, name, batch, training=False, seed=options.seed,
                             frames=metadata.frames["train"], labelled=True)

    started = time.perf_counter()
    search = ("the encoder's graphs as they are" if not options.refine_sweeps else
              "refined by exact search" if refinement.exact_search_fits(config, dataset["nodes"])
              else f"{options.refine_sweeps} refinement sweeps")
    log(f"fixing the graphs of {metadata.splits['train']} training and {metadata.splits['valid']} "
        f"validation systems ({search})")
    bars = progress_stream(progress)

    def fixed(name: str) -> tuple[list, float]:
        with refinement_progress(metadata.splits[name], options.refine_sweeps, bars,
                                 f"refining {name} graphs") as refine_progress:
            return fixed_graphs(model, split(name), config.frames, options.refine_sweeps, refine_progress)

    train, changed = fixed("train")
    train = rebatched(train, config.batch_size)
    valid, _ = fixed("valid")
    log(f"the refinement changed {changed:.1%} of the training edges "
        f"({time.perf_counter() - started:.0f} s)")
    history, best_epochs = fit_to_graphs(model, train, valid, options, log)

    staging = os.path.join(os.path.dirname(os.path.abspath(output)), f".{os.path.basename(output)}.tmp-refit")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
        for name in (run_directory.CONFIG_FILE, run_directory.DATASET_FILE):
            shutil.copy2(os.path.join(run_dir, name), os.path.join(staging, name))
        model.save_weights(os.path.join(staging, run_directory.BEST_WEIGHTS_FILE))
        with open(os.path.join(staging, run_directory.HISTORY_FILE), "w") as stream:
            stream.writelines(json.dumps(record) + "\n" for record in history)
        results = evaluate_test_split(model, config, data_dir, metadata, options.refine_sweeps, bars)
        results.update(best_epoch=best_epochs["decoder"], best_epochs=best_epochs, epochs=options.epochs,
                       data=data_dir)
        write_json_atomic(os.path.join(staging, run_directory.RESULTS_FILE), results)
        write_json_atomic(os.path.join(staging, REFIT_FILE), {
            "source": os.path.abspath(run_dir), **dataclasses.asdict(options), "changed": changed,
            "seconds": time.perf_counter() - started})
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)   # an interrupted refit leaves nothing
        raise
    return results
