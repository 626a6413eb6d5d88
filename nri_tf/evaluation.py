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

import numpy as np
import tensorflow as tf

from data_pipelines.datasets import first_frames
from data_pipelines.errors import DatasetError
from nri_tf.graph import CandidateEdges
from nri_tf.metrics import mse_per_step
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
             dynamic_graph: bool = False) -> dict:
    """Evaluates ``model`` on ``dataset`` the way the paper does.

    Args:
      model: a trained `nri_tf.model.NRI`.
      dataset: yields (trajectories [batch, nodes, test_frames, dims] normalised,
        edge_labels [batch, edges] int32), or trajectories alone for data without a true graph
        (`trajectories_only`), either followed by the batch's candidate edges.
      frames: context frames the encoder sees.
      horizon: frames to predict after the context (fewer if the data is shorter).
      dynamic_graph: re-infer the graph on a sliding window (recurrent decoders).
    Returns:
      {"loss", "nll", "kl", "mse", "edge_accuracy" (only when the dataset has labels; over
       the candidate edges if there are any), "candidate_recall" (labels and candidates
       other than complete: the share of true interactions among the candidates),
       "edge_confusion" (labels, learned graphs: [true type][inferred type] shares of the
       edges, `metrics.EdgeAccuracy.aligned_confusion`: its diagonal sums to the accuracy),
       "edge_type_shares" (learned graphs: `edge_type_shares`), "mse_per_step": list of
       `horizon` floats, "systems": count} with plain Python floats.
    Raises:
      FloatingPointError naming the metrics that are NaN or Inf (nothing is reported then).
    """
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

    if model.learned:
        results["edge_type_shares"] = edge_type_shares(model, dataset, frames)
    mse = prediction_mse(
        lambda context, edge_labels, candidates=None: model.predict_future(
            context, steps, dynamic_graph=dynamic_graph, candidates=candidates),
        dataset, frames, steps)
    results.update(mse)
    not_finite = [name for name, value in results.items()
                  if not all(math.isfinite(v) for v in np.ravel(value))]
    if not_finite:
        raise FloatingPointError(f"test {', '.join(not_finite)} not finite: the model's outputs on "
                                 "this data are NaN or Inf; the checkpoint is unusable for it")
    return results


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
    counts = np.zeros(model.nri_config.edge_types, dtype=np.float64)
    for batch in dataset:
        trajectories, _, candidates = unpack_batch(batch)
        types = tf.argmax(model.encode(trajectories[:, :, :frames], candidates), axis=-1)   # [batch, edges]
        edges = CandidateEdges.from_batch(candidates)
        weights = None if edges is None or edges.mask is None else tf.reshape(edges.mask, tf.shape(types))
        counts += tf.math.bincount(tf.cast(types, tf.int32), weights=weights, minlength=len(counts),
                                   maxlength=len(counts), dtype=tf.float64).numpy()
    return (counts / max(counts.sum(), 1.0)).tolist()


def prediction_mse(predict, dataset: tf.data.Dataset, frames: int, steps: int) -> dict:
    """MSE of each of the ``steps`` frames predicted after the first ``frames``.

    Args:
      predict: ``predict(context [batch, nodes, frames, dims], edge_labels [batch, edges] or
        None) -> [batch, nodes, steps, dims]`` (edge labels are for predictors given the true
        graph; others ignore them); for a dataset with candidate edges called with them as
        a third argument.
      dataset: yields (trajectories, edge_labels) or trajectories alone, with at least
        ``frames + steps`` frames, either followed by the batch's candidate edges.
      frames, steps: context length and prediction horizon.
    Returns:
      {"mse_per_step": list of ``steps`` floats (mean over systems, nodes and dims),
       "systems": count}.
    """
    squared_error_sum = np.zeros(steps, dtype=np.float64)
    systems = 0
    for batch in dataset:
        trajectories, edge_labels, candidates = unpack_batch(batch)
        if candidates is None:
            predicted = predict(trajectories[:, :, :frames], edge_labels)
        else:
            predicted = predict(trajectories[:, :, :frames], edge_labels, candidates)
        truth = trajectories[:, :, frames:frames + steps]
        squared_error_sum += tf.reduce_sum(mse_per_step(predicted, truth), axis=0).numpy()
        systems += int(trajectories.shape[0])
    return {"mse_per_step": (squared_error_sum / max(systems, 1)).tolist(), "systems": systems}


def _first_frames(dataset: tf.data.Dataset) -> int:
    batch = next(iter(dataset))
    trajectories = batch[0] if isinstance(batch, tuple) else batch
    return int(trajectories.shape[2])
