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
