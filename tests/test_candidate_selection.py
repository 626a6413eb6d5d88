"""Candidate edges in tf.data: the TensorFlow selection equals the numpy one, labels and
recall counts are right, and bad settings are one-line errors (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import candidates as numpy_candidates
from data_pipelines.candidate_selection import (CandidateSpec, CandidateSpecError, candidate_degree,
                                                candidate_features, edge_list_to_dense,
                                                labels_from_dense, labels_from_edge_list,
                                                select_senders)
from data_pipelines.contract import edge_labels_from_matrix, fully_connected_edges
from data_pipelines.datasets import make_dataset
from data_pipelines.generation import generate_dataset
from data_pipelines.storage.reader import read_metadata, read_split

from conftest import simulated_dataset


def _as_pairs(senders: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """[nodes, d] senders (+ mask) -> [edges, 2] (receiver, sender) of the real candidates."""
    receivers = np.repeat(np.arange(senders.shape[0]), senders.shape[1]).reshape(senders.shape)
    real = np.ones(senders.shape, bool) if mask is None else mask > 0
    return np.stack([receivers[real], senders[real]], axis=1)


@pytest.mark.parametrize("num_nodes,k", [(30, 4), (12, 11), (5, 16)])
def test_knn_matches_the_numpy_selection(num_nodes, k):
    positions = np.random.default_rng(num_nodes).uniform(-3, 3, (num_nodes, 2)).astype(np.float32)
    degree = candidate_degree(CandidateSpec("knn", k), num_nodes)
    assert degree == min(k, num_nodes - 1)
    senders, mask = select_senders(CandidateSpec("knn", k), tf.constant(positions), num_nodes, degree)
    assert mask is None
    np.testing.assert_array_equal(_as_pairs(senders.numpy()),
                                  numpy_candidates.knn_edges(positions[:, None], k))


def test_knn_on_two_nodes_with_k_16_is_the_complete_graph():
    senders, _ = select_senders(CandidateSpec("knn", 16), tf.constant([[0.0, 0.0], [1.0, 0.0]]), 2, 1)
    np.testing.assert_array_equal(senders.numpy(), [[1], [0]])


def test_radius_keeps_the_nearest_within_the_radius_and_pads():
    # Node 0 at the origin, 1 and 2 near it, 3 far away: a node with no candidate at all.
    positions = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [10.0, 10.0]])
    spec = CandidateSpec("radius", k=2, radius=1.2)
    senders, mask = select_senders(spec, positions, 4, candidate_degree(spec, 4))
    np.testing.assert_array_equal(mask.numpy(), [[1, 1], [1, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(senders.numpy()[:3], [[1, 2], [0, 2], [0, 1]])
    np.testing.assert_array_equal(senders.numpy()[3], [3, 3])          # padding: the node itself
    rng = np.random.default_rng(1)
    many = rng.uniform(-4, 4, (40, 2)).astype(np.float32)
    spec = CandidateSpec("radius", k=39, radius=1.5)                      # no cap: all within 1.5
    senders, mask = select_senders(spec, tf.constant(many), 40, 39)
    np.testing.assert_array_equal(_as_pairs(senders.numpy(), mask.numpy()),
                                  numpy_candidates.radius_edges(many[:, None], 1.5))


def test_given_pads_the_stored_pairs_and_labels_follow_them():
    pairs = tf.constant([[0, 2], [0, 3], [2, 1]], tf.int32)            # nodes 1 and 3 get nothing
    labels = tf.constant([1, 0, 1], tf.int32)
    senders, mask = select_senders(CandidateSpec("given"), tf.zeros([4, 2]), 4, 2, pairs)
    np.testing.assert_array_equal(senders.numpy(), [[2, 3], [1, 1], [1, 2], [3, 3]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 1], [0, 0], [1, 0], [0, 0]])
    found = labels_from_edge_list(senders, 4, pairs, labels).numpy()
    np.testing.assert_array_equal(found, [1, 0, 0, 0, 1, 0, 0, 0])


def test_labels_and_interactions_from_dense_and_edge_list_storage_agree():
    rng = np.random.default_rng(2)
    num_nodes = 9
    matrix = (rng.random((num_nodes, num_nodes)) < 0.3).astype(np.int32)
    np.fill_diagonal(matrix, 0)
    dense = edge_labels_from_matrix(matrix)
    receivers, senders = fully_connected_edges(num_nodes)
    listed = dense > 0
    pairs = np.stack([receivers[listed], senders[listed]], axis=1).astype(np.int32)
    trajectories = tf.constant(rng.normal(size=(num_nodes, 3, 4)).astype(np.float32))
    spec = CandidateSpec("knn", 3)
    from_dense = candidate_features(spec, trajectories, num_nodes, 3, dense_labels=tf.constant(dense))
    from_list = candidate_features(spec, trajectories, num_nodes, 3, pairs=tf.constant(pairs),
                                   labels=tf.constant(dense[listed]))
    np.testing.assert_array_equal(from_dense[0].numpy(), from_list[0].numpy())
    assert int(from_dense[1]["interactions"]) == int(from_list[1]["interactions"]) == listed.sum()
    chosen = _as_pairs(from_dense[1]["senders"].numpy())
    np.testing.assert_array_equal(from_dense[0].numpy(),
                                  numpy_candidates.candidate_labels(chosen, pairs))
    np.testing.assert_array_equal(edge_list_to_dense(tf.constant(pairs), tf.constant(dense[listed]),
                                                     num_nodes).numpy(), dense)
    np.testing.assert_array_equal(
        labels_from_dense(tf.constant(senders.reshape(num_nodes, num_nodes - 1)), num_nodes,
                          tf.constant(dense)).numpy(), dense)


@pytest.fixture(scope="module")
def local_springs(tmp_path_factory):
    return simulated_dataset(tmp_path_factory, "local", simulation="local-springs", num_nodes=40,
                             num_train=6, num_valid=3, num_test=3, length=600, length_test=1100)


@pytest.fixture(scope="module")
def dense_springs(tmp_path_factory):
    return simulated_dataset(tmp_path_factory, "dense", simulation="springs", num_nodes=6,
                             num_train=6, num_valid=3, num_test=3, length=600, length_test=1100)


def test_edge_list_data_yields_every_candidate_kind(local_springs):
    metadata = read_metadata(local_springs)
    assert metadata.edge_lists["method"] == "radius" and metadata.format_version == 2
    raw, stored = read_split(local_springs, "valid")
    springs = [stored.edges[s][stored.labels[stored.edges.row_splits[s]:stored.edges.row_splits[s + 1]] > 0]
               for s in range(3)]
    # given: the stored pairs, padded to max_degree; every spring listed.
    trajectories, labels, candidates = next(iter(make_dataset(
        local_springs, "valid", 3, candidates=CandidateSpec("given"))))
    degree = metadata.edge_lists["max_degree"]
    assert candidates["senders"].shape == (3, 40, degree) and labels.shape == (3, 40 * degree)
    for s in range(3):
        np.testing.assert_array_equal(_as_pairs(candidates["senders"][s].numpy(), candidates["mask"][s].numpy()),
                                      stored.edges[s])
    assert candidates["interactions"].numpy().tolist() == [len(x) for x in springs]
    assert int(tf.reduce_sum(labels)) == sum(len(x) for x in springs)
    # knn on the first frame, in raw units (before normalisation): the numpy selection.
    _, labels, candidates = next(iter(make_dataset(local_springs, "valid", 3,
                                                   candidates=CandidateSpec("knn", 4))))
    for s in range(3):
        chosen = numpy_candidates.knn_edges(raw[s, :, :1, :2], 4)
        np.testing.assert_array_equal(_as_pairs(candidates["senders"][s].numpy()), chosen)
        recall = numpy_candidates.candidate_recall(chosen, springs[s])
        assert int(tf.reduce_sum(labels[s])) == pytest.approx(recall * len(springs[s]))
    # complete: the stored labels spread over all N*(N-1) pairs, no candidates dict.
    batch = next(iter(make_dataset(local_springs, "valid", 3)))
    assert len(batch) == 2 and batch[1].shape == (3, 40 * 39)
    assert int(tf.reduce_sum(batch[1])) == sum(len(x) for x in springs)


def test_dense_data_with_knn_candidates(dense_springs):
    raw, dense = read_split(dense_springs, "valid")
    trajectories, labels, candidates = next(iter(make_dataset(
        dense_springs, "valid", 3, candidates=CandidateSpec("knn", 2))))
    assert candidates["senders"].shape == (3, 6, 2) and "mask" not in candidates
    for s in range(3):
        chosen = numpy_candidates.knn_edges(raw[s, :, :1, :2], 2)
        receivers, senders = fully_connected_edges(6)
        truth = np.stack([receivers, senders], 1)[dense[s] > 0]
        np.testing.assert_array_equal(labels[s].numpy(), numpy_candidates.candidate_labels(chosen, truth))
        assert int(candidates["interactions"][s]) == int((dense[s] > 0).sum())
    # The complete graph over dense data is the unchanged fast path.
    plain = next(iter(make_dataset(dense_springs, "valid", 3)))
    np.testing.assert_array_equal(plain[1].numpy(), dense)


def test_settings_the_data_cannot_give_are_one_line_errors(dense_springs, tmp_path):
    with pytest.raises(CandidateSpecError, match="given needs data stored with edge lists"):
        make_dataset(dense_springs, "valid", 2, candidates=CandidateSpec("given"))
    with pytest.raises(CandidateSpecError, match="--candidate-k must be a positive integer"):
        make_dataset(dense_springs, "valid", 2, candidates=CandidateSpec("knn", 0))
    with pytest.raises(CandidateSpecError, match="unknown candidate method"):
        make_dataset(dense_springs, "valid", 2, candidates=CandidateSpec("nearest"))
    kuramoto = str(tmp_path / "kuramoto")
    generate_dataset(kuramoto, simulation="kuramoto", num_nodes=4, num_train=2, num_valid=2,
                     num_test=2, length=600, length_test=1100, progress=False)
    with pytest.raises(CandidateSpecError, match="features x, y first"):
        make_dataset(kuramoto, "valid", 2, candidates=CandidateSpec("knn", 2))
