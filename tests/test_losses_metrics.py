"""Loss terms, metrics and edge-type sampling against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from nri_tf import graph, losses, metrics, sampling


# --- losses ---------------------------------------------------------------------------

def test_nll_gaussian_by_hand():
    # batch 1, nodes 2, frames 1, dims 2: squared errors 1, 4, 0, 9 -> sum 14
    predictions = tf.constant([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    target = tf.constant([[[[0.0, 0.0]], [[3.0, 7.0]]]])
    variance = 0.5
    assert losses.nll_gaussian(predictions, target, variance).numpy() == pytest.approx(14 / (2 * 0.5) / 2)
    with_const = 14 / (2 * 0.5) / 2 + 4 * 0.5 * math.log(2 * math.pi * 0.5) / 2
    assert losses.nll_gaussian(predictions, target, variance, add_const=True).numpy() == pytest.approx(with_const)


def test_kl_categorical_uniform_by_hand():
    # batch 1, 2 nodes -> 2 edges, 2 types
    probs = tf.constant([[[0.25, 0.75], [0.5, 0.5]]])
    plogp = 0.25 * math.log(0.25) + 0.75 * math.log(0.75) + 2 * 0.5 * math.log(0.5)
    assert losses.kl_categorical_uniform(probs).numpy() == pytest.approx(plogp / 2, rel=1e-6)
    true_kl = (plogp + 2 * math.log(2)) / 2
    assert losses.kl_categorical_uniform(probs, add_const=True).numpy() == pytest.approx(true_kl, rel=1e-5)
    uniform = tf.fill([3, 20, 4], 0.25)        # 5 nodes
    assert losses.kl_categorical_uniform(uniform, add_const=True).numpy() == pytest.approx(0.0, abs=1e-6)


def test_kl_categorical_with_prior_by_hand():
    probs = tf.constant([[[0.9, 0.1], [0.2, 0.8]]])
    prior = np.array([0.8, 0.2])
    expected = sum(p * (math.log(p) - math.log(q))
                   for row in ([0.9, 0.1], [0.2, 0.8]) for p, q in zip(row, prior)) / 2
    assert losses.kl_categorical(probs, np.log(prior)).numpy() == pytest.approx(expected, rel=1e-5)
    # With a uniform prior it is the uniform KL including its constant.
    assert losses.kl_categorical(probs, np.log([0.5, 0.5])).numpy() == pytest.approx(
        losses.kl_categorical_uniform(probs, add_const=True).numpy(), rel=1e-5)


# --- metrics --------------------------------------------------------------------------

def _logits_for(types, edge_types):
    return tf.one_hot(np.asarray(types), edge_types) * 5.0


def test_edge_accuracy_takes_the_best_permutation():
    labels = np.array([[0, 1, 1, 0, 1, 0]])
    flipped = _logits_for(1 - labels, 2)
    assert metrics.edge_accuracy(flipped, labels).numpy() == pytest.approx(1.0)
    # with skip_first and 2 types nothing may be permuted
    assert metrics.edge_accuracy(flipped, labels, skip_first=True).numpy() == pytest.approx(0.0)
    one_wrong = _logits_for([[0, 1, 1, 0, 1, 1]], 2)
    assert metrics.edge_accuracy(one_wrong, labels).numpy() == pytest.approx(5 / 6)


def test_best_permutation_is_the_relabelling_edge_accuracy_scores_under():
    labels = np.array([[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2]])
    inferred = np.array([[2, 2, 0, 0, 1, 1], [2, 0, 0, 1, 1, 0]])     # 0 -> 1, 1 -> 2, 2 -> 0
    assert metrics.best_permutation(inferred, labels, 3).tolist() == [1, 2, 0]
    assert metrics.best_permutation(inferred, labels, 3, skip_first=True)[0] == 0


def test_skip_first_keeps_type_zero_fixed():
    labels = np.array([[0, 0, 1, 1, 2, 2]])
    swap_12 = _logits_for([[0, 0, 2, 2, 1, 1]], 3)
    swap_01 = _logits_for([[1, 1, 0, 0, 2, 2]], 3)
    assert metrics.edge_accuracy(swap_12, labels, skip_first=True).numpy() == pytest.approx(1.0)
    assert metrics.edge_accuracy(swap_01, labels, skip_first=True).numpy() == pytest.approx(2 / 6)
    assert metrics.edge_accuracy(swap_01, labels).numpy() == pytest.approx(1.0)
    assert metrics.type_permutations(3, skip_first=True).tolist() == [[0, 1, 2], [0, 2, 1]]
    assert len(metrics.type_permutations(4)) == 24


def test_edge_accuracy_metric_picks_one_permutation_for_everything_seen():
    metric = metrics.EdgeAccuracy(edge_types=2)
    labels = np.array([[0, 1, 1, 0]])
    metric.update_state(_logits_for(1 - labels, 2), labels)     # batch 1 flipped
    assert float(metric.result()) == pytest.approx(1.0)
    metric.update_state(_logits_for(labels, 2), labels)         # batch 2 not flipped
    assert float(metric.result()) == pytest.approx(0.5)         # (per-batch mean would say 1.0)
    metric.reset_state()
    assert float(metric.result()) == 0.0


@pytest.mark.parametrize("skip_first, expected", [
    (False, [[2, 0, 0], [0, 2, 1], [0, 0, 3]]),      # best relabelling 0->1, 1->2, 2->0
    (True, [[0, 2, 0], [2, 0, 1], [0, 0, 3]]),       # type 0 fixed: 1->2, 2->1
])
def test_aligned_confusion_reads_the_counts_per_true_type_under_the_chosen_permutation(skip_first, expected):
    metric = metrics.EdgeAccuracy(edge_types=3, skip_first=skip_first)
    labels = np.array([[0, 0, 1, 1, 1, 2, 2, 2]])
    metric.update_state(_logits_for(np.array([[2, 2, 0, 0, 1, 1, 1, 1]]), 3), labels)
    confusion = metric.aligned_confusion()                  # [true type, inferred type]
    np.testing.assert_allclose(confusion * 8, expected)
    assert np.trace(confusion) == pytest.approx(float(metric.result()))


def test_mse_per_step():
    predictions = tf.zeros([2, 3, 4, 2])
    target = tf.reshape(tf.repeat(tf.range(4, dtype=tf.float32), 2), [1, 1, 4, 2]) * tf.ones([2, 3, 1, 1])
    target *= tf.constant([1.0, 2.0])[:, None, None, None]           # system 1: twice the error
    np.testing.assert_allclose(metrics.mse_per_step(predictions, target).numpy(),
                               [[0, 1, 4, 9], [0, 4, 16, 36]])


# --- sampling -------------------------------------------------------------------------

LOGITS = tf.constant([[[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], [[1.0, 1.0, 1.0], [-3.0, 2.0, 0.0]]])


def test_relaxed_sample_is_a_distribution_and_reproducible():
    sample = sampling.relaxed_one_hot(LOGITS, 0.5, seed=[1, 2])
    np.testing.assert_allclose(tf.reduce_sum(sample, -1).numpy(), 1.0, rtol=1e-6)
    assert (sample.numpy() >= 0).all()
    np.testing.assert_array_equal(sample.numpy(), sampling.relaxed_one_hot(LOGITS, 0.5, seed=[1, 2]).numpy())
    assert not np.array_equal(sample.numpy(), sampling.relaxed_one_hot(LOGITS, 0.5, seed=[1, 3]).numpy())


def test_straight_through_is_exactly_one_hot_with_the_relaxed_gradient():
    weights = tf.random.stateless_normal(LOGITS.shape, seed=[4, 4])
    seed = tf.constant([7, 8])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(LOGITS)
        hard = sampling.straight_through_one_hot(LOGITS, 0.5, seed)
        soft = sampling.relaxed_one_hot(LOGITS, 0.5, seed)
        hard_loss = tf.reduce_sum(weights * hard)
        soft_loss = tf.reduce_sum(weights * soft)
    values = hard.numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}
    np.testing.assert_array_equal(values.sum(-1), 1.0)
    np.testing.assert_array_equal(values.argmax(-1), soft.numpy().argmax(-1))
    np.testing.assert_array_equal(tape.gradient(hard_loss, LOGITS).numpy(),
                                  tape.gradient(soft_loss, LOGITS).numpy())


def test_hard_samples_follow_the_categorical_distribution():
    logits = tf.math.log(tf.constant([[0.6, 0.3, 0.1]])) * tf.ones([5000, 1])
    draws = sampling.straight_through_one_hot(logits, 0.5, seed=[0, 1])
    np.testing.assert_allclose(tf.reduce_mean(draws, 0).numpy(), [0.6, 0.3, 0.1], atol=0.03)


def test_argmax_one_hot_and_sample_edges():
    np.testing.assert_array_equal(sampling.argmax_one_hot(LOGITS).numpy().argmax(-1), [[2, 1], [0, 1]])
    soft = sampling.sample_edges(LOGITS, 0.5, hard=False, seed=3)
    hard = sampling.sample_edges(LOGITS, 0.5, hard=True, seed=3)
    np.testing.assert_array_equal(hard.numpy(), sampling.argmax_one_hot(soft).numpy())


# --- candidate edges: padding slots count nothing --------------------------------------

def test_losses_and_metrics_leave_candidate_padding_out():
    # 1 system, 3 nodes, 2 slots per receiver; node 2's second slot is padding.
    senders = tf.constant([[[1, 2], [0, 2], [0, 0]]])
    mask = tf.constant([[[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]])
    edges = graph.CandidateEdges(senders, mask)
    probs = tf.constant([[[0.25, 0.75], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.01, 0.99]]])
    real = [[0.25, 0.75], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]]
    plogp = sum(p * math.log(p) for row in real for p in row)
    assert losses.kl_categorical_uniform(probs, edges=edges).numpy() == pytest.approx(plogp / 3, rel=1e-6)
    true_kl = (plogp + 5 * math.log(2)) / 3                       # 5 real edges, 3 nodes
    assert losses.kl_categorical_uniform(probs, True, edges).numpy() == pytest.approx(true_kl, rel=1e-5)
    prior = np.log([0.5, 0.5])
    assert losses.kl_categorical(probs, prior, edges).numpy() == pytest.approx(true_kl, rel=1e-5)

    labels = tf.constant([[1, 0, 0, 1, 0, 0]])
    logits = _logits_for([[1, 0, 0, 0, 0, 1]], 2)                  # 4 of the 5 real edges right
    metric = metrics.EdgeAccuracy(2, skip_first=True)
    metric.update_state(logits, labels, mask=graph.edge_mask(edges))
    assert metric.result().numpy() == pytest.approx(4 / 5)
    recall = metrics.CandidateRecall()
    recall.update_state(labels, tf.constant([3]), mask=graph.edge_mask(edges))   # 2 of 3 found
    assert recall.result().numpy() == pytest.approx(2 / 3)
    empty = metrics.CandidateRecall()
    empty.update_state(tf.zeros([1, 6], tf.int32), tf.constant([0]))
    assert empty.result().numpy() == 1.0
