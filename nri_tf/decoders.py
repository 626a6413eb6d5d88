"""NRI decoders: predict the next frames of [batch, nodes, frames, dims] given edge weights.

Edge weights are [batch, edges, edge_types]: relaxed or one-hot samples of the edge types,
on the complete graph or on the candidate edges passed as ``edges``
(`nri_tf.graph.CandidateEdges`; every method takes it, None meaning the complete graph).

Building blocks:
  EdgeTypeMessages   one two-layer message MLP per edge type on [receiver, sender] node
                     features, all types as one batched matmul, weighted by the edge
                     weights and summed over types (``skip_first``: type 0 sends nothing
                     and has no weights)
  MLPDecoder         Markovian decoder (paper eqs. 10-12, Fig. 15); multi-step training
                     rollout with ground truth every M frames, all chunks in parallel
  RNNDecoder         recurrent decoder (paper sec. 3.5, Figs. 16-17): messages from GRU
                     hidden states; ground truth for a burn-in, own predictions after it
  StepDecoder        the stepping interface below and the rollout built on it
  MarkovianDecoder   turns a one-frame `_predict` into the training rollout and the
                     stepping interface (MLPDecoder, `nri_tf.physics.SimulationDecoder`)
  RecurrentDecoder   the same for a step with a hidden state: burn-in on ground truth,
                     then open loop (RNNDecoder, `nri_tf.baselines.lstm.LSTMPredictor`)
  (`nri_tf.builders.decoder_from_config` builds the one a config asks for)

Every decoder exposes the same stepping interface, used for prediction beyond the data:
  state = decoder.burn_in(context, edge_weights)     # after the context's last frame
  prediction, state = decoder.step(state, edge_weights)
  predictions, state = decoder.rollout(state, edge_weights, steps)

Dropout is active only when ``training`` (the reference's decoders call ``F.dropout``
without the training flag, so they also drop at test time; we do not). Dense layers use
PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias,
as the reference decoders do.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from nri_tf import graph
from nri_tf.config import RNN_MESSAGE_DIVISORS
from nri_tf.layers import on_rows

MESSAGE_ACTIVATIONS = ("relu", "tanh")


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _dense(units: int, fan_in: int, activation: str | None = None, use_bias: bool = True,
           name: str | None = None, dtype=None) -> keras.layers.Dense:
    init = _torch_uniform(fan_in)
    return keras.layers.Dense(units, activation=activation, use_bias=use_bias, name=name,
                              kernel_initializer=init, bias_initializer=init, dtype=dtype)


def hidden_layer_policy(precision: str) -> str:
    """The Keras dtype policy of a decoder's hidden layers for `NRIConfig.precision`:
    float32 weights either way, bfloat16 matmuls and activations for "bfloat16"."""
    return {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]


@keras.saving.register_keras_serializable(package="nri_tf")
class EdgeTypeMessages(keras.layers.Layer):
    """Edge messages sum_k z_ij,k * f_k([x_i, x_j]), one 2-layer MLP f_k per edge type.

    The K message MLPs are stacked weights [K', 2F, H] and [K', H, H] (one checkpoint
    layout), applied type by type as 2-D matmuls on [rows, features] (see ``call``), then
    weighted by the edge weights and summed over types. With ``skip_first`` the first
    edge type has no MLP at all (K' = K - 1).

    Args:
      edge_types: K.
      hidden: H, hidden and output units of each message MLP.
      activation: "relu" (MLP decoder) or "tanh" (RNN decoder), after both layers.
      dropout: rate after the first layer (training only).
      skip_first: edge type 0 means "no edge" and carries no messages.
      average_types: divide the sum over types by K' (the RNN decoder's "average over
        types for stability").
      relative_dims: P, the leading node features that are positions: the message MLPs
        read [receiver's other features, sender's other features, sender positions -
        receiver positions] (2F - P inputs), translation invariant; 0: [x_i, x_j].
      inverse_square_dims: Q, the leading node features that are positions, whose
        sender-minus-receiver difference the message MLPs also read as a softened
        inverse-square vector (`nri_tf.graph.inverse_square`, Q more inputs); 0: none.
    Call:
      nodes: [batch, nodes, ..., F] node features (any axes between nodes and features).
      edge_weights: [batch, edges, edge_types].
      edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
    Returns:
      [batch, edges, ..., H] summed messages on every edge.
    """

    PROJECT_FIRST_MIN_FEATURES = 32   # see `first_layer`

    def __init__(self, edge_types: int, hidden: int, activation: str = "relu", dropout: float = 0.0,
                 skip_first: bool = False, average_types: bool = False, relative_dims: int = 0,
                 inverse_square_dims: int = 0, **kwargs):
        super().__init__(**kwargs)
        if activation not in MESSAGE_ACTIVATIONS:
            raise ValueError(f"activation must be one of {MESSAGE_ACTIVATIONS}, got {activation!r}")
        self.edge_types = int(edge_types)
        self.hidden = int(hidden)
        self.activation = activation
        self.dropout = float(dropout)
        self.skip_first = bool(skip_first)
        self.average_types = bool(average_types)
        self.relative_dims = int(relative_dims)
        self.inverse_square_dims = int(inverse_square_dims)
        self.first_type = 1 if self.skip_first else 0
        self.message_types = self.edge_types - self.first_type
        if self.message_types < 1:
            raise ValueError(f"edge_types={edge_types} with skip_first leaves no message type")
        self._activation_fn = keras.activations.get(activation)
        self.drop = keras.layers.Dropout(self.dropout, name="dropout", dtype=self.dtype_policy)

    def _pair_features(self, features: int) -> int:
        """Inputs of the message MLPs for F node features (the class notes)."""
        return 2 * features - self.relative_dims + self.inverse_square_dims

    def build(self, nodes_shape):
        in_features = self._pair_features(nodes_shape[-1])
        types, h = self.message_types, self.hidden
        init1, init2 = _torch_uniform(in_features), _torch_uniform(h)
        self.kernel1 = self.add_weight(shape=(types, in_features, h), initializer=init1, name="kernel1")
        self.bias1 = self.add_weight(shape=(types, 1, h), initializer=init1, name="bias1")
        self.kernel2 = self.add_weight(shape=(types, h, h), initializer=init2, name="kernel2")
        self.bias2 = self.add_weight(shape=(types, 1, h), initializer=init2, name="bias2")

    def first_layer(self, nodes, project_nodes_first: bool | None = None, edges=None) -> list:
        """W1_k [x_receiver, x_sender] for every edge, one tensor per message type k,
        before bias and activation.

        Two evaluation orders give the same numbers: gather the node features onto the
        edges, then multiply ([edges, 2F] x [2F, H]); or multiply the node features by the
        receiver and sender halves of W1, then gather ([nodes, F] x [F, H] twice). The
        second saves a factor (N-1) / 2 of the FLOPs but gathers H-wide rows instead of
        F-wide ones, so it pays off only for wide node features: the RNN decoder's hidden
        states (1.5x faster training at springs5 sizes), not the MLP decoder's 4 dims.

        With ``relative_dims`` or ``inverse_square_dims`` the features are gathered first
        (the inputs are not the nodes' own features).

        Args:
          nodes: [batch, nodes, ..., F].
          project_nodes_first: force an order; default: by F (>= `PROJECT_FIRST_MIN_FEATURES`).
          edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
        Returns:
          K' tensors [rows, H], rows = batch * edges * (inner axes), in [batch, edges, ...] order.
        """
        features = nodes.shape[-1]
        gathered_only = self.relative_dims or self.inverse_square_dims
        if project_nodes_first is None:
            project_nodes_first = features >= self.PROJECT_FIRST_MIN_FEATURES and not gathered_only
        if project_nodes_first and gathered_only:
            raise ValueError("messages on relative positions gather the node features first")
        if not project_nodes_first:
            pairs = graph.node_to_edge(nodes, edges, self.relative_dims)
            if self.inverse_square_dims:
                positions = nodes[..., :self.inverse_square_dims]
                pairs = tf.concat([pairs, graph.inverse_square(graph.sender_minus_receiver(positions, edges))], -1)
            pairs = tf.reshape(pairs, [-1, self._pair_features(features)])   # [r, 2F - P + Q]
            return [tf.matmul(pairs, self.kernel1[k]) for k in range(self.message_types)]
        return [tf.reshape(graph.node_pairs_matmul(nodes, self.kernel1[k], edges), [-1, self.hidden])
                for k in range(self.message_types)]

    def call(self, nodes, edge_weights, training=False, edges=None):
        # One 2-D matmul + bias_add per type and layer rather than batched matmuls over the
        # type axis: oneDNN fuses matmul, bias and activation (and their gradients) only
        # for 2-D products, which measured 1.2x (float32) and up to 1.7x (bfloat16) faster
        # training at paper sizes without XLA, level with XLA (benchmarks/train_step.py).
        shape = self._edge_shape(nodes, tf.shape(edge_weights)[1])            # [b, e, ...]
        inner_axes = nodes.shape.rank - 3
        messages = None
        for k, x in enumerate(self._type_rows(nodes, training, edges)):
            # Edge weights of type k [b, e] -> [r, 1], broadcast over the axes between edges and features.
            weights = edge_weights[:, :, self.first_type + k]
            weights = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([inner_axes], tf.int32)], 0))
            weights = tf.reshape(tf.broadcast_to(weights, shape), [-1, 1])
            typed = x * tf.cast(weights, x.dtype)
            messages = typed if messages is None else messages + typed
        if self.average_types:
            messages = messages / float(self.message_types)
        return tf.reshape(messages, tf.concat([shape, [self.hidden]], axis=0))

    def messages_by_type(self, nodes, num_edges, edges=None) -> list:
        """Every edge's message as if it had type k, for each type k (inference).

        Args:
          nodes, edges: as ``call``'s.
          num_edges: E, the edge axis of ``call``'s edge weights (scalar).
        Returns:
          K tensors [batch, edges, ..., H] (with ``skip_first``, zeros for type 0): what
          ``call`` returns with every edge's weight one-hot on that type; each message MLP
          runs once.
        """
        shape = tf.concat([self._edge_shape(nodes, num_edges), [self.hidden]], axis=0)
        divisor = float(self.message_types) if self.average_types else 1.0
        typed = [tf.reshape(x, shape) / divisor for x in self._type_rows(nodes, False, edges)]
        return [tf.zeros_like(typed[0])] * self.first_type + typed

    @staticmethod
    def _edge_shape(nodes, num_edges):
        """[batch, edges, (nodes' axes between nodes and features)]."""
        nodes_shape = tf.shape(nodes)
        return tf.concat([nodes_shape[:1], [num_edges], nodes_shape[2:-1]], 0)

    def _type_rows(self, nodes, training, edges):
        """K' tensors [rows, H]: each message MLP on every edge (`first_layer`'s rows)."""
        rows = []
        for k, pre in enumerate(self.first_layer(nodes, edges=edges)):
            x = self._activation_fn(tf.nn.bias_add(pre, self.bias1[k, 0]))    # [r, H]
            x = self.drop(x, training=training)
            rows.append(self._activation_fn(tf.nn.bias_add(tf.matmul(x, self.kernel2[k]), self.bias2[k, 0])))
        return rows

    def get_config(self):
        return {**super().get_config(), "edge_types": self.edge_types, "hidden": self.hidden,
                "activation": self.activation, "dropout": self.dropout,
                "skip_first": self.skip_first, "average_types": self.average_types,
                "relative_dims": self.relative_dims, "inverse_square_dims": self.inverse_square_dims}


class StepDecoder(keras.layers.Layer):
    """The stepping interface every decoder offers, and the rollout built on it.

    Subclasses implement ``call(trajectories, edge_weights, prediction_steps, training)``,
    ``burn_in(context, edge_weights)`` and ``step(state, edge_weights)``.
    """

    @staticmethod
    def _check_prediction_steps(prediction_steps: int) -> int:
        if int(prediction_steps) < 1:
            raise ValueError(f"prediction_steps must be >= 1, got {prediction_steps}")
        return int(prediction_steps)

    def rollout(self, state, edge_weights, steps, training=False, infer_edge_weights=None,
                history=None, edges=None):
        """Predicts ``steps`` frames from ``state``, feeding back its own predictions.

        The one rollout of the code base (`NRI.predict_future`, the serving signature, the
        baselines): a `tf.while_loop`, so ``steps`` may be a Python int or, traced, a
        tensor (a serving request's step count).

        Args:
          state: from `burn_in` (or a previous `step`/`rollout`).
          edge_weights: [batch, edges, edge_types] (None for predictors that ignore them).
          steps: frames to predict (>= 1): an int or an int32 scalar tensor.
          infer_edge_weights: re-infers the graph before every predicted frame (dynamic
            graph, paper sec. 5.2): ``infer_edge_weights(history) -> [batch, edges,
            edge_types]`` replaces ``edge_weights``.
          history: with ``infer_edge_weights``, the frames seen before the first
            prediction, [batch, nodes, frames, dims]; each prediction is appended to it.
          edges: `nri_tf.graph.CandidateEdges` of ``edge_weights``, or None for the complete
            graph.
        Returns:
          (predictions [batch, nodes, steps, dims], state after the last prediction).
        """
        if isinstance(steps, int) and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        dynamic = infer_edge_weights is not None
        predictions = tf.TensorArray(self.compute_dtype, size=steps,
                                     element_shape=[None, None, self.dims])

        def body(step, state, history, predictions):
            weights = infer_edge_weights(history) if dynamic else edge_weights
            prediction, state = self.step(state, weights, training=training, edges=edges)
            if dynamic:
                history = tf.concat([history, prediction[:, :, None]], axis=2)
            return step + 1, state, history, predictions.write(step, prediction)

        history = history if dynamic else ()
        loop_vars = (tf.constant(0), state, history, predictions)
        # Only the history grows along its frame axis.
        invariants = (tf.TensorShape([]), tf.nest.map_structure(lambda t: t.shape, state),
                      tf.TensorShape([None, None, None, self.dims]) if dynamic else (),
                      tf.TensorShape(None))
        _, state, _, predictions = tf.while_loop(lambda step, *_: step < steps, body, loop_vars,
                                                 shape_invariants=invariants)
        return tf.transpose(predictions.stack(), [1, 2, 0, 3]), state


class MarkovianDecoder(StepDecoder):
    """A decoder whose next frame depends on the current frame only.

    Subclasses implement ``_predict(frames [batch, nodes, ..., dims], edge_weights,
    training, edges) -> next frames`` (same shape) and set ``self.dims``; this class turns it
    into the multi-step training rollout and the stepping interface.
    """

    def call(self, trajectories, edge_weights, prediction_steps: int = 1, training=False, edges=None):
        """Predicts frames 1..T-1, feeding ground truth at frames 0, M, 2M, ... (paper sec. 3.4).

        Between ground-truth frames the decoder feeds back its own predictions. The chunks
        that start at each ground-truth frame are independent, so they are rolled out in
        parallel: M steps on [batch, nodes, chunks, dims]. Step s only runs the chunks whose
        prediction c*M + s + 1 lies inside the trajectory (the last chunk may be shorter
        than M), so no step computes a frame that is cut off afterwards.

        Args:
          trajectories: [batch, nodes, frames, dims].
          edge_weights: [batch, edges, edge_types].
          prediction_steps: M (1: every input is ground truth).
        Returns:
          predictions [batch, nodes, frames - 1, dims]; entry t predicts frame t + 1.
        """
        m = self._check_prediction_steps(prediction_steps)
        shape = tf.shape(trajectories)
        frames = shape[2]
        x = trajectories[:, :, 0:frames - 1:m]                 # [batch, nodes, chunks, dims]
        chunks = tf.shape(x)[2]
        predictions = []
        for step in range(m):
            # Chunks c with c*m + step + 1 <= frames - 1; a static count when frames is static.
            x = self._predict(x[:, :, :(frames - 2 - step) // m + 1], edge_weights, training, edges)
            predictions.append(tf.pad(x, [[0, 0], [0, 0], [0, chunks - tf.shape(x)[2]], [0, 0]]))
        x = tf.stack(predictions, axis=3)                       # [batch, nodes, chunks, m, dims]
        x = tf.reshape(x, [shape[0], shape[1], -1, self.dims])  # frame c*m + s + 1 at c*m + s
        return x[:, :, :frames - 1]

    def burn_in(self, context, edge_weights, training=False, edges=None):
        """State for predicting the frame after ``context`` [batch, nodes, frames, dims]."""
        return context[:, :, -1]

    def step(self, state, edge_weights, training=False, edges=None):
        """(prediction [batch, nodes, dims], new state) from the current frame ``state``."""
        prediction = self._predict(state, edge_weights, training, edges)
        return prediction, prediction


class _Decoder(StepDecoder):
    """Settings and serialisation shared by the learned decoders."""

    def __init__(self, dims: int, edge_types: int, hidden: int, dropout: float = 0.0,
                 skip_first: bool = False, precision: str = "float32", change_scale=(), **kwargs):
        super().__init__(**kwargs)
        self.change_scale = [float(v) for v in change_scale]
        if self.change_scale and len(self.change_scale) != int(dims):
            raise ValueError(f"change_scale needs one value per feature ({dims}), got {self.change_scale}")
        self.dims = int(dims)
        self.edge_types = int(edge_types)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.skip_first = bool(skip_first)
        self.precision = precision
        self.hidden_policy = hidden_layer_policy(precision)
        self.drop = keras.layers.Dropout(self.dropout, name="dropout", dtype=self.hidden_policy)

    def _add_output_mlp(self, in_features: int) -> None:
        """The output MLP (in_features -> H -> H -> dims, ReLU, dropout); its last layer stays
        float32: it gives the change added to the state."""
        self.out1_features = in_features
        self.out1 = _dense(self.hidden, in_features, "relu", name="out1", dtype=self.hidden_policy)
        self.out2 = _dense(self.hidden, self.hidden, "relu", name="out2", dtype=self.hidden_policy)
        self.out3 = _dense(self.dims, self.hidden, name="out3")

    def _build_output_mlp(self) -> None:
        """Builds the output MLP's layers (in `build`, after the message layers: the order
        in which a seeded model draws its initial weights)."""
        self.out1.build((None, self.out1_features))
        self.out2.build((None, self.hidden))
        self.out3.build((None, self.hidden))

    def _output_change(self, features, training):
        """The output MLP on [..., in_features] -> the predicted change [..., dims], each
        feature multiplied by its ``change_scale`` (`NRIConfig.change_scale`) if given."""
        def mlp(rows):
            x = self.out2(self.drop(self.out1(rows), training=training))
            return self.out3(self.drop(x, training=training))
        change = on_rows(mlp, features)
        if self.change_scale:
            change = change * tf.constant(self.change_scale, dtype=change.dtype)
        return change

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "edge_types": self.edge_types,
                "hidden": self.hidden, "dropout": self.dropout, "skip_first": self.skip_first,
                "precision": self.precision, "change_scale": self.change_scale}


@keras.saving.register_keras_serializable(package="nri_tf")
class MLPDecoder(MarkovianDecoder, _Decoder):
    """Markovian MLP decoder: x_{t+1} = x_t + f_out([x_t, sum_incoming messages]).

    Messages: one ReLU message MLP (2*dims -> H -> H) per edge type, weighted by the edge
    weights; summed over incoming edges (no normalisation); output MLP
    (dims + H -> H -> H -> dims, ReLU, dropout) predicts the change in state.

    Args:
      dims, edge_types, hidden, dropout, skip_first: see `NRIConfig`.
      relative_dims: P, the leading features that are positions (beyond the paper): the
        messages see them as sender minus receiver (`EdgeTypeMessages`) and the output MLP
        not at all ([x_t without positions, messages]), so the predicted change does not
        depend on where the system is (translation invariant); 0: the paper's decoder.
      inverse_square_dims: Q, the leading features that are positions (beyond the paper):
        the messages also read the sender-minus-receiver positions as a softened
        inverse-square vector (`nri_tf.graph.inverse_square`), the form of Coulomb and
        gravitational forces, which a ReLU MLP on the difference itself forms poorly; 0: not.
    State for `step`: the current frame [batch, nodes, dims].
    """

    def __init__(self, dims: int, edge_types: int, hidden: int, dropout: float = 0.0,
                 skip_first: bool = False, precision: str = "float32", relative_dims: int = 0,
                 inverse_square_dims: int = 0, **kwargs):
        super().__init__(dims, edge_types, hidden, dropout, skip_first, precision, **kwargs)
        self.relative_dims = graph.checked_relative_dims(relative_dims, self.dims)
        self.inverse_square_dims = graph.checked_relative_dims(inverse_square_dims, self.dims)
        self.messages = EdgeTypeMessages(edge_types, hidden, "relu", dropout, skip_first,
                                         relative_dims=self.relative_dims,
                                         inverse_square_dims=self.inverse_square_dims, name="messages",
                                         dtype=self.hidden_policy)
        self._add_output_mlp(self.dims - self.relative_dims + self.hidden)

    def build(self, input_shape):
        self.messages.build((None, None, self.dims))
        self._build_output_mlp()

    def _predict(self, frames, edge_weights, training, edges=None):
        """One Markovian step on [batch, nodes, ..., dims] -> same shape."""
        aggregated = graph.edge_to_node(self.messages(frames, edge_weights, training=training,
                                                      edges=edges), edges=edges)
        own = frames[..., self.relative_dims:]
        return frames + self._output_change(tf.concat([own, tf.cast(aggregated, frames.dtype)], axis=-1),
                                            training)

    def receiver_nll_by_edge_type(self, trajectories, edge_types, variance: float, edges=None):
        """What each edge's type is worth to its receiver's one-step predictions.

        Args:
          trajectories: [batch, nodes, frames, dims].
          edge_types: [batch, edges] int, the type of every edge.
          variance: the Gaussian likelihood's fixed variance (`NRIConfig.var`).
          edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
        Returns:
          [batch, edges, edge_types]: entry (e, k) is the Gaussian nll (squared errors /
          (2 variance), summed over frames 1..T-1 and dims) of the one-step predictions of
          edge e's receiver if e alone took type k and every other edge kept its type. Each
          message MLP runs once and one output pass per type scores all edges at once: a
          receiver's prediction depends on its incoming messages only through their sum.
        """
        frames, target = trajectories[:, :, :-1], trajectories[:, :, 1:]
        shape = tf.shape(edge_types)
        typed = [tf.cast(message, frames.dtype)                                 # K x [batch, edges, T-1, H]
                 for message in self.messages.messages_by_type(frames, shape[1], edges)]
        chosen = tf.one_hot(tf.cast(edge_types, tf.int32), self.edge_types, dtype=frames.dtype)
        current = tf.add_n([typed[k] * chosen[:, :, k, None, None] for k in range(self.edge_types)])
        others = graph.broadcast_receiver_nodes_to_edges(graph.edge_to_node(current, edges=edges), edges) - current
        receiver_frames = graph.broadcast_receiver_nodes_to_edges(frames, edges)   # [batch, edges, T-1, dims]
        receiver_target = graph.broadcast_receiver_nodes_to_edges(target, edges)
        return tf.stack([self._one_step_nll(receiver_frames, others + message, receiver_target, variance)
                         for message in typed], axis=-1)

    def receiver_nll_by_assignment(self, trajectories, assignments, variance: float, chunk: int = 16):
        """Every receiver's one-step nll under each joint assignment of its incoming edges'
        types (complete graph).

        Args:
          trajectories: [batch, nodes, frames, dims].
          assignments: int [A, nodes - 1]: the types of a receiver's incoming edges, in
            receiver-major order (its senders ascending, itself left out).
          variance: the Gaussian likelihood's fixed variance (`NRIConfig.var`).
          chunk: assignments scored per output pass (bounds the memory: [batch, nodes,
            chunk, frames, hidden]).
        Returns:
          [batch, nodes, A]: the Gaussian nll of receiver n's predictions of frames 1..T-1
          (summed over frames and dims) with its incoming edges typed by assignment a. The
          one-step likelihood is a sum over receivers, each depending only on its incoming
          edges: the table's row minima are the exact best graph of a directed model.
        """
        frames, target = trajectories[:, :, :-1], trajectories[:, :, 1:]
        nodes = tf.shape(frames)[1]
        typed = tf.stack([tf.cast(message, frames.dtype) for message in self.messages.messages_by_type(
            frames, nodes * (nodes - 1))])                                   # [K, batch, edges, T-1, H]
        shape = tf.shape(typed)
        typed = tf.reshape(typed, tf.concat([shape[:2], [nodes, nodes - 1], shape[3:]], 0))  # [K, b, n, n-1, T-1, H]
        receiver_frames, receiver_target = frames[:, :, None], target[:, :, None]   # [b, n, 1, T-1, dims]
        tables = []
        for start in range(0, int(assignments.shape[0]), chunk):
            chosen = tf.one_hot(assignments[start:start + chunk], self.edge_types, dtype=frames.dtype)  # [a, n-1, K]
            incoming = tf.einsum("ajk,kbnjth->bnath", chosen, typed)        # [batch, nodes, a, T-1, H]
            tables.append(self._one_step_nll(receiver_frames, incoming, receiver_target, variance))
        return tf.concat(tables, axis=-1)

    def _one_step_nll(self, frames, incoming, target, variance: float):
        """[...]: the nll of one-step predictions from ``frames`` [..., T-1, dims] (broadcast
        against ``incoming``) with the summed incoming messages ``incoming`` [..., T-1, H],
        against ``target``, summed over frames and dims."""
        own = tf.broadcast_to(frames[..., self.relative_dims:],
                              tf.concat([tf.shape(incoming)[:-1], [self.dims - self.relative_dims]], 0))
        change = self._output_change(tf.concat([own, incoming], axis=-1), training=False)
        error = frames + tf.cast(change, frames.dtype) - target
        return tf.reduce_sum(tf.square(error), axis=[-2, -1]) / (2.0 * variance)

    def get_config(self):
        return {**super().get_config(), "relative_dims": self.relative_dims,
                "inverse_square_dims": self.inverse_square_dims}


class RecurrentDecoder(StepDecoder):
    """A decoder with a hidden state carried from frame to frame.

    Subclasses implement ``_predict(inputs [batch, nodes, dims], hidden, edge_weights,
    training, edges) -> (prediction [batch, nodes, dims], new hidden)`` and
    ``_initial_hidden(frames)`` (any nest of tensors); this class runs them over a
    trajectory with a ground-truth burn-in and provides the stepping interface.
    State for `step`: (current frame [batch, nodes, dims], hidden).
    """

    def _scan(self, trajectories, ground_truth_frames, edge_weights, training, edges=None):
        """Runs the recurrent step over inputs 0..T-2 as a symbolic loop (any T, small graphs).

        Input t is ground-truth frame t while t < ``ground_truth_frames``, else the
        prediction made at step t-1.

        Returns:
          (predictions [T-1, batch, nodes, dims], hidden states with a leading [T-1] axis),
          time-major.
        """
        frames = tf.shape(trajectories)[2]
        truth = tf.transpose(trajectories[:, :, :-1], [2, 0, 1, 3])      # [T-1, batch, nodes, dims]
        use_truth = tf.range(frames - 1) < ground_truth_frames

        def body(carry, elements):
            previous, hidden = carry
            frame, from_truth = elements
            inputs = tf.where(from_truth, frame, previous)
            return self._predict(inputs, hidden, edge_weights, training, edges)

        initial = (tf.zeros_like(trajectories[:, :, 0]), self._initial_hidden(trajectories))
        return tf.scan(body, (truth, use_truth), initializer=initial)

    def call(self, trajectories, edge_weights, prediction_steps: int = 1, training=False, edges=None):
        """Predicts frames 1..T-1 after a ground-truth burn-in of the first T - M frames.

        Inputs 0..T-M-1 are ground truth, later inputs are the decoder's own predictions,
        so the last M frames are predicted open-loop (the reference feeds one more ground
        truth frame, predicting M - 1). M = 1: ground truth at every step.

        Args:
          trajectories: [batch, nodes, frames, dims].
          edge_weights: [batch, edges, edge_types].
          prediction_steps: M, frames predicted after the burn-in.
        Returns:
          predictions [batch, nodes, frames - 1, dims]; entry t predicts frame t + 1.
        """
        m = self._check_prediction_steps(prediction_steps)
        burn_in_frames = tf.maximum(1, tf.shape(trajectories)[2] - m)
        predictions, _ = self._scan(trajectories, burn_in_frames, edge_weights, training, edges)
        return tf.transpose(predictions, [1, 2, 0, 3])

    def burn_in(self, context, edge_weights, training=False, edges=None):
        """Runs the recurrent step over ``context`` [batch, nodes, frames, dims].

        Returns:
          the state (last context frame, hidden after the frames before it) from which
          `step` predicts the first frame after the context.
        """
        if context.shape[2] == 1:
            return context[:, :, -1], self._initial_hidden(context)
        _, hidden = self._scan(context, tf.shape(context)[2], edge_weights, training, edges)
        return context[:, :, -1], tf.nest.map_structure(lambda states: states[-1], hidden)

    def step(self, state, edge_weights, training=False, edges=None):
        """(prediction [batch, nodes, dims], new state) from (frame, hidden)."""
        inputs, hidden = state
        prediction, hidden = self._predict(inputs, hidden, edge_weights, training, edges)
        return prediction, (prediction, hidden)


@keras.saving.register_keras_serializable(package="nri_tf")
class RNNDecoder(RecurrentDecoder, _Decoder):
    """Recurrent decoder with GRU-style updates (reference ``RNNDecoder``).

    Per step: messages from the hidden states h [batch, nodes, H] (tanh message MLPs,
    averaged over edge types, summed over incoming edges and divided by N, or by the feature
    count D with ``message_divisor="dims"`` as the reference code); GRU gates from
    the current input x and the aggregated messages a, as the reference code:
      r = sigmoid(W_ir x + W_hr a), i = sigmoid(W_ii x + W_hi a),
      n = tanh(W_in x + r * W_hn a), h' = (1 - i) * n + i * h;
    or, with ``own_hidden``, a standard GRU over the input [a, x] and the node's own
    previous hidden state h, as the paper's equation (appendix B, GRU([MSG, x], h)):
      r = sigmoid(W_ir x + W_ar a + U_r h), i = sigmoid(W_ii x + W_ai a + U_i h),
      n = tanh(W_in x + W_an a + r * U_n h), h' = (1 - i) * n + i * h;
    output MLP (H -> H -> H -> dims, ReLU, dropout) predicts x + delta.

    In the reference form a node whose incoming edges are all "no edge" gets no message,
    so its candidate state n reads the input alone: its memory survives only through the
    update gate. ``own_hidden`` keeps it for every node whatever the graph.

    With ``reads_change`` the GRU's input x is [x_t, (x_t - x_{t-1}) / change_scale]: the
    last frame-to-frame change at the scale of the data's changes (zero at the first
    frame), which a GRU reading the frames alone must form from two saturating states.

    Args:
      dims, edge_types, hidden, dropout, skip_first, change_scale: see `NRIConfig`.
      own_hidden: `NRIConfig.gru_own_hidden`.
      message_divisor: `NRIConfig.rnn_message_divisor`, "nodes" or "dims".
      reads_change: `NRIConfig.gru_reads_change`; needs ``change_scale``.
    State for `step`: (current frame [batch, nodes, dims], hidden), where hidden is
    [batch, nodes, H], or with ``reads_change`` (that, the previous frame [batch, nodes, dims]).
    """

    def __init__(self, dims: int, edge_types: int, hidden: int, dropout: float = 0.0,
                 skip_first: bool = False, precision: str = "float32", own_hidden: bool = False,
                 message_divisor: str = "nodes", reads_change: bool = False, **kwargs):
        super().__init__(dims, edge_types, hidden, dropout, skip_first, precision, **kwargs)
        if message_divisor not in RNN_MESSAGE_DIVISORS:
            raise ValueError(f"message_divisor must be one of {RNN_MESSAGE_DIVISORS}, got {message_divisor!r}")
        if reads_change and not self.change_scale:
            raise ValueError("reads_change divides the change by change_scale, which is not given")
        self.own_hidden = bool(own_hidden)
        self.message_divisor = message_divisor
        self.reads_change = bool(reads_change)
        self.gate_inputs = 2 * self.dims if self.reads_change else self.dims
        self.messages = EdgeTypeMessages(edge_types, hidden, "tanh", dropout, skip_first,
                                         average_types=True, name="messages", dtype=self.hidden_policy)
        # The three input (bias) and three message (no bias) projections of the GRU, stacked;
        # float32, as the hidden state they update.
        self.input_gates = _dense(3 * hidden, self.gate_inputs, name="input_gates")
        self.message_gates = _dense(3 * hidden, hidden, use_bias=False, name="message_gates")
        self.hidden_gates = (_dense(3 * hidden, hidden, use_bias=False, name="hidden_gates")
                             if self.own_hidden else None)
        self._add_output_mlp(self.hidden)

    def build(self, input_shape):
        self.messages.build((None, None, self.hidden))
        self.input_gates.build((None, self.gate_inputs))
        self.message_gates.build((None, self.hidden))
        if self.own_hidden:
            self.hidden_gates.build((None, self.hidden))
        self._build_output_mlp()

    def _predict(self, inputs, hidden, edge_weights, training, edges=None):
        """One recurrent step: ([b, n, dims], hidden) -> (prediction, new hidden); hidden as
        the class's state says."""
        gate_inputs = inputs
        if self.reads_change:
            hidden, previous = hidden
            change = tf.math.divide_no_nan(inputs - previous, tf.constant(self.change_scale, inputs.dtype))
            gate_inputs = tf.concat([inputs, change], axis=-1)
        messages = self.messages(hidden, edge_weights, training=training, edges=edges)
        if self.message_divisor == "nodes":
            aggregated = graph.edge_to_node(messages, divide_by_nodes=True, edges=edges)
        else:
            aggregated = graph.edge_to_node(messages, edges=edges) / float(self.dims)
        x_r, x_i, x_n = tf.split(on_rows(self.input_gates, gate_inputs), 3, axis=-1)
        a_r, a_i, a_n = tf.split(on_rows(self.message_gates, aggregated), 3, axis=-1)
        if self.own_hidden:
            h_r, h_i, h_n = tf.split(on_rows(self.hidden_gates, hidden), 3, axis=-1)
            reset = tf.sigmoid(x_r + a_r + h_r)
            update = tf.sigmoid(x_i + a_i + h_i)
            candidate = tf.tanh(x_n + a_n + reset * h_n)
        else:
            reset = tf.sigmoid(x_r + a_r)
            update = tf.sigmoid(x_i + a_i)
            candidate = tf.tanh(x_n + reset * a_n)
        hidden = (1.0 - update) * candidate + update * hidden
        prediction = inputs + self._output_change(hidden, training)
        return prediction, ((hidden, inputs) if self.reads_change else hidden)

    def _initial_hidden(self, trajectories):
        shape = tf.shape(trajectories)
        hidden = tf.zeros([shape[0], shape[1], self.hidden], dtype=trajectories.dtype)
        # The first frame as its own predecessor: no change before it.
        return (hidden, trajectories[:, :, 0]) if self.reads_change else hidden

    def get_config(self):
        return {**super().get_config(), "own_hidden": self.own_hidden,
                "message_divisor": self.message_divisor, "reads_change": self.reads_change}
