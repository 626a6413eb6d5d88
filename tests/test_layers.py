"""The MLP block and the convolutional attention block."""

import numpy as np
import pytest
import tensorflow as tf

from nri_tf import graph
from nri_tf.config import CNN_MIN_FRAMES
from nri_tf.layers import ConvAttentionBlock, MLPBlock, TriangleBlock


def test_mlp_block_shapes_and_batch_norm_over_all_leading_axes():
    block = MLPBlock(16, units=8, dropout=0.1)
    x = tf.random.stateless_normal([4, 6, 3, 5], seed=[0, 1]) * 3.0 + 2.0
    y = block(x, training=True)
    assert y.shape == (4, 6, 3, 8)
    flat = tf.reshape(y, [-1, 8]).numpy()
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-4)   # statistics over 4*6*3 rows
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-2)


def test_mlp_block_eval_is_deterministic_and_config_round_trips():
    block = MLPBlock(16, dropout=0.5, name="mlp")
    x = tf.random.stateless_normal([3, 7, 4], seed=[0, 2])
    np.testing.assert_array_equal(block(x).numpy(), block(x).numpy())
    clone = MLPBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    clone.build(x.shape)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), block(x).numpy(), rtol=1e-6)


def test_conv_attention_block_shapes_and_minimum_frames():
    assert ConvAttentionBlock.MIN_FRAMES == CNN_MIN_FRAMES == 14
    block = ConvAttentionBlock(hidden=8, units=6)
    for frames in (14, 49):
        assert block(tf.zeros([5, frames, 4])).shape == (5, 6)
    with pytest.raises(ValueError, match="at least 14 frames"):
        block(tf.zeros([5, 13, 4]))
    assert ConvAttentionBlock.from_config(block.get_config()).get_config() == block.get_config()


def test_conv_attention_pooling_by_hand():
    """With one frame left after the convolutions, the output is that frame's value."""
    block = ConvAttentionBlock(hidden=4, units=3)
    x = tf.random.stateless_normal([2, 14, 4], seed=[1, 1])
    out = block(x).numpy()
    h = block.bn2(block.conv2(block.pool(block.bn1(block.conv1(x)))))
    np.testing.assert_allclose(out, block.conv_values(h)[:, 0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edge_features", [0, 7])
def test_mlp_block_on_node_pairs_equals_the_block_on_concatenated_pairs(edge_features):
    rng = np.random.default_rng(3)
    nodes = tf.constant(rng.normal(size=(3, 4, 6)).astype(np.float32))
    extra = tf.constant(rng.normal(size=(3, 12, edge_features)).astype(np.float32)) if edge_features else None
    block = MLPBlock(8)
    inputs = graph.node_to_edge(nodes) if extra is None else tf.concat([graph.node_to_edge(nodes), extra], -1)
    block.build(inputs.shape)
    for training in (False, True):      # batch norm over the same rows either way
        np.testing.assert_allclose(block.on_node_pairs(nodes, extra, training=training).numpy(),
                                   block(inputs, training=training).numpy(), rtol=1e-4, atol=1e-4)


def test_triangle_block_averages_the_paths_through_every_third_node():
    num_nodes, features, hidden = 4, 3, 8
    block = TriangleBlock(hidden)
    x = tf.random.stateless_normal([2, num_nodes * (num_nodes - 1), features], seed=[0, 3])
    y = block(x).numpy()
    assert y.shape == (2, 12, hidden)
    # By hand: edge (i, j) reads elu([x(i, k), x(k, j)] @ W + b) averaged over k != i, j.
    kernel, bias = block.paths.kernel.numpy(), block.paths.bias.numpy()
    receivers, senders = (t.numpy() for t in graph.edge_indices(num_nodes))
    index = {(i, j): e for e, (i, j) in enumerate(zip(receivers, senders))}
    elu = lambda v: np.where(v > 0, v, np.expm1(v))
    message = np.zeros((2, 12, hidden), np.float32)
    for (i, j), e in index.items():
        for k in set(range(num_nodes)) - {i, j}:
            pair = np.concatenate([x.numpy()[:, index[i, k]], x.numpy()[:, index[k, j]]], -1)
            message[:, e] += elu(pair @ kernel + bias) / (num_nodes - 2)
    expected = block.mlp(tf.concat([x, message], -1)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # Edge (0, 1) reads edges (0, k) and (k, 1) only: changing edge (2, 3) leaves it alone.
    changed = tf.tensor_scatter_nd_add(x, [[0, index[2, 3]]], [tf.ones(features)])
    np.testing.assert_array_equal(block(changed).numpy()[0, index[0, 1]], y[0, index[0, 1]])
    assert not np.allclose(block(changed).numpy()[0, index[2, 0]], y[0, index[2, 0]])
    assert TriangleBlock.from_config(block.get_config()).get_config() == block.get_config()
