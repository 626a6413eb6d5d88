"""NRI encoders: trajectories [batch, nodes, frames, dims] -> edge logits [batch, edges, edge_types].

Building blocks:
  check_trajectories   validates a trajectory tensor's rank, dims and frame count
  MLPEncoder           paper eqs. 5-8 / Fig. 12: MLPs on flattened trajectories, with (factor
                       graph) or without an edge->node->edge round
  CNNEncoder           paper Fig. 14: a ConvAttentionBlock per edge over time, then the
                       same factor-graph tail; works for any frame count >= 14
Both optionally end in a `nri_tf.layers.TriangleBlock` (``triangles``, beyond the paper).
(`nri_tf.builders.encoder_from_config` builds the one a config asks for.)

Edges are in the receiver-major order of `nri_tf.graph`: the complete graph, or the
candidate edges passed as ``edges`` (`nri_tf.graph.CandidateEdges`), with the same weights.
The node count is read from the input, so an encoder built on 5 nodes runs on 10.
Edge->node aggregation sums the incoming edges and divides by N, as the reference does (by
incoming edges + 1 on candidates, which is N on the complete graph).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nri_tf import graph
from nri_tf.layers import BIAS_INIT, ConvAttentionBlock, MLPBlock, TriangleBlock


def check_trajectories(trajectories, dims: int, frames: int | None = None,
                       min_frames: int = 1, what: str = "trajectories") -> None:
    """Raises ValueError unless ``trajectories`` is [batch, nodes, frames, dims] as expected.

    Only statically known sizes are checked (inside a traced function the batch, node and
    frame counts may be unknown).

    Args:
      trajectories: a tensor (or anything with ``.shape``).
      dims: required size of the last axis.
      frames: required frame count, or None for any.
      min_frames: smallest allowed frame count.
      what: the name used in the error message.
    """
    shape = tuple(trajectories.shape)
    if len(shape) != 4:
        raise ValueError(f"{what} must be [batch, nodes, frames, dims] (rank 4), got shape {shape}")
    _, nodes, got_frames, got_dims = shape
    if got_dims is not None and got_dims != dims:
        raise ValueError(f"{what} have {got_dims} features per frame but the model was configured "
                         f"with dims={dims}")
    if nodes is not None and nodes < 2:
        raise ValueError(f"{what} need at least 2 nodes to have edges, got {nodes}")
    if got_frames is not None:
        if frames is not None and got_frames != frames:
            raise ValueError(f"{what} have {got_frames} frames but this encoder reads exactly "
                             f"frames={frames}; slice them to [:, :, :{frames}]")
        if got_frames < min_frames:
            raise ValueError(f"{what} need at least {min_frames} frames, got {got_frames}")


def _logits_layer(edge_types: int) -> keras.layers.Dense:
    return keras.layers.Dense(edge_types, name="fc_out",
                              kernel_initializer=keras.initializers.GlorotNormal(),
                              bias_initializer=keras.initializers.Constant(BIAS_INIT))


class _Encoder(keras.layers.Layer):
    """Shared settings, validation, serialisation and the factor-graph round of both encoders."""

    def __init__(self, dims: int, edge_types: int, hidden: int, dropout: float = 0.0,
                 factor: bool = True, symmetric: bool = False, relative_dims: int = 0,
                 triangles: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.dims = int(dims)
        self.relative_dims = graph.checked_relative_dims(relative_dims, self.dims)
        self.edge_types = int(edge_types)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.factor = bool(factor)
        self.symmetric = bool(symmetric)
        self.triangles = bool(triangles)
        self.triangle = TriangleBlock(self.hidden, self.dropout, name="triangle") if self.triangles else None
        self.fc_out = _logits_layer(self.edge_types)

    def _build_head(self, batch):
        """Builds the layers of `_logits` on edge features [batch, edges, hidden]."""
        if self.triangles:
            self.triangle.build((batch, None, self.hidden))
        self.fc_out.build((batch, None, self.hidden))

    def _logits(self, edge_features, training, edges=None):
        """Edge features [batch, edges, hidden] -> logits [batch, edges, edge_types];
        ``triangles``: a `TriangleBlock` first (complete graph only); ``symmetric``: each
        logit averaged with the reverse edge's (`graph.average_directions`)."""
        if self.triangles:
            if edges is not None:
                raise ValueError("the triangle block reasons over the complete graph; "
                                 "these are candidate edges")
            edge_features = self.triangle(edge_features, training=training)
        logits = self.fc_out(edge_features)
        return graph.average_directions(logits, edges) if self.symmetric else logits

    def _mlp(self, name: str) -> MLPBlock:
        return MLPBlock(self.hidden, dropout=self.dropout, name=name)

    def _factor_round(self, edge_features, node_mlp: MLPBlock, edge_mlp: MLPBlock, training,
                      edges=None):
        """e->v (sum / N), node MLP, v->e, concat the edge skip, edge MLP.

        [batch, edges, hidden] -> [batch, edges, hidden].
        """
        node_features = node_mlp(graph.edge_to_node(edge_features, divide_by_nodes=True, edges=edges),
                                 training=training)
        return edge_mlp.on_node_pairs(node_features, edge_features, training=training, edges=edges)

    def compute_output_shape(self, input_shape):
        num_nodes = input_shape[1]
        return (input_shape[0], None if num_nodes is None else num_nodes * (num_nodes - 1), self.edge_types)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "edge_types": self.edge_types,
                "hidden": self.hidden, "dropout": self.dropout, "factor": self.factor,
                "symmetric": self.symmetric, "relative_dims": self.relative_dims,
                "triangles": self.triangles}


