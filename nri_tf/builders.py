"""The encoder and decoder an `NRIConfig` asks for.

Kept apart from `nri_tf.encoders`, `nri_tf.decoders` and `nri_tf.physics` so that those
depend on nothing but layers and graph operations, and the config on nothing at all:
config -> builders -> {encoders, decoders, physics}, no cycle.

  `encoder_from_config`   trajectories [batch, nodes, frames, dims] -> edge logits
                          [batch, edges, edge_types]
  `decoder_from_config`   the step decoder (MLP, RNN or the differentiable simulator)
"""

from __future__ import annotations

import keras

from nri_tf.config import NRIConfig
from nri_tf.decoders import MLPDecoder, RNNDecoder, StepDecoder
from nri_tf.encoders import CNNEncoder, MLPEncoder
from nri_tf.physics import SimulationDecoder


def relative_dims(config: NRIConfig) -> int:
    """The leading features the model sees only as differences along edges:
    ``position_dims`` with ``relative_positions``, else 0."""
    return config.position_dims if config.relative_positions else 0


def encoder_from_config(config: NRIConfig, name: str = "encoder") -> keras.layers.Layer:
    """The encoder ``config.encoder`` names (an `MLPEncoder` or `CNNEncoder`), with the config's sizes."""
    common = dict(dims=config.dims, edge_types=config.edge_types, hidden=config.encoder_hidden,
                  dropout=config.encoder_dropout, factor=config.factor,
                  symmetric=config.symmetric, relative_dims=relative_dims(config),
                  triangles=config.triangles, name=name)
    if config.encoder == "mlp":
        return MLPEncoder(frames=config.frames, **common)
    if config.encoder == "cnn":
        return CNNEncoder(**common)
    raise ValueError(f"unknown encoder {config.encoder!r}; expected 'mlp' or 'cnn'")


def decoder_from_config(config: NRIConfig, name: str = "decoder") -> StepDecoder:
    """The decoder ``config.decoder`` names, with the config's sizes."""
    common = dict(dims=config.dims, edge_types=config.edge_types, hidden=config.decoder_hidden,
                  dropout=config.decoder_dropout, skip_first=config.skip_first,
                  precision=config.precision, change_scale=config.change_scale, name=name)
    if config.decoder == "mlp":
        return MLPDecoder(relative_dims=relative_dims(config),
                          inverse_square_dims=config.position_dims if config.inverse_square else 0, **common)
    if config.decoder == "rnn":
        return RNNDecoder(own_hidden=config.gru_own_hidden, message_divisor=config.rnn_message_divisor,
                          reads_change=config.gru_reads_change, **common)
    if config.decoder == "sim":
        return SimulationDecoder(config.edge_types, name=name, **config.simulator)
    raise ValueError(f"unknown decoder {config.decoder!r}; expected one of mlp, rnn, sim")
