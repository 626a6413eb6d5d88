"""LSTM trajectory predictors: LSTM (single), LSTM (joint) and Corr. (LSTM)'s features.

As the paper describes them (appendix D.1.1): each node's state goes through a two-layer
input MLP (ReLU), then a two-layer LSTM, then a two-layer output MLP (ReLU on the hidden
layer) that predicts the change of the state, x_{t+1} = x_t + delta.

  single   one LSTM with shared weights runs on every node separately (any node count)
  joint    the nodes' input representations are concatenated and fed to one LSTM with
           ``num_nodes`` times the hidden units; its output is split back into one vector per
           node for the output MLP (a fixed node count)

Both are `nri_tf.decoders.RecurrentDecoder`s, so they train with the recurrent decoder's
protocol (ground truth for a burn-in, then their own predictions for the last M frames)
and predict beyond the data with ``burn_in`` / ``rollout``; they ignore edge weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nri_tf.decoders import RecurrentDecoder

LSTM_LAYERS = 2


@keras.saving.register_keras_serializable(package="nri_tf")
class LSTMPredictor(RecurrentDecoder):
    """LSTM baseline over [batch, nodes, frames, dims] trajectories.

    Args:
      dims: features per node and frame.
      hidden: units of the MLPs, and of the LSTM per node.
      joint: one LSTM over all nodes together (LSTM (joint)) instead of one per node.
      num_nodes: the node count; required (and fixed) when ``joint``.
    State for `step`: (current frame [batch, nodes, dims], ((h, c) per LSTM layer)).
    """

    def __init__(self, dims: int, hidden: int, joint: bool = False, num_nodes: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if joint and not num_nodes:
            raise ValueError("LSTM (joint) needs the node count (num_nodes=...)")
        self.dims, self.hidden, self.joint = int(dims), int(hidden), bool(joint)
        self.num_nodes = int(num_nodes) if num_nodes else None
        self.units = self.hidden * self.num_nodes if self.joint else self.hidden
        self.input1 = keras.layers.Dense(hidden, "relu", name="input1")
        self.input2 = keras.layers.Dense(hidden, "relu", name="input2")
        self.cells = [keras.layers.LSTMCell(self.units, name=f"lstm{layer + 1}")
                      for layer in range(LSTM_LAYERS)]
        self.out1 = keras.layers.Dense(hidden, "relu", name="out1")
        self.out2 = keras.layers.Dense(dims, name="out2")

    def build(self, input_shape):
        self.input1.build((None, self.dims))
        self.input2.build((None, self.hidden))
        for cell in self.cells:
            cell.build((None, self.units))
        self.out1.build((None, self.hidden))
        self.out2.build((None, self.hidden))

    def _rows(self, inputs):
        """LSTM batch rows of [batch, nodes, ...] ``inputs``: batch * nodes (single) or batch (joint)."""
        shape = tf.shape(inputs)
        return shape[0] if self.joint else shape[0] * shape[1]

    def _initial_hidden(self, trajectories):
        if self.joint and trajectories.shape[1] is not None and trajectories.shape[1] != self.num_nodes:
            raise ValueError(f"LSTM (joint) was built for {self.num_nodes} nodes, got {trajectories.shape[1]}")
        zeros = tf.zeros([self._rows(trajectories), self.units], trajectories.dtype)
        return tuple((zeros, zeros) for _ in self.cells)

    def _predict(self, inputs, hidden, edge_weights, training, edges=None):
        """One step: ([batch, nodes, dims], LSTM states) -> (prediction, new states); no graph,
        so ``edge_weights`` and ``edges`` are ignored."""
        shape = tf.shape(inputs)
        x = self.input2(self.input1(inputs))                          # [batch, nodes, hidden]
        x = tf.reshape(x, [self._rows(inputs), self.units])
        new_hidden = []
        for cell, state in zip(self.cells, hidden):
            x, state = cell(x, list(state), training=training)
            new_hidden.append(tuple(state))
        x = tf.reshape(x, [shape[0], shape[1], self.hidden])          # split back per node
        return inputs + self.out2(self.out1(x)), tuple(new_hidden)

    def final_features(self, trajectories):
        """The last LSTM layer's output after the last frame: [batch, nodes, hidden].

        Corr. (LSTM) correlates these between nodes. Every frame is fed as ground truth.
        """
        _, (_, hidden) = self.step(self.burn_in(trajectories, None), None)
        output = hidden[-1][0]                                        # h of the last layer
        shape = tf.shape(trajectories)
        return tf.reshape(output, [shape[0], shape[1], self.hidden])

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "hidden": self.hidden,
                "joint": self.joint, "num_nodes": self.num_nodes}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "nodes" in config:        # the key's name in configs saved before it was num_nodes
            config["num_nodes"] = config.pop("nodes")
        return cls(**config)
