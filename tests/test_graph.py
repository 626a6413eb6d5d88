"""Message passing on the fully connected graph: hand-computed examples and equivalences."""

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import contract
from nri_tf import graph

# 3 nodes, receiver-major edges (receiver, sender): (0,1) (0,2) (1,0) (1,2) (2,0) (2,1).
NODES_3 = np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]], dtype=np.float32)  # [1, 3, 2]


def test_node_to_edge_by_hand():
    edges = graph.node_to_edge(tf.constant(NODES_3)).numpy()
    expected = [[1, 10, 2, 20], [1, 10, 3, 30],
                [2, 20, 1, 10], [2, 20, 3, 30],
                [3, 30, 1, 10], [3, 30, 2, 20]]
    np.testing.assert_array_equal(edges, np.array([expected], dtype=np.float32))


def test_edge_to_node_by_hand():
    edge_values = np.array([[[1.0], [2.0], [4.0], [8.0], [16.0], [32.0]]], dtype=np.float32)
    incoming = graph.edge_to_node(tf.constant(edge_values)).numpy()
    np.testing.assert_array_equal(incoming, [[[1 + 2], [4 + 8], [16 + 32]]])
    averaged = graph.edge_to_node(tf.constant(edge_values), divide_by_nodes=True).numpy()
    np.testing.assert_allclose(averaged, [[[3 / 3], [12 / 3], [48 / 3]]])


def test_edge_to_node_equals_segment_sum_over_receivers():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 12, 2, 5)).astype(np.float32)     # 4 nodes, extra axes
    receivers, _ = contract.fully_connected_edges(4)
    expected = np.stack([tf.math.unsorted_segment_sum(v, receivers, 4).numpy() for v in values])
    np.testing.assert_allclose(graph.edge_to_node(tf.constant(values)).numpy(), expected, rtol=1e-6)


def test_node_to_edge_with_trailing_axes_matches_numpy():
    rng = np.random.default_rng(1)
    nodes = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    receivers, senders = contract.fully_connected_edges(4)
    expected = np.concatenate([nodes[:, receivers], nodes[:, senders]], axis=-1)
    np.testing.assert_array_equal(graph.node_to_edge(tf.constant(nodes)).numpy(), expected)


@pytest.mark.parametrize("num_nodes", [2, 3, 5, 7])
def test_tf_edge_indices_match_numpy_for_dynamic_counts(num_nodes):
    receivers, senders = graph.edge_indices(tf.constant(num_nodes))
    np_receivers, np_senders = contract.fully_connected_edges(num_nodes)
    np.testing.assert_array_equal(receivers.numpy(), np_receivers)
    np.testing.assert_array_equal(senders.numpy(), np_senders)


def test_ops_work_with_unknown_node_count():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    def round_trip(nodes):
        return graph.edge_to_node(graph.node_to_edge(nodes), divide_by_nodes=True)

    rng = np.random.default_rng(2)
    for num_nodes in (3, 6):
        nodes = rng.normal(size=(2, num_nodes, 3)).astype(np.float32)
        receivers, senders = contract.fully_connected_edges(num_nodes)
        pairs = np.concatenate([nodes[:, receivers], nodes[:, senders]], -1)
        expected = np.stack([np.stack([pairs[b, receivers == i].sum(0) for i in range(num_nodes)])
                             for b in range(2)]) / num_nodes
        np.testing.assert_allclose(round_trip(tf.constant(nodes)).numpy(), expected, rtol=1e-5)


def test_num_nodes_from_edges():
    assert contract.num_nodes_from_edges(20) == 5
    assert contract.num_nodes_from_edges(90) == 10
    with pytest.raises(ValueError, match="not the edge count"):
        contract.num_nodes_from_edges(7)


def test_pair_sum_by_hand():
    receivers = tf.constant([[[1.0], [2.0], [3.0]]])
    senders = tf.constant([[[10.0], [20.0], [30.0]]])
    got = graph.pair_sum(receivers, senders).numpy()[0, :, 0]
    np.testing.assert_array_equal(got, [21, 31, 12, 32, 13, 23])      # receiver + sender


