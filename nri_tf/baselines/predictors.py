"""The Static baseline: x_{t+1} = x_t.

The other Table 2 predictors are `nri_tf.model.NRI` models with a fixed graph source:
NRI (full graph) ``graph_source="full"``, NRI (true graph) ``"true"``, and the LSTM
baselines ``"none"`` with an `nri_tf.baselines.lstm.LSTMPredictor` as the decoder. They
train with NRI's own training and validation steps and predict with its
`predict_future`, so their test MSE compares directly with NRI's.
"""

from __future__ import annotations

import tensorflow as tf


def static_prediction(context: tf.Tensor, steps: int) -> tf.Tensor:
    """The Static baseline: [batch, nodes, frames, dims] -> last frame x ``steps``
    [batch, nodes, steps, dims]."""
    return tf.repeat(context[:, :, -1:], int(steps), axis=2)
