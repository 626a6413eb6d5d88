"""Learning on small springs5 sets: the encoder, the decoder and the whole model can learn.

These train real (small) models, so they take seconds to tens of seconds each on 2 cores.
They check what the parts are for rather than exact numbers:
  * the encoder, trained supervised on the true edges, recovers held-out graphs (>= 95%);
  * a decoder trained with the true graph predicts held-out systems clearly better given
    the true graph than given the empty or the complete graph, so it uses the graph;
  * unsupervised NRI training lowers the reconstruction NLL epoch after epoch, and the
    skip_first + sparsity-prior variant trains without NaNs;
  * KL warm-up trains on the nll alone at first.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from nri_tf import metrics
from nri_tf.builders import decoder_from_config, encoder_from_config
from nri_tf.config import NRIConfig
from nri_tf.model import NRI
from nri_tf.presets import reference_prior
from trainers import loop

NODES, FRAMES, DIMS = 5, 49, 4
EDGES = NODES * (NODES - 1)


@pytest.mark.slow
def test_supervised_encoder_recovers_held_out_springs_graphs(springs5):
    """The paper's "Supervised" baseline in miniature: cross-entropy on the true edges."""
    keras.utils.set_random_seed(0)
    config = NRIConfig(encoder_hidden=64, edge_types=2)
    epochs, batch = 14, 32
    steps = epochs * len(springs5["x_train"]) // batch
    model = keras.Sequential([keras.Input((NODES, FRAMES, DIMS)), encoder_from_config(config)])
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.1)
    model.compile(keras.optimizers.Adam(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(springs5["x_train"], springs5["y_train"], batch_size=batch, epochs=epochs, verbose=0)
    logits = model(springs5["x_test"], training=False)
    accuracy = float(metrics.edge_accuracy(logits, springs5["y_test"]))
    assert accuracy >= 0.95, f"held-out edge accuracy {accuracy:.3f}"


def _graph(labels, kind):
    """One-hot edge weights [systems, edges, 2]: the true graph, no edges, or all edges."""
    labels = tf.convert_to_tensor(labels)
    types = {"true": labels, "empty": tf.zeros_like(labels), "complete": tf.ones_like(labels)}[kind]
    return tf.one_hot(types, 2)


@pytest.mark.slow
def test_decoder_trained_on_true_graphs_predicts_best_with_the_true_graph(springs5):
    """NRI (true graph) in miniature; 10-step open-loop MSE on held-out systems."""
    keras.utils.set_random_seed(0)
    decoder = decoder_from_config(NRIConfig(decoder_hidden=64, edge_types=2, skip_first=True))
    trajectories = keras.Input((NODES, FRAMES, DIMS))
    edge_weights = keras.Input((EDGES, 2))
    model = keras.Model([trajectories, edge_weights],
                        decoder(trajectories, edge_weights, prediction_steps=10))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    x = springs5["x_train"]
    model.fit([x, _graph(springs5["y_train"], "true")], x[:, :, 1:], batch_size=64, epochs=8,
              verbose=0)

    held_out = tf.constant(springs5["x_test"])
    context, steps = 30, 10
    mse_at_step_10 = {}
    for kind in ("true", "empty", "complete"):
        graph = _graph(springs5["y_test"], kind)
        state = decoder.burn_in(held_out[:, :, :context], graph)
        predicted, _ = decoder.rollout(state, graph, steps)
        truth = held_out[:, :, context:context + steps]
        mse_at_step_10[kind] = float(tf.reduce_mean(metrics.mse_per_step(predicted, truth), axis=0)[-1])
    assert mse_at_step_10["true"] * 4 < mse_at_step_10["empty"], mse_at_step_10
    assert mse_at_step_10["true"] * 4 < mse_at_step_10["complete"], mse_at_step_10


def _small_nri_config(**overrides):
    values = dict(encoder_hidden=32, decoder_hidden=32, batch_size=32, lr=1e-3)
    values.update(overrides)
    return NRIConfig(**values)


def _fit(config, data, epochs):
    keras.utils.set_random_seed(config.seed)
    model = NRI(config)
    model.compile(optimizer=keras.optimizers.Adam(config.lr), jit_compile=False)  # no XLA compile wait
    dataset = tf.data.Dataset.from_tensor_slices((data["x_train"], data["y_train"]))
    dataset = dataset.shuffle(len(data["x_train"]), seed=config.seed).batch(config.batch_size)
    return model.fit(dataset, epochs=epochs, shuffle=False, verbose=0).history


def test_unsupervised_training_lowers_the_nll_steadily(springs5_small):
    history = _fit(_small_nri_config(), springs5_small, epochs=4)
    nll = history["nll"]
    assert all(np.isfinite(history["loss"]))
    assert all(later < earlier for earlier, later in zip(nll, nll[1:])), nll
    assert nll[-1] < 0.5 * nll[0], nll


def test_skip_first_with_a_sparsity_prior_trains_without_nans(springs5_small):
    config = _small_nri_config(edge_types=4, skip_first=True, prior=reference_prior(4), hard=True)
    history = _fit(config, springs5_small, epochs=2)
    for name in ("loss", "nll", "kl", "edge_accuracy"):
        assert np.isfinite(history[name]).all(), (name, history[name])
    assert history["nll"][-1] < history["nll"][0]


def test_kl_warmup_first_trains_on_the_nll_alone_and_reaches_the_full_kl(monkeypatch):
    """`--kl-warmup`: the KL's weight rises linearly over the epochs given, so the first update
    is the nll's alone (the same as a model whose KL is zeroed), unlike the paper's."""
    config = NRIConfig(dims=4, frames=6, encoder_hidden=8, decoder_hidden=8, batch_size=4,
                       var=1.0, prediction_steps=2, kl_warmup=2)
    schedule = loop.kl_weight_schedule(config, steps_per_epoch=3)
    assert [float(schedule(step)) for step in (0, 3, 6, 60)] == [0.0, 0.5, 1.0, 1.0]
    assert loop.kl_weight_schedule(dataclasses.replace(config, kl_warmup=0), steps_per_epoch=3) is None
    x = tf.random.stateless_uniform([4, 3, 6, 4], seed=[1, 2], minval=-1, maxval=1)

    def weights_after_one_step(config, zero_kl=False):
        keras.utils.set_random_seed(0)
        model = loop.build_model(config, 3, steps_per_epoch=3, jit_compile=False)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)   # update = -0.1 grad
        if zero_kl:
            loss_terms = model._loss_terms

            def nll_and_zero_kl(*args, **kwargs):
                nll, kl = loss_terms(*args, **kwargs)
                return nll, 0.0 * kl
            monkeypatch.setattr(model, "_loss_terms", nll_and_zero_kl)
        model.train_on_batch(x)
        return np.concatenate([w.ravel() for w in model.get_weights()])

    warm = weights_after_one_step(config)
    paper = dataclasses.replace(config, kl_warmup=0)
    np.testing.assert_allclose(warm, weights_after_one_step(paper, zero_kl=True), rtol=1e-5, atol=1e-7)
    assert np.abs(warm - weights_after_one_step(paper)).max() > 1e-4
