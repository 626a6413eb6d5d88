"""Edge-type samples from encoder logits [batch, edges, edge_types] (paper sec. 3.2, eq. 9).

Building blocks:
  relaxed_one_hot            concrete / Gumbel-softmax sample with temperature tau
                             (`tfp.distributions.RelaxedOneHotCategorical`)
  straight_through_one_hot   exactly one-hot in the forward pass, gradient of the relaxed
                             sample it was rounded from (the reference's ``hard=True``)
  argmax_one_hot             the most likely type as a one-hot vector (deterministic)
  sample_edges               relaxed or straight-through, as a config asks

Seeds are stateless: a shape-[2] integer tensor (e.g. `keras.random.SeedGenerator.next()`)
or a Python int, so samples are reproducible and the ops compile under XLA.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp


def _stateless_seed(seed):
    if isinstance(seed, int):
        return tf.constant([0, seed], dtype=tf.int32)
    return tf.cast(seed, tf.int32)


def relaxed_one_hot(logits: tf.Tensor, temperature: float, seed) -> tf.Tensor:
    """A concrete sample softmax((logits + g) / temperature), g ~ Gumbel(0, 1).

    Args:
      logits: [..., edge_types].
      temperature: tau > 0.
      seed: Python int or shape-[2] integer tensor.
    Returns:
      [..., edge_types], non-negative, summing to 1 on the last axis.
    """
    distribution = tfp.distributions.RelaxedOneHotCategorical(
        tf.cast(temperature, logits.dtype), logits=logits)
    return distribution.sample(seed=_stateless_seed(seed))


def argmax_one_hot(logits: tf.Tensor) -> tf.Tensor:
    """One-hot of the largest entry: [..., edge_types] -> [..., edge_types], same dtype."""
    return tf.one_hot(tf.argmax(logits, axis=-1), tf.shape(logits)[-1], dtype=logits.dtype)


def straight_through_one_hot(logits: tf.Tensor, temperature: float, seed) -> tf.Tensor:
    """Rounds a relaxed sample to one-hot; gradients flow as if it were the relaxed sample.

    The forward value is ``hard + (soft - stop_gradient(soft))``: the bracket is exactly 0
    in floating point, so the value is exactly one-hot, and its derivative is the identity
    on ``soft``.

    Args: as `relaxed_one_hot`.
    Returns:
      [..., edge_types], exactly one-hot.
    """
    soft = relaxed_one_hot(logits, temperature, seed)
    hard = tf.stop_gradient(argmax_one_hot(soft))
    return hard + (soft - tf.stop_gradient(soft))


def sample_edges(logits: tf.Tensor, temperature: float, hard: bool, seed) -> tf.Tensor:
    """`straight_through_one_hot` if ``hard`` else `relaxed_one_hot`."""
    if hard:
        return straight_through_one_hot(logits, temperature, seed)
    return relaxed_one_hot(logits, temperature, seed)
