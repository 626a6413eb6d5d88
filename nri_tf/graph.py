"""Message passing on the directed graph NRI reasons over: the complete graph, or candidate edges.

Two edge layouts, both receiver-major (receiver i owns a contiguous block of edges):

- the complete graph (``edges=None``, the default and the fast path): the N*(N-1) ordered
  pairs in the order of the data contract (`data_pipelines.contract`: edge e = (i, j), i the
  receiver, j the sender, row-major off-diagonal entries of an N x N matrix);
- `CandidateEdges`: a fixed number of candidate edges per receiver, ``degree``, with the
  senders given per system ([batch, nodes, degree]) and an optional mask for receivers that
  have fewer real candidates than slots (radius, given lists). Edge i * degree + s of a
  system is (i, senders[b, i, s]). The complete graph is the special case degree = N - 1 with
  the contract's sender order (`complete_candidate_edges`), and every operation gives the
  same numbers on it as on ``edges=None``.

Every operation takes ``edges`` (None or `CandidateEdges`) and picks the layout itself, so
layers pass the batch's edges through and never branch on them.

Building blocks:
  CandidateEdges                            fixed-degree candidate edges of a batch
  complete_candidate_edges                  the complete graph as CandidateEdges
  edge_indices                              (receivers, senders) index tensors, N static or not
  broadcast_receiver_nodes_to_edges,
  broadcast_sender_nodes_to_edges           [batch, nodes, ...] -> [batch, edges, ...]
  node_to_edge                              v->e: [receiver, sender] features per edge (positions
                                            optionally as sender minus receiver)
  sender_minus_receiver                     v->e: sender features - receiver features per edge
  inverse_square                            e: position differences -> softened inverse-square vectors
  checked_relative_dims                     a model's count of relatively seen position features
  pair_sum                                  v->e: receiver features + sender features per edge
  node_pairs_matmul                         node_to_edge(nodes) @ kernel without building the pairs
  edge_to_node                              e->v: sum of each node's incoming edges
  edge_mask                                 [batch, edges] 1 for real edges, None without padding
  edge_index                                receiver-major index of edge (i, j)
  triangle_paths                            edges (i, k), (k, j) closing a triangle with (i, j)
  reverse_edges, candidate_reverse_edges   index of edge (j, i) for every edge (i, j)
  average_directions, share_between_directions   undirected graphs: tie the two directions
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from data_pipelines.contract import fully_connected_edges, num_nodes_from_edges


# --- Message passing on batched tensors -------------------------------------------------
#
# Names: ``nodes`` is a node tensor [batch, nodes, ...], ``num_nodes`` the node count N (an
# int, or a scalar tensor when N is only known at run time), as everywhere in nri_tf.
#
# Node tensors are [batch, nodes, ...] and edge tensors [batch, edges, ...], any number of
# trailing axes (time, chunks, features) in between the node/edge axis and the end. The
# node count is read from the tensor at call time, so one model serves any N.
#
# Measured on the 2-core CPU (TF 2.21, [128, 5, 5, 256] edge features, forward+backward):
# summing incoming edges as a reshape + reduce over the receiver-major blocks takes 2.5 ms,
# `tf.math.unsorted_segment_sum` over the receiver index 8.0 ms, the dense [N, E] one-hot
# matmul of the reference 17.4 ms (with XLA 1.7 / 2.8 / 3.8 ms). node->edge: receivers are
# a broadcast + reshape (forward+backward on [32, 31, 256]: 9.6 ms vs 83 ms for `tf.gather`);
# senders a `tf.gather` (which beats broadcasting to [N, N] and slicing off the diagonal
# without XLA: 14 ms vs 50 ms for both halves on [128, 5, 5, 256]).


# Candidate edges: measured on the 2-core CPU at N = 1000, 16 candidates per node, batch 8,
# 64 features, forward + backward of node_to_edge -> Dense -> edge_to_node
# (benchmarks/edge_layout.py): this fixed-degree layout (receivers a broadcast, senders a
# batched gather, incoming edges a reshape + sum) against a flat edge list of the whole batch
# (gather of both ends, `tf.math.unsorted_segment_sum` over the receivers); see the README's
# "Large systems" for the figures.


@dataclasses.dataclass(frozen=True)
class CandidateEdges:
    """Candidate edges of a batch of systems with the same node count, ``degree`` per receiver.

    Edge i * degree + s of system b is (receiver i, sender senders[b, i, s]): edge tensors
    are [batch, nodes * degree, ...], receiver-major like the complete graph's.

    Attributes:
      senders: [batch, nodes, degree] int32 node indices in 0..nodes-1.
      mask: [batch, nodes, degree] float, 1 for a real edge and 0 for a padding slot (a
        receiver with fewer candidates than ``degree``), or None when every slot is an edge.
        Padding slots carry values like any edge but `edge_to_node`, the losses and the
        metrics leave them out.
    """

    senders: tf.Tensor
    mask: tf.Tensor | None = None

    @classmethod
    def from_batch(cls, candidates: dict | None) -> "CandidateEdges | None":
        """From a dataset batch's ``{"senders", ["mask"], ...}`` dict (`data_pipelines.datasets`),
        None for None."""
        if candidates is None:
            return None
        mask = candidates.get("mask")
        return cls(tf.cast(candidates["senders"], tf.int32),
                   None if mask is None else tf.cast(mask, tf.float32))

    @property
    def num_nodes(self) -> tf.Tensor | int:
        return _static_or_dynamic(self.senders, 1)

    @property
    def degree(self) -> tf.Tensor | int:
        return _static_or_dynamic(self.senders, 2)

    @functools.cached_property
    def reverse(self) -> tf.Tensor:
        """`candidate_reverse_edges` of these edges, computed once for the encoder's and the
        sampler's tying of the two directions."""
        return candidate_reverse_edges(self)


