"""The NRI keras.Model: interface, fit/evaluate, prediction, any node count, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nri_tf import graph
from nri_tf.config import NRIConfig
from nri_tf.model import NRI

FRAMES = 16
BATCH = 4


def _config(**overrides):
    values = dict(frames=FRAMES, encoder_hidden=16, decoder_hidden=16, prediction_steps=4,
                  batch_size=BATCH)
    values.update(overrides)
    return NRIConfig(**values)


def _data(nodes=5, frames=FRAMES, systems=8, seed=0):
    x = tf.random.stateless_uniform([systems, nodes, frames, 4], seed=[seed, 0], minval=-1, maxval=1)
    labels = tf.cast(tf.random.stateless_uniform([systems, nodes * (nodes - 1)], seed=[seed, 1]) < 0.5,
                     tf.int32)
    return x, labels


@pytest.fixture(params=[("mlp", "mlp"), ("cnn", "rnn")], ids=["mlp-mlp", "cnn-rnn"])
def model(request):
    encoder, decoder = request.param
    return NRI(_config(encoder=encoder, decoder=decoder))


def test_call_returns_logits_probabilities_and_predictions(model):
    x, _ = _data()
    for training in (False, True):
        out = model(x, training=training)
        assert sorted(out) == ["edge_probs", "logits", "predictions"]
        assert out["logits"].shape == out["edge_probs"].shape == (8, 20, 2)
        np.testing.assert_allclose(tf.reduce_sum(out["edge_probs"], -1).numpy(), 1.0, rtol=1e-6)
        assert out["predictions"].shape == (8, 5, FRAMES - 1, 4)
    assert model.encode(x).shape == (8, 20, 2)


def test_fit_and_evaluate_report_the_named_metrics_and_saving_gives_identical_outputs(model, tmp_path):
    """One trained model (training traces the model, the slow part) for both: fit/evaluate
    metrics, then the saved model, weights file and checkpoint reproduce its outputs."""
    x, labels = _data()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    labelled = tf.data.Dataset.from_tensor_slices((x, labels)).batch(BATCH)
    history = model.fit(labelled, validation_data=labelled, epochs=2, shuffle=False, verbose=0).history
    for name in ("loss", "nll", "kl", "mse", "edge_accuracy"):
        assert len(history[name]) == 2 and len(history["val_" + name]) == 2
        assert np.isfinite(history[name]).all()
    unlabelled = tf.data.Dataset.from_tensor_slices(x).batch(BATCH)
    history = model.fit(unlabelled, epochs=1, shuffle=False, verbose=0).history
    assert sorted(history) == ["kl", "loss", "mse", "nll"]
    results = model.evaluate(unlabelled, return_dict=True, verbose=0)
    assert results["loss"] == pytest.approx(results["nll"] + results["kl"], rel=1e-4)

    # Saving the trained model: .keras file, weights file, tf.train.Checkpoint.
    path = str(tmp_path / "nri.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, NRI) and restored.nri_config == model.nri_config
    assert restored.compiled and restored.jit_compile is False
    _assert_same_outputs(model, restored, x)

    weights = str(tmp_path / "nri.weights.h5")
    model.save_weights(weights)
    fresh = NRI(model.nri_config)
    fresh(x)
    fresh.load_weights(weights)
    _assert_same_outputs(model, fresh, x)

    checkpoint = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    fresh = NRI(model.nri_config)
    fresh(x)
    tf.train.Checkpoint(model=fresh).restore(checkpoint).expect_partial()
    _assert_same_outputs(model, fresh, x)


def test_jit_compiled_training_runs():
    model = NRI(_config(hard=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    x, labels = _data()
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, labels)).batch(BATCH), epochs=1,
                        shuffle=False, verbose=0).history
    assert model.jit_compile and np.isfinite(history["loss"]).all()


def test_labels_are_never_used_for_training():
    x, labels = _data()
    weights = []
    for these_labels in (labels, 1 - labels):
        keras.utils.set_random_seed(3)
        model = NRI(_config())
        model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)  # no tracing: fast
        model.fit(tf.data.Dataset.from_tensor_slices((x, these_labels)).batch(BATCH), epochs=1,
                  shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_predict_future(model):
    x, _ = _data(frames=FRAMES + 6)
    context = x[:, :, :FRAMES]
    predicted = model.predict_future(context, 6)
    assert predicted.shape == (8, 5, 6, 4)
    np.testing.assert_array_equal(predicted.numpy(), model.predict_future(context, 6).numpy())
    dynamic = model.predict_future(context, 6, dynamic_graph=True)
    assert dynamic.shape == (8, 5, 6, 4)
    np.testing.assert_allclose(dynamic[:, :, :1].numpy(), predicted[:, :, :1].numpy(), rtol=1e-5,
                               atol=1e-6)   # the first window is the static one
    longer = model.predict_future(x, 2)     # longer contexts: the encoder reads the last frames
    assert longer.shape == (8, 5, 2, 4)
    # The reference's window over recorded frames, ending one frame before the decoder's
    # input: the first two predictions use the context's graph (the static one), later ones
    # read recorded frames, which here are far from anything the model predicts.
    recorded = tf.concat([context, 10 * x[:, :, FRAMES:FRAMES + 4]], axis=2)
    oracle = model.predict_future(context, 6, dynamic_graph=True, recorded=recorded)
    np.testing.assert_allclose(oracle[:, :, :2].numpy(), predicted[:, :, :2].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(oracle.numpy(), predicted.numpy(), rtol=1e-5, atol=1e-6)
    # Prediction 6's window ends before recorded frame FRAMES + 4: what follows is not read.
    longer = tf.concat([recorded, -10 * x[:, :, :2]], axis=2)
    np.testing.assert_array_equal(model.predict_future(context, 6, dynamic_graph=True, recorded=longer).numpy(),
                                  oracle.numpy())
    with pytest.raises(ValueError, match=f"needs the {FRAMES} context frames and 4 more"):
        model.predict_future(context, 6, dynamic_graph=True, recorded=recorded[:, :, :FRAMES + 3])
    with pytest.raises(ValueError, match="dynamic_graph=True"):
        model.predict_future(context, 6, recorded=recorded)


def test_predict_future_uses_the_inferred_graph_and_the_last_context_frame():
    model = NRI(_config())
    x, _ = _data()
    edges = tf.one_hot(tf.argmax(model.encode(x), -1), 2)
    expected, _ = model.decoder.rollout(x[:, :, -1], edges, 3)
    np.testing.assert_allclose(model.predict_future(x, 3).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_model_built_on_5_nodes_runs_on_10(model):
    x5, _ = _data(nodes=5)
    x10, labels10 = _data(nodes=10)
    model(x5)
    out = model(x10)
    assert out["logits"].shape == (8, 90, 2) and out["predictions"].shape == (8, 10, FRAMES - 1, 4)
    assert model.predict_future(x10, 3).shape == (8, 10, 3, 4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    results = model.evaluate(tf.data.Dataset.from_tensor_slices((x10, labels10)).batch(BATCH),
                             return_dict=True, verbose=0)
    assert 0.0 <= results["edge_accuracy"] <= 1.0


def test_input_errors_name_the_problem():
    model = NRI(_config())
    with pytest.raises(ValueError, match="rank 4"):
        model(tf.zeros([5, FRAMES, 4]))
    with pytest.raises(ValueError, match="dims=4"):
        model(tf.zeros([2, 5, FRAMES, 6]))
    with pytest.raises(ValueError, match=f"reads {FRAMES} frames"):
        model.predict_future(tf.zeros([2, 5, FRAMES - 2, 4]), 3)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        model.predict_future(tf.zeros([2, 5, FRAMES, 4]), 0)


def test_config_round_trip():
    config = _config(encoder="cnn", decoder="rnn", skip_first=True, edge_types=4,
                     prior=[0.91, 0.03, 0.03, 0.03])
    model = NRI(config)
    clone = NRI.from_config(model.get_config())
    assert clone.nri_config == config
    assert NRI(config.to_dict()).nri_config == config


def _assert_same_outputs(model, restored, x):
    np.testing.assert_array_equal(model.encode(x).numpy(), restored.encode(x).numpy())
    np.testing.assert_array_equal(model.predict_future(x, 3).numpy(), restored.predict_future(x, 3).numpy())
    # Evaluation samples edge types: give both the same sampling seed state.
    restored.sampling_seed.state.assign(model.sampling_seed.state)
    expected, got = model(x), restored(x)
    for key, value in expected.items():
        np.testing.assert_array_equal(value.numpy(), got[key].numpy())


def test_auto_jit_compile_follows_the_cpu_measurements():
    fast_with_xla = NRI(_config())
    fast_with_xla.compile(optimizer="adam")
    assert fast_with_xla.jit_compile is True
    rnn_decoder = NRI(_config(decoder="rnn"))
    rnn_decoder.compile(optimizer="adam")
    assert rnn_decoder.jit_compile is True
    slower_with_xla = NRI(_config(encoder="cnn"))
    slower_with_xla.compile(optimizer="adam")
    assert not slower_with_xla.jit_compile
    bfloat16 = NRI(_config(precision="bfloat16"))
    bfloat16.compile(optimizer="adam")
    assert not bfloat16.jit_compile
    explicit = NRI(_config())
    explicit.compile(optimizer="adam", jit_compile=False)
    assert explicit.jit_compile is False


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_symmetric_model_gives_both_directions_of_a_pair_the_same_logits(encoder):
    x, _ = _data()
    reverse = graph.reverse_edges(5).numpy()
    symmetric = NRI(_config(encoder=encoder, symmetric=True))
    logits = symmetric(x, training=True)["logits"].numpy()
    np.testing.assert_allclose(logits, logits[:, reverse], rtol=1e-6)
    directed = NRI(_config(encoder=encoder)).encode(x).numpy()
    assert np.abs(directed - directed[:, reverse]).max() > 1e-3          # the paper's model is directed


@pytest.mark.parametrize("jit_compile", [False, True])
def test_bfloat16_decoder_trains_with_float32_weights_and_loss(jit_compile):
    keras.utils.set_random_seed(0)
    model = NRI(_config(precision="bfloat16"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    x, labels = _data(systems=16)
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(BATCH)
    losses = model.fit(data, epochs=4, shuffle=False, verbose=0).history["loss"]
    assert {v.dtype for v in model.weights} == {"float32"}
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]
    assert model(x[:1])["predictions"].dtype == tf.float32


# --- candidate edges ----------------------------------------------------------------------

@pytest.mark.parametrize("encoder,decoder", [("mlp", "mlp"), ("cnn", "rnn"), ("mlp", "rnn")])
def test_complete_candidates_give_the_complete_graph_numbers(encoder, decoder):
    """The complete graph passed as candidate edges runs the candidate code path and gives
    exactly the fast path's logits, predictions, losses and accuracy."""
    x, labels = _data(systems=BATCH)
    model = NRI(_config(encoder=encoder, decoder=decoder, skip_first=True))
    model(x)
    candidates = {"senders": graph.complete_candidate_edges(BATCH, 5).senders}
    for training in (False, True):
        model.sampling_seed.state.assign([7, 0])
        dense = model(x, training=training)
        model.sampling_seed.state.assign([7, 0])
        sparse = model(x, training=training, candidates=candidates)
        for name in ("logits", "predictions"):
            np.testing.assert_array_equal(sparse[name].numpy(), dense[name].numpy())
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.sampling_seed.state.assign([7, 0])
    dense = model.evaluate(tf.data.Dataset.from_tensors((x, labels)), return_dict=True, verbose=0)
    model.sampling_seed.state.assign([7, 0])
    sparse = model.evaluate(tf.data.Dataset.from_tensors((x, labels, candidates)), return_dict=True,
                            verbose=0)
    assert dense == sparse


