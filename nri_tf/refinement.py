"""Test-time graph refinement (beyond the paper): edge types improved against the decoder.

The encoder amortises inference: one pass gives every system's graph, and where it has not
learned everything the decoder knows, the decoder predicts the trajectories better from
the true graph than from the encoder's (`nri_tf.evaluation.graph_likelihoods`: springs10
at 93% accuracy, nll 0.51 per node on the true graph against 3.9 on the encoder's). This
closes part of that gap per system, by iterated conditional modes on

    cost(graph) = the decoder's nll of the one-step predictions of the encoder's frames,

starting from the encoder's most likely graph. Each sweep scores, for every edge at once,
each type it could take with the others fixed (`MLPDecoder.receiver_nll_by_edge_type`: an
edge's type only changes its receiver's predictions; an undirected model's pair is costed
at both of its receivers), proposes changes (every improving one, each receiver's best, the
system's best) and keeps per system the proposal that lowers its cost most, so the cost
never rises. Where the graphs are small the search is exact instead (`best_edge_types`):
the cost is a sum over receivers, each depending only on its own incoming edges, so a
directed model's best graph is every receiver's best joint assignment (K^(N-1) of them:
16 for springs5), and an undirected model's is the best of its K^(N(N-1)/2) pair graphs
(1024 for 5 nodes) scored from the same per-receiver tables. On springs5 the sweeps left
35 of 1000 test systems wrong, every one with two to four wrong edges into one receiver,
which single-edge changes cannot undo and whose true graph the decoder scored better. The
encoder's probabilities are left out of the cost: on springs10 (today's defaults, 200 test
systems) weighing them in stopped at 95.8% edge accuracy, the likelihood alone reached
97.6%. MLP decoder only; the paper's evaluation is the encoder's graph (``sweeps = 0``).

Building blocks:
  `refine_edge_types`   [batch, edges] edge types of a batch after some sweeps (or exact)
  `best_edge_types`     [batch, edges] the exact least-cost graph of small systems
  `exact_search_fits`   whether a model's graphs are small enough for it
  `graph_cost`          [batch] the decoder's nll of each system's graph, what the sweeps lower
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from nri_tf import graph
from nri_tf.decoders import MLPDecoder


# Exact search where it is small: a receiver's joint assignments of its incoming edges'
# types (K^(N-1)) and, for an undirected model, the system's pair graphs (K^(N(N-1)/2)).
EXACT_RECEIVER_ASSIGNMENTS = 256
EXACT_PAIR_GRAPHS = 4096


def _check_refinable(model) -> None:
    if not isinstance(model.decoder, MLPDecoder):
        raise ValueError(f"graph refinement needs the mlp decoder (one-step predictions that "
                         f"depend on each receiver's incoming messages); this model's is "
                         f"{model.nri_config.decoder}")


def graph_cost(model, window, edge_types, edges=None) -> tf.Tensor:
    """[batch]: the decoder's one-step nll per system with the graph ``edge_types``
    [batch, edges] (`NRI.nll_on_graph`), what the sweeps lower."""
    return model.nll_on_graph(window, edge_types, edges)


def refine_edge_types(model, window, edge_types, sweeps: int, edges=None) -> tf.Tensor:
    """``edge_types`` improved against the decoder for up to ``sweeps`` sweeps.

    Args:
      model: a trained `nri_tf.model.NRI` with the MLP decoder.
      window: [batch, nodes, frames, dims] the frames the encoder saw (normalised).
      edge_types: int [batch, edges], the start (the encoder's most likely graph).
      sweeps: rounds of changes (0: the start); stops early once none helps. Where
        `exact_search_fits`, any ``sweeps`` > 0 gives the exact least-cost graph
        (`best_edge_types`) wherever it costs less than the start.
      edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
    Returns:
      int32 [batch, edges]; candidate padding slots keep their type.
    """
    _check_refinable(model)
    config = model.nri_config
    types = tf.cast(edge_types, tf.int32)
    if sweeps and exact_search_fits(config, int(window.shape[1]), edges):
        best = best_edge_types(model, window)
        keep = graph_cost(model, window, best, edges) < graph_cost(model, window, types, edges)
        return tf.where(keep[:, None], best, types)          # ties (float sums) keep the start
    mask = graph.edge_mask(edges)
    real = tf.ones_like(types, tf.bool) if mask is None else mask > 0
    batch, num_nodes = tf.shape(window)[0], tf.shape(window)[1]
    cost = graph_cost(model, window, types, edges)
    for _ in range(sweeps):
        per_type = model.decoder.receiver_nll_by_edge_type(window, types, config.var, edges)
        if config.symmetric:   # a pair's type changes both of its receivers' predictions
            per_type = 2.0 * graph.average_directions(per_type, edges)
        current = tf.gather(per_type, types, axis=-1, batch_dims=2)                  # [batch, edges]
        best = tf.argmin(per_type, axis=-1, output_type=tf.int32)
        gain = tf.where(real, tf.reduce_min(per_type, axis=-1) - current, 0.0)       # <= 0
        improving = gain < 0.0
        # Changes score exactly alone; together (at one receiver) they interact. Three
        # proposals, each system keeping the one that lowers its cost most: every
        # improving change, each receiver's best, the system's single best.
        per_receiver = tf.reshape(_is_row_minimum(tf.reshape(gain, [batch, num_nodes, -1])), [batch, -1])
        proposals = [improving, per_receiver & improving, _is_row_minimum(gain) & improving]
        best_types, best_cost = types, cost
        for change in proposals:
            if config.symmetric:
                change = graph.average_directions(tf.cast(change, window.dtype), edges) > 0.0
            proposal = tf.where(change, best, types)
            proposal_cost = graph_cost(model, window, proposal, edges)
            better = proposal_cost < best_cost
            best_types = tf.where(better[:, None], proposal, best_types)
            best_cost = tf.where(better, proposal_cost, best_cost)
        if not bool(tf.reduce_any(best_cost < cost)):
            break
        types, cost = best_types, best_cost
    return types


def _is_row_minimum(values) -> tf.Tensor:
    """bool, the shape of ``values`` [..., n]: True at the first minimum of each last-axis row."""
    return tf.one_hot(tf.argmin(values, axis=-1), tf.shape(values)[-1], on_value=True, off_value=False)


def exact_search_fits(config, num_nodes: int, edges=None) -> bool:
    """Whether `best_edge_types` is within reach: the complete graph (no candidate
    ``edges``, a config without candidate edges), at most `EXACT_RECEIVER_ASSIGNMENTS` joint
    assignments of a receiver's incoming edges and, for an undirected (``config.symmetric``)
    model, at most `EXACT_PAIR_GRAPHS` pair graphs."""
    if edges is not None or config.candidate_edges != "complete" or num_nodes < 2:
        return False
    types = config.edge_types
    if types ** (num_nodes - 1) > EXACT_RECEIVER_ASSIGNMENTS:
        return False
    return not config.symmetric or types ** (num_nodes * (num_nodes - 1) // 2) <= EXACT_PAIR_GRAPHS


def best_edge_types(model, window) -> tf.Tensor:
    """The least-cost graph of every system, by exhaustive search (`exact_search_fits`).

    Args:
      model: a trained `nri_tf.model.NRI` with the MLP decoder, on the complete graph.
      window: [batch, nodes, frames, dims] the frames the encoder saw (normalised).
    Returns:
      int32 [batch, edges] (receiver-major): each receiver's best assignment of its incoming
      edges (`MLPDecoder.receiver_nll_by_assignment`), or for an undirected model the pair
      graph whose receivers' costs sum lowest.
    Raises:
      ValueError: the graphs are too many to enumerate (`exact_search_fits` is false).
    """
    _check_refinable(model)
    config = model.nri_config
    nodes, types = int(window.shape[1]), config.edge_types
    if not exact_search_fits(config, nodes):
        raise ValueError(f"the graphs of {nodes} nodes are too many to score them all (exact_search_fits)")
    assignments = np.array(list(itertools.product(range(types), repeat=nodes - 1)), np.int32)   # [A, N-1]
    tables = model.decoder.receiver_nll_by_assignment(window, tf.constant(assignments), config.var)   # [b, N, A]
    if not config.symmetric:
        best = tf.gather(assignments, tf.argmin(tables, axis=-1))                   # [batch, N, N-1]
        return tf.reshape(best, [tf.shape(window)[0], -1])
    pairs = [(i, j) for i in range(nodes) for j in range(i + 1, nodes)]
    pair_graphs = np.array(list(itertools.product(range(types), repeat=len(pairs))), np.int32)   # [P, pairs]
    matrices = np.zeros((len(pair_graphs), nodes, nodes), np.int32)                # [P, receiver, sender]
    for index, (i, j) in enumerate(pairs):
        matrices[:, i, j] = matrices[:, j, i] = pair_graphs[:, index]
    receivers, senders = (np.asarray(v) for v in graph.edge_indices(nodes))
    directed = matrices[:, receivers, senders]                                     # [P, edges]
    place = types ** np.arange(nodes - 2, -1, -1)                                  # assignment digits
    rows = directed.reshape(len(pair_graphs), nodes, nodes - 1) @ place            # [P, N]: each receiver's row
    total = tf.add_n([tf.gather(tables[:, n], rows[:, n], axis=1) for n in range(nodes)])   # [batch, P]
    return tf.gather(tf.constant(directed), tf.argmin(total, axis=-1))
