"""Test-set evaluation as the paper reports it.

Edge recovery and the likelihood terms are measured on the first ``frames`` frames of each
test system (what the encoder sees, 49 in the paper). Prediction error is the mean squared
error, in normalised units as in the reference implementation, of each of the next
``horizon`` frames (20 in the paper) rolled out by the decoder from the last context frame:
the encoder sees frames 1..49 and the decoder predicts frames 50..69 from frame 49.

Real data (motion capture, basketball) has no ground-truth graph: its metadata says
``parameters["edge_labels"] == "none"`` (`has_edge_labels`), its datasets are fed without
labels (`trajectories_only`) and nothing reports an edge accuracy for it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import tensorflow as tf

from data_pipelines.datasets import first_frames
from data_pipelines.errors import DatasetError
from nri_tf import graph, refinement
from nri_tf.metrics import best_permutation, mse_per_step
from nri_tf.model import unpack_batch

PAPER_HORIZON = 20


def trajectories_only(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """(trajectories, edge_labels) batches -> trajectories alone, (trajectories, edge_labels,
    candidates) -> (trajectories, candidates): no edge accuracy is computed."""
    if len(dataset.element_spec) == 3:
        return dataset.map(lambda trajectories, edge_labels, candidates: (trajectories, candidates))
    return dataset.map(lambda trajectories, edge_labels: trajectories)


def prediction_horizon(test_frames: int, context_frames: int, horizon: int = PAPER_HORIZON, *,
                       data_dir: str | None = None) -> int:
    """How many frames can be scored after the context.

    Raises:
      DatasetError if none can: the test systems of ``data_dir`` (named in the message when
      given) are too short for the ``context_frames`` the encoder sees.
    """
    available = test_frames - context_frames
    if available < 1:
        where = f"{data_dir}: " if data_dir else ""
        raise DatasetError(f"{where}test systems have {test_frames} frames; prediction needs more than "
                           f"the {context_frames} context frames the encoder sees")
    return min(horizon, available)


def evaluate(model, dataset: tf.data.Dataset, frames: int, horizon: int = PAPER_HORIZON,
             dynamic_graph: bool = False, normaliser=None, position_dims: int = 0,
             refine_sweeps: int = 0, recorded_window: bool = False,
             refine_progress: Callable[[int], None] | None = None) -> dict:
    """Evaluates ``model`` on ``dataset`` the way the paper does.

    Args:
      model: a trained `nri_tf.model.NRI`.
      dataset: yields (trajectories [batch, nodes, test_frames, dims] normalised,
        edge_labels [batch, edges] int32), or trajectories alone for data without a true graph
        (`trajectories_only`), either followed by the batch's candidate edges.
      frames: context frames the encoder sees.
      horizon: frames to predict after the context (fewer if the data is shorter).
      dynamic_graph: re-infer the graph on a sliding window (recurrent decoders).
      normaliser, position_dims: the `Normaliser` that scaled ``dataset`` and how many of
        the data's leading features are positions (`data_pipelines.contract.position_dims`);
        with both (>= 2 positions) and labels, the edge accuracy by the pairs' closest
        approach (`accuracy_by_closest_approach`).
      refine_sweeps: with labels and a learned graph, also score the graph improved against
        the decoder for up to this many sweeps (`refined_graph`; 0: not).
      refine_progress: told the systems refined so far after each batch (minutes for
        10-node systems; e.g. `data_pipelines.progress.ProgressBar.update`).
      recorded_window: with dynamic_graph, the window slides over the test system's
        recorded frames, the targets of earlier predictions included (the reference code's
        test, an oracle; `NRI.predict_future`'s ``recorded``), not over the model's own
        predictions (what a deployed model has).
    Returns:
      {"loss", "nll", "kl", "mse", "edge_accuracy" (only when the dataset has labels; over
       the candidate edges if there are any), "candidate_recall" (labels and candidates
       other than complete: the share of true interactions among the candidates),
       "edge_confusion" (labels, learned graphs: [true type][inferred type] shares of the
       edges, `metrics.EdgeAccuracy.aligned_confusion`: its diagonal sums to the accuracy),
       "edge_type_shares" (learned graphs: `edge_type_shares`), "mse_per_step": list of
       `horizon` floats, "systems": count, "accuracy_by_closest_approach" (labels, learned
       graphs, ``normaliser`` and ``position_dims``), "nll_inferred_graph" and
       "nll_true_graph" (labels, learned graphs: `graph_likelihoods`), "refined"
       (``refine_sweeps``: `refined_graph`)} with plain Python floats.
    Raises:
      FloatingPointError naming the metrics that are NaN or Inf (nothing is reported then).
    """
    if recorded_window and not dynamic_graph:
        raise ValueError("recorded_window is the dynamic graph's; pass dynamic_graph=True")
    # Test-time edges are hard samples from the categorical (as the paper's test): restart
    # the sampling stream so that an evaluation gives the same numbers in any process.
    model.sampling_seed.state.assign([model.nri_config.seed, 0])
    element = dataset.element_spec
    labelled = isinstance(element, tuple) and not (len(element) == 2 and isinstance(element[1], dict))
    spec = element[0] if isinstance(element, tuple) else element
    test_frames = int(spec.shape[2] or _first_frames(dataset))
    steps = prediction_horizon(test_frames, frames, horizon)
    results = {k: float(v) for k, v in
               model.evaluate(first_frames(dataset, frames), return_dict=True, verbose=0).items()}
    if not labelled:
        results.pop("edge_accuracy", None)
        results.pop("candidate_recall", None)
    elif model.learned:
        results["edge_confusion"] = model.edge_accuracy.aligned_confusion().tolist()

    # One pass of the encoder over the test set serves both graph statistics.
    inferred = list(inferred_edges(model, dataset, frames)) if model.learned else []
    if model.learned:
        results["edge_type_shares"] = _type_shares(inferred, model.nri_config.edge_types)
    mse = prediction_mse(
        lambda context, edge_labels, candidates=None, recorded=None: model.predict_future(
            context, steps, dynamic_graph=dynamic_graph, candidates=candidates, recorded=recorded),
        dataset, frames, steps, pass_recorded=recorded_window)
    results.update(mse)
    not_finite = [name for name, value in results.items()
                  if not all(math.isfinite(v) for v in np.ravel(value))]
    if not_finite:
        raise FloatingPointError(f"test {', '.join(not_finite)} not finite: the model's outputs on "
                                 "this data are NaN or Inf; the checkpoint is unusable for it")
    if labelled and model.learned:
        results.update(graph_likelihoods(model, inferred))
        if refine_sweeps:
            results["refined"] = refined_graph(model, inferred, refine_sweeps, dataset, steps, refine_progress)
        if normaliser is not None and position_dims >= 2:
            results["accuracy_by_closest_approach"] = _closest_approach_accuracy(
                inferred, model.nri_config, normaliser, position_dims)
    return results


def graph_likelihoods(model, inferred: list) -> dict:
    """Does the trained decoder prefer the true graph to the encoder's?

    Args:
      model: a trained `nri_tf.model.NRI` with a learned graph.
      inferred: `inferred_edges` batches of a labelled dataset.
    Returns:
      {"nll_inferred_graph", "nll_true_graph"}: the decoder's nll per node (`NRI.nll_on_graph`,
      as val_nll) on the encoder's most likely graph and on the true graph, its types
      relabelled to the model's by the best permutation. A true graph that scores worse
      means that the decoder has adapted to the encoder's mistakes: the likelihood no
      longer rewards the truth, and more training of the same model will not find it.
    """
    inferred = list(inferred)
    to_model = np.argsort(_relabelling(model, inferred)).astype(np.int32)   # label type -> the model's type
    totals = np.zeros(2)
    for window, labels, edges, types, real in inferred:
        # Candidate padding slots keep the inferred type (the decoder ignores them anyway).
        true_types = tf.where(real, tf.gather(to_model, tf.maximum(tf.cast(labels, tf.int32), 0)), types)
        totals += [float(tf.reduce_sum(model.nll_on_graph(window, graph_types, edges)))
                   for graph_types in (types, true_types)]
    nodes = _node_count(inferred)
    return {"nll_inferred_graph": totals[0] / nodes, "nll_true_graph": totals[1] / nodes}


def likeliest_graphs(model, dataset: tf.data.Dataset, frames: int) -> dict:
    """Does the likelihood itself identify the true graph? Every system's least-cost graph
    under ``model``'s decoder, by exhaustive search (`refinement.best_edge_types`), against
    its labels: where a decoder trained on the true graphs prefers wrong graphs, no encoder
    trained through a likelihood of that precision can be expected to find the true ones.

    Args:
      model: a trained `nri_tf.model.NRI` with the MLP decoder, on the complete graph, whose
        edge types are the labels' (the true-graph model, ``graph_source="true"``); within
        `refinement.exact_search_fits`.
      dataset: labelled batches of trajectories [batch, nodes, frames', dims] and edge
        labels [batch, edges].
      frames: the frames scored, [:, :, :frames] (the encoder's window).
    Returns:
      {"edge_accuracy": share of the edges whose likeliest type is the labelled one,
       "nll_true_graph", "nll_likeliest_graph": the decoder's nll per node (as val_nll) on
       the labelled graphs and on the likeliest}.
    """
    correct = total = nodes = 0
    totals = np.zeros(2)
    for batch in dataset:
        trajectories, labels, _ = unpack_batch(batch)
        window = trajectories[:, :, :frames]
        labels = tf.cast(labels, tf.int32)
        likeliest = refinement.best_edge_types(model, window)
        correct += int(tf.reduce_sum(tf.cast(likeliest == labels, tf.int32)))
        total += int(tf.size(labels))
        nodes += int(tf.shape(window)[0]) * int(tf.shape(window)[1])
        totals += [float(tf.reduce_sum(refinement.graph_cost(model, window, types))) for types in (labels, likeliest)]
    return {"edge_accuracy": correct / max(total, 1), "nll_true_graph": totals[0] / max(nodes, 1),
            "nll_likeliest_graph": totals[1] / max(nodes, 1)}


def _node_count(inferred: list) -> int:
    """Nodes over all systems of `inferred_edges` batches (at least 1)."""
    return max(sum(int(tf.shape(window)[0]) * int(tf.shape(window)[1]) for window, *_ in inferred), 1)


def _relabelling(model, inferred: list) -> np.ndarray:
    """`best_permutation` of the inferred types against the labels over the real edges of
    `inferred_edges` batches (padding slots must not choose it): int32 [edge_types],
    inferred type k -> label type row[k]."""
    config = model.nri_config
    types = np.concatenate([t.numpy()[r.numpy()] for _, _, _, t, r in inferred])
    labels = np.concatenate([np.asarray(l)[r.numpy()] for _, l, _, _, r in inferred]).astype(np.int32)
    return best_permutation(types[None], labels[None], config.edge_types, config.skip_first)


def refined_evaluation(model, dataset: tf.data.Dataset, frames: int, sweeps: int,
                       horizon: int = PAPER_HORIZON, progress: Callable[[int], None] | None = None) -> dict:
    """`refined_graph` of the encoder's graphs of a labelled ``dataset`` (as `evaluate`'s),
    with predictions of up to ``horizon`` frames."""
    steps = prediction_horizon(int(dataset.element_spec[0].shape[2] or _first_frames(dataset)), frames, horizon)
    return refined_graph(model, list(inferred_edges(model, dataset, frames)), sweeps, dataset, steps, progress)


def refined_graph(model, inferred: list, sweeps: int, dataset: tf.data.Dataset, steps: int,
                  progress: Callable[[int], None] | None = None) -> dict:
    """The encoder's graph improved against the decoder (`nri_tf.refinement`), scored.

    Args:
      model: a trained `nri_tf.model.NRI` with a learned graph and the MLP decoder.
      inferred: `inferred_edges` batches of a labelled dataset.
      sweeps: the most sweeps per batch.
      dataset, steps: the dataset of ``inferred`` (the same batches, in order) and the
        frames to predict after the encoder's.
      progress: told the systems refined so far after each batch.
    Returns:
      {"sweeps", "exact" (the graphs were searched exhaustively: `refinement.exact_search_fits`),
       "edge_accuracy" (over the real edges, under the best relabelling of the
       refined types), "nll" (the decoder's per node on the refined graph, as val_nll),
       "changed" (share of the real edges whose type the refinement changed),
       "mse_per_step" (`prediction_mse` of rollouts on the refined graphs)}.
    """
    refined, nll, systems = [], 0.0, 0
    for window, labels, edges, types, real in inferred:
        new_types = refinement.refine_edge_types(model, window, types, sweeps, edges)
        refined.append((window, labels, edges, new_types, real))
        nll += float(tf.reduce_sum(refinement.graph_cost(model, window, new_types, edges)))
        systems += int(tf.shape(window)[0])
        if progress is not None:
            progress(systems)
    to_label = _relabelling(model, refined)
    correct = changed = total = 0
    for (_, labels, _, new_types, real), (_, _, _, types, _) in zip(refined, inferred):
        real = real.numpy()
        correct += int((to_label[new_types.numpy()] == np.asarray(labels))[real].sum())
        changed += int((new_types.numpy() != types.numpy())[real].sum())
        total += int(real.sum())
    graphs = iter([new_types for _, _, _, new_types, _ in refined])
    mse = prediction_mse(lambda context, edge_labels, candidates=None: model.predict_future(
        context, steps, candidates=candidates, edge_types=next(graphs)), dataset, int(tf.shape(refined[0][0])[2]),
        steps)
    window, _, edges, _, _ = inferred[0]
    return {"sweeps": int(sweeps), "exact": refinement.exact_search_fits(model.nri_config, int(window.shape[1]), edges),
            "edge_accuracy": correct / max(total, 1),
            "nll": nll / _node_count(inferred), "changed": changed / max(total, 1),
            "mse_per_step": mse["mse_per_step"]}


def inferred_edges(model, dataset: tf.data.Dataset, frames: int):
    """Per batch of ``dataset``: (window [batch, nodes, frames, dims] the encoder sees,
    edge labels or None, `CandidateEdges` or None, inferred types [batch, edges] (the most
    likely), real-edge mask [batch, edges] bool (candidate padding slots False))."""
    for batch in dataset:
        trajectories, labels, candidates = unpack_batch(batch)
        window, edges, types, real = infer_batch(model, trajectories, candidates, frames)
        yield window, labels, edges, types, real


def infer_batch(model, trajectories, candidates, frames: int) -> tuple:
    """One batch's (window, `CandidateEdges` or None, inferred types, real-edge mask) as
    `inferred_edges` yields them, from its trajectories [batch, nodes, frames', dims] and
    candidates (None: the complete graph)."""
    window = trajectories[:, :, :frames]
    types = tf.argmax(model.encode(window, candidates), axis=-1, output_type=tf.int32)
    edges = graph.CandidateEdges.from_batch(candidates)
    mask = graph.edge_mask(edges)
    real = tf.ones_like(types, tf.bool) if mask is None else tf.reshape(mask, tf.shape(types)) > 0
    return window, edges, types, real


def edge_type_shares(model, dataset: tf.data.Dataset, frames: int) -> list:
    """How the inferred graph is made up: the share of edges whose most likely type is k.

    Args:
      model: a trained `nri_tf.model.NRI` with a learned graph.
      dataset: as `evaluate`'s.
      frames: context frames the encoder sees.
    Returns:
      ``edge_types`` floats summing to 1, over every real edge (candidate padding slots
      left out) of every system: e.g. how sparse a graph with type 0 = no edge is.
    """
    return _type_shares(inferred_edges(model, dataset, frames), model.nri_config.edge_types)


def _type_shares(inferred, edge_types: int) -> list:
    """`edge_type_shares` of `inferred_edges`' batches."""
    counts = np.zeros(edge_types, dtype=np.int64)
    for _, _, _, types, real in inferred:
        counts += np.bincount(types.numpy()[real.numpy()], minlength=edge_types)[:edge_types]
    return (counts / max(counts.sum(), 1)).tolist()


def accuracy_by_closest_approach(model, dataset: tf.data.Dataset, frames: int, normaliser,
                                 position_dims: int, bins: int = 5) -> list:
    """Edge accuracy by how close the edge's two nodes came: where a physical model's
    interactions are weak (far pairs: charges, springs), the decoder has little to learn
    the edge type from.

    Args:
      model: a trained `nri_tf.model.NRI` with a learned graph.
      dataset: as `evaluate`'s, with edge labels.
      frames: context frames the encoder sees; the closest approach is over them.
      normaliser: the `data_pipelines.normalisation.Normaliser` that scaled ``dataset``:
        distances are in the data's own units.
      position_dims: the data's leading features that are positions (x, y[, z]; >= 2).
      bins: quantile bins of the closest approach.
    Returns:
      up to ``bins`` dicts (a bin that ties leave empty is left out) {"from", "to": closest
      approach range (data units), "share": of the real edges, "accuracy": under the
      permutation of exchangeable types that is best over all edges (the edge accuracy's)}.
    """
    return _closest_approach_accuracy(inferred_edges(model, dataset, frames), model.nri_config,
                                      normaliser, position_dims, bins)


def _closest_approach_accuracy(batches, config, normaliser, position_dims: int, bins: int = 5) -> list:
    """`accuracy_by_closest_approach` of `inferred_edges`' batches; ``config`` the model's
    `NRIConfig` (its edge types and skip_first decide the permutations)."""
    closest, inferred, labels = [], [], []
    for window, edge_labels, edges, types, real in batches:
        positions = normaliser.denormalise(window)[..., :position_dims]      # [b, n, t, p]
        shape = tf.shape(positions)
        flat = tf.reshape(positions, [shape[0], shape[1], -1])
        offsets = graph.sender_minus_receiver(flat, edges)                      # [b, e, t * p]
        offsets = tf.reshape(offsets, [shape[0], -1, shape[2], position_dims])
        approach = tf.reduce_min(tf.norm(offsets, axis=-1), axis=-1)           # [b, e]
        keep = real.numpy()
        closest.append(approach.numpy()[keep])
        inferred.append(types.numpy()[keep])
        labels.append(np.asarray(edge_labels)[keep])
    closest, inferred, labels = (np.concatenate(v) for v in (closest, inferred, labels))
    relabel = best_permutation(inferred[None], labels[None], config.edge_types, config.skip_first)
    correct = relabel[inferred] == labels
    limits = np.quantile(closest, np.linspace(0.0, 1.0, bins + 1))
    rows = []
    for index, (low, high) in enumerate(zip(limits[:-1], limits[1:])):
        chosen = (closest >= low) & ((closest < high) if index < bins - 1 else (closest <= high))
        if chosen.any():
            rows.append({"from": float(low), "to": float(high), "share": float(chosen.mean()),
                         "accuracy": float(correct[chosen].mean())})
    return rows


def prediction_mse(predict, dataset: tf.data.Dataset, frames: int, steps: int,
                   pass_recorded: bool = False) -> dict:
    """MSE of each of the ``steps`` frames predicted after the first ``frames``.

    Args:
      predict: ``predict(context [batch, nodes, frames, dims], edge_labels [batch, edges] or
        None) -> [batch, nodes, steps, dims]`` (edge labels are for predictors given the true
        graph; others ignore them); for a dataset with candidate edges called with them as
        a third argument.
      dataset: yields (trajectories, edge_labels) or trajectories alone, with at least
        ``frames + steps`` frames, either followed by the batch's candidate edges.
      frames, steps: context length and prediction horizon.
      pass_recorded: also pass ``recorded=`` the first ``frames + steps - 1`` recorded frames
        (for the reference's dynamic-graph window, `NRI.predict_future`).
    Returns:
      {"mse_per_step": list of ``steps`` floats (mean over systems, nodes and dims),
       "systems": count}.
    """
    squared_error_sum = np.zeros(steps, dtype=np.float64)
    systems = 0
    for batch in dataset:
        trajectories, edge_labels, candidates = unpack_batch(batch)
        extra = {"recorded": trajectories[:, :, :frames + steps - 1]} if pass_recorded else {}
        if candidates is None:
            predicted = predict(trajectories[:, :, :frames], edge_labels, **extra)
        else:
            predicted = predict(trajectories[:, :, :frames], edge_labels, candidates, **extra)
        truth = trajectories[:, :, frames:frames + steps]
        squared_error_sum += tf.reduce_sum(mse_per_step(predicted, truth), axis=0).numpy()
        systems += int(trajectories.shape[0])
    return {"mse_per_step": (squared_error_sum / max(systems, 1)).tolist(), "systems": systems}


def _first_frames(dataset: tf.data.Dataset) -> int:
    batch = next(iter(dataset))
    trajectories = batch[0] if isinstance(batch, tuple) else batch
    return int(trajectories.shape[2])
