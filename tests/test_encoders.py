"""MLP and CNN encoders: shapes, node-permutation equivariance, any node count, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nri_tf.builders import encoder_from_config
from nri_tf.config import NRIConfig
from nri_tf.encoders import CNNEncoder, MLPEncoder

FRAMES = 16


def _encoder(kind: str, factor: bool = True, triangles: bool = False):
    config = NRIConfig(encoder=kind, frames=FRAMES, encoder_hidden=32, edge_types=3, factor=factor,
                       triangles=triangles)
    return encoder_from_config(config)


def _trajectories(nodes: int = 5, seed: int = 0, batch: int = 4):
    return tf.random.stateless_uniform([batch, nodes, FRAMES, 4], seed=[seed, 7], minval=-1, maxval=1)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("factor", [True, False])
def test_logit_shapes_for_any_node_count(kind, factor):
    encoder = _encoder(kind, factor)
    assert encoder(_trajectories(5)).shape == (4, 20, 3)
    assert encoder(_trajectories(10)).shape == (4, 90, 3)   # built on 5 nodes, runs on 10


@pytest.mark.parametrize("kind, factor, triangles", [("mlp", True, False), ("mlp", False, False),
                                                     ("cnn", True, False), ("cnn", False, False),
                                                     ("mlp", True, True), ("cnn", False, True)])
def test_permuting_nodes_permutes_edge_logits(kind, factor, triangles, node_permutation):
    nodes, edges = node_permutation
    encoder = _encoder(kind, factor, triangles)
    x = _trajectories(5)
    logits = encoder(x, training=False).numpy()
    permuted = encoder(tf.gather(x, nodes, axis=1), training=False).numpy()
    np.testing.assert_allclose(permuted, logits[:, edges], rtol=1e-4, atol=1e-5)


def test_cnn_encoder_accepts_any_length_from_14_frames():
    encoder = _encoder("cnn")
    assert encoder(tf.zeros([2, 5, 14, 4])).shape == (2, 20, 3)
    assert encoder(tf.zeros([2, 5, 40, 4])).shape == (2, 20, 3)


def test_input_errors_name_the_problem():
    mlp = _encoder("mlp")
    with pytest.raises(ValueError, match="rank 4"):
        mlp(tf.zeros([5, FRAMES, 4]))
    with pytest.raises(ValueError, match="dims=4"):
        mlp(tf.zeros([2, 5, FRAMES, 3]))
    with pytest.raises(ValueError, match=f"exactly frames={FRAMES}"):
        mlp(tf.zeros([2, 5, FRAMES + 1, 4]))
    with pytest.raises(ValueError, match="at least 14 frames"):
        _encoder("cnn")(tf.zeros([2, 5, 10, 4]))


@pytest.mark.parametrize("cls", [MLPEncoder, CNNEncoder])
@pytest.mark.parametrize("triangles", [False, True])
def test_serialisation_round_trip(cls, triangles):
    encoder = _encoder("mlp" if cls is MLPEncoder else "cnn", triangles=triangles)
    x = _trajectories(5)
    expected = encoder(x).numpy()
    clone = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert isinstance(clone, cls) and clone.get_config() == encoder.get_config()
    assert clone.built   # weights exist straight from the config, before any call
    clone.set_weights(encoder.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), expected, rtol=1e-6)


def test_triangle_encoder_reasons_over_the_complete_graph_only():
    from nri_tf.config import ConfigError
    from nri_tf.graph import complete_candidate_edges

    with pytest.raises(ConfigError, match="--triangles reasons over the complete graph"):
        NRIConfig(triangles=True, candidate_edges="knn").validate()
    encoder = _encoder("mlp", triangles=True)
    with pytest.raises(ValueError, match="complete graph"):
        encoder(_trajectories(5), edges=complete_candidate_edges(4, 5))