@keras.saving.register_keras_serializable(package="nri_tf")
class MLPEncoder(_Encoder):
    """MLP encoder on the flattened trajectory of each node (paper appendix C.2).

    mlp1 per node on [frames * dims]; v->e; mlp2 (kept as skip); factor graph: e->v, mlp3,
    v->e, concat skip, mlp4; without factor: mlp3 on the edges, concat skip, mlp4; then a
    Dense layer to the edge logits.

    Args:
      dims: features per node and frame.
      frames: frames per trajectory (fixed: the first MLP reads frames * dims inputs).
      edge_types: K, logits per edge.
      hidden: units of every MLP.
      dropout: dropout rate inside the MLPs.
      factor: use the factor-graph (edge->node->edge) round.
      symmetric: average the logits of edges (i, j) and (j, i) (undirected graph).
      triangles: a `TriangleBlock` before the logits (beyond the paper): each edge also
        reads the edges it forms triangles with, so edge types are inferred jointly
        (complete graph only).
      relative_dims: P, the leading features that are positions (beyond the paper): mlp1
        reads only each node's other features, mlp2 also the edge's sender-minus-receiver
        positions over the frames ([frames * P] per edge), so the logits do not change when
        a system moves as a whole (translation invariant); 0: the paper's absolute inputs.
    Input: [batch, nodes, frames, dims] and, optionally, ``edges`` (`CandidateEdges`).
    Output: logits [batch, edges, edge_types].
    """

    def __init__(self, dims: int, frames: int, edge_types: int, hidden: int,
                 dropout: float = 0.0, factor: bool = True, **kwargs):
        super().__init__(dims, edge_types, hidden, dropout, factor, **kwargs)
        self.frames = int(frames)
        self.node_dims = self.dims - self.relative_dims
        self.mlp1 = self._mlp("mlp1")
        self.mlp2 = self._mlp("mlp2")
        self.mlp3 = self._mlp("mlp3")
        self.mlp4 = self._mlp("mlp4")

    def build(self, input_shape):
        batch = input_shape[0]
        h = self.hidden
        self.mlp1.build((batch, None, self.frames * self.node_dims))
        self.mlp2.build((batch, None, 2 * h + self.frames * self.relative_dims))
        self.mlp3.build((batch, None, h))
        self.mlp4.build((batch, None, 3 * h if self.factor else 2 * h))
        self._build_head(batch)

    def call(self, trajectories, training=False, edges=None):
        check_trajectories(trajectories, self.dims, frames=self.frames)
        shape = tf.shape(trajectories)
        p = self.relative_dims
        x = tf.reshape(trajectories[..., p:], [shape[0], shape[1], self.frames * self.node_dims])
        x = self.mlp1(x, training=training)                              # [batch, nodes, h]
        relative = None
        if p:
            relative = graph.sender_minus_receiver(trajectories[..., :p], edges)   # [batch, edges, frames, P]
            relative = tf.reshape(relative, [shape[0], -1, self.frames * p])
        skip = self.mlp2.on_node_pairs(x, relative, training=training, edges=edges)   # [batch, edges, h]
        if self.factor:
            x = self._factor_round(skip, self.mlp3, self.mlp4, training, edges)
        else:
            mask = graph.edge_mask(edges)
            x = self.mlp3(skip, training=training, row_mask=mask)
            x = self.mlp4(tf.concat([x, skip], axis=-1), training=training, row_mask=mask)
        return self._logits(x, training, edges)

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


