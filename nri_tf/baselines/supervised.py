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
import tensorflow as tf

from nri_tf import graph
from nri_tf.builders import encoder_from_config
from nri_tf.config import NRIConfig
from nri_tf.losses import edge_cross_entropy
from nri_tf.model import unpack_batch

ACCURACY_METRIC = "accuracy"


@keras.saving.register_keras_serializable(package="nri_tf")
class SupervisedEncoder(keras.Model):
    """The NRI encoder trained on the true edge types, on the complete graph or on each
    batch's candidate edges.

    Batches are a dataset's: (trajectories [batch, nodes, frames, dims], edge_labels [batch,
    edges] int) or, with candidate edges, (trajectories, edge_labels, candidates dict), the
    labels then per candidate slot. Loss: cross-entropy of the logits [batch, edges,
    edge_types] against the labels, averaged over the real edges (candidate padding slots
    left out); metric ``accuracy``: the share of real edges whose most likely type is the
    label's.

    Args:
      config: encoder architecture and sizes (`NRIConfig`; its candidate settings are the
        data's business, not the model's).
    """

    def __init__(self, config: NRIConfig | dict, **kwargs):
        super().__init__(**kwargs)
        self.nri_config = (config if isinstance(config, NRIConfig) else NRIConfig.from_dict(config)).validate()
        self.encoder = encoder_from_config(self.nri_config)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.Mean(name=ACCURACY_METRIC)

    def call(self, trajectories, candidates=None, training=False):
        """Edge-type logits [batch, edges, edge_types] of [batch, nodes, frames, dims]."""
        return self.encoder(trajectories, training=training, edges=graph.CandidateEdges.from_batch(candidates))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def _scores(self, data, training):
        """(mean cross-entropy over the real edges, the real-edge weights [batch, edges],
        per-edge correctness [batch, edges]) of one batch."""
        trajectories, labels, candidates = unpack_batch(data)
        edges = graph.CandidateEdges.from_batch(candidates)
        logits = self.encoder(trajectories, training=training, edges=edges)
        labels = tf.cast(labels, tf.int32)
        loss, weights = edge_cross_entropy(logits, labels, edges)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return loss, weights, correct

    def _update_metrics(self, loss, weights, correct):
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(correct, sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, weights, correct = self._scores(data, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(loss, weights, correct)

    def test_step(self, data):
        return self._update_metrics(*self._scores(data, training=False))

    def get_config(self):
        return {**super().get_config(), "config": self.nri_config.to_dict()}


def supervised_encoder(config: NRIConfig, num_nodes: int, learning_rate, dropout: float) -> SupervisedEncoder:
    """A compiled, built `SupervisedEncoder`.

    Args:
      config: encoder architecture and sizes (its dropout is replaced by ``dropout``).
      num_nodes: node count the model is built for (the weights do not depend on it).
      learning_rate: Adam's learning rate or schedule.
      dropout: the rate inside every encoder MLP (the paper's: 0.5).
    Metrics: ``accuracy`` (edge accuracy against the labels, over the real edges).
    """
    config = dataclasses.replace(config, encoder_dropout=dropout).validate()
    model = SupervisedEncoder(config, name="supervised_encoder")
    model(tf.zeros([1, num_nodes, config.frames, config.dims]))
    model.compile(keras.optimizers.Adam(learning_rate))
    return model