def complete_candidate_edges(batch: int, num_nodes: int) -> CandidateEdges:
    """The complete graph as `CandidateEdges`: degree N - 1, the contract's sender order.

    Returns:
      CandidateEdges with senders [batch, N, N - 1] and no mask.
    """
    _, senders = fully_connected_edges(num_nodes)
    return CandidateEdges(tf.tile(tf.constant(senders.reshape(1, num_nodes, num_nodes - 1)),
                                  [batch, 1, 1]))


def _static_or_dynamic(tensor: tf.Tensor, axis: int) -> tf.Tensor | int:
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def edge_mask(edges: CandidateEdges | None) -> tf.Tensor | None:
    """[batch, edges] float mask of real edges, or None when every edge is real."""
    if edges is None or edges.mask is None:
        return None
    shape = tf.shape(edges.mask)
    return tf.reshape(edges.mask, [shape[0], shape[1] * shape[2]])


def num_nodes_of_edge_tensor(edge_values: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor | int:
    """N of a [batch, edges, ...] tensor: a static int if the edge count is known, else a tensor."""
    if edges is not None:
        return edges.num_nodes
    static_num_edges = edge_values.shape[1]
    if static_num_edges is not None:
        return num_nodes_from_edges(static_num_edges)
    num_edges = tf.cast(tf.shape(edge_values)[1], tf.float64)
    return tf.cast(tf.round((1.0 + tf.sqrt(1.0 + 4.0 * num_edges)) / 2.0), tf.int32)


def _num_nodes(nodes: tf.Tensor) -> tf.Tensor | int:
    """The node count of a [batch, nodes, ...] tensor: static int if known, else a scalar tensor."""
    return _static_or_dynamic(nodes, 1)


def _degree(num_nodes, edges: CandidateEdges | None):
    """Edges per receiver: N - 1 on the complete graph, else the candidates' degree."""
    return num_nodes - 1 if edges is None else edges.degree


def edge_indices(num_nodes) -> tuple[tf.Tensor, tf.Tensor]:
    """TF version of `fully_connected_edges` that also accepts a scalar tensor.

    Edge e belongs to receiver i = e // (N-1); its sender is the k-th other node,
    k = e % (N-1), i.e. j = k + (k >= i).

    Returns:
      (receivers, senders): int32 tensors of shape [N*(N-1)].
    """
    if isinstance(num_nodes, (int, np.integer)):
        receivers, senders = fully_connected_edges(int(num_nodes))
        return tf.constant(receivers), tf.constant(senders)
    num_nodes = tf.cast(num_nodes, tf.int32)
    edge = tf.range(num_nodes * (num_nodes - 1))
    receivers = edge // (num_nodes - 1)
    other = edge % (num_nodes - 1)
    senders = other + tf.cast(other >= receivers, tf.int32)
    return receivers, senders


def broadcast_receiver_nodes_to_edges(nodes: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """Each edge's receiver features: [batch, nodes, ...] -> [batch, edges, ...].

    Receiver i owns the contiguous edge block [i*d, (i+1)*d), d = N - 1 on the complete
    graph or the candidates' degree, so this is a broadcast to [batch, nodes, d, ...] and a
    reshape; its gradient is the fast block sum of `edge_to_node` rather than the scatter
    of a gather's gradient.
    """
    shape = tf.shape(nodes)
    num_nodes = _num_nodes(nodes)
    degree = _degree(num_nodes, edges)
    blocks = tf.broadcast_to(nodes[:, :, None],
                             tf.concat([[shape[0], num_nodes, degree], shape[2:]], axis=0))
    return tf.reshape(blocks, tf.concat([[shape[0], num_nodes * degree], shape[2:]], axis=0))


def broadcast_sender_nodes_to_edges(nodes: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """Each edge's sender features: [batch, nodes, ...] -> [batch, edges, ...].

    The complete graph gathers with one index vector for the whole batch; candidates with
    each system's own senders (a batched gather).
    """
    if edges is None:
        _, senders = edge_indices(_num_nodes(nodes))
        return tf.gather(nodes, senders, axis=1)
    shape = tf.shape(edges.senders)
    senders = tf.reshape(edges.senders, [shape[0], shape[1] * shape[2]])
    return tf.gather(nodes, senders, axis=1, batch_dims=1)


def node_to_edge(nodes: tf.Tensor, edges: CandidateEdges | None = None,
                 relative_dims: int = 0) -> tf.Tensor:
    """v->e: concatenates receiver and sender features on each edge (reference order).

    Args:
      nodes: [batch, nodes, ..., features].
      edges: the candidate edges, or None for the complete graph.
      relative_dims: P, the leading features that are positions, which the edge sees only as
        the sender's minus the receiver's (translation invariant); 0: all features as they are.
    Returns:
      [batch, edges, ..., 2 * features]: [receiver features, sender features]; with P > 0,
      [batch, edges, ..., 2 * features - P]: [receiver's other features, sender's other
      features, sender positions - receiver positions].
    """
    receivers = broadcast_receiver_nodes_to_edges(nodes, edges)
    senders = broadcast_sender_nodes_to_edges(nodes, edges)
    if not relative_dims:
        return tf.concat([receivers, senders], axis=-1)
    p = relative_dims
    return tf.concat([receivers[..., p:], senders[..., p:], senders[..., :p] - receivers[..., :p]], axis=-1)


def checked_relative_dims(relative_dims: int, dims: int) -> int:
    """A model's ``relative_dims`` (leading position features seen only as differences along
    edges) as an int in [0, dims): some feature must stay the node's own."""
    relative_dims = int(relative_dims)
    if not 0 <= relative_dims < dims:
        raise ValueError(f"relative_dims must be in [0, dims={dims}), got {relative_dims}")
    return relative_dims


def sender_minus_receiver(nodes: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """Each edge's sender features minus its receiver's: [batch, nodes, ...] -> [batch, edges, ...]
    (e.g. the relative position of the sender, seen from the receiver)."""
    return broadcast_sender_nodes_to_edges(nodes, edges) - broadcast_receiver_nodes_to_edges(nodes, edges)


# `inverse_square`'s constants, in the units of data normalised to [-1, 1]: a pair a tenth of
# that span apart gets a feature of norm about 0.7 and none more than about 1.5. The
# softening is measured (charged5, 10 epochs, seed 42): at 0.1 validation accuracy rose
# steadily (60.1% after one epoch, 69.1 after ten, against 54.1 and 67.9 without the
# feature); nearer the singularity training diverged: at 0.05 after 7 epochs (validation
# nll from 6372 to 6.1 million), at 0.02 (where the simulator's force clipping binds) from
# the second epoch on.
INVERSE_SQUARE_SCALE = 0.2
INVERSE_SQUARE_SOFTENING = 0.1


def inverse_square(differences: tf.Tensor) -> tf.Tensor:
    """[..., P] position differences d -> [..., P] r0^2 d / (|d|^2 + eps^2)^(3/2): the
    direction and softened inverse-square size of a Coulomb or gravitational pull
    (r0 = `INVERSE_SQUARE_SCALE`, eps = `INVERSE_SQUARE_SOFTENING`)."""
    squared = tf.reduce_sum(tf.square(differences), axis=-1, keepdims=True) + INVERSE_SQUARE_SOFTENING ** 2
    return INVERSE_SQUARE_SCALE ** 2 * differences * tf.math.rsqrt(squared) / squared


def pair_sum(receiver_features: tf.Tensor, sender_features: tf.Tensor,
             edges: CandidateEdges | None = None) -> tf.Tensor:
    """v->e: each edge's receiver features plus its sender features.

    Args:
      receiver_features, sender_features: [batch, nodes, ...], the same shape.
      edges: the candidate edges, or None for the complete graph.
    Returns:
      [batch, edges, ...]: receiver_features[:, i] + sender_features[:, j] on edge (i, j).
    """
    return (broadcast_receiver_nodes_to_edges(receiver_features, edges)
            + broadcast_sender_nodes_to_edges(sender_features, edges))


def node_pairs_matmul(nodes: tf.Tensor, kernel: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """``node_to_edge(nodes) @ kernel``, multiplying per node before moving features to edges.

    [x_i, x_j] W = x_i W_receiver + x_j W_sender, so the product costs N node rows instead
    of N*(N-1) edge rows: (N-1)/2 fewer FLOPs, and no [edges, 2F] pairs tensor. It pays off
    when F is wide (hidden features), not for a few input dims. The two products are 2-D
    matmuls on row blocks of the kernel (a slice on axis 0 shares the kernel's buffer): a
    batched matmul or a copied slice costs ~100 us more per call on oneDNN at serving's
    batch 1 (profiled: 4 of them were 40% of the served encoder's time).

    Args:
      nodes: [batch, nodes, ..., F].
      kernel: [2F, H]; receiver rows first (the column order of `node_to_edge`).
      edges: the candidate edges, or None for the complete graph.
    Returns:
      [batch, edges, ..., H].
    """
    features = nodes.shape[-1]
    shape = tf.shape(nodes)
    flat = tf.reshape(nodes, [-1, features])                            # [batch*nodes*..., F]
    per_node = tf.concat([shape[:-1], tf.shape(kernel)[-1:]], axis=0)   # [batch, nodes, ..., H]
    receivers = tf.reshape(tf.matmul(flat, kernel[:features]), per_node)
    senders = tf.reshape(tf.matmul(flat, kernel[features:]), per_node)
    return pair_sum(receivers, senders, edges)


def edge_to_node(edge_values: tf.Tensor, divide_by_nodes: bool = False,
                 edges: CandidateEdges | None = None) -> tf.Tensor:
    """e->v: sums the features of each node's incoming edges.

    In the receiver-major edge order the d incoming edges of receiver i are the contiguous
    block [i*d, (i+1)*d) (d = N - 1 on the complete graph, the candidates' degree
    otherwise), so the sum over the receiver index is a reshape to [batch, nodes, d, ...]
    and a reduction: O(edges), no scatter, no dense [N, E] matmul (see the measurements
    above). Equal to `tf.math.unsorted_segment_sum` over the receiver index. Padding slots
    of candidates (mask 0) add nothing.

    Args:
      edge_values: [batch, edges, ...].
      divide_by_nodes: divide each node's sum by its incoming edges + 1: N on the complete
        graph (the normalisation of the reference encoders and recurrent decoder, which
        divide by N, not by the N-1 incoming edges), degree + 1 (real edges + 1 with a mask)
        on candidates, so that the scale does not shrink with the system's size.
      edges: the candidate edges, or None for the complete graph.
    Returns:
      [batch, nodes, ...], nodes = N (with N*(N-1) == edges on the complete graph).
    """
    num_nodes = num_nodes_of_edge_tensor(edge_values, edges)
    degree = _degree(num_nodes, edges)
    shape = tf.shape(edge_values)
    blocks = tf.reshape(edge_values, tf.concat([[shape[0], num_nodes, degree], shape[2:]], axis=0))
    mask = None if edges is None else edges.mask
    if mask is not None:
        trailing = tf.ones([tf.rank(edge_values) - 2], tf.int32)
        mask = tf.reshape(tf.cast(mask, edge_values.dtype),
                          tf.concat([tf.shape(mask), trailing], axis=0))   # [batch, nodes, d, 1...]
        blocks = blocks * mask
    incoming = tf.reduce_sum(blocks, axis=2)
    if divide_by_nodes:
        if mask is None:
            incoming = incoming / tf.cast(degree + 1, incoming.dtype)
        else:
            incoming = incoming / (tf.reduce_sum(mask, axis=2) + 1.0)
    return incoming


def edge_index(receivers, senders, num_nodes):
    """Receiver-major index of the complete graph's edge (receiver, sender), receiver !=
    sender: i*(N-1) + j - [j > i] (int32 tensors of any shape)."""
    return receivers * (num_nodes - 1) + senders - tf.cast(senders > receivers, tf.int32)


def triangle_paths(num_nodes) -> tuple[tf.Tensor, tf.Tensor]:
    """The two-edge paths that close a triangle with each edge of the complete graph.

    Edge e = (i, j) (receiver i, sender j) and every third node k form the path j -> k -> i:
    edge (i, k) and edge (k, j), in increasing k.

    Returns:
      (first, second): int32 [N*(N-1), N-2], the indices of edges (i, k) and (k, j).
    """
    receivers, senders = edge_indices(num_nodes)
    num_nodes = tf.cast(num_nodes, tf.int32)
    nodes = tf.range(num_nodes)[None, :]                                   # [1, N]
    third = (nodes != receivers[:, None]) & (nodes != senders[:, None])    # [E, N]
    thirds = tf.reshape(tf.where(third)[:, 1], [-1, num_nodes - 2])        # [E, N-2]
    thirds = tf.cast(thirds, tf.int32)
    return (edge_index(receivers[:, None], thirds, num_nodes),
            edge_index(thirds, senders[:, None], num_nodes))


# --- Undirected graphs: the two directions of a node pair --------------------------------


def reverse_edges(num_nodes) -> tf.Tensor:
    """Index of edge (j, i) for every edge e = (i, j): int32 [N*(N-1)], its own inverse.

    In the receiver-major order edge (i, j) is i*(N-1) + j - [j > i].
    """
    receivers, senders = edge_indices(num_nodes)
    return edge_index(senders, receivers, tf.cast(num_nodes, tf.int32))


def candidate_reverse_edges(edges: CandidateEdges) -> tf.Tensor:
    """Index of candidate edge (j, i) for every candidate edge e = (i, j): int32 [batch, edges].

    Where (j, i) is not a real candidate (k nearest neighbours need not be mutual; padding
    slots), the edge's own index: tying the two directions then leaves the edge as it is.
    Costs a [batch, nodes, degree, degree] comparison (each edge against its sender's slots).
    """
    senders = tf.cast(edges.senders, tf.int32)          # callers may build int64 senders
    shape = tf.shape(senders)
    num_nodes, degree = shape[1], shape[2]
    senders_of_sender = tf.gather(senders, senders, batch_dims=1)       # [batch, nodes, d, d]
    match = tf.equal(senders_of_sender, tf.range(num_nodes)[None, :, None, None])
    if edges.mask is not None:
        real = edges.mask > 0
        match &= real[..., None] & tf.gather(real, senders, batch_dims=1)
    own = tf.range(num_nodes * degree)
    reverse = tf.where(tf.reduce_any(match, axis=-1),
                       senders * degree + tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32),
                       tf.reshape(own, [num_nodes, degree]))
    return tf.reshape(reverse, [shape[0], num_nodes * degree])


def _reverse_and_receiver_first(edge_values: tf.Tensor, edges: CandidateEdges | None):
    """(index of each edge's reverse, whether the edge's receiver < its sender) for
    `average_directions` and `share_between_directions`: [E] on the complete graph,
    [batch, E] on candidates."""
    if edges is None:
        num_nodes = num_nodes_of_edge_tensor(edge_values)
        receivers, senders = edge_indices(num_nodes)
        return reverse_edges(num_nodes), receivers < senders
    shape = tf.shape(edges.senders)
    receivers = tf.repeat(tf.range(shape[1]), shape[2])
    senders = tf.reshape(tf.cast(edges.senders, tf.int32), [shape[0], shape[1] * shape[2]])
    return edges.reverse, receivers[None] < senders


def _gather_edges(edge_values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """edge_values [batch, edges, ...] at ``index`` [edges] (all systems) or [batch, edges]."""
    return tf.gather(edge_values, index, axis=1, batch_dims=index.shape.rank - 1)


def average_directions(edge_values: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """[batch, edges, ...] -> the same, each edge's value averaged with its reverse edge's
    (a candidate edge whose reverse is no candidate keeps its value)."""
    reverse, _ = _reverse_and_receiver_first(edge_values, edges)
    return 0.5 * (edge_values + _gather_edges(edge_values, reverse))


def share_between_directions(edge_values: tf.Tensor, edges: CandidateEdges | None = None) -> tf.Tensor:
    """[batch, edges, ...] -> the same, edge (j, i) given the value of edge (i, j) for i < j.

    Makes a sample of edge types undirected: one draw per node pair, used both ways (a
    candidate edge whose reverse is no candidate keeps its own draw).
    """
    reverse, receiver_first = _reverse_and_receiver_first(edge_values, edges)
    own = tf.range(tf.shape(receiver_first)[-1])
    return _gather_edges(edge_values, tf.where(receiver_first, own, reverse))