@keras.saving.register_keras_serializable(package="nri_tf")
class CNNEncoder(_Encoder):
    """Convolutional encoder with attentive pooling over time (paper appendix C.3).

    v->e on the whole trajectories ([receiver, sender] features per frame); a
    `ConvAttentionBlock` per edge; mlp1 (kept as skip); factor graph: e->v, mlp2, v->e,
    concat skip, mlp3; then a Dense layer to the edge logits (without factor, straight from
    mlp1, as in the reference).

    Args: as `MLPEncoder`, without ``frames`` (any count >= 14 works); with ``relative_dims``
    P the convolutions read [receiver's other features, sender's other features, sender
    positions - receiver positions] per frame.
    Input: [batch, nodes, frames, dims]. Output: logits [batch, edges, edge_types].
    """

    def __init__(self, dims: int, edge_types: int, hidden: int, dropout: float = 0.0,
                 factor: bool = True, **kwargs):
        super().__init__(dims, edge_types, hidden, dropout, factor, **kwargs)
        self.cnn = ConvAttentionBlock(self.hidden, self.hidden, self.dropout, name="cnn")
        self.mlp1 = self._mlp("mlp1")
        if self.factor:
            self.mlp2 = self._mlp("mlp2")
            self.mlp3 = self._mlp("mlp3")

    def build(self, input_shape):
        batch = input_shape[0]
        h = self.hidden
        self.cnn.build((None, None, 2 * self.dims - self.relative_dims))
        self.mlp1.build((batch, None, h))
        if self.factor:
            self.mlp2.build((batch, None, h))
            self.mlp3.build((batch, None, 3 * h))
        self._build_head(batch)

    def call(self, trajectories, training=False, edges=None):
        check_trajectories(trajectories, self.dims, min_frames=ConvAttentionBlock.MIN_FRAMES)
        pairs = graph.node_to_edge(trajectories, edges, self.relative_dims)   # [b, e, frames, 2 dims - P]
        shape = tf.shape(pairs)
        rows = tf.reshape(pairs, [shape[0] * shape[1], shape[2], 2 * self.dims - self.relative_dims])
        mask = graph.edge_mask(edges)                             # [batch, edges] or None
        x = self.cnn(rows, training=training,
                     row_mask=None if mask is None else tf.reshape(mask, [-1]))   # [batch * edges, h]
        x = tf.reshape(x, [shape[0], shape[1], self.hidden])
        x = self.mlp1(x, training=training, row_mask=mask)
        if self.factor:
            x = self._factor_round(x, self.mlp2, self.mlp3, training, edges)
        return self._logits(x, training, edges)
