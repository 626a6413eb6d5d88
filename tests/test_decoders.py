"""MLP and RNN decoders: message MLPs, teacher-forcing schedules, rollouts, equivariance."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nri_tf import graph
from nri_tf.builders import decoder_from_config
from nri_tf.config import ConfigError, NRIConfig
from nri_tf.decoders import EdgeTypeMessages, MLPDecoder, RNNDecoder

DIMS, NODES, FRAMES, EDGE_TYPES = 4, 5, 12, 3
EDGES = NODES * (NODES - 1)


def _decoder(kind: str, skip_first: bool = False):
    config = NRIConfig(decoder=kind, decoder_hidden=16, edge_types=EDGE_TYPES, skip_first=skip_first)
    decoder = decoder_from_config(config)
    decoder.build((None, None, FRAMES, DIMS))
    return decoder


def _data(seed: int = 0, frames: int = FRAMES):
    x = tf.random.stateless_uniform([3, NODES, frames, DIMS], seed=[seed, 1], minval=-1, maxval=1)
    logits = tf.random.stateless_normal([3, EDGES, EDGE_TYPES], seed=[seed, 2])
    return x, tf.nn.softmax(logits)


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("skip_first", [False, True])
@pytest.mark.parametrize("average_types", [False, True])
def test_messages_equal_the_per_type_formula(skip_first, average_types):
    layer = EdgeTypeMessages(EDGE_TYPES, 8, "tanh", skip_first=skip_first, average_types=average_types)
    nodes = tf.random.stateless_normal([2, NODES, 3, 6], seed=[3, 3])     # extra axis of 3
    weights = tf.nn.softmax(tf.random.stateless_normal([2, EDGES, EDGE_TYPES], seed=[3, 4]))
    got = layer(nodes, weights)
    pre = graph.node_to_edge(nodes)
    expected = 0.0
    first = int(skip_first)
    for k in range(first, EDGE_TYPES):
        h = tf.tanh(tf.einsum("...i,ih->...h", pre, layer.kernel1[k - first]) + layer.bias1[k - first, 0])
        h = tf.tanh(tf.einsum("...i,ih->...h", h, layer.kernel2[k - first]) + layer.bias2[k - first, 0])
        expected += h * weights[:, :, None, k:k + 1]
    if average_types:
        expected /= EDGE_TYPES - first
    _close(got, expected)


@pytest.mark.parametrize("features", [6, 40])
def test_both_evaluation_orders_of_the_first_message_layer_agree(features):
    layer = EdgeTypeMessages(EDGE_TYPES, 8, skip_first=True)
    nodes = tf.random.stateless_normal([2, NODES, 3, features], seed=[6, features])
    layer.build(nodes.shape)
    gathered_first = tf.stack(layer.first_layer(nodes, project_nodes_first=False))
    projected_first = tf.stack(layer.first_layer(nodes, project_nodes_first=True))
    assert gathered_first.shape == (EDGE_TYPES - 1, 2 * EDGES * 3, 8)
    _close(projected_first, gathered_first)


def test_mlp_decoder_feeds_ground_truth_every_m_frames():
    decoder = _decoder("mlp")
    x, z = _data()
    m = 4
    got = decoder(x, z, prediction_steps=m)
    assert got.shape == (3, NODES, FRAMES - 1, DIMS)
    expected, current = [], None
    for t in range(FRAMES - 1):                    # the reference's sequential schedule
        current = x[:, :, t] if t % m == 0 else current
        current, _ = decoder.step(current, z)
        expected.append(current)
    _close(got, tf.stack(expected, axis=2))


def test_rnn_decoder_burn_in_uses_ground_truth_then_its_own_predictions():
    decoder = _decoder("rnn")
    x, z = _data()
    m = 4
    got = decoder(x, z, prediction_steps=m).numpy()
    assert got.shape == (3, NODES, FRAMES - 1, DIMS)
    late = tf.concat([x[:, :, :FRAMES - m], x[:, :, FRAMES - m:] + 0.5], axis=2)
    _close(decoder(late, z, prediction_steps=m), got)          # the last M frames are never read
    early = tf.concat([x[:, :, :FRAMES - m - 1], x[:, :, FRAMES - m - 1:] + 0.5], axis=2)
    assert np.abs(decoder(early, z, prediction_steps=m).numpy() - got).max() > 1e-3


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_burn_in_and_rollout_match_the_training_forward_pass(kind):
    decoder = _decoder(kind)
    x, z = _data()
    context, steps = 7, FRAMES - 7
    state = decoder.burn_in(x[:, :, :context], z)
    rolled, _ = decoder.rollout(state, z, steps)
    assert rolled.shape == (3, NODES, steps, DIMS)
    # MLP: one chunk from frame context-1 is an open-loop rollout of M steps from there.
    # RNN: ground truth for the first `context` frames, open loop for the last `steps`.
    if kind == "mlp":
        full = decoder(x[:, :, context - 1:], z, prediction_steps=steps + 1)
        _close(rolled, full)
    else:
        full = decoder(x, z, prediction_steps=steps)
        _close(rolled, full[:, :, context - 1:])


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_decoder_commutes_with_node_permutations(kind, node_permutation):
    nodes, edges = node_permutation
    decoder = _decoder(kind)
    x, z = _data()
    got = decoder(tf.gather(x, nodes, axis=1), tf.gather(z, edges, axis=1), prediction_steps=3)
    _close(got, tf.gather(decoder(x, z, prediction_steps=3), nodes, axis=1), tol=1e-4)


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_skip_first_ignores_the_first_edge_type(kind):
    decoder = _decoder(kind, skip_first=True)
    x, z = _data()
    changed = tf.concat([tf.random.stateless_uniform([3, EDGES, 1], seed=[5, 5]), z[..., 1:]], -1)
    _close(decoder(x, changed, prediction_steps=2), decoder(x, z, prediction_steps=2))
    # All edges "no edge": nodes evolve independently, so a node's prediction ignores others.
    empty = tf.one_hot(tf.zeros([3, EDGES], tf.int32), EDGE_TYPES)
    moved = tf.concat([x[:, :1], x[:, 1:] + 0.3], axis=1)
    _close(decoder(moved, empty)[:, 0], decoder(x, empty)[:, 0])


def test_decoders_run_on_more_nodes_than_they_were_built_for():
    for kind in ("mlp", "rnn"):
        decoder = _decoder(kind)
        x = tf.zeros([2, 10, FRAMES, DIMS])
        z = tf.one_hot(tf.ones([2, 90], tf.int32), EDGE_TYPES)
        assert decoder(x, z, prediction_steps=3).shape == (2, 10, FRAMES - 1, DIMS)


def test_dropout_only_in_training():
    config = NRIConfig(decoder_hidden=16, edge_types=EDGE_TYPES, decoder_dropout=0.5)
    decoder = decoder_from_config(config)
    x, z = _data()
    _close(decoder(x, z), decoder(x, z), tol=0)
    assert np.abs(decoder(x, z, training=True).numpy() - decoder(x, z).numpy()).max() > 0


@pytest.mark.parametrize("cls", [MLPDecoder, RNNDecoder])
def test_serialisation_round_trip(cls):
    decoder = _decoder("mlp" if cls is MLPDecoder else "rnn", skip_first=True)
    x, z = _data()
    clone = keras.layers.deserialize(keras.layers.serialize(decoder))
    assert isinstance(clone, cls) and clone.get_config() == decoder.get_config()
    clone.set_weights(decoder.get_weights())
    _close(clone(x, z, prediction_steps=3), decoder(x, z, prediction_steps=3), tol=0)


def test_invalid_prediction_steps():
    decoder = _decoder("mlp")
    x, z = _data()
    with pytest.raises(ValueError, match="prediction_steps"):
        decoder(x, z, prediction_steps=0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        decoder.rollout(x[:, :, 0], z, 0)


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_bfloat16_hidden_layers_change_the_state_like_float32_to_bfloat16_precision(kind):
    exact = _decoder(kind)
    config = NRIConfig(decoder=kind, decoder_hidden=16, edge_types=EDGE_TYPES, precision="bfloat16")
    fast = decoder_from_config(config)
    fast.build((None, None, FRAMES, DIMS))
    fast.set_weights(exact.get_weights())
    assert {v.dtype for v in fast.weights} == {"float32"}
    x, z = _data()
    change = (exact(x, z) - x[:, :, :-1]).numpy()
    got = fast(x, z)
    assert got.dtype == tf.float32
    # The residual x_t + change is float32: only the change carries bfloat16's ~3 digits.
    error = np.abs((got - x[:, :, :-1]).numpy() - change)
    assert 0 < error.max() < 0.05 * np.abs(change).max()


def _messages_by_formula(layer, frame, z, pair_features):
    """[batch, edges, H]: ``layer``'s message MLPs written out on the complete graph's
    pairs, their inputs ``pair_features(receiver features, sender features)``."""
    receivers, senders = graph.edge_indices(NODES)
    pairs = pair_features(tf.gather(frame, receivers, axis=1), tf.gather(frame, senders, axis=1))
    expected = 0.0
    for k in range(EDGE_TYPES):
        hidden = tf.nn.relu(pairs @ layer.kernel1[k] + layer.bias1[k, 0])
        expected += tf.nn.relu(hidden @ layer.kernel2[k] + layer.bias2[k, 0]) * z[..., k:k + 1]
    return expected


def test_relative_position_messages_equal_the_formula_on_position_differences():
    """The message MLPs read [receiver's velocities, sender's velocities, sender - receiver
    positions]; the first layer has 2F - P inputs."""
    layer = EdgeTypeMessages(EDGE_TYPES, 8, relative_dims=2)
    x, z = _data()
    frame = x[:, :, 0]                                                    # [batch, nodes, 4]
    got = layer(frame, z)
    assert layer.kernel1.shape == (EDGE_TYPES, 2 * DIMS - 2, 8)
    _close(got, _messages_by_formula(layer, frame, z, lambda r, s: tf.concat(
        [r[..., 2:], s[..., 2:], s[..., :2] - r[..., :2]], axis=-1)))
    with pytest.raises(ValueError, match="gather the node features first"):
        layer.first_layer(frame, project_nodes_first=True)


def test_inverse_square_messages_add_the_softened_coulomb_vector_of_the_position_differences():
    """With --inverse-square the message MLPs also read r0^2 d / (|d|^2 + eps^2)^(3/2) of the
    sender-minus-receiver positions d (2 more inputs), on top of --relative-positions."""
    d = tf.constant([[0.2, 0.0], [0.0, -0.4], [0.0, 0.0], [3e-3, 4e-3]])
    feature = graph.inverse_square(d).numpy()
    np.testing.assert_allclose(feature[:, 0], [0.04 * 0.2 / 0.05 ** 1.5, 0, 0, 0.04 * 3e-3 / 0.010025 ** 1.5],
                               rtol=1e-5)
    np.testing.assert_allclose(feature[1], [0, -0.04 * 0.4 / 0.17 ** 1.5], rtol=1e-5)
    assert np.abs(feature).max() < 0.04 * 2 / 3 ** 1.5 / 0.1 ** 2            # bounded by the softening
    layer = EdgeTypeMessages(EDGE_TYPES, 8, relative_dims=2, inverse_square_dims=2)
    x, z = _data()
    frame = x[:, :, 0]                                                    # [batch, nodes, 4]
    got = layer(frame, z)
    assert layer.kernel1.shape == (EDGE_TYPES, 2 * DIMS, 8)

    def pair_features(r, s):
        d = s[..., :2] - r[..., :2]
        norm = tf.norm(d, axis=-1, keepdims=True)
        return tf.concat([r[..., 2:], s[..., 2:], d, 0.04 * d / (norm ** 2 + 0.1 ** 2) ** 1.5], axis=-1)

    _close(got, _messages_by_formula(layer, frame, z, pair_features))
    with pytest.raises(ValueError, match="gather the node features first"):
        EdgeTypeMessages(EDGE_TYPES, 8, inverse_square_dims=2).first_layer(frame, project_nodes_first=True)


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_change_scale_multiplies_each_features_predicted_change(kind):
    scale = [0.5, 2.0, 0.0, 1e-3]
    plain = _decoder(kind)
    config = NRIConfig(decoder=kind, decoder_hidden=16, edge_types=EDGE_TYPES, change_scale=scale)
    scaled = decoder_from_config(config)
    scaled.build((None, None, FRAMES, DIMS))
    scaled.set_weights(plain.get_weights())
    x, z = _data()
    change = plain(x, z, prediction_steps=1) - x[:, :, :-1]
    _close(scaled(x, z, prediction_steps=1) - x[:, :, :-1], change * np.array(scale, np.float32))
    clone = keras.layers.deserialize(keras.layers.serialize(scaled))
    assert clone.get_config()["change_scale"] == scale
    with pytest.raises(ConfigError, match="3 values but the data has 4 features"):
        NRIConfig(decoder=kind, change_scale=[1.0, 1.0, 1.0]).validate()
    with pytest.raises(ConfigError, match="finite and >= 0"):
        NRIConfig(decoder=kind, change_scale=[1.0, -1.0, 1.0, 1.0]).validate()


def _rnn_step(**options):
    """(decoder, inputs [3, nodes, dims], hidden [3, nodes, 16], edge weights): an rnn
    decoder built with the config ``options`` and the arguments of one of its steps."""
    config = NRIConfig(decoder="rnn", decoder_hidden=16, edge_types=EDGE_TYPES, skip_first=True, **options)
    decoder = decoder_from_config(config)
    decoder.build((None, None, FRAMES, DIMS))
    x, z = _data()
    hidden = tf.random.stateless_uniform([3, NODES, 16], seed=[7, 7], minval=-1, maxval=1)
    return decoder, x[:, :, 0], hidden, z


def _gru_gates(decoder, inputs, aggregated):
    """(input part, message part) of the GRU's reset, update and candidate gates, numpy."""
    kernel_x, bias_x = (w.numpy() for w in decoder.input_gates.weights)
    return (np.split(inputs.numpy() @ kernel_x + bias_x, 3, axis=-1),
            np.split(aggregated @ decoder.message_gates.kernel.numpy(), 3, axis=-1))


