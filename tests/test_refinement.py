"""Test-time graph refinement against the decoder (`nri_tf.refinement`)."""

import itertools

import numpy as np
import pytest
import keras
import tensorflow as tf

from nri_tf import graph, refinement
from nri_tf.config import NRIConfig
from nri_tf.decoders import MLPDecoder
from nri_tf.model import NRI
from nri_tf.refinement import best_edge_types, exact_search_fits, graph_cost, refine_edge_types

NODES, FRAMES, DIMS = 5, 8, 4


def _frames(seed: int = 0, batch: int = 3):
    return tf.random.stateless_uniform([batch, NODES, FRAMES, DIMS], seed=[seed, 1], minval=-1, maxval=1)


@pytest.mark.parametrize("relative_dims, candidates, skip_first", [(0, False, True), (2, True, False)])
def test_receiver_nll_by_edge_type_is_the_receivers_nll_with_that_edge_changed(relative_dims, candidates,
                                                                               skip_first):
    decoder = MLPDecoder(DIMS, edge_types=3, hidden=8, skip_first=skip_first, relative_dims=relative_dims)
    x = _frames()
    edges = None
    if candidates:     # two slots per receiver, the second of receiver 0 padding
        senders = np.tile(np.array([[[(i + 1) % 5, (i + 3) % 5] for i in range(5)]], np.int32), [3, 1, 1])
        mask = np.ones([3, 5, 2], np.float32)
        mask[:, 0, 1] = 0.0
        edges = graph.CandidateEdges(tf.constant(senders), tf.constant(mask))
        receivers = np.repeat(np.arange(5), 2)
    else:
        receivers = graph.edge_indices(NODES)[0].numpy()
    num_edges = len(receivers)
    types = tf.random.stateless_uniform([3, num_edges], seed=[2, 3], maxval=3, dtype=tf.int32)
    decoder(x, tf.one_hot(types, 3), edges=edges)      # builds it
    got = decoder.receiver_nll_by_edge_type(x, types, 5e-5, edges).numpy()
    assert got.shape == (3, num_edges, 3)
    for e in range(num_edges):
        if candidates and e == 1:
            continue                              # the padding slot: nothing to score
        for k in range(3):
            changed = tf.tensor_scatter_nd_update(types, [[b, e] for b in range(3)], [k] * 3)
            predictions = decoder(x, tf.one_hot(changed, 3), edges=edges)
            per_node = tf.reduce_sum(tf.square(predictions - x[:, :, 1:]), axis=[2, 3]) / (2 * 5e-5)
            np.testing.assert_allclose(got[:, e, k], per_node.numpy()[:, receivers[e]], rtol=2e-4)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("search", ["sweeps", "exact"])
def test_refinement_recovers_the_graph_a_decoder_generated_from_a_corrupted_start(symmetric, search,
                                                                                  monkeypatch):
    """Trajectories rolled out by the decoder itself on a known graph: that graph predicts
    them exactly (cost 0), so the sweeps must find it again (or nearly) from a graph with a
    fifth of its edges wrong, lowering every system's cost; the exact search finds it."""
    if search == "sweeps":       # 5 nodes: small enough for the exact search unless it is off
        monkeypatch.setattr(refinement, "EXACT_RECEIVER_ASSIGNMENTS", 0)
    config = NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=8, decoder_hidden=16, skip_first=True,
                       symmetric=symmetric)
    keras.utils.set_random_seed(0)    # the decoder's weights (the bounds below hold for seeds 0-11)
    model = NRI(config)
    model(_frames())
    pairs = tf.random.stateless_uniform([3, NODES * (NODES - 1)], seed=[4, 5], maxval=2, dtype=tf.int32)
    truth = graph.share_between_directions(pairs[..., None])[..., 0] if symmetric else pairs
    start = _frames(seed=6)[:, :, :1]
    rolled, _ = model.decoder.rollout(start[:, :, 0], tf.one_hot(truth, 2), FRAMES - 1)
    x = tf.concat([start, rolled], axis=2)
    flip = tf.random.stateless_uniform(truth.shape, seed=[7, 8]) < 0.2
    if symmetric:
        flip = graph.share_between_directions(tf.cast(flip, tf.int32)[..., None])[..., 0] > 0
    corrupted = tf.where(flip, 1 - truth, truth)
    assert float(tf.reduce_min(graph_cost(model, x, corrupted))) > 1.0
    refined = refine_edge_types(model, x, corrupted, sweeps=20)
    before, after = graph_cost(model, x, corrupted).numpy(), graph_cost(model, x, refined).numpy()
    wrong_before = int(tf.reduce_sum(tf.cast(corrupted != truth, tf.int32)))
    wrong_after = int(tf.reduce_sum(tf.cast(refined != truth, tf.int32)))
    assert wrong_before == 10
    if search == "exact":
        assert (after <= 1e-4 * before).all() and wrong_after == 0
    else:   # single-edge moves can stall where two wrong edges offset each other (at one
        # receiver, or a pair's two directions): most systems reach the truth, none is left
        # at over half its cost, and at most two such pairs stay wrong
        assert (after <= 0.5 * before).all() and (after <= 1e-3 * before).sum() >= 2
        assert wrong_after <= 4
    np.testing.assert_array_equal(refine_edge_types(model, x, corrupted, sweeps=0).numpy(), corrupted.numpy())


def test_refinement_needs_the_mlp_decoder():
    model = NRI(NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=8, decoder_hidden=8, decoder="rnn"))
    model(_frames())
    with pytest.raises(ValueError, match="needs the mlp decoder"):
        refine_edge_types(model, _frames(), tf.zeros([3, 20], tf.int32), sweeps=1)


