"""The differentiable simulators of NRI (sim.) against the data's own simulators."""

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import contract
from data_pipelines.normalisation import Normaliser
from data_pipelines.simulations import integrate_charged, integrate_springs
from nri_tf.config import ConfigError
from nri_tf.physics import SimulationDecoder, bounded_gradient, simulator_settings, soft_clip
from nri_tf.presets import config_for_dataset

NODES, FRAMES = 5, 10
NORM_MIN, NORM_MAX = [-4.0, -3.0, -0.8, -0.7], [4.5, 3.5, 0.9, 0.6]


def _initial_state(seed, position_std):
    rng = np.random.default_rng(seed)
    positions = rng.standard_normal((3, NODES, 2)) * position_std
    velocities = rng.standard_normal((3, NODES, 2))
    velocities *= 0.5 / np.linalg.norm(velocities, axis=-1, keepdims=True)
    return rng, positions, velocities


def _decoder(simulation, type_values, strength, clip, steps_per_frame=100):
    return SimulationDecoder(2, simulation, type_values, strength, frame_interval=0.1,
                             steps_per_frame=steps_per_frame, box_size=5.0, max_force=100.0, clip=clip,
                             normalisation_min=NORM_MIN, normalisation_max=NORM_MAX)


def _one_step_predictions(decoder, raw, labels, dtype):
    """Each frame's successor as the decoder predicts it, in raw units."""
    normaliser = Normaliser(NORM_MIN, NORM_MAX)
    frames = tf.constant(normaliser.normalise(raw.astype(dtype)))
    edges = tf.one_hot(labels, 2, dtype=dtype)
    predicted = [decoder.step(frames[:, :, t], edges)[0] for t in range(FRAMES - 1)]
    return normaliser.denormalise(tf.stack(predicted, axis=2).numpy())


def _springs_case(seed=0):
    rng, positions, velocities = _initial_state(seed, 0.5)
    upper = np.triu(rng.integers(0, 2, (3, NODES, NODES)), 1)
    adjacency = upper + upper.transpose(0, 2, 1)
    raw = integrate_springs(positions, velocities, 0.1 * adjacency, num_steps=100 * (FRAMES + 1))
    return raw, contract.edge_labels_from_matrix(adjacency)


def test_springs_decoder_reproduces_the_simulated_trajectory():
    raw, labels = _springs_case()
    decoder = _decoder("springs", [0.0, 1.0], 0.1, "hard")
    predicted = _one_step_predictions(decoder, raw, labels, np.float64)
    np.testing.assert_allclose(predicted, raw[:, :, 1:], atol=1e-9)
    # The paper's cheap setting, one step of 0.1 per frame, stays close.
    coarse = _one_step_predictions(_decoder("springs", [0.0, 1.0], 0.1, "none", 1), raw, labels, np.float64)
    assert np.abs(coarse - raw[:, :, 1:]).max() < 0.05


def test_springs_decoder_rollout_through_keras_in_float32():
    raw, labels = _springs_case(seed=1)
    decoder = _decoder("springs", [0.0, 1.0], 0.1, "none")
    normaliser = Normaliser(NORM_MIN, NORM_MAX)
    trajectories = normaliser.normalise(raw.astype(np.float32))
    predictions = decoder(trajectories, tf.one_hot(labels, 2), prediction_steps=4)   # open loop, M = 4
    np.testing.assert_allclose(normaliser.denormalise(predictions.numpy()), raw[:, :, 1:], atol=2e-4)


def test_gradients_reach_the_edge_weights():
    raw, labels = _springs_case()
    decoder = _decoder("springs", [0.0, 1.0], 0.1, "none", 1)
    frames = tf.constant(Normaliser(NORM_MIN, NORM_MAX).normalise(raw.astype(np.float32)))
    edges = tf.Variable(tf.one_hot(labels, 2))
    with tf.GradientTape() as tape:
        predictions = decoder(frames, edges, prediction_steps=3)
        loss = tf.reduce_sum(tf.square(predictions - frames[:, :, 1:]))
    gradient = tape.gradient(loss, edges).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient[..., 1]).max() > 0
    # No-spring weights have no effect (type value 0), so no gradient.
    np.testing.assert_array_equal(gradient[..., 0], 0.0)