def test_gru_own_hidden_is_the_standard_gru_over_messages_and_input():
    decoder, inputs, hidden, z = _rnn_step(gru_own_hidden=True)
    prediction, new_hidden = decoder._predict(inputs, hidden, z, training=False)

    aggregated = graph.edge_to_node(decoder.messages(hidden, z), divide_by_nodes=True).numpy()
    gates_x, gates_a = _gru_gates(decoder, inputs, aggregated)
    gates_h = np.split(hidden.numpy() @ decoder.hidden_gates.kernel.numpy(), 3, axis=-1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    reset = sigmoid(gates_x[0] + gates_a[0] + gates_h[0])
    update = sigmoid(gates_x[1] + gates_a[1] + gates_h[1])
    candidate = np.tanh(gates_x[2] + gates_a[2] + reset * gates_h[2])
    _close(new_hidden, (1 - update) * candidate + update * hidden.numpy())
    _close(prediction, inputs + decoder._output_change(new_hidden, False))

    # With no edge at all, the reference form's gates and candidate read the input alone:
    # h' = (1 - i(x)) * n(x) + i(x) * h, so h'(h) + h'(-h) = 2 (1 - i(x)) n(x). The standard
    # GRU's candidate reads h as well, which breaks that identity.
    empty = tf.one_hot(tf.zeros([3, EDGES], tf.int32), EDGE_TYPES)
    reference = _decoder("rnn", skip_first=True)
    kernel_x, bias_x = (w.numpy() for w in reference.input_gates.weights)
    _, gate_x, candidate_x = np.split(inputs.numpy() @ kernel_x + bias_x, 3, axis=-1)
    without_memory = 2 * (1 - sigmoid(gate_x)) * np.tanh(candidate_x)
    _close(reference._predict(inputs, hidden, empty, False)[1]
           + reference._predict(inputs, -hidden, empty, False)[1], without_memory)
    own = decoder._predict(inputs, hidden, empty, False)[1] + decoder._predict(inputs, -hidden, empty, False)[1]
    gates_x = np.split(inputs.numpy() @ decoder.input_gates.kernel.numpy()
                       + decoder.input_gates.bias.numpy(), 3, axis=-1)
    assert np.abs(own.numpy() - 2 * (1 - sigmoid(gates_x[1])) * np.tanh(gates_x[2])).max() > 1e-3


def _round_trip_config(decoder, x, z, steps: int) -> dict:
    """The config of ``decoder`` rebuilt from its serialisation, after checking that the
    rebuilt decoder with the same weights predicts exactly as the original."""
    expected = decoder(x, z, prediction_steps=steps)
    clone = keras.layers.deserialize(keras.layers.serialize(decoder))
    clone(x, z, prediction_steps=steps)
    clone.set_weights(decoder.get_weights())
    _close(clone(x, z, prediction_steps=steps), expected, tol=0)
    return clone.get_config()


def test_gru_own_hidden_round_trips_and_belongs_to_the_rnn_decoder():
    config = NRIConfig(decoder="rnn", decoder_hidden=16, edge_types=EDGE_TYPES, gru_own_hidden=True)
    x, z = _data()
    assert _round_trip_config(decoder_from_config(config), x, z, 3)["own_hidden"] is True
    with pytest.raises(ConfigError, match="gru-own-hidden"):
        NRIConfig(decoder="mlp", gru_own_hidden=True).validate()


def test_gru_reads_change_feeds_the_last_change_over_the_change_scale_to_the_gru():
    scale = [0.5, 2.0, 0.0, 1e-3]
    decoder, inputs, hidden, z = _rnn_step(gru_reads_change=True, change_scale=scale)
    assert decoder.input_gates.kernel.shape == (2 * DIMS, 3 * 16)
    previous = inputs + tf.constant([0.1, -0.2, 0.3, 1e-4])
    prediction, (new_hidden, carried) = decoder._predict(inputs, (hidden, previous), z, training=False)
    _close(carried, inputs, tol=0)                       # the next step's previous frame
    # The formula of the reference GRU with x = [x_t, (x_t - x_{t-1}) / scale], a zero scale
    # giving a zero change (a feature that never moves).
    change = np.array([-0.1 / 0.5, 0.2 / 2.0, 0.0, -1e-4 / 1e-3], np.float32) * np.ones([3, NODES, 1], np.float32)
    aggregated = graph.edge_to_node(decoder.messages(hidden, z), divide_by_nodes=True).numpy()
    gates_x, gates_a = _gru_gates(decoder, tf.concat([inputs, change], -1), aggregated)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    reset, update = sigmoid(gates_x[0] + gates_a[0]), sigmoid(gates_x[1] + gates_a[1])
    candidate = np.tanh(gates_x[2] + reset * gates_a[2])
    _close(new_hidden, (1 - update) * candidate + update * hidden.numpy())
    _close(prediction, inputs + decoder._output_change(new_hidden, False))

    # The first frame has no change before it; burn-in and rollout give the training pass's
    # predictions; the option round-trips.
    x, _ = _data()
    first = decoder._initial_hidden(x)
    _close(first[1], x[:, :, 0], tol=0)
    expected = decoder(x, z, prediction_steps=4)
    state = decoder.burn_in(x[:, :, :FRAMES - 4], z)
    rolled, _ = decoder.rollout(state, z, 4)
    _close(rolled, expected[:, :, -4:])
    assert _round_trip_config(decoder, x, z, 4)["reads_change"] is True
    with pytest.raises(ConfigError, match="give --change-scale too"):
        NRIConfig(decoder="rnn", gru_reads_change=True).validate()
    with pytest.raises(ConfigError, match="gru-reads-change"):
        NRIConfig(decoder="mlp", gru_reads_change=True, change_scale=scale).validate()


@pytest.mark.parametrize("divisor", ["nodes", "dims"])
def test_rnn_message_divisor_divides_the_summed_messages_by_n_or_by_the_feature_count(divisor):
    decoder, inputs, hidden, z = _rnn_step(rnn_message_divisor=divisor)
    summed = graph.edge_to_node(decoder.messages(hidden, z)).numpy()
    gates_x, gates_a = _gru_gates(decoder, inputs, summed / {"nodes": NODES, "dims": DIMS}[divisor])
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    reset, update = sigmoid(gates_x[0] + gates_a[0]), sigmoid(gates_x[1] + gates_a[1])
    candidate = np.tanh(gates_x[2] + reset * gates_a[2])
    _, new_hidden = decoder._predict(inputs, hidden, z, training=False)
    _close(new_hidden, (1 - update) * candidate + update * hidden.numpy())

    clone = keras.layers.deserialize(keras.layers.serialize(decoder))
    assert clone.get_config()["message_divisor"] == divisor
    with pytest.raises(ConfigError, match="rnn-message-divisor"):
        NRIConfig(decoder="mlp", rnn_message_divisor="dims").validate()