def test_receiver_nll_by_assignment_is_each_receivers_nll_with_those_incoming_types():
    decoder = MLPDecoder(DIMS, edge_types=3, hidden=8, skip_first=True, relative_dims=2)
    x = _frames()
    decoder(x, tf.one_hot(tf.zeros([3, 20], tf.int32), 3))      # builds it
    assignments = tf.random.stateless_uniform([5, NODES - 1], seed=[9, 1], maxval=3, dtype=tf.int32)
    got = decoder.receiver_nll_by_assignment(x, assignments, 5e-5, chunk=2).numpy()
    assert got.shape == (3, NODES, 5)
    for a in range(5):      # every receiver's incoming edges typed by assignment a
        types = tf.tile(assignments[a][None, None], [3, NODES, 1])
        predictions = decoder(x, tf.one_hot(tf.reshape(types, [3, -1]), 3))
        per_node = tf.reduce_sum(tf.square(predictions - x[:, :, 1:]), axis=[2, 3]) / (2 * 5e-5)
        np.testing.assert_allclose(got[:, :, a], per_node.numpy(), rtol=2e-4)


@pytest.mark.parametrize("symmetric", [False, True])
def test_exact_search_finds_the_least_cost_graph_of_all(symmetric):
    """4 nodes, 2 types: every graph (4096 directed, 64 undirected) scored by the decoder."""
    nodes, batch = 4, 2
    config = NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=8, decoder_hidden=16, symmetric=symmetric)
    keras.utils.set_random_seed(1)
    model = NRI(config)
    x = tf.random.stateless_uniform([batch, nodes, FRAMES, DIMS], seed=[3, 1], minval=-1, maxval=1)
    model(x)
    assert exact_search_fits(config, nodes)
    best = best_edge_types(model, x)
    edges = nodes * (nodes - 1)
    every = np.array(list(itertools.product([0, 1], repeat=edges)), np.int32)
    if symmetric:
        every = graph.share_between_directions(tf.constant(every)[..., None])[..., 0].numpy()
        every = np.unique(every, axis=0)
    assert len(every) == (64 if symmetric else 4096)
    for b in range(batch):
        costs = graph_cost(model, tf.repeat(x[b:b + 1], len(every), axis=0), tf.constant(every)).numpy()
        found = float(graph_cost(model, x[b:b + 1], best[b:b + 1])[0])
        assert found == pytest.approx(costs.min(), rel=1e-4)
        np.testing.assert_array_equal(best[b].numpy(), every[np.argmin(costs)])


def test_exact_search_fits_only_small_complete_graphs():
    directed, undirected = NRIConfig(dims=DIMS, frames=FRAMES), NRIConfig(dims=DIMS, frames=FRAMES, symmetric=True)
    assert exact_search_fits(directed, 9) and not exact_search_fits(directed, 10)         # 2^8 = 256
    assert exact_search_fits(undirected, 5) and not exact_search_fits(undirected, 6)      # 2^10, 2^15 pair graphs
    edges = graph.CandidateEdges(tf.zeros([1, 5, 2], tf.int32))
    assert not exact_search_fits(directed, 5, edges)


def test_likeliest_graphs_score_the_graph_the_decoder_generated_against_the_labels():
    """A true-graph model's decoder rolls trajectories out on known graphs: the likeliest graph
    is that one (cost ~0), so labels equal to it score 100% and labels with a fifth of the
    edges flipped score 80%, costing more than the likeliest."""
    from nri_tf.evaluation import likeliest_graphs
    config = NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=8, decoder_hidden=16)
    keras.utils.set_random_seed(0)
    model = NRI(config, graph_source="true")
    edges = NODES * (NODES - 1)
    truth = tf.random.stateless_uniform([3, edges], seed=[4, 5], maxval=2, dtype=tf.int32)
    model(_frames(), truth)
    start = _frames(seed=6)[:, :, :1]
    rolled, _ = model.decoder.rollout(start[:, :, 0], tf.one_hot(truth, 2), FRAMES + 2)
    x = tf.concat([start, rolled], axis=2)                      # FRAMES + 3 frames; FRAMES scored
    flip = tf.tile(tf.range(edges)[None] < edges // 5, [3, 1])      # receiver 0's incoming edges
    corrupted = tf.where(flip, 1 - truth, truth)
    exact = likeliest_graphs(model, tf.data.Dataset.from_tensors((x, truth)), FRAMES)
    assert exact["edge_accuracy"] == 1.0
    assert exact["nll_likeliest_graph"] == pytest.approx(exact["nll_true_graph"]) and exact["nll_true_graph"] < 1e-2
    wrong = likeliest_graphs(model, tf.data.Dataset.from_tensors((x, corrupted)), FRAMES)
    assert wrong["edge_accuracy"] == pytest.approx(0.8)
    assert wrong["nll_likeliest_graph"] == pytest.approx(exact["nll_likeliest_graph"])
    assert wrong["nll_true_graph"] > 100 * max(wrong["nll_likeliest_graph"], 1e-3)
    six = tf.zeros([1, 6, FRAMES, DIMS])                     # undirected, 6 nodes: 2^15 graphs
    with pytest.raises(ValueError, match="too many to score"):
        likeliest_graphs(NRI(NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=8, decoder_hidden=8, symmetric=True),
                             graph_source="true"), tf.data.Dataset.from_tensors((six, tf.zeros([1, 30], tf.int32))), FRAMES)
