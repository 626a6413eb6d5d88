"""The terms of the NRI evidence lower bound (paper eq. 3), as the reference computes them.

Building blocks:
  nll_gaussian             -log N(target; predictions, variance I), fixed variance
  kl_categorical_uniform   KL(q(z|x) || uniform) per edge
  kl_categorical           KL(q(z|x) || prior) for a given prior over edge types
  edge_cross_entropy       -log q(z = given type | x) per real edge (training an encoder on
                           given graphs: the Supervised baseline, a refit's self-training)

Every term is a sum over all its elements divided by (batch * nodes), the reference's
normalisation, so the numbers compare with the paper's code. The KL terms take the edges
(`nri_tf.graph.CandidateEdges`, None for the complete graph): padding slots of candidates
count nothing. Plain functions of tensors.
"""

from __future__ import annotations

import math

import tensorflow as tf

from nri_tf import graph

KL_EPSILON = 1e-16  # the reference's eps inside log(p + eps)


def nll_gaussian(predictions: tf.Tensor, target: tf.Tensor, variance: float,
                 add_const: bool = False) -> tf.Tensor:
    """Gaussian negative log likelihood with fixed variance.

    Args:
      predictions: [batch, nodes, frames, dims] predicted means.
      target: same shape, the observed frames.
      variance: sigma^2 (5e-5 in the paper).
      add_const: add 0.5 * log(2 pi variance) per element (off in the reference).
    Returns:
      scalar: sum((predictions - target)^2 / (2 variance) [+ const]) / (batch * nodes).
    """
    target = tf.cast(target, predictions.dtype)
    neg_log_p = tf.square(predictions - target) / (2.0 * variance)
    if add_const:
        neg_log_p += 0.5 * math.log(2.0 * math.pi * variance)
    shape = tf.shape(target)
    return tf.reduce_sum(neg_log_p) / tf.cast(shape[0] * shape[1], predictions.dtype)


def edge_cross_entropy(logits: tf.Tensor, edge_types: tf.Tensor, edges=None) -> tuple[tf.Tensor, tf.Tensor]:
    """Cross-entropy of edge-type logits against given types, over the real edges.

    Args:
      logits: [batch, edges, edge_types].
      edge_types: [batch, edges] int, the type of every edge (padding slots: any type in
        range; they count nothing).
      edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
    Returns:
      (scalar: the mean cross-entropy over the real edges (float32),
       [batch, edges] float32 weights: 1 for a real edge, 0 for a candidate padding slot).
    """
    edge_types = tf.cast(edge_types, tf.int32)
    mask = graph.edge_mask(edges)
    weights = tf.ones_like(edge_types, tf.float32) if mask is None else tf.cast(mask, tf.float32)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(edge_types, tf.cast(logits, tf.float32))
    return tf.reduce_sum(cross_entropy * weights) / tf.maximum(tf.reduce_sum(weights), 1.0), weights


def _per_batch_and_node(total: tf.Tensor, edge_tensor: tf.Tensor, edges=None) -> tf.Tensor:
    batch = tf.shape(edge_tensor)[0]
    num_nodes = graph.num_nodes_of_edge_tensor(edge_tensor, edges)
    return total / tf.cast(batch * num_nodes, total.dtype)


def _sum_over_edges(per_entry: tf.Tensor, edges) -> tf.Tensor:
    """Sum of [batch, edges, edge_types] values over the real edges (all on the complete graph)."""
    mask = graph.edge_mask(edges)
    if mask is None:
        return tf.reduce_sum(per_entry)
    return tf.reduce_sum(per_entry * tf.cast(mask, per_entry.dtype)[..., None])


def kl_categorical_uniform(probs: tf.Tensor, add_const: bool = False, edges=None) -> tf.Tensor:
    """KL divergence of the edge-type posterior from the uniform prior.

    Args:
      probs: [batch, edges, edge_types] posterior q(z|x) (softmax of the logits).
      add_const: add log(edge_types) per edge, making the value the true KL (>= 0). The
        reference leaves it out (its add_const adds it per *entry*, K times per edge);
        gradients are the same either way.
      edges: `nri_tf.graph.CandidateEdges` of ``probs``, or None for the complete graph.
    Returns:
      scalar: sum(q log q [+ log K per edge]) / (batch * nodes).
    """
    total = _sum_over_edges(probs * tf.math.log(probs + KL_EPSILON), edges)
    if add_const:
        mask = graph.edge_mask(edges)
        edges_total = (tf.cast(tf.reduce_prod(tf.shape(probs)[:-1]), probs.dtype) if mask is None
                       else tf.reduce_sum(tf.cast(mask, probs.dtype)))
        total += edges_total * tf.math.log(tf.cast(tf.shape(probs)[-1], probs.dtype))
    return _per_batch_and_node(total, probs, edges)


def kl_categorical(probs: tf.Tensor, log_prior: tf.Tensor, edges=None) -> tf.Tensor:
    """KL divergence of the edge-type posterior from a fixed prior (e.g. a sparsity prior).

    Args:
      probs: [batch, edges, edge_types] posterior q(z|x).
      log_prior: [edge_types] log prior probabilities.
      edges: `nri_tf.graph.CandidateEdges` of ``probs``, or None for the complete graph.
    Returns:
      scalar: sum(q (log q - log prior)) / (batch * nodes).
    """
    log_prior = tf.cast(log_prior, probs.dtype)
    total = _sum_over_edges(probs * (tf.math.log(probs + KL_EPSILON) - log_prior), edges)
    return _per_batch_and_node(total, probs, edges)