def test_padding_slots_change_nothing_but_the_edge_count():
    """A candidate list padded with masked slots gives the unpadded list's logits on the
    real edges, and the decoder the same predictions from the same edge weights."""
    x, _ = _data(systems=BATCH)
    model = NRI(_config(encoder="cnn", decoder="mlp", skip_first=True))
    model(x)
    senders = np.tile(np.array([[[(i + 1) % 5, (i + 3) % 5] for i in range(5)]], np.int32), [BATCH, 1, 1])
    padded = np.concatenate([senders, np.zeros([BATCH, 5, 1], np.int32)], axis=2)
    mask = np.concatenate([np.ones([BATCH, 5, 2]), np.zeros([BATCH, 5, 1])], axis=2).astype(np.float32)
    for training in (False, True):
        plain = model.encoder(x, training=training, edges=graph.CandidateEdges(tf.constant(senders)))
        masked = model.encoder(x, training=training,
                               edges=graph.CandidateEdges(tf.constant(padded), tf.constant(mask)))
        np.testing.assert_allclose(masked.numpy().reshape(BATCH, 5, 3, 2)[:, :, :2],
                                   plain.numpy().reshape(BATCH, 5, 2, 2), atol=1e-5)
    weights = tf.one_hot(tf.random.stateless_uniform([BATCH, 5, 2], [1, 2], 0, 2, tf.int32), 2)
    padded_weights = tf.concat([weights, tf.one_hot(tf.ones([BATCH, 5, 1], tf.int32), 2)], axis=2)
    plain = model.decoder(x, tf.reshape(weights, [BATCH, 10, 2]), prediction_steps=4,
                          edges=graph.CandidateEdges(tf.constant(senders)))
    masked = model.decoder(x, tf.reshape(padded_weights, [BATCH, 15, 2]), prediction_steps=4,
                           edges=graph.CandidateEdges(tf.constant(padded), tf.constant(mask)))
    np.testing.assert_array_equal(masked.numpy(), plain.numpy())


