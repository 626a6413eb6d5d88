"""Evaluation metrics: edge recovery and prediction error.

Building blocks:
  type_permutations        the relabellings of edge types that are exchangeable
  edge_confusion           counts [edge_types, edge_types] of (inferred type, true type)
  best_permutation_accuracy  accuracy under the relabelling that scores best
  edge_accuracy            the above for one batch
  EdgeAccuracy             Keras metric: confusion counts accumulated over an epoch, so
                           the relabelling is chosen once for the whole data set (and
                           read back per true type: `EdgeAccuracy.aligned_confusion`)
  mse_per_step             mean squared error of each predicted frame of each system
  best_permutation         the relabelling of inferred edge types that matches labels best
  CandidateRecall          Keras metric: share of the true interactions (label > 0) that
                           the candidate edges hold (the rest the model cannot find)

On candidate edges (`nri_tf.graph.CandidateEdges`) accuracy counts the real candidates only
(``mask``); what the candidates missed is `CandidateRecall`'s to report.

Edge types are exchangeable (nothing tells the model which type the labels call 1), so
accuracy is taken under the permutation of the inferred types that matches the labels
best, as the paper reports it. With ``skip_first`` type 0 is the hard-coded "no edge" and
stays fixed; only types 1..K-1 are permuted.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf


def type_permutations(edge_types: int, skip_first: bool = False) -> np.ndarray:
    """Every permutation of the exchangeable edge types.

    Returns:
      int32 [permutations, edge_types]; row p maps inferred type k to label type row[k].
      With ``skip_first`` every row starts with 0.
    """
    first = 1 if skip_first else 0
    rows = [tuple(range(first)) + perm for perm in itertools.permutations(range(first, edge_types))]
    return np.asarray(rows, dtype=np.int32)


def edge_confusion(logits: tf.Tensor, edge_labels: tf.Tensor, edge_types: int,
                   mask: tf.Tensor | None = None) -> tf.Tensor:
    """Counts of (inferred, true) edge-type pairs.

    Args:
      logits: [batch, edges, edge_types] (logits or probabilities; argmax is taken).
      edge_labels: [batch, edges] integer true types; values outside [0, edge_types) count
        as wrong under every permutation.
      mask: [batch, edges] 1 for the edges to count (None: all).
    Returns:
      float32 [edge_types (inferred), edge_types (true)].
    """
    inferred = tf.one_hot(tf.argmax(logits, axis=-1), edge_types, dtype=tf.float32)
    truth = tf.one_hot(tf.cast(edge_labels, tf.int32), edge_types, dtype=tf.float32)
    if mask is not None:
        truth *= tf.cast(mask, tf.float32)[..., None]
    return tf.einsum("bep,bel->pl", inferred, truth)


def best_permutation_accuracy(confusion: tf.Tensor, total, skip_first: bool = False) -> tf.Tensor:
    """max over permutations p of sum_k confusion[k, p(k)] / total.

    Args:
      confusion: [edge_types, edge_types] from `edge_confusion` (possibly summed).
      total: number of labelled edges counted.
      skip_first: keep type 0 fixed.
    Returns:
      scalar float32 accuracy in [0, 1] (0 when nothing was counted).
    """
    correct = _correct_per_permutation(confusion, skip_first)
    return tf.math.divide_no_nan(tf.reduce_max(correct), tf.cast(total, confusion.dtype))


def _correct_per_permutation(confusion: tf.Tensor, skip_first: bool) -> tf.Tensor:
    """[permutations] correct counts of ``confusion`` under each `type_permutations` row."""
    edge_types = confusion.shape[-1]
    permutations = type_permutations(edge_types, skip_first)
    flat_index = np.arange(edge_types, dtype=np.int32) * edge_types + permutations  # [P, K]
    return tf.reduce_sum(tf.gather(tf.reshape(confusion, [-1]), flat_index), axis=-1)


def best_permutation(inferred, edge_labels, edge_types: int, skip_first: bool = False) -> np.ndarray:
    """The relabelling of inferred edge types that matches ``edge_labels`` best (the one
    `best_permutation_accuracy` scores under; the first of equally good ones).

    Args:
      inferred, edge_labels: [systems, edges] integer edge types.
      edge_types: K.
      skip_first: type 0 is not exchangeable.
    Returns:
      int32 [edge_types]: inferred type k -> label type row[k].
    """
    confusion = edge_confusion(tf.one_hot(inferred, edge_types), edge_labels, edge_types)
    correct = _correct_per_permutation(confusion, skip_first)
    return type_permutations(edge_types, skip_first)[int(tf.argmax(correct))]


def edge_accuracy(logits: tf.Tensor, edge_labels: tf.Tensor, skip_first: bool = False) -> tf.Tensor:
    """Edge accuracy of one batch under its best permutation of edge types.

    Args:
      logits: [batch, edges, edge_types].
      edge_labels: [batch, edges] integer true types.
      skip_first: edge type 0 is not exchangeable.
    Returns:
      scalar float32.
    """
    confusion = edge_confusion(logits, edge_labels, logits.shape[-1])
    return best_permutation_accuracy(confusion, tf.size(edge_labels), skip_first)


@keras.saving.register_keras_serializable(package="nri_tf")
class EdgeAccuracy(keras.metrics.Metric):
    """Edge accuracy over everything seen since the last reset, best permutation overall.

    ``update_state(logits [batch, edges, edge_types], edge_labels [batch, edges], mask=None)``
    (mask [batch, edges]: 1 for the edges to count, the real candidates). The
    permutation is chosen from the accumulated counts, so one relabelling applies to the
    whole epoch (a per-batch choice would flatter a model that labels inconsistently).
    With ``exchangeable=False`` inferred type k must be label k (no permutation).
    """

    def __init__(self, edge_types: int, skip_first: bool = False, exchangeable: bool = True,
                 name: str = "edge_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.edge_types = int(edge_types)
        self.skip_first = bool(skip_first)
        self.exchangeable = bool(exchangeable)
        self.confusion = self.add_variable(shape=(self.edge_types, self.edge_types),
                                           initializer="zeros", aggregation="sum", name="confusion")
        self.total = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="total")

    def update_state(self, logits, edge_labels, sample_weight=None, mask=None):
        if sample_weight is not None:
            raise ValueError("EdgeAccuracy does not support sample weights")
        self.confusion.assign_add(edge_confusion(logits, edge_labels, self.edge_types, mask))
        counted = (tf.cast(tf.size(edge_labels), self.total.dtype) if mask is None
                   else tf.reduce_sum(tf.cast(mask, self.total.dtype)))
        self.total.assign_add(counted)

    def result(self):
        if not self.exchangeable:
            return tf.math.divide_no_nan(tf.linalg.trace(self.confusion), self.total)
        return best_permutation_accuracy(self.confusion, self.total, self.skip_first)

    def aligned_confusion(self) -> np.ndarray:
        """What the counts say per true type: float64 [true type, inferred type] shares of
        the counted edges (summing to 1 with every label in range), the inferred types
        relabelled by the permutation `result` scores under, so the diagonal sums to it."""
        confusion = self.confusion.numpy().astype(np.float64)              # [inferred, true]
        permutation = np.arange(self.edge_types)
        if self.exchangeable:
            permutations = type_permutations(self.edge_types, self.skip_first)
            permutation = permutations[int(np.argmax(_correct_per_permutation(confusion, self.skip_first)))]
        aligned = np.zeros_like(confusion)
        aligned[permutation] = confusion                        # inferred k counts as label permutation[k]
        return aligned.T / max(float(self.total.numpy()), 1.0)

    def get_config(self):
        return {**super().get_config(), "edge_types": self.edge_types, "skip_first": self.skip_first,
                "exchangeable": self.exchangeable}


@keras.saving.register_keras_serializable(package="nri_tf")
class CandidateRecall(keras.metrics.Metric):
    """Share of the true interactions that are among the candidate edges, over everything
    seen since the last reset.

    ``update_state(labels [batch, edges], interactions [batch], mask=None)``: ``labels`` are
    the candidates' true types (> 0: an interaction), ``interactions`` each system's count of
    true interactions over all node pairs, ``mask`` [batch, edges] the real candidates.
    1.0 when nothing interacts (nothing was missed).
    """

    def __init__(self, name: str = "candidate_recall", **kwargs):
        super().__init__(name=name, **kwargs)
        self.found = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="found")
        self.interactions = self.add_variable(shape=(), initializer="zeros", aggregation="sum",
                                              name="interactions")

    def update_state(self, labels, interactions, mask=None, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("CandidateRecall does not support sample weights")
        found = tf.cast(tf.cast(labels, tf.int32) > 0, self.found.dtype)
        if mask is not None:
            found *= tf.cast(mask, self.found.dtype)
        self.found.assign_add(tf.reduce_sum(found))
        self.interactions.assign_add(tf.reduce_sum(tf.cast(interactions, self.interactions.dtype)))

    def result(self):
        return tf.where(self.interactions > 0, tf.math.divide_no_nan(self.found, self.interactions),
                        tf.ones_like(self.found))


def mse_per_step(predictions: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared error of each predicted frame of each system.

    Args:
      predictions, target: [batch, nodes, steps, dims].
    Returns:
      [batch, steps]: mean over nodes and dims (sum over batches and divide by the
      systems for the test set's MSE per step).
    """
    target = tf.cast(target, predictions.dtype)
    return tf.reduce_mean(tf.square(predictions - target), axis=[1, 3])
