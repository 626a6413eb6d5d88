"""Trajectory predictors without an encoder: Static, LSTMs, decoders on a fixed graph.

  static_prediction    x_{t+1} = x_t: the last context frame repeated
  TrajectoryPredictor  a `keras.Model` that trains any `StepDecoder` on a graph it is
                       given rather than one it infers: "full" (every edge of the last
                       edge type: NRI (full graph)), "true" (the labelled edge types: NRI
                       (true graph)) or "none" (graph-free predictors: the LSTM baselines)

`TrajectoryPredictor` trains like the NRI model's decoder half (same Gaussian NLL with
fixed variance, same rollout with M = ``prediction_steps``; validation as NRI's:
one-step predictions for Markovian decoders, the training schedule for recurrent ones)
and predicts beyond the data with `predict_future`, so its test MSE compares directly with
NRI's. Data: ``(trajectories [batch, nodes, frames, dims], edges [batch, edges])``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nri_tf import losses
from nri_tf.decoders import MarkovianDecoder, StepDecoder

GRAPHS = ("none", "full", "true")


def static_prediction(context: tf.Tensor, steps: int) -> tf.Tensor:
    """The Static baseline: [batch, nodes, frames, dims] -> last frame x ``steps``
    [batch, nodes, steps, dims]."""
    return tf.repeat(context[:, :, -1:], int(steps), axis=2)


class TrajectoryPredictor(keras.Model):
    """Trains ``predictor`` to reconstruct trajectories on a given graph.

    Args:
      predictor: a `StepDecoder` (MLP / RNN decoder, `LSTMPredictor`).
      graph: one of `GRAPHS`.
      edge_types: K of the predictor's edge weights (unused for "none").
      variance: fixed variance of the Gaussian likelihood (NRIConfig.var).
      prediction_steps: M of the training rollout (NRIConfig.prediction_steps).
    """

    def __init__(self, predictor: StepDecoder, graph: str, edge_types: int = 2,
                 variance: float = 5e-5, prediction_steps: int = 10, **kwargs):
        super().__init__(**kwargs)
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
        self.predictor = predictor
        self.graph = graph
        self.edge_types = int(edge_types)
        self.variance = float(variance)
        self.prediction_steps = int(prediction_steps)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.mse_tracker = keras.metrics.Mean(name="mse")

    @property
    def metrics(self):
        return [self.nll_tracker, self.mse_tracker]

    def build(self, input_shape):
        self.predictor.build(input_shape)

    def edge_weights(self, trajectories, labels):
        """One-hot [batch, edges, edge_types] of the given graph, or None for "none"."""
        if self.graph == "none":
            return None
        if self.graph == "true":
            if labels is None:
                raise ValueError("the true-graph predictor needs the edge labels")
            return tf.one_hot(tf.cast(labels, tf.int32), self.edge_types, dtype=trajectories.dtype)
        nodes = tf.shape(trajectories)[1]
        edges = tf.fill([tf.shape(trajectories)[0], nodes * (nodes - 1)], self.edge_types - 1)
        return tf.one_hot(edges, self.edge_types, dtype=trajectories.dtype)

    def call(self, trajectories, labels=None, training=False, prediction_steps: int | None = None):
        """Predictions [batch, nodes, frames - 1, dims] of frames 1..T-1."""
        steps = self.prediction_steps if prediction_steps is None else prediction_steps
        return self.predictor(trajectories, self.edge_weights(trajectories, labels),
                              prediction_steps=steps, training=training)

    def predict_future(self, context, steps: int, labels=None):
        """[batch, nodes, steps, dims]: the ``steps`` frames after ``context`` [batch, nodes, frames, dims]."""
        context = tf.convert_to_tensor(context, self.compute_dtype)
        edges = self.edge_weights(context, labels)
        predictions, _ = self.predictor.rollout(self.predictor.burn_in(context, edges), edges, steps)
        return predictions

    def _step(self, data, training):
        trajectories, labels = data if isinstance(data, (tuple, list)) else (data, None)
        steps = self.prediction_steps
        if not training and isinstance(self.predictor, MarkovianDecoder):
            steps = 1
        predictions = self(trajectories, labels, training=training, prediction_steps=steps)
        target = trajectories[:, :, 1:]
        nll = losses.nll_gaussian(predictions, target, self.variance)
        mse = tf.reduce_mean(tf.square(predictions - tf.cast(target, predictions.dtype)))
        return nll, mse

    def _logs(self, trajectories, nll, mse):
        batch = tf.shape(trajectories)[0]
        self.nll_tracker.update_state(nll, sample_weight=batch)
        self.mse_tracker.update_state(mse, sample_weight=batch)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        trajectories = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            nll, mse = self._step(data, training=True)
            loss = nll / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._logs(trajectories, nll, mse)

    def test_step(self, data):
        trajectories = data[0] if isinstance(data, (tuple, list)) else data
        nll, mse = self._step(data, training=False)
        return self._logs(trajectories, nll, mse)
