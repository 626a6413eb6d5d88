"""The Supervised baseline: the NRI encoder alone, trained on the true edges.

Cross-entropy between the encoder's edge-type logits and the labels, dropout 0.5 on the
hidden representations of every MLP in the encoder (paper appendix D.1.1); the best
epoch is the one with the highest validation edge accuracy. Edge types are the labels'
own here, so accuracy needs no permutation.
"""

from __future__ import annotations

import dataclasses

import keras

from nri_tf.builders import encoder_from_config
from nri_tf.config import NRIConfig

SUPERVISED_DROPOUT = 0.5
ACCURACY_METRIC = "accuracy"


def supervised_encoder(config: NRIConfig, num_nodes: int, learning_rate) -> keras.Model:
    """A compiled encoder [batch, nodes, frames, dims] -> logits [batch, edges, edge_types].

    Args:
      config: encoder architecture and sizes (its dropout is replaced by 0.5).
      num_nodes: node count the model is built for (the weights do not depend on it).
      learning_rate: Adam's learning rate or schedule.
    Metrics: ``accuracy`` (edge accuracy against the labels).
    """
    config = dataclasses.replace(config, encoder_dropout=SUPERVISED_DROPOUT).validate()
    model = keras.Sequential([keras.Input((num_nodes, config.frames, config.dims)),
                              encoder_from_config(config)], name="supervised_encoder")
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)])
    return model