def test_candidate_model_trains_reports_recall_and_predicts():
    x, _ = _data(nodes=6, systems=BATCH)
    senders = np.tile(np.array([[[(i + 1) % 6, (i + 5) % 6] for i in range(6)]], np.int32), [BATCH, 1, 1])
    labels = tf.cast(tf.random.stateless_uniform([BATCH, 12], [3, 4]) < 0.5, tf.int32)
    interactions = tf.reduce_sum(labels, axis=1) + 2          # 2 true edges per system missed
    candidates = {"senders": senders, "interactions": interactions}
    model = NRI(_config(candidate_edges="knn", candidate_k=2, skip_first=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    data = tf.data.Dataset.from_tensors((x, labels, candidates))
    history = model.fit(data, validation_data=data, epochs=2, shuffle=False, verbose=0).history
    found = float(tf.reduce_sum(labels))
    assert history["candidate_recall"][-1] == pytest.approx(found / (found + 2 * BATCH))
    assert np.isfinite(history["val_edge_accuracy"]).all()
    assert model.encode(x, candidates).shape == (BATCH, 12, 2)
    assert model.predict_future(x, 3, candidates=candidates).shape == (BATCH, 6, 3, 4)


def test_symmetric_model_on_candidates_ties_the_pairs_that_are_candidates_both_ways():
    x, _ = _data(systems=BATCH)
    model = NRI(_config(symmetric=True))
    model(x)
    complete = graph.complete_candidate_edges(BATCH, 5)
    np.testing.assert_allclose(model.encode(x, complete).numpy(), model.encode(x).numpy(), atol=1e-5)
    # a ring: node i receives from i + 1 and i - 1, so every pair is a candidate both ways
    ring = np.tile(np.array([[[(i + 1) % 5, (i + 4) % 5] for i in range(5)]], np.int32), [BATCH, 1, 1])
    logits = model.encode(x, graph.CandidateEdges(tf.constant(ring))).numpy().reshape(BATCH, 5, 2, -1)
    for i in range(5):       # (i, i+1) is slot 0 of receiver i, (i+1, i) slot 1 of receiver i+1
        np.testing.assert_allclose(logits[:, i, 0], logits[:, (i + 1) % 5, 1], rtol=1e-5)
    predictions = model(x, training=True, candidates={"senders": ring})["predictions"]
    assert np.isfinite(predictions.numpy()).all()


# --- relative positions (translation invariance) ------------------------------------------

@pytest.mark.parametrize("encoder, on_candidates", [("mlp", True), ("cnn", False)])
def test_relative_positions_make_the_model_translation_invariant(encoder, on_candidates):
    """With --relative-positions, moving a whole system (its x, y) leaves the edge logits
    unchanged and moves every prediction by the same amount; the paper's model changes."""
    x, _ = _data(systems=BATCH)
    shift = tf.constant([7.0, -4.0, 0.0, 0.0])
    candidates = None
    if on_candidates:
        senders = np.tile(np.array([[[(i + 1) % 5, (i + 3) % 5] for i in range(5)]], np.int32), [BATCH, 1, 1])
        candidates = {"senders": senders}
    relative = NRI(_config(encoder=encoder, relative_positions=True, position_dims=2))
    absolute = NRI(_config(encoder=encoder, position_dims=2))
    relative(x)
    absolute(x)
    np.testing.assert_allclose(relative.encode(x + shift, candidates).numpy(),
                               relative.encode(x, candidates).numpy(), atol=2e-5)
    assert np.abs(absolute.encode(x + shift, candidates).numpy() - absolute.encode(x, candidates).numpy()).max() > 1e-2
    moved = relative.predict_future(x + shift, 3, candidates=candidates)
    np.testing.assert_allclose(moved.numpy(), (relative.predict_future(x, 3, candidates=candidates) + shift).numpy(),
                               atol=1e-4)
    trained = relative(x + shift, training=True, candidates=candidates)["predictions"]
    assert trained.shape == (BATCH, 5, FRAMES - 1, 4)
    clone = NRI.from_config(relative.get_config())          # what saving and export rebuild
    clone(x)
    clone.set_weights(relative.get_weights())
    _assert_same_outputs(relative, clone, x)


def test_relative_positions_need_positions_and_a_decoder_that_reads_them():
    from nri_tf.config import ConfigError
    with pytest.raises(ConfigError, match="position features"):
        _config(relative_positions=True, position_dims=0).validate()       # e.g. Kuramoto
    with pytest.raises(ConfigError, match="position features"):
        _config(relative_positions=True, position_dims=4).validate()       # nothing but positions
    with pytest.raises(ConfigError, match="rnn decoder"):
        _config(relative_positions=True, position_dims=2, decoder="rnn").validate()


def test_inverse_square_messages_are_built_saved_and_checked():
    from nri_tf.config import ConfigError

    x, _ = _data(systems=BATCH)
    model = NRI(_config(inverse_square=True, relative_positions=True, position_dims=2))
    model(x)
    assert model.decoder.messages.kernel1.shape[1] == 2 * 4        # [vx, vy] x 2, d, its inverse square
    clone = NRI.from_config(model.get_config())              # what saving and export rebuild
    clone(x)
    clone.set_weights(model.get_weights())
    _assert_same_outputs(model, clone, x)
    with pytest.raises(ConfigError, match="position features"):
        _config(inverse_square=True, position_dims=0).validate()             # e.g. Kuramoto
    with pytest.raises(ConfigError, match="mlp decoder"):
        _config(inverse_square=True, position_dims=2, decoder="rnn").validate()


def test_edge_type_shares_count_the_most_likely_type_of_every_real_edge():
    from nri_tf.evaluation import edge_type_shares

    x, labels = _data(systems=BATCH)
    model = NRI(_config(edge_types=3))
    model(x)
    types = tf.argmax(model.encode(x), -1).numpy()
    shares = edge_type_shares(model, tf.data.Dataset.from_tensors((x, labels)), FRAMES)
    np.testing.assert_allclose(shares, np.bincount(types.ravel(), minlength=3) / types.size)
    # Candidates: padding slots are not edges.
    senders = np.tile(np.array([[[(i + 1) % 5, (i + 3) % 5] for i in range(5)]], np.int32), [BATCH, 1, 1])
    mask = np.ones([BATCH, 5, 2], np.float32)
    mask[:, 0, 1] = 0.0
    candidates = {"senders": senders, "mask": mask}
    types = tf.argmax(model.encode(x, candidates), -1).numpy().reshape(BATCH, 5, 2)[mask > 0]
    shares = edge_type_shares(model, tf.data.Dataset.from_tensors((x, labels, candidates)), FRAMES)
    np.testing.assert_allclose(shares, np.bincount(types, minlength=3) / types.size)


def test_graph_likelihoods_score_the_true_graph_in_the_models_own_type_names():
    from nri_tf import losses
    from nri_tf.evaluation import inferred_edges, graph_likelihoods

    x, _ = _data(systems=BATCH)
    model = NRI(_config(edge_types=2))
    model(x)
    types = tf.argmax(model.encode(x), -1, output_type=tf.int32)

    def scores(labels):
        dataset = tf.data.Dataset.from_tensors((x, labels))
        return graph_likelihoods(model, inferred_edges(model, dataset, FRAMES))

    by_hand = losses.nll_gaussian(model.decoder(x, tf.one_hot(types, 2), prediction_steps=1), x[:, :, 1:], 5e-5)
    # Labels that are the encoder's graph with the type names swapped: the same graph.
    same = scores(1 - types)
    np.testing.assert_allclose(same["nll_inferred_graph"], float(by_hand), rtol=1e-5)
    np.testing.assert_allclose(same["nll_true_graph"], same["nll_inferred_graph"], rtol=1e-6)
    # Another graph (a third of the edges changed; the relabelling stays the identity).
    other = types.numpy().copy()
    other[:, ::3] = 1 - other[:, ::3]
    different = scores(other)
    expected = tf.reduce_mean(model.nll_on_graph(x, other)) / 5      # per node
    np.testing.assert_allclose(different["nll_true_graph"], float(expected), rtol=1e-5)
    assert different["nll_true_graph"] != different["nll_inferred_graph"]


def test_a_given_graph_rolls_out_like_the_inferred_one_and_refinement_from_it_changes_nothing():
    from nri_tf.evaluation import prediction_mse, refined_evaluation

    x, labels = _data(frames=FRAMES + 3, systems=BATCH)
    model = NRI(_config())
    model(x[:, :, :FRAMES])
    context = x[:, :, :FRAMES]
    types = tf.argmax(model.encode(context), -1)
    np.testing.assert_allclose(model.predict_future(context, 3, edge_types=types).numpy(),
                               model.predict_future(context, 3).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="dynamic_graph"):
        model.predict_future(context, 3, dynamic_graph=True, edge_types=types)
    # Zero sweeps keep the encoder's graphs: the same predictions as the plain evaluation's.
    dataset = tf.data.Dataset.from_tensors((x, labels))
    told = []
    refined = refined_evaluation(model, dataset, FRAMES, sweeps=0, horizon=3, progress=told.append)
    assert told == [BATCH]                                    # the systems done after each batch
    plain = prediction_mse(lambda c, l: model.predict_future(c, 3), dataset, FRAMES, 3)
    assert refined["changed"] == 0.0
    np.testing.assert_allclose(refined["mse_per_step"], plain["mse_per_step"], rtol=1e-6)


class _ClosenessEncoder:
    """A stand-in model whose encoder calls an edge type 1 when its two nodes come within
    ``threshold`` (normalised units) over the window, else type 0."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.nri_config = NRIConfig(edge_types=2, skip_first=True)

    def encode(self, window, candidates=None):
        edges = graph.CandidateEdges.from_batch(candidates)
        shape = tf.shape(window)
        offsets = graph.sender_minus_receiver(tf.reshape(window[..., :2], [shape[0], shape[1], -1]), edges)
        closest = tf.reduce_min(tf.norm(tf.reshape(offsets, [shape[0], -1, shape[2], 2]), axis=-1), axis=-1)
        return tf.one_hot(tf.cast(closest < self.threshold, tf.int32), 2)


def test_accuracy_by_closest_approach_bins_edges_by_how_near_their_nodes_came():
    from data_pipelines.normalisation import Normaliser
    from nri_tf.evaluation import accuracy_by_closest_approach

    x, _ = _data(systems=BATCH)
    receivers, senders = (t.numpy() for t in graph.edge_indices(5))
    closest = np.linalg.norm(x.numpy()[:, senders, :, :2] - x.numpy()[:, receivers, :, :2], axis=-1).min(-1)
    threshold = float(np.median(closest))
    labels = np.ones_like(closest, np.int32)                 # every pair interacts
    normaliser = Normaliser([-3.0] * 4, [3.0] * 4)           # data units = 3 x normalised
    rows = accuracy_by_closest_approach(_ClosenessEncoder(threshold), tf.data.Dataset.from_tensors((x, labels)),
                                        FRAMES, normaliser, position_dims=2, bins=2)
    np.testing.assert_allclose([rows[0]["from"], rows[0]["to"], rows[1]["to"]],
                               3 * np.array([closest.min(), threshold, closest.max()]), rtol=1e-5)
    # Near pairs are called interacting, far ones not: right in the first half, wrong in the second.
    assert [row["accuracy"] for row in rows] == [1.0, 0.0] and [row["share"] for row in rows] == [0.5, 0.5]
    # Candidate padding slots are no edges: only the real ones are binned.
    senders_c = np.tile(np.array([[[(i + 1) % 5, (i + 3) % 5] for i in range(5)]], np.int32), [BATCH, 1, 1])
    mask = np.ones([BATCH, 5, 2], np.float32)
    mask[:, :, 1] = 0.0
    candidates = {"senders": senders_c, "mask": mask}
    rows = accuracy_by_closest_approach(_ClosenessEncoder(1e9), tf.data.Dataset.from_tensors(
        (x, np.ones([BATCH, 10], np.int32), candidates)), FRAMES, normaliser, position_dims=2, bins=1)
    first = np.linalg.norm(x.numpy()[:, (np.arange(5) + 1) % 5, :, :2] - x.numpy()[:, :, :, :2], axis=-1).min(-1)
    np.testing.assert_allclose([rows[0]["from"], rows[0]["to"]], 3 * np.array([first.min(), first.max()]), rtol=1e-5)
    assert rows[0]["accuracy"] == 1.0
    # Nodes that all sit on one spot tie every bin edge: one bin, no empty (NaN) ones.
    rows = accuracy_by_closest_approach(_ClosenessEncoder(1.0), tf.data.Dataset.from_tensors(
        (tf.zeros_like(x), labels)), FRAMES, normaliser, position_dims=2)
    assert len(rows) == 1 and rows[0]["share"] == 1.0 and rows[0]["accuracy"] == 1.0
