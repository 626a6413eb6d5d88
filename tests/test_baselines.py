"""The paper's baselines: correlation thresholds, LSTMs, NRI on fixed graphs, Static."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.contract import edge_labels_from_matrix
from nri_tf.baselines.correlation import best_threshold, correlation_scores, fit_threshold_rule
from nri_tf.baselines.lstm import LSTMPredictor
from nri_tf.baselines.predictors import static_prediction
from nri_tf.config import NRIConfig
from nri_tf.model import NRI

NODES, FRAMES, DIMS = 5, 49, 4


def test_correlation_scores_are_pearson_per_edge():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3, 4, 30))
    features[1, 2] = 2 * features[1, 0] + 1           # perfectly correlated pair
    scores = correlation_scores(features)
    expected = edge_labels_from_matrix(np.stack([np.corrcoef(f) for f in features]))
    np.testing.assert_allclose(scores, expected, atol=1e-12)
    receivers_senders = [(r, s) for r in range(4) for s in range(4) if r != s]
    assert scores[1, receivers_senders.index((2, 0))] == pytest.approx(1.0)
    constant = np.ones((1, 3, 5))
    np.testing.assert_array_equal(correlation_scores(constant), 0.0)


def test_best_threshold_on_a_hand_made_example():
    # Sorted: 0.1 (no), 0.35 (no), 0.4 (edge), 0.8 (edge): the split lies between 0.35 and 0.4.
    theta, accuracy = best_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 1, 0, 1]))
    assert theta == pytest.approx(0.375) and accuracy == 1.0
    # No split separates these; the best one gets 3 of 4 right.
    theta, accuracy = best_threshold(np.array([0.2, 0.5, 0.7, 0.9]), np.array([0, 1, 0, 1]))
    assert accuracy == 0.75 and 0.7 < theta < 0.9 or 0.2 < theta < 0.5
    # Ties cannot be split: everything above or nothing.
    theta, accuracy = best_threshold(np.array([0.3, 0.3, 0.3]), np.array([1, 1, 0]))
    assert accuracy == pytest.approx(2 / 3) and theta < 0.3


def test_absolute_correlation_wins_when_edges_anti_correlate():
    scores = np.array([[-0.9, 0.9, 0.1, -0.1, -0.8, 0.05]])
    labels = np.array([[1, 1, 0, 0, 1, 0]])
    rule = fit_threshold_rule(scores, labels)
    assert rule.absolute and rule.fit_accuracy == 1.0 and 0.1 < rule.threshold < 0.8
    np.testing.assert_array_equal(rule.predict(scores), labels)
    assert rule.accuracy(np.array([[0.95, -0.02]]), np.array([[1, 0]])) == 1.0
    raw = fit_threshold_rule(np.array([[0.9, 0.8, 0.1, 0.2]]), np.array([[1, 2, 0, 0]]))  # type 2 = edge too
    assert not raw.absolute and raw.fit_accuracy == 1.0


def test_static_prediction_repeats_the_last_frame():
    context = tf.reshape(tf.range(2 * 3 * 4 * 2, dtype=tf.float32), [2, 3, 4, 2])
    predicted = static_prediction(context, 5).numpy()
    assert predicted.shape == (2, 3, 5, 2)
    np.testing.assert_array_equal(predicted, np.repeat(context.numpy()[:, :, -1:], 5, axis=2))


@pytest.mark.parametrize("joint", [False, True])
def test_lstm_predictor_shapes_and_burn_in(joint):
    keras.utils.set_random_seed(0)
    predictor = LSTMPredictor(DIMS, 8, joint=joint, num_nodes=NODES)
    trajectories = tf.random.normal([3, NODES, 12, DIMS])
    predictions = predictor(trajectories, None, prediction_steps=4)
    assert predictions.shape == (3, NODES, 11, DIMS)
    # The first 8 inputs are ground truth: predictions up to there do not depend on later frames.
    changed = tf.concat([trajectories[:, :, :8], trajectories[:, :, 8:] + 1.0], axis=2)
    np.testing.assert_allclose(predictor(changed, None, prediction_steps=4)[:, :, :8], predictions[:, :, :8],
                               atol=1e-6)
    assert predictor.final_features(trajectories).shape == (3, NODES, 8)
    state = predictor.burn_in(trajectories, None)
    future, _ = predictor.rollout(state, None, 3)
    assert future.shape == (3, NODES, 3, DIMS)
    if not joint:   # one shared LSTM per node: any node count
        assert predictor(tf.random.normal([2, 7, 12, DIMS]), None).shape == (2, 7, 11, DIMS)
    else:
        with pytest.raises(ValueError, match="built for 5 nodes"):
            predictor(tf.random.normal([2, 7, 12, DIMS]), None)


def _held_out_scores(model, data):
    """(held-out NLL, MSE of a 10-frame rollout after 39 context frames)."""
    held_out = tf.data.Dataset.from_tensor_slices((data["x_test"], data["y_test"])).batch(100)
    nll = model.evaluate(held_out, return_dict=True, verbose=0)["nll"]
    predicted = model.predict_future(tf.constant(data["x_test"][:, :, :39]), 10,
                                     edge_labels=data["y_test"]).numpy()
    return nll, float(np.mean((predicted - data["x_test"][:, :, 39:49]) ** 2))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm_single", "lstm_joint", "full_graph", "true_graph"])
def test_baseline_predictors_learn(springs5_small, kind):
    """Each Table 2 baseline lowers its held-out NLL and its 10-step rollout error."""
    keras.utils.set_random_seed(0)
    config = NRIConfig(decoder_hidden=32, edge_types=2, prediction_steps=10)
    if kind.startswith("lstm"):
        predictor, graph = LSTMPredictor(DIMS, 32, joint=kind == "lstm_joint", num_nodes=NODES), "none"
    else:
        predictor, graph = None, kind.split("_")[0]
    model = NRI(config, graph_source=graph, decoder=predictor)
    data = springs5_small
    model(tf.constant(data["x_train"][:1]), tf.constant(data["y_train"][:1]))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    assert [m.name for m in model.metrics] == ["loss", "nll", "mse"] and model.encoder is None
    nll_before, rollout_before = _held_out_scores(model, data)
    train = tf.data.Dataset.from_tensor_slices((data["x_train"], data["y_train"])).batch(32)
    model.fit(train, epochs=3, shuffle=False, verbose=0)
    nll_after, rollout_after = _held_out_scores(model, data)
    assert nll_after < 0.5 * nll_before, (nll_before, nll_after)
    assert rollout_after < 0.5 * rollout_before, (rollout_before, rollout_after)


def test_true_graph_needs_labels_and_full_graph_uses_the_last_type():
    config = NRIConfig(decoder_hidden=8, edge_types=3)
    trajectories = tf.zeros([2, 4, 6, DIMS])
    full = NRI(config, graph_source="full")
    np.testing.assert_array_equal(full.fixed_edge_weights(trajectories).numpy()[..., 2], 1.0)
    true = NRI(config, graph_source="true")
    labels = tf.constant([[0, 1, 2] * 4, [2, 2, 1] * 4])
    np.testing.assert_array_equal(np.argmax(true.fixed_edge_weights(trajectories, labels), -1),
                                  labels.numpy())
    with pytest.raises(ValueError, match="needs the edge labels"):
        true.fixed_edge_weights(trajectories, None)
    with pytest.raises(ValueError, match="learned graph"):
        true.predict_future(trajectories, 2, dynamic_graph=True, edge_labels=labels)
    with pytest.raises(ValueError, match="graph_source must be one of"):
        NRI(config, graph_source="sometimes")


def test_a_fixed_graph_model_with_its_own_decoder_survives_a_config_round_trip():
    model = NRI(NRIConfig(), graph_source="none", decoder=LSTMPredictor(DIMS, 8))
    clone = NRI.from_config(model.get_config())
    assert clone.graph_source == "none" and isinstance(clone.decoder, LSTMPredictor)
    assert clone.decoder.hidden == 8


def test_lstm_joint_config_round_trip_keeps_the_node_count_also_under_its_old_key():
    config = LSTMPredictor(DIMS, 8, joint=True, num_nodes=NODES).get_config()
    assert config["num_nodes"] == NODES and "nodes" not in config
    assert LSTMPredictor.from_config(config).num_nodes == NODES
    old = {key: value for key, value in config.items() if key != "num_nodes"}
    restored = LSTMPredictor.from_config({**old, "nodes": NODES})   # saved before the rename
    assert restored.num_nodes == NODES and restored.units == 8 * NODES and restored.joint


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_supervised_encoder_trains_with_the_callers_dropout(dropout):
    from nri_tf.baselines.supervised import supervised_encoder
    from nri_tf.cli.budgets import budgets

    model = supervised_encoder(NRIConfig(dims=4, frames=6, encoder_hidden=8), 5, 1e-3, dropout)
    x = tf.ones([2, 5, 6, 4])
    # Dropout makes training-mode outputs vary between calls; without it they are equal.
    differs = not np.allclose(model(x, training=True).numpy(), model(x, training=True).numpy())
    assert differs == (dropout > 0)
    assert {name: b.supervised_dropout for name, b in budgets().items()} == {"smoke": 0.0, "cpu": 0.0, "paper": 0.5}


def test_supervised_encoder_scores_only_the_real_candidate_edges():
    from nri_tf.baselines.supervised import supervised_encoder

    keras.utils.set_random_seed(3)
    model = supervised_encoder(NRIConfig(dims=4, frames=6, encoder_hidden=8), 5, 1e-3, 0.0)
    x = tf.random.stateless_uniform([2, 5, 6, 4], seed=[1, 2])
    # Two candidate senders per node; the second slot of nodes 3 and 4 is padding.
    senders = tf.constant([[[1, 2], [0, 2], [0, 1], [4, 0], [3, 0]]] * 2)
    mask = tf.constant([[[1, 1], [1, 1], [1, 1], [1, 0], [1, 0]]] * 2, tf.float32)
    candidates = {"senders": senders, "mask": mask}
    logits = model(x, candidates).numpy()                                   # [2, 10, 2]
    labels = np.array([[0, 1, 1, 0, 0, 1, 1, 0, 0, 1]] * 2)
    real = tf.reshape(mask, [2, 10]).numpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    expected_loss = (cross_entropy * real).sum() / real.sum()
    expected_accuracy = ((logits.argmax(-1) == labels) * real).sum() / real.sum()
    got = model.evaluate(tf.data.Dataset.from_tensors((x, labels, candidates)), return_dict=True, verbose=0)
    np.testing.assert_allclose([got["loss"], got["accuracy"]], [expected_loss, expected_accuracy], rtol=1e-5)
    # Labels in the padding slots change nothing.
    padded = np.where(real > 0, labels, 1 - labels)
    again = model.evaluate(tf.data.Dataset.from_tensors((x, padded, candidates)), return_dict=True, verbose=0)
    np.testing.assert_allclose([again["loss"], again["accuracy"]], [got["loss"], got["accuracy"]], rtol=1e-6)