def test_node_pairs_matmul_equals_the_product_of_the_gathered_pairs():
    rng = np.random.default_rng(2)
    nodes = tf.constant(rng.normal(size=(2, 4, 3, 6)).astype(np.float32))   # trailing axis 3
    kernel = tf.constant(rng.normal(size=(12, 5)).astype(np.float32))
    pairs = graph.node_to_edge(nodes)                                        # [2, 12, 3, 12]
    expected = tf.einsum("beti,ih->beth", pairs, kernel)
    got = graph.node_pairs_matmul(nodes, kernel)
    assert got.shape == expected.shape == (2, 12, 3, 5)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamic", [False, True])
def test_reverse_edges_by_hand(dynamic):
    # (0,1) (0,2) (1,0) (1,2) (2,0) (2,1): the reverse of (0,1) is (1,0) = edge 2, ...
    num_nodes = tf.constant(3) if dynamic else 3
    np.testing.assert_array_equal(graph.reverse_edges(num_nodes).numpy(), [2, 4, 0, 5, 1, 3])
    reverse = graph.reverse_edges(6).numpy()
    np.testing.assert_array_equal(reverse[reverse], np.arange(30))     # its own inverse


@pytest.mark.parametrize("dynamic", [False, True])
def test_triangle_paths_match_a_brute_force_listing(dynamic):
    num_nodes = 5
    receivers, senders = graph.edge_indices(num_nodes)
    index = {(int(i), int(j)): e for e, (i, j) in enumerate(zip(receivers.numpy(), senders.numpy()))}
    first, second = graph.triangle_paths(tf.constant(num_nodes) if dynamic else num_nodes)
    assert first.shape == second.shape == (20, 3)
    for (i, j), e in index.items():
        thirds = [k for k in range(num_nodes) if k not in (i, j)]
        assert list(first.numpy()[e]) == [index[i, k] for k in thirds]
        assert list(second.numpy()[e]) == [index[k, j] for k in thirds]


