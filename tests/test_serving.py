"""The serving module's limits, in process (`nri_tf.serving.ServingModule`): the step cap
fixed at export, inputs whose scaling overflows, and answers that are not finite are all
refused by name instead of costing the server its memory or returning NaN."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.normalisation import Normaliser
from nri_tf.config import NRIConfig
from nri_tf.model import NRI
from nri_tf.serving import ServingModule

FRAMES, NODES, DIMS = 5, 3, 4
MAX_STEPS = 6


@pytest.fixture(scope="module")
def module():
    model = NRI(NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=4, decoder_hidden=4))
    model(tf.zeros([1, NODES, FRAMES, DIMS]))
    return model, ServingModule(model, Normaliser([-1.0] * DIMS, [1.0] * DIMS), max_steps=MAX_STEPS)


def trajectories(scale: float = 0.5) -> tf.Tensor:
    values = np.random.default_rng(0).uniform(-1, 1, (2, NODES, FRAMES, DIMS)) * scale
    return tf.constant(values, tf.float32)


def test_steps_are_capped_at_the_exported_limit(module):
    _, served = module
    assert served.predict(trajectories(), tf.constant(MAX_STEPS))["predictions"].shape == (2, NODES, MAX_STEPS, DIMS)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"steps must be <= {MAX_STEPS} \(fixed at export by --max-steps\)"):
        served.predict(trajectories(), tf.constant(100000))


@pytest.mark.parametrize("signature", ["infer_graph", "predict"])
@pytest.mark.parametrize("value", [3e38, -2e7])
def test_finite_inputs_far_outside_the_training_range_are_refused(module, signature, value):
    model, _ = module
    served = ServingModule(model, Normaliser([-5.0] * DIMS, [5.0] * DIMS))   # scaled: value / 5
    x = tf.tensor_scatter_nd_update(trajectories(), [[1, 2, 3, 0]], [value])
    arguments = (x,) if signature == "infer_graph" else (x, tf.constant(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="trajectories are out of range: .* beyond 1e.06"):
        getattr(served, signature)(*arguments)
    getattr(served, signature)(*((x / value * 4e6,) + arguments[1:]))   # 0.8e6 scaled: served


@pytest.mark.parametrize("part, signature, what", [
    ("encoder", "infer_graph", "edge probabilities"),
    ("decoder", "predict", "predictions"),
])
def test_answers_that_are_not_finite_are_refused(module, part, signature, what):
    model, _ = module
    broken = NRI(model.nri_config)
    broken(tf.zeros([1, NODES, FRAMES, DIMS]))
    for variable in getattr(broken, part).weights:
        variable.assign(tf.fill(variable.shape, np.nan))
    served = ServingModule(broken, Normaliser([-1.0] * DIMS, [1.0] * DIMS))
    arguments = (trajectories(),) if signature == "infer_graph" else (trajectories(), tf.constant(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"the {what} of the model are not finite"):
        getattr(served, signature)(*arguments)


# --- models trained on candidate edges ------------------------------------------------------

def candidate_model(**settings):
    """A tiny model (4 dims: x, y first) of a config with these candidate settings, served."""
    model = NRI(NRIConfig(dims=DIMS, frames=FRAMES, encoder_hidden=4, decoder_hidden=4, **settings))
    model(tf.zeros([1, NODES, FRAMES, DIMS]))
    return model, ServingModule(model, Normaliser([-1.0] * DIMS, [1.0] * DIMS), max_steps=MAX_STEPS)


@pytest.mark.parametrize("method, relative, symmetric", [("knn", True, False), ("radius", False, True)])
def test_a_model_trained_on_candidates_chooses_them_as_training_did(method, relative, symmetric):
    """(The knn model is the local-springs default: translation invariant; the radius model
    ties the directions of its pairs.)"""
    from data_pipelines.candidate_selection import CandidateSpec, select_senders
    from nri_tf.graph import CandidateEdges

    model, served = candidate_model(candidate_edges=method, candidate_k=3, candidate_radius=0.6,
                                    relative_positions=relative, position_dims=2, symmetric=symmetric)
    nodes = 6
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, nodes, FRAMES, DIMS)), tf.float32)
    spec = CandidateSpec(method, 3, 0.6)
    chosen = [select_senders(spec, x[b, :, 0, :2], nodes, 3) for b in range(2)]
    senders = tf.stack([c[0] for c in chosen])
    mask = None if method == "knn" else tf.stack([c[1] for c in chosen])
    edges = CandidateEdges(senders, mask)
    answer = served.infer_graph(x)
    expected = tf.nn.softmax(model.encode(x, edges), -1).numpy()
    real = np.ones([2, nodes * 3], bool) if mask is None else mask.numpy().reshape(2, -1) > 0
    if method == "radius":
        assert 0 < real.sum() < real.size                     # the radius leaves empty slots here
    np.testing.assert_allclose(answer["edge_probs"].numpy()[real], expected[real], atol=1e-6)
    np.testing.assert_array_equal(answer["senders"].numpy()[real], senders.numpy().reshape(2, -1)[real])
    assert (answer["senders"].numpy()[~real] == -1).all()
    predicted = served.predict(x, tf.constant(2))["predictions"]
    np.testing.assert_allclose(predicted.numpy(), model.predict_future(x, 2, candidates=edges).numpy(),
                               atol=1e-5)


def test_signatures_follow_the_candidate_setting():
    def names(**settings):
        return sorted(candidate_model(**settings)[1].signatures())

    on_candidates = ["infer_graph_on_candidates", "predict_on_candidates"]
    assert names() == sorted(["infer_graph", "predict", "serving_default"] + on_candidates)
    assert names(symmetric=True) == names()
    model, triangles = candidate_model(triangles=True)   # complete graph only
    assert sorted(triangles.signatures()) == ["infer_graph", "predict", "serving_default"]
    np.testing.assert_allclose(triangles.infer_graph(trajectories())["edge_probs"].numpy(),
                               tf.nn.softmax(model.encode(trajectories()), -1).numpy(), atol=1e-6)
    given_model = candidate_model(candidate_edges="given")[1]
    given = given_model.signatures()
    assert sorted(given) == sorted(on_candidates + ["serving_default"])
    assert given["serving_default"] is given["infer_graph_on_candidates"]
    with pytest.raises(ValueError, match="no rule to choose candidates: call infer_graph_on_candidates"):
        given_model.infer_graph(trajectories())
