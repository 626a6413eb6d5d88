"""Tests of data_pipelines.simulations.local_springs: the sparse force law against hand-computed
values and the dense springs integrator, conservation laws, springs only within the cutoff,
fixed density as N grows, seeding and argument checks. Sizes are tiny so the file runs in
seconds."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.candidates import EdgeLists, complete_edges, radius_edges
from data_pipelines.simulations import (LocalSpringsSimulation, SparseSimulationResult,
                                        integrate_local_springs, integrate_springs,
                                        local_spring_forces, local_springs)

TRIANGLE = EdgeLists.from_list([np.array([[0, 1], [0, 2], [1, 0], [2, 0]])])
"""Springs 0-1 and 0-2 of one 3-node system, both directions."""


def dense_constants(springs: EdgeLists, spring_constants: np.ndarray, num_nodes: int) -> np.ndarray:
    """[batch, nodes, nodes] spring-constant matrices of spring lists."""
    matrices = np.zeros((len(springs), num_nodes, num_nodes))
    for system in range(len(springs)):
        start, stop = springs.row_splits[system], springs.row_splits[system + 1]
        receivers, senders = springs[system].T
        matrices[system, receivers, senders] = spring_constants[start:stop]
    return matrices


def random_springs(rng: np.random.Generator, batch: int, num_nodes: int) -> tuple[EdgeLists, np.ndarray]:
    """Random undirected springs with random constants, both directions listed."""
    lists, constants = [], []
    for _ in range(batch):
        upper = np.triu(rng.random((num_nodes, num_nodes)) < 0.4, 1)
        k = np.triu(rng.uniform(0.05, 0.2, (num_nodes, num_nodes)), 1) * upper
        k = k + k.T
        receivers, senders = np.nonzero(k)
        lists.append(np.stack([receivers, senders], 1))
        constants.append(k[receivers, senders])
    return EdgeLists.from_list(lists), np.concatenate(constants)


def test_forces_hand_computed_and_clipped():
    positions = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    constants = np.array([0.1, 0.2, 0.1, 0.2])
    forces = local_spring_forces(positions, TRIANGLE, constants)
    np.testing.assert_allclose(forces[0], [[0.1, 0.4], [-0.1, 0.0], [0.0, -0.4]])
    clipped = local_spring_forces(positions, TRIANGLE, constants, max_force=0.2)
    np.testing.assert_allclose(clipped[0], [[0.1, 0.2], [-0.1, 0.0], [0.0, -0.2]])


def test_matches_the_dense_springs_integrator_with_walls():
    rng = np.random.default_rng(0)
    springs, constants = random_springs(rng, 3, 6)
    positions = rng.uniform(-1.5, 1.5, (3, 6, 2))
    velocities = rng.normal(0, 0.5, (3, 6, 2))
    sparse = integrate_local_springs(positions, velocities, springs, constants, 3000, box_size=1.5)
    dense = integrate_springs(positions, velocities, dense_constants(springs, constants, 6), 3000,
                              box_size=1.5)
    assert sparse.shape == (3, 6, 29, 4)
    np.testing.assert_allclose(sparse, dense, atol=1e-10)


def test_energy_and_momentum_conserved_without_walls():
    rng = np.random.default_rng(1)
    springs, constants = random_springs(rng, 2, 5)
    constants = 10 * constants                                # strong: fast dynamics
    positions, velocities = rng.normal(0, 0.5, (2, 5, 2)), rng.normal(0, 0.5, (2, 5, 2))
    trajectories = integrate_local_springs(positions, velocities, springs, constants, 2000,
                                           box_size=100.0, sample_every=10)
    r, v = trajectories[..., :2], trajectories[..., 2:]
    momentum = v.sum(axis=1)                                  # [batch, frames, 2]
    np.testing.assert_allclose(momentum, np.broadcast_to(velocities.sum(axis=1)[:, None], momentum.shape),
                               atol=1e-12)
    receivers, senders = springs.edges.T
    system = np.repeat(np.arange(2), springs.num_edges())
    stretch = ((r[system, receivers] - r[system, senders]) ** 2).sum(-1)   # [edges, frames]
    potential = np.stack([0.25 * (constants[:, None] * stretch)[system == s].sum(0) for s in (0, 1)])
    kinetic = 0.5 * (v ** 2).sum(axis=(1, 3))
    energy = kinetic + potential                               # each spring listed twice: 0.25
    assert (kinetic.max(1) - kinetic.min(1) > 0.1 * energy.mean(1)).all()   # energy does move
    assert np.abs(energy / energy[:, :1] - 1).max() < 0.01   # leapfrog: bounded, no drift


def test_springs_only_within_the_cutoff_and_symmetric():
    simulation = LocalSpringsSimulation(cutoff=1.2)
    result = simulation.sample(3, 60, num_steps=2, sample_every=1, seed=3)
    springs = result.interacting_edges()
    for system in range(3):
        start_positions = result.trajectories[system, :, 0, :2]     # one step after the start
        pairs = result.edges[system]
        distances = np.linalg.norm(start_positions[pairs[:, 0]] - start_positions[pairs[:, 1]], axis=-1)
        assert distances.max() <= 1.21
        inner = radius_edges(start_positions[:, None], 1.19)      # surely within 1.2 at the start
        assert np.isin(inner @ [60, 1], pairs @ [60, 1]).all()
        labels = dict(zip(map(tuple, pairs.tolist()), result.edge_labels[
            result.edges.row_splits[system]:result.edges.row_splits[system + 1]]))
        assert all(labels[(j, i)] == label for (i, j), label in labels.items())
        assert set(map(tuple, springs[system].tolist())) == {pair for pair, label in labels.items() if label}
    assert 0.4 < result.edge_labels.mean() < 0.6


def test_density_fixed_as_nodes_grow():
    simulation = LocalSpringsSimulation(walls=True)
    assert local_springs.box_size_for(100, 1.0) == 5.0
    degrees = []
    for num_nodes in (100, 1600):
        result = simulation.sample(1, num_nodes, num_steps=200, seed=0)
        box = local_springs.box_size_for(num_nodes, 1.0)
        positions = result.trajectories[..., :2]
        assert np.abs(positions).max() <= box and np.abs(positions).max() > 0.95 * box
        assert num_nodes / (2 * box) ** 2 == pytest.approx(1.0)
        degrees.append(result.edges.num_edges()[0] / num_nodes)
    assert 5.0 < degrees[0] < degrees[1] < np.pi * 1.5 ** 2       # fewer near the walls
    assert degrees[1] > 6.5


def test_without_walls_the_same_systems_leave_the_box():
    box = local_springs.box_size_for(10, 1.0)                     # +-1.58: half the nodes bounce
    walled = LocalSpringsSimulation(walls=True).sample(3, 10, num_steps=2000, seed=3)
    open_space = LocalSpringsSimulation().sample(3, 10, num_steps=2000, seed=3)     # the default
    np.testing.assert_array_equal(open_space.edges.edges, walled.edges.edges)       # same systems
    np.testing.assert_array_equal(open_space.edge_labels, walled.edge_labels)
    np.testing.assert_array_equal(open_space.trajectories[:, :, 0], walled.trajectories[:, :, 0])
    assert np.abs(walled.trajectories[..., :2]).max() <= box
    assert np.abs(open_space.trajectories[..., :2]).max() > box
    assert LocalSpringsSimulation().parameters["walls"] is False


def test_same_seed_same_bytes_for_any_number_of_workers(monkeypatch):
    monkeypatch.setattr(local_springs, "CHUNK_NODES", 20)       # 2 systems per chunk
    simulation = LocalSpringsSimulation()
    done = []
    one = simulation.sample(7, 10, num_steps=300, seed=5, workers=1, noise=0.01, progress=done.append)
    three = simulation.sample(7, 10, num_steps=300, seed=5, workers=3, noise=0.01)
    assert done == [2, 4, 6, 7]
    assert one.trajectories.tobytes() == three.trajectories.tobytes()
    np.testing.assert_array_equal(one.edges.edges, three.edges.edges)
    np.testing.assert_array_equal(one.edge_labels, three.edge_labels)
    other = simulation.sample(7, 10, num_steps=300, seed=6, workers=1)
    assert other.trajectories.tobytes() != one.trajectories.tobytes()


def test_non_interacting_keeps_the_pairs_without_springs():
    result = LocalSpringsSimulation().sample(2, 30, num_steps=500, interacting=False, seed=1)
    assert len(result.edges.edges) > 0 and not result.edge_labels.any()
    assert len(result.interacting_edges().edges) == 0
    speeds = np.linalg.norm(result.trajectories[..., 2:], axis=-1)
    np.testing.assert_allclose(speeds, 0.5, rtol=1e-6)


def test_interacting_edges_keep_row_splits():
    result = SparseSimulationResult(np.zeros((2, 3, 1, 4), np.float32),
                                    EdgeLists.from_list([complete_edges(3), complete_edges(3)]),
                                    np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1], np.int32))
    springs = result.interacting_edges()
    assert springs.row_splits.tolist() == [0, 2, 4]
    assert springs.edges.tolist() == [[0, 1], [2, 1], [2, 0], [2, 1]]


@pytest.mark.parametrize("kwargs, message", [
    ({"edge_types": 3}, "edge_types 2, got 3"),
    ({"noise": -1.0}, "noise must be a finite standard deviation"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"num_steps": 100}, "gives no frame"),
])
def test_bad_sample_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalSpringsSimulation().sample(1, 4, **kwargs)
    with pytest.raises(ValueError, match="num_nodes must be at least 2"):
        LocalSpringsSimulation().sample(1, 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"density": 0.0}, "density must be a finite number > 0"),
    ({"cutoff": float("inf")}, "cutoff must be a finite number > 0"),
    ({"spring_probability": 1.5}, r"spring_probability must be in \[0, 1\]"),
    ({"walls": "no"}, "walls must be True or False, got 'no'"),
])
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalSpringsSimulation(**kwargs)


def test_mismatched_spring_lists_raise():
    with pytest.raises(ValueError, match="spring lists of 2 systems"):
        local_spring_forces(np.zeros((2, 3, 2)), TRIANGLE, np.ones(4))
    with pytest.raises(ValueError, match="one spring constant per spring"):
        local_spring_forces(np.zeros((1, 3, 2)), TRIANGLE, np.ones(3))
