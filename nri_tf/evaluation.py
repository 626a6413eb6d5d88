"""Test-set evaluation as the paper reports it.

Edge recovery and the likelihood terms are measured on the first ``frames`` frames of each
test system (what the encoder sees, 49 in the paper). Prediction error is the mean squared
error, in normalised units as in the reference implementation, of each of the next
``horizon`` frames (20 in the paper) rolled out by the decoder from the last context frame:
the encoder sees frames 1..49 and the decoder predicts frames 50..69 from frame 49.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

PAPER_HORIZON = 20


def prediction_horizon(test_frames: int, context_frames: int, horizon: int = PAPER_HORIZON) -> int:
    """How many frames can be scored after the context; ValueError if none can."""
    available = test_frames - context_frames
    if available < 1:
        raise ValueError(f"test systems have {test_frames} frames; prediction needs more than the "
                         f"{context_frames} context frames the encoder sees")
    return min(horizon, available)


def evaluate(model, dataset: tf.data.Dataset, frames: int, horizon: int = PAPER_HORIZON,
             dynamic_graph: bool = False) -> dict:
    """Evaluates ``model`` on ``dataset`` the way the paper does.

    Args:
      model: a trained `nri_tf.model.NRI`.
      dataset: yields (trajectories [batch, nodes, test_frames, dims] normalised,
        edges [batch, edges] int32).
      frames: context frames the encoder sees.
      horizon: frames to predict after the context (fewer if the data is shorter).
      dynamic_graph: re-infer the graph on a sliding window (recurrent decoders).
    Returns:
      {"loss", "nll", "kl", "mse", "edge_accuracy" (when labels exist), "mse_per_step":
       list of `horizon` floats, "systems": count} with plain Python floats.
    """
    # Test-time edges are hard samples from the categorical (as the paper's test): restart
    # the sampling stream so that an evaluation gives the same numbers in any process.
    model.sampling_seed.state.assign([model.nri_config.seed, 0])
    test_frames = int(dataset.element_spec[0].shape[2] or _first_frames(dataset))
    steps = prediction_horizon(test_frames, frames, horizon)
    context = dataset.map(lambda x, edges: (x[:, :, :frames], edges))
    results = {k: float(v) for k, v in model.evaluate(context, return_dict=True, verbose=0).items()}

    squared_error_sum = np.zeros(steps, dtype=np.float64)
    systems = 0
    for trajectories, _ in dataset:
        predicted = model.predict_future(trajectories[:, :, :frames], steps, dynamic_graph=dynamic_graph)
        truth = trajectories[:, :, frames:frames + steps]
        per_system = tf.reduce_mean(tf.square(predicted - truth), axis=[1, 3])  # [batch, steps]
        squared_error_sum += tf.reduce_sum(per_system, axis=0).numpy()
        systems += int(trajectories.shape[0])
    mse_per_step = (squared_error_sum / max(systems, 1)).tolist()
    if not all(math.isfinite(v) for v in mse_per_step):
        raise FloatingPointError("the model's predictions are not finite; the checkpoint is unusable")
    results.update(mse_per_step=mse_per_step, systems=systems)
    return results


def _first_frames(dataset: tf.data.Dataset) -> int:
    trajectories, _ = next(iter(dataset))
    return int(trajectories.shape[2])
