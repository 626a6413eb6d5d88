"""Shared fixtures: small springs data sets and node-permutation helpers.

Springs systems come from `data_pipelines.simulations` (reference simulator settings,
5 nodes, 49 frames), normalised like the reference: positions and velocities each min-max
scaled to [-1, 1] with the training split's statistics. Sizes are kept small so the whole
suite runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from nri_tf import graph

SPRINGS_NODES = 5
SPRINGS_SIM_STEPS = 5000          # 49 frames at the reference's sampling rate


def normalise_springs(trajectories: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Min-max scales positions (dims 0-1) and velocities (dims 2-3) to [-1, 1] by ``reference``."""
    out = np.empty_like(trajectories, dtype=np.float32)
    for part in (slice(0, 2), slice(2, 4)):
        low, high = reference[..., part].min(), reference[..., part].max()
        out[..., part] = 2.0 * (trajectories[..., part] - low) / (high - low) - 1.0
    return out


def simulate_springs(train: int, held_out: int, seed: int = 0) -> dict:
    """{"x_train", "y_train", "x_test", "y_test"}: normalised [sims, 5, 49, 4], labels [sims, 20]."""
    from data_pipelines.simulations import get_simulation

    result = get_simulation("springs").sample(train + held_out, SPRINGS_NODES,
                                              num_steps=SPRINGS_SIM_STEPS, seed=seed)
    raw = np.asarray(result.trajectories, dtype=np.float32)
    labels = graph.edge_labels_from_matrix(np.asarray(result.edges)).astype(np.int32)
    x = normalise_springs(raw, raw[:train])
    return {"x_train": x[:train], "y_train": labels[:train],
            "x_test": x[train:], "y_test": labels[train:]}


@pytest.fixture(scope="session")
def springs5():
    """2000 training and 200 held-out springs systems with 5 nodes."""
    return simulate_springs(2000, 200, seed=0)


@pytest.fixture(scope="session")
def springs5_small(springs5):
    """The first 640 training and 200 held-out systems of `springs5`."""
    return {**springs5, "x_train": springs5["x_train"][:640], "y_train": springs5["y_train"][:640]}


def edge_permutation(node_permutation: np.ndarray) -> np.ndarray:
    """Edge order after relabelling nodes: new node a is old node ``node_permutation[a]``.

    Returns:
      [edges] int: entry e_new is the old index of the edge that becomes e_new.
    """
    num_nodes = len(node_permutation)
    receivers, senders = graph.fully_connected_edges(num_nodes)
    old_index = np.full((num_nodes, num_nodes), -1)
    old_index[receivers, senders] = np.arange(len(receivers))
    return old_index[node_permutation[receivers], node_permutation[senders]]


@pytest.fixture
def node_permutation():
    """(node permutation, matching edge permutation) for 5 nodes."""
    nodes = np.array([3, 0, 4, 1, 2])
    return nodes, edge_permutation(nodes)
