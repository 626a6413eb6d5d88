"""Keras layers the NRI encoders are built from (paper appendix C.2-C.3).

Building blocks:
  MLPBlock             Dense -> ELU -> dropout -> Dense -> ELU -> BatchNorm, on the last axis
                       of [..., features] (node or edge features); ``on_node_pairs`` runs it
                       on [receiver, sender(, edge)] features with the first layer per node
  ConvAttentionBlock   two 1-D convolutions over time with attentive pooling:
                       [rows, frames, channels] -> [rows, units]
  TriangleBlock        edge-to-edge messages along the triangles of the complete graph:
                       [batch, edges, features] -> [batch, edges, hidden] (beyond the paper)

Initialisation follows the reference implementation: Dense kernels Glorot (Xavier)
normal with bias 0.1; convolution kernels normal with std sqrt(2 / (kernel_size *
filters)) and bias 0.1; BatchNorm with PyTorch's momentum (0.1 -> Keras 0.9) and epsilon.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nri_tf import graph

BATCH_NORM_MOMENTUM = 0.9   # PyTorch momentum 0.1: moving = 0.9 * moving + 0.1 * batch
BATCH_NORM_EPSILON = 1e-5
BIAS_INIT = 0.1
CONV_KERNEL_SIZE = 5
POOL_SIZE = 2


def _dense(units: int, activation: str | None = None, name: str | None = None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, name=name,
                              kernel_initializer=keras.initializers.GlorotNormal(),
                              bias_initializer=keras.initializers.Constant(BIAS_INIT))


def _conv(filters: int, kernel_size: int, activation: str | None = None,
          name: str | None = None) -> keras.layers.Conv1D:
    # normal(0, sqrt(2 / (kernel_size * filters))), the reference's CNN initialisation.
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
    return keras.layers.Conv1D(filters, kernel_size, activation=activation, name=name,
                               kernel_initializer=init,
                               bias_initializer=keras.initializers.Constant(BIAS_INIT))


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    # synchronized: under a tf.distribute strategy the batch statistics are taken over the
    # global batch (all replicas), so data-parallel training computes what one device would.
    return keras.layers.BatchNormalization(axis=-1, momentum=BATCH_NORM_MOMENTUM,
                                           epsilon=BATCH_NORM_EPSILON, synchronized=True, name=name)


def masked_batch_norm(layer: keras.layers.BatchNormalization, x, training, mask=None):
    """``layer(x)`` with batch statistics over the rows where ``mask`` (x's shape without the
    feature axis) is 1; the result carries no Keras mask on to later layers."""
    if mask is None:
        return layer(x, training=training)
    # A new tensor: Keras would otherwise attach the mask to the output and warn in every
    # later layer that does not support masking.
    return tf.identity(layer(x, training=training, mask=mask))


def on_rows(fn, x):
    """``fn`` on ``x`` [..., F] flattened to rows [rows, F], reshaped back to [..., F'].

    Keras' Dense on a rank > 2 input goes through `tf.tensordot` (about ten shape ops per
    layer, each a few microseconds: most of a served batch-1 request); one reshape each
    way serves a whole MLP. ``fn`` maps [rows, F] -> [rows, F'].
    """
    y = fn(tf.reshape(x, [-1, x.shape[-1]]))
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(y)[-1:]], axis=0))


def _flat_mask(row_mask):
    """A row mask [...] as [rows] (the order of `on_rows`), or None."""
    return None if row_mask is None else tf.reshape(row_mask, [-1])


@keras.saving.register_keras_serializable(package="nri_tf")
class MLPBlock(keras.layers.Layer):
    """Two-layer ELU network with dropout and batch norm, applied on the last axis.

    Dense(hidden) -> ELU -> dropout -> Dense(units) -> ELU -> BatchNorm, where the batch
    norm statistics are taken over all leading axes (batch, nodes/edges, ...), as the
    reference flattens [batch, things, features] to [batch * things, features].

    Args:
      hidden: units of the first Dense layer.
      units: output features (default: ``hidden``).
      dropout: dropout rate after the first layer (training only).
    Input: [..., in_features]. Output: [..., units].
    """

    def __init__(self, hidden: int, units: int | None = None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = int(hidden)
        self.units = int(units or hidden)
        self.dropout = float(dropout)
        self.fc1 = _dense(self.hidden, "elu", name="fc1")
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.fc2 = _dense(self.units, "elu", name="fc2")
        self.bn = _batch_norm("bn")

    def build(self, input_shape):
        self.fc1.build((None, input_shape[-1]))
        self.fc2.build((None, self.hidden))
        self.bn.build((None, self.units))

    def call(self, inputs, training=False, row_mask=None):
        """[..., in_features] -> [..., units]; ``row_mask`` [...] (1 = real row) keeps padding
        rows (candidate edges' padding slots) out of the batch statistics."""
        return on_rows(lambda rows: self._after_first_layer(self.fc1(rows), training, _flat_mask(row_mask)),
                       inputs)

    def on_node_pairs(self, nodes, edge_features=None, training=False, edges=None):
        """The block on [x_receiver, x_sender, edge_features] per edge, without the concat.

        Equal to ``self(concat([graph.node_to_edge(nodes), edge_features], -1))`` (the
        input layout of the encoders' edge MLPs), but the first layer multiplies the node
        features per node before they move to the edges (`graph.node_pairs_matmul`).

        Args:
          nodes: [batch, nodes, F].
          edge_features: [batch, edges, G] or None; the first layer has 2F (+ G) inputs.
          edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph; padding
            slots stay out of the batch statistics.
        Returns:
          [batch, edges, units].
        """
        features = nodes.shape[-1]
        kernel = self.fc1.kernel
        pre = graph.node_pairs_matmul(nodes, kernel[:2 * features], edges)   # [batch, edges, hidden]

        def rest(pre_rows):
            if edge_features is not None:
                edge_rows = tf.reshape(edge_features, [-1, edge_features.shape[-1]])
                pre_rows += tf.matmul(edge_rows, kernel[2 * features:])
            return self._after_first_layer(keras.activations.elu(pre_rows + self.fc1.bias), training,
                                           _flat_mask(graph.edge_mask(edges)))

        return on_rows(rest, pre)

    def _after_first_layer(self, x, training, row_mask=None):
        """dropout -> Dense -> ELU -> BatchNorm on the first layer's activations [rows, hidden]."""
        x = self.drop(x, training=training)
        x = self.fc2(x)
        return masked_batch_norm(self.bn, x, training, row_mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "units": self.units,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="nri_tf")
class ConvAttentionBlock(keras.layers.Layer):
    """1-D convolutions over time with attentive pooling (paper Fig. 13).

    Conv1D(hidden, 5) -> ReLU -> BatchNorm -> dropout -> MaxPool(2) -> Conv1D(hidden, 5) ->
    ReLU -> BatchNorm; then a 1x1 convolution gives values [rows, t, units] and another
    1x1 convolution plus a softmax over time gives attention weights [rows, t, 1]; the output
    is the mean over time of values * attention. Valid padding throughout, so the input
    needs at least `MIN_FRAMES` frames.

    Args:
      hidden: filters of the two convolutions.
      units: output features.
      dropout: dropout rate after the first convolution (training only).
    Input: [rows, frames, channels]. Output: [rows, units].
    """

    # conv2 needs CONV_KERNEL_SIZE pooled frames: 14 frames (config.CNN_MIN_FRAMES).
    MIN_FRAMES = POOL_SIZE * CONV_KERNEL_SIZE + CONV_KERNEL_SIZE - 1

    def __init__(self, hidden: int, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = int(hidden)
        self.units = int(units)
        self.dropout = float(dropout)
        self.conv1 = _conv(self.hidden, CONV_KERNEL_SIZE, "relu", name="conv1")
        self.bn1 = _batch_norm("bn1")
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.pool = keras.layers.MaxPooling1D(POOL_SIZE, name="pool")
        self.conv2 = _conv(self.hidden, CONV_KERNEL_SIZE, "relu", name="conv2")
        self.bn2 = _batch_norm("bn2")
        self.conv_values = _conv(self.units, 1, name="conv_values")
        self.conv_attention = _conv(1, 1, name="conv_attention")

    def build(self, input_shape):
        rows, frames, channels = tuple(input_shape)
        self.conv1.build((rows, frames, channels))
        hidden_shape = (rows, None, self.hidden)
        self.bn1.build(hidden_shape)
        self.conv2.build(hidden_shape)
        self.bn2.build(hidden_shape)
        self.conv_values.build(hidden_shape)
        self.conv_attention.build(hidden_shape)

    def call(self, inputs, training=False, row_mask=None):
        """[rows, frames, channels] -> [rows, units]; ``row_mask`` [rows] (1 = real row) keeps
        padding rows (candidate edges' padding slots) out of the batch statistics."""
        frames = inputs.shape[1]
        if frames is not None and frames < self.MIN_FRAMES:
            raise ValueError(f"the convolutional encoder needs at least {self.MIN_FRAMES} frames, "
                             f"got {frames}")
        x = self.conv1(inputs)
        x = masked_batch_norm(self.bn1, x, training, self._frame_mask(row_mask, x))
        x = self.pool(self.drop(x, training=training))
        x = self.conv2(x)
        x = masked_batch_norm(self.bn2, x, training, self._frame_mask(row_mask, x))
        values = self.conv_values(x)                                      # [rows, t, units]
        attention = tf.nn.softmax(self.conv_attention(x), axis=1)         # [rows, t, 1]
        return tf.reduce_mean(values * attention, axis=1)

    @staticmethod
    def _frame_mask(row_mask, x):
        """[rows] -> [rows, frames of x], or None."""
        if row_mask is None:
            return None
        return tf.broadcast_to(tf.cast(row_mask, x.dtype)[:, None], tf.shape(x)[:2])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "units": self.units,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="nri_tf")
class TriangleBlock(keras.layers.Layer):
    """Edge-to-edge messages along triangles of the complete graph (beyond the paper).

    Edge (i, j) reads every path j -> k -> i through a third node: a Dense layer with ELU on
    [features of edge (i, k), features of edge (k, j)], averaged over the N - 2 third nodes;
    then an `MLPBlock` on [the edge's own features, that average]. So an edge's type can be
    inferred jointly with the types of the edges it forms triangles with (charged particles:
    the three signs of a triangle multiply to +1, which ties a far pair to two near ones).
    The first layer is applied per edge before the gather (its kernel split in two), so the
    cost is one add per path: [batch, edges, N - 2, hidden]. With N = 2 there is no third
    node and the average is 0.

    Args:
      hidden: units of the path layer and of the MLPBlock.
      dropout: dropout rate inside the MLPBlock.
    Input: edge features [batch, N*(N-1), F] (receiver-major, `nri_tf.graph`).
    Output: [batch, N*(N-1), hidden].
    """

    def __init__(self, hidden: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.paths = _dense(self.hidden, name="paths")
        self.mlp = MLPBlock(self.hidden, dropout=self.dropout, name="mlp")

    def build(self, input_shape):
        features = input_shape[-1]
        self.paths.build((None, 2 * features))
        self.mlp.build((None, features + self.hidden))

    def call(self, edge_features, training=False):
        features = edge_features.shape[-1]
        kernel = self.paths.kernel
        num_nodes = graph.num_nodes_of_edge_tensor(edge_features)
        first, second = graph.triangle_paths(num_nodes)                  # [edges, N - 2] each
        to_third = on_rows(lambda rows: tf.matmul(rows, kernel[:features]) + self.paths.bias, edge_features)
        from_third = on_rows(lambda rows: tf.matmul(rows, kernel[features:]), edge_features)
        paths = keras.activations.elu(tf.gather(to_third, first, axis=1)
                                      + tf.gather(from_third, second, axis=1))   # [b, e, N-2, h]
        thirds = tf.maximum(tf.cast(num_nodes, paths.dtype) - 2.0, 1.0)
        message = tf.reduce_sum(paths, axis=2) / thirds                   # [batch, edges, hidden]
        return self.mlp(tf.concat([edge_features, message], axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.hidden,)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "dropout": self.dropout}
