"""The Supervised baseline: the NRI encoder alone, trained on the true edges.

Cross-entropy between the encoder's edge-type logits and the labels, with dropout on the
hidden representations of every MLP in the encoder (paper appendix D.1.1: 0.5, with hidden
256); the best epoch is the one with the highest validation edge accuracy. Edge types are
the labels' own here, so accuracy needs no permutation.

The paper's 0.5 is too much for a small encoder: at the `cpu` budget (hidden 64, 10k
springs5 systems, 30 epochs, seed 42) dropout 0.5 held validation accuracy at 88.9% while
dropout 0 reached 99.3% (test 99.4%); so the caller chooses the rate (the experiment
budgets: `nri_tf.cli.budgets.Budget.supervised_dropout`, 0.5 at the paper's).
"""

from __future__ import annotations

import dataclasses

import keras

from nri_tf.builders import encoder_from_config
from nri_tf.config import NRIConfig

ACCURACY_METRIC = "accuracy"


def supervised_encoder(config: NRIConfig, num_nodes: int, learning_rate, dropout: float) -> keras.Model:
    """A compiled encoder [batch, nodes, frames, dims] -> logits [batch, edges, edge_types].

    Args:
      config: encoder architecture and sizes (its dropout is replaced by ``dropout``).
      num_nodes: node count the model is built for (the weights do not depend on it).
      learning_rate: Adam's learning rate or schedule.
      dropout: the rate inside every encoder MLP (the paper's: 0.5).
    Metrics: ``accuracy`` (edge accuracy against the labels).
    """
    config = dataclasses.replace(config, encoder_dropout=dropout).validate()
    model = keras.Sequential([keras.Input((num_nodes, config.frames, config.dims)),
                              encoder_from_config(config)], name="supervised_encoder")
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)])
    return model
