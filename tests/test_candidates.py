"""Tests of data_pipelines.candidates: complete, knn and radius edges on hand-made point
sets, the complete order against nri_tf.graph, recall and labels on known cases, and every
bad-input error."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines import candidates
from data_pipelines.contract import fully_connected_edges
from data_pipelines.candidates import (CandidateParameterError, DuplicateEdgeError, EdgeLists,
                                       IsolatedNodeError, NodeIndexError, SelfLoopError,
                                       candidate_labels, candidate_recall, complete_edges,
                                       knn_edges, radius_edges, select_candidates, validate_edges)

LINE = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])[:, None]
"""[nodes=4, frames=1, 2]: nodes on the x axis at 0, 1, 3, 6."""


def test_complete_edges_are_the_contract_order():
    for num_nodes in (2, 3, 5, 7):
        receivers, senders = fully_connected_edges(num_nodes)
        np.testing.assert_array_equal(complete_edges(num_nodes), np.stack([receivers, senders], 1))
        assert complete_edges(num_nodes).dtype == np.int32


def test_knn_on_a_line():
    assert knn_edges(LINE, 1).tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert knn_edges(LINE, 2).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1],
                                           [3, 1], [3, 2]]


def test_knn_k_is_clipped_to_the_other_nodes():
    two = np.array([[0.0, 0.0], [5.0, 5.0]])[:, None]
    assert knn_edges(two, 16).tolist() == [[0, 1], [1, 0]]
    np.testing.assert_array_equal(knn_edges(LINE, 3), complete_edges(4))


def test_knn_window_is_the_union_over_frames():
    later = np.array([[0.0, 0.0], [5.0, 0.0], [0.5, 0.0], [6.0, 0.0]])[:, None]
    window = np.concatenate([LINE, later], axis=1)          # [4, 2, 2]
    expected = set(map(tuple, knn_edges(LINE, 1).tolist())) | set(map(tuple, knn_edges(later, 1).tolist()))
    assert set(map(tuple, knn_edges(window, 1).tolist())) == expected
    assert len(expected) > 4


def test_knn_and_radius_blocked_like_unblocked(monkeypatch):
    positions = np.random.default_rng(0).uniform(0, 5, (40, 3, 2))
    knn, radius = knn_edges(positions, 4), radius_edges(positions, 1.0)
    monkeypatch.setattr(candidates, "_DISTANCE_BLOCK_ENTRIES", 7)
    np.testing.assert_array_equal(knn_edges(positions, 4), knn)
    np.testing.assert_array_equal(radius_edges(positions, 1.0), radius)


def test_radius_on_a_line_is_symmetric():
    assert radius_edges(LINE, 2.0).tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
    positions = np.random.default_rng(1).uniform(0, 4, (30, 2, 2))
    edges = radius_edges(positions, 1.2)
    assert set(map(tuple, edges.tolist())) == set(map(tuple, edges[:, ::-1].tolist()))
    distances = np.linalg.norm(positions[edges[:, 0]] - positions[edges[:, 1]], axis=-1)
    assert (distances.min(axis=1) <= 1.2).all()
    assert len(edges) < len(complete_edges(30))


def test_a_far_node_is_isolated_under_radius():
    edges = radius_edges(LINE, 1.5)
    assert 3 not in edges[:, 0]
    with pytest.raises(IsolatedNodeError, match="node 2 .2 in all. has no incoming"):
        validate_edges(edges, 4, allow_isolated=False)


def test_validate_sorts_receiver_major():
    edges = validate_edges(np.array([[2, 0], [0, 2], [1, 0], [0, 1]]), 3)
    assert edges.tolist() == [[0, 1], [0, 2], [1, 0], [2, 0]] and edges.dtype == np.int32
    assert validate_edges(np.zeros((0, 2), np.int64), 3).shape == (0, 2)


@pytest.mark.parametrize("edges, error, message", [
    ([[0, 1], [1, 3]], NodeIndexError, r"edge 1 = \[1, 3\] names a node outside 0..2"),
    ([[-1, 1]], NodeIndexError, r"edge 0 = \[-1, 1\] names a node outside"),
    ([[0, 1], [2, 2]], SelfLoopError, r"edge 1 = \[2, 2\] joins a node to itself"),
    ([[0, 1], [1, 0], [0, 1]], DuplicateEdgeError, r"edges 0 and 2 are both \[0, 1\]"),
    ([[0.0, 1.0]], candidates.CandidateEdgeError, "integer array"),
    ([0, 1], candidates.CandidateEdgeError, r"\[edges, 2\]"),
])
def test_bad_given_edges_raise(edges, error, message):
    with pytest.raises(error, match=message):
        validate_edges(np.array(edges), 3)
    assert issubclass(error, ValueError)


@pytest.mark.parametrize("k", [0, -3, 1.5, True])
def test_bad_k_raises(k):
    with pytest.raises(CandidateParameterError, match="knn candidates need k >= 1"):
        knn_edges(LINE, k)


@pytest.mark.parametrize("radius", [0, -1.0, float("inf"), float("nan"), None])
def test_bad_radius_raises(radius):
    with pytest.raises(CandidateParameterError, match="radius candidates need a radius > 0"):
        radius_edges(LINE, radius)


def test_bad_sizes_raise():
    with pytest.raises(CandidateParameterError, match="at least 2 nodes"):
        complete_edges(1)
    with pytest.raises(CandidateParameterError, match="at least 2 nodes"):
        knn_edges(LINE[:1], 1)
    with pytest.raises(CandidateParameterError, match=r"\[nodes, frames, coords\]"):
        radius_edges(LINE[:, 0], 1.0)


def test_recall_and_labels_on_a_known_case():
    true_edges = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    knn = knn_edges(LINE, 1)                                 # misses (2, 3)
    assert candidate_recall(knn, true_edges) == 0.75
    assert candidate_recall(complete_edges(4), true_edges) == 1.0
    assert candidate_recall(knn, np.zeros((0, 2), np.int32)) == 1.0
    assert candidate_labels(knn, true_edges).tolist() == [1, 1, 0, 1]
    assert candidate_labels(knn, true_edges, np.array([2, 1, 3, 4])).tolist() == [2, 1, 0, 4]
    assert candidate_labels(knn, np.zeros((0, 2), np.int32)).tolist() == [0, 0, 0, 0]


def test_select_candidates_per_system():
    positions = np.stack([LINE, LINE[::-1]])                 # [2, 4, 1, 2]
    complete = select_candidates("complete", positions)
    assert len(complete) == 2 and complete.num_edges().tolist() == [12, 12]
    knn = select_candidates("knn", positions, k=1)
    assert knn[0].tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert knn[1].tolist() == [[0, 1], [1, 2], [2, 3], [3, 2]]   # nodes at 6, 3, 1, 0
    radius = select_candidates("radius", positions, radius=2.0)
    assert radius.row_splits.tolist() == [0, 4, 8]
    given = select_candidates("given", positions, given=[np.array([[1, 0]]), np.array([[3, 1], [0, 2]])])
    assert given.edges.tolist() == [[1, 0], [0, 2], [3, 1]]


def test_select_candidates_window_against_first_frame():
    positions = np.random.default_rng(2).uniform(0, 3, (2, 20, 5, 2))
    first = select_candidates("knn", positions, k=3)
    window = select_candidates("knn", positions, k=3, window=True)
    np.testing.assert_array_equal(first[1], knn_edges(positions[1, :, :1], 3))
    np.testing.assert_array_equal(window[1], knn_edges(positions[1], 3))
    assert (window.num_edges() > first.num_edges()).all()


@pytest.mark.parametrize("method, kwargs, message", [
    ("nearest", {}, "unknown candidate method 'nearest'; choose one of complete, knn, radius, given"),
    ("given", {}, "one edge list per system"),
    ("given", {"given": [np.array([[0, 1]])]}, "one edge list per system"),
    ("knn", {}, "knn candidates need k >= 1"),
    ("radius", {}, "radius candidates need a radius > 0"),
])
def test_select_candidates_bad_arguments_raise(method, kwargs, message):
    with pytest.raises(CandidateParameterError, match=message):
        select_candidates(method, np.zeros((2, 4, 1, 2)), **kwargs)
    with pytest.raises(CandidateParameterError, match="systems, nodes, frames, coords"):
        select_candidates("complete", np.zeros((4, 1, 2)))


def test_edge_lists_from_list():
    lists = EdgeLists.from_list([np.array([[0, 1]]), np.zeros((0, 2)), np.array([[1, 0], [2, 0]])])
    assert lists.row_splits.tolist() == [0, 1, 1, 3] and lists.edges.dtype == np.int32
    assert lists[2].tolist() == [[1, 0], [2, 0]] and lists[1].shape == (0, 2)
    assert EdgeLists.from_list([]).edges.shape == (0, 2)
