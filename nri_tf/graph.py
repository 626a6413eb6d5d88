"""The fully connected directed graph that NRI reasons over, and message passing on it.

Edge order (SPEC.md): the N*(N-1) off-diagonal entries of an N x N matrix in row-major
order, edge e = (i, j) with i != j, i the *receiver* and j the *sender*. This matches the
reference implementation, which builds its receiver/sender matrices from
``np.where(ones - eye)``. Every encoder, decoder, dataset and export uses this one order.
"""

from __future__ import annotations

import numpy as np


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