def test_training_integrates_with_the_compiled_loop_to_the_same_numbers():
    """Training's XLA-compiled leapfrog loop (forwards and backwards) against the plain loop
    that evaluation runs, on springs (not chaotic, so float rounding stays small)."""
    raw, labels = _springs_case(seed=3)
    frames = tf.constant(Normaliser(NORM_MIN, NORM_MAX).normalise(raw.astype(np.float32)))
    compiled = _decoder("springs", [0.0, 1.0], 0.1, "none", steps_per_frame=10)
    plain = _decoder("springs", [0.0, 1.0], 0.1, "none", steps_per_frame=10)
    plain.integrate_in_training = plain.integrate
    assert compiled.integrate_in_training is not compiled.integrate
    single_step = _decoder("springs", [0.0, 1.0], 0.1, "none", 1)
    assert single_step.integrate_in_training == single_step.integrate       # nothing to fuse

    def predictions_and_gradient(decoder):
        weights = tf.one_hot(labels, 2) * 0.8 + 0.1
        return _gradient_through(lambda w: decoder(frames, w, prediction_steps=4, training=True),
                                 weights.numpy(), np.ones((3, NODES, FRAMES - 1, 4), np.float32))

    (ours, our_gradient), (theirs, their_gradient) = map(predictions_and_gradient, (compiled, plain))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    np.testing.assert_allclose(our_gradient.numpy(), their_gradient.numpy(), rtol=1e-4, atol=1e-4)
    assert np.abs(their_gradient.numpy()[..., 1]).max() > 1e-2


def test_charged_decoder_reproduces_the_simulated_trajectory():
    rng, positions, velocities = _initial_state(2, 1.0)
    charges = 2.0 * rng.integers(0, 2, (3, NODES)) - 1.0
    products = charges[:, :, None] * charges[:, None, :]
    raw = integrate_charged(positions, velocities, products, num_steps=100 * (FRAMES + 1))
    labels = contract.edge_labels_from_matrix((products > 0).astype(np.int32))
    hard = _one_step_predictions(_decoder("charged", [-1.0, 1.0], 1.0, "hard"), raw, labels, np.float64)
    np.testing.assert_allclose(hard, raw[:, :, 1:], atol=1e-6)   # the 1e-10 in |r|^3 + eps
    # Soft clipping departs from the data's hard clipping only near the bound (close encounters).
    soft = _one_step_predictions(_decoder("charged", [-1.0, 1.0], 1.0, "soft"), raw, labels, np.float64)
    np.testing.assert_allclose(soft, raw[:, :, 1:], atol=1e-3)
    assert np.abs(soft - hard).max() > 1e-6


