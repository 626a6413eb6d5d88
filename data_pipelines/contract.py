"""The data contract shared by every layer, free of TensorFlow (numpy only).

Edge order (SPEC.md): the N*(N-1) off-diagonal entries of an N x N matrix in row-major
order, edge e = (i, j) with i != j, i the *receiver* and j the *sender*. This matches the
reference implementation, which builds its receiver/sender matrices from
``np.where(ones - eye)``. Every encoder, decoder, dataset and export uses this one order;
`nri_tf.graph` moves tensors along it.

Building blocks:
  `SPLITS`                  the split names, in order
  `NO_EDGE_LABELS`, `has_edge_labels`   data without a true graph (its labels are all 0)
  `position_dims`           how many leading features are positions (x, y, z)
  `fully_connected_edges`   (receivers, senders) index arrays [N*(N-1)]
  `num_nodes_from_edges`    N from the edge count N*(N-1)
  `edge_labels_from_matrix`, `edge_matrix_from_labels`   [..., N, N] <-> [..., edges]
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "valid", "test")
NO_EDGE_LABELS = "none"   # metadata.parameters["edge_labels"] of data without a true graph


def has_edge_labels(metadata) -> bool:
    """Whether a dataset's edge labels are a true graph (simulations) rather than
    placeholders (real data, whose every label is 0: ``parameters["edge_labels"] ==
    NO_EDGE_LABELS``).

    Args:
      metadata: a `data_pipelines.storage.metadata.DatasetMetadata`.
    """
    return metadata.parameters.get("edge_labels") != NO_EDGE_LABELS


POSITION_NAMES = ("x", "y", "z")


def position_dims(metadata) -> int:
    """How many leading features of a dataset are positions: its leading feature names
    x, y, z in order (2 for springs' x, y, vx, vy, 3 for motion capture, 0 for Kuramoto)."""
    count = 0
    for name, position in zip(metadata.feature_names, POSITION_NAMES):
        if name != position:
            break
        count += 1
    return count


def fully_connected_edges(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Receiver and sender node index of every directed edge, receiver-major.

    Args:
      num_nodes: N >= 2.
    Returns:
      (receivers, senders): two int32 arrays of shape [N*(N-1)].
    """
    if num_nodes < 2:
        raise ValueError(f"a graph needs at least 2 nodes, got {num_nodes}")
    receivers, senders = np.where(~np.eye(num_nodes, dtype=bool))
    return receivers.astype(np.int32), senders.astype(np.int32)


def num_nodes_from_edges(num_edges: int) -> int:
    """N such that N*(N-1) == num_edges; ValueError if there is none."""
    num_nodes = int(round((1 + np.sqrt(1 + 4 * num_edges)) / 2))
    if num_nodes < 2 or num_nodes * (num_nodes - 1) != num_edges:
        raise ValueError(f"{num_edges} is not the edge count N*(N-1) of a fully connected graph")
    return num_nodes


def edge_labels_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """Flattens per-pair matrices to per-edge vectors in the receiver-major edge order.

    Args:
      matrix: [..., N, N], entry [i, j] describing the edge from sender j to receiver i.
    Returns:
      [..., N*(N-1)] with the diagonal dropped.
    """
    receivers, senders = fully_connected_edges(matrix.shape[-1])
    return matrix[..., receivers, senders]


def edge_matrix_from_labels(labels: np.ndarray, num_nodes: int, diagonal=0) -> np.ndarray:
    """Inverse of `edge_labels_from_matrix`: [..., N*(N-1)] -> [..., N, N].

    The diagonal (self edges, which NRI never models) is filled with ``diagonal``.
    """
    receivers, senders = fully_connected_edges(num_nodes)
    matrix = np.full(labels.shape[:-1] + (num_nodes, num_nodes), diagonal, dtype=labels.dtype)
    matrix[..., receivers, senders] = labels
    return matrix