def test_both_directions_averaged_and_shared():
    values = tf.constant([[[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]])    # [1, 6 edges, 1]
    np.testing.assert_array_equal(graph.average_directions(values).numpy()[0, :, 0],
                                  [1, 2.5, 1, 4, 2.5, 4])
    # edges with receiver < sender: (0,1)=0, (0,2)=1, (1,2)=3 keep theirs; the others copy them
    np.testing.assert_array_equal(graph.share_between_directions(values).numpy()[0, :, 0],
                                  [0, 1, 0, 3, 1, 3])


# --- Candidate edges (fixed degree per receiver) -----------------------------------------

# 4 nodes, 2 candidates per receiver: (0,1) (0,3) (1,0) (1,2) (2,1) (2,3) (3,0) (3,2).
SENDERS_4 = np.array([[[1, 3], [0, 2], [1, 3], [0, 2]]], dtype=np.int32)    # [1, 4, 2]
NODES_4 = np.array([[[1.0], [10.0], [100.0], [1000.0]]], dtype=np.float32)  # [1, 4, 1]


def test_candidate_node_to_edge_by_hand():
    edges = graph.CandidateEdges(tf.constant(SENDERS_4))
    got = graph.node_to_edge(tf.constant(NODES_4), edges).numpy()[0]
    expected = [[1, 10], [1, 1000], [10, 1], [10, 100], [100, 10], [100, 1000], [1000, 1], [1000, 100]]
    np.testing.assert_array_equal(got, expected)


def test_candidate_edge_to_node_by_hand_with_mask():
    values = tf.constant([[[1.0], [2.0], [4.0], [8.0], [16.0], [32.0], [64.0], [128.0]]])
    mask = np.ones((1, 4, 2), np.float32)
    mask[0, 3, 1] = 0.0                                    # node 3 has one real candidate
    edges = graph.CandidateEdges(tf.constant(SENDERS_4), tf.constant(mask))
    np.testing.assert_array_equal(graph.edge_to_node(values, edges=edges).numpy()[0, :, 0],
                                  [3, 12, 48, 64])
    # divide by incoming edges + 1: 3, 3, 3 and 2 (one real edge); N on the complete graph.
    np.testing.assert_allclose(graph.edge_to_node(values, True, edges).numpy()[0, :, 0],
                               [1, 4, 16, 32])
    np.testing.assert_array_equal(graph.edge_mask(edges).numpy(), mask.reshape(1, 8))


def test_candidate_directions_tied_by_hand():
    # SENDERS_4 with node 3 padded to one candidate (0): (2,3) loses its reverse (3,2).
    mask = np.ones((1, 4, 2), np.float32)
    mask[0, 3, 1] = 0.0
    edges = graph.CandidateEdges(tf.constant(SENDERS_4), tf.constant(mask))
    # (0,1) (0,3) (1,0) (1,2) (2,1) (2,3) (3,0) [3,2 padding]
    np.testing.assert_array_equal(graph.candidate_reverse_edges(edges).numpy()[0],
                                  [2, 6, 0, 4, 3, 5, 1, 7])
    values = tf.constant([[[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0]]])
    np.testing.assert_array_equal(graph.average_directions(values, edges).numpy()[0, :, 0],
                                  [1, 3.5, 1, 3.5, 3.5, 5, 3.5, 7])
    # receiver < sender keeps its draw: (0,1)=0, (0,3)=1, (1,2)=3, (2,3)=5; (2,1) and (3,0)
    # copy theirs; (1,0) copies (0,1); padding keeps its own.
    np.testing.assert_array_equal(graph.share_between_directions(values, edges).numpy()[0, :, 0],
                                  [0, 1, 0, 3, 3, 5, 1, 7])
    knn = graph.CandidateEdges(tf.constant([[[1], [2], [0]]]))     # 0<-1, 1<-2, 2<-0: no pair mutual
    np.testing.assert_array_equal(graph.candidate_reverse_edges(knn).numpy()[0], [0, 1, 2])
    as_int64 = graph.CandidateEdges(tf.constant(SENDERS_4, tf.int64), tf.constant(mask))
    np.testing.assert_array_equal(graph.share_between_directions(values, as_int64).numpy()[0, :, 0],
                                  [0, 1, 0, 3, 3, 5, 1, 7])


def test_directions_tied_on_complete_candidates_as_on_the_fast_path():
    values = tf.constant(np.random.default_rng(5).normal(size=(2, 20, 3)).astype(np.float32))
    complete = graph.complete_candidate_edges(2, 5)
    for tie in (graph.average_directions, graph.share_between_directions):
        np.testing.assert_array_equal(tie(values, complete).numpy(), tie(values).numpy())


def test_candidate_ops_on_the_complete_graph_equal_the_fast_path():
    rng = np.random.default_rng(3)
    nodes = tf.constant(rng.normal(size=(2, 5, 3, 4)).astype(np.float32))   # trailing axes too
    complete = graph.complete_candidate_edges(2, 5)
    for op in (graph.broadcast_receiver_nodes_to_edges, graph.broadcast_sender_nodes_to_edges,
               graph.node_to_edge):
        np.testing.assert_array_equal(op(nodes, complete).numpy(), op(nodes).numpy())
    edge_values = graph.node_to_edge(nodes)
    for divide in (False, True):
        np.testing.assert_array_equal(graph.edge_to_node(edge_values, divide, complete).numpy(),
                                      graph.edge_to_node(edge_values, divide).numpy())
    kernel = tf.constant(rng.normal(size=(8, 6)).astype(np.float32))
    np.testing.assert_allclose(graph.node_pairs_matmul(nodes, kernel, complete).numpy(),
                               graph.node_pairs_matmul(nodes, kernel).numpy(), rtol=1e-6)


def test_candidate_node_pairs_matmul_equals_pairs_times_kernel():
    rng = np.random.default_rng(4)
    senders = tf.constant(np.stack([SENDERS_4[0], SENDERS_4[0][:, ::-1]]))   # two systems
    edges = graph.CandidateEdges(senders)
    nodes = tf.constant(rng.normal(size=(2, 4, 3)).astype(np.float32))
    kernel = tf.constant(rng.normal(size=(6, 5)).astype(np.float32))
    pairs = graph.node_to_edge(nodes, edges)                                  # [2, 8, 6]
    expected = np.einsum("bef,fh->beh", pairs.numpy(), kernel.numpy())
    np.testing.assert_allclose(graph.node_pairs_matmul(nodes, kernel, edges).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