def test_soft_clip_is_smooth_and_bounded():
    x = tf.constant([0.0, 50.0, -50.0, 1e3, -1e3])
    np.testing.assert_allclose(soft_clip(x, 100.0).numpy(), [0, 50, -50, 100, -100], atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = soft_clip(x, 100.0)
    np.testing.assert_allclose(tape.gradient(y, x).numpy()[:3], 1.0, atol=1e-6)


def _gradient_through(function, weights, upstream):
    weights = tf.constant(weights)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        out = function(weights)
    return out, tape.gradient(out, weights, output_gradients=tf.constant(upstream))


def test_bounded_gradient_scales_each_outlying_system_to_the_bound_and_drops_non_finite_ones():
    weights = np.full((5, 3, 2), 0.5, np.float32)
    upstream = np.ones((5, 3, 2), np.float32) * np.array([1.0, 2.0, 3.0, 1e12, 1.0], np.float32)[:, None, None]
    upstream[1, 0, 0] = -4.0                                 # the largest component counts, not its sign
    upstream[4, 2, 1] = np.inf                               # an overflowed system
    out, gradient = _gradient_through(lambda w: bounded_gradient(w, 2.0), weights, upstream)
    np.testing.assert_array_equal(out.numpy(), weights)      # forward: the identity
    gradient = gradient.numpy()
    # Largest components of the finite systems: 1, 4, 3, 1e12; median (the upper middle) 4, bound 8.
    np.testing.assert_array_equal(gradient[:3], upstream[:3])
    np.testing.assert_allclose(gradient[3], 8.0, rtol=1e-6)
    np.testing.assert_array_equal(gradient[4], 0.0)
    # A zero median (most systems without gradient) bounds nothing.
    sparse = np.zeros((3, 3, 2), np.float32)
    sparse[0] = 7.0
    np.testing.assert_array_equal(_gradient_through(lambda w: bounded_gradient(w, 2.0), sparse, sparse)[1], sparse)


def test_charged_gradients_stay_bounded_through_a_chaotic_rollout():
    """Ten open-loop frames of three charged systems: system 0's unbounded gradient is about
    1e17 (a near miss amplified over 1000 leapfrog steps), the others' 1 - 20; the charged
    decoder's default bound (per predicted frame) brings system 0's down to the others' scale
    and leaves theirs untouched."""
    rng, positions, velocities = _initial_state(2, 1.0)
    frames = np.concatenate([positions, velocities], axis=-1)[:, :, None].repeat(11, axis=2)
    frames = tf.constant(Normaliser(NORM_MIN, NORM_MAX).normalise(frames).astype(np.float32))
    logits = tf.constant(rng.standard_normal((3, NODES * (NODES - 1), 2)).astype(np.float32))

    def gradient(decoder):    # traced: the eager loop of 10 x 100 leapfrog steps takes 15 s a decoder
        return tf.function(lambda: _gradient_through(
            lambda w: decoder(frames, tf.nn.softmax(w), prediction_steps=10), logits,
            np.ones((3, NODES, 10, 4), np.float32))[1])().numpy()

    bound = simulator_settings(_Metadata("charged"))["gradient_bound"]
    unbounded = gradient(_decoder("charged", [-1.0, 1.0], 1.0, "soft"))
    bounded = gradient(SimulationDecoder(**{**_decoder("charged", [-1.0, 1.0], 1.0, "soft").get_config(),
                                            "gradient_bound": bound}))
    largest = np.abs(unbounded).max(axis=(1, 2))
    assert largest[0] > 1e10 and largest[1:].max() < 100
    # Each frame's gradient is bounded at 10x that frame's median: the sum stays at the others' scale.
    assert 1 < np.abs(bounded[0]).max() < 10 * bound * np.median(largest)
    np.testing.assert_allclose(bounded[1:], unbounded[1:], rtol=1e-6)


class _Metadata:
    def __init__(self, source, edge_types=2):
        self.source, self.edge_types, self.dims = source, edge_types, 4 if source != "kuramoto" else 3
        self.nodes = 5
        self.feature_names = ["x", "y", "vx", "vy"] if source != "kuramoto" else ["dphi_dt", "sin_phi", "omega"]
        self.parameters = {"sample_every": 100}
        self.frames = {"train": 49}
        self.has_edge_lists, self.edge_lists = False, None       # one label per node pair

        class Normalisation:
            min, max = NORM_MIN, NORM_MAX
        self.normalisation = Normalisation


def test_simulator_settings_follow_the_dataset():
    springs = simulator_settings(_Metadata("springs", edge_types=3))
    assert springs["type_values"] == [0.0, 0.5, 1.0] and springs["steps_per_frame"] == 1
    assert springs["interaction_strength"] == pytest.approx(0.1) and springs["clip"] == "none"
    assert springs["frame_interval"] == pytest.approx(0.1)
    charged = simulator_settings(_Metadata("charged"))
    assert charged["type_values"] == [-1.0, 1.0] and charged["steps_per_frame"] == 100
    assert charged["clip"] == "soft"
    assert charged["gradient_bound"] == 10.0 and "gradient_bound" not in springs   # springs: unbounded
    config = config_for_dataset({"decoder": "sim"}, {}, _Metadata("springs"))
    assert config.simulator == simulator_settings(_Metadata("springs"))
    with pytest.raises(ConfigError, match="springs or charged"):
        config_for_dataset({}, {"decoder": "sim"}, _Metadata("kuramoto"))
