"""Tests of data_pipelines.simulations: physics of the pure integrators and force laws
against hand-computed values and conservation laws, random-system statistics, seeding and
argument checks. Batches are small so the file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.simulations import (CHUNK_SIMS, SIMULATION_NAMES, charged_forces,
                                        get_simulation, integrate_charged, integrate_kuramoto,
                                        integrate_springs, kuramoto_phase_velocities, num_frames,
                                        spring_forces)

DT = 0.001


def springs_energy(trajectories: np.ndarray, spring_constants: np.ndarray) -> np.ndarray:
    """Kinetic + spring potential energy per frame.

    Args:
      trajectories: [batch, nodes, frames, 4].
      spring_constants: [batch, nodes, nodes], symmetric.
    Returns:
      [batch, frames].
    """
    positions, velocities = trajectories[..., :2], trajectories[..., 2:]
    kinetic = 0.5 * (velocities ** 2).sum(axis=(1, 3))
    differences = positions[:, :, None] - positions[:, None, :]   # [batch, i, j, frames, 2]
    squared = (differences ** 2).sum(-1)
    potential = 0.25 * np.einsum("bij,bijt->bt", spring_constants, squared)   # each pair twice
    return kinetic + potential


# --- registry ----------------------------------------------------------------------------

def test_registry_names_and_attributes():
    assert SIMULATION_NAMES == ("springs", "charged", "kuramoto")
    for name in SIMULATION_NAMES:
        simulation = get_simulation(name)
        assert simulation.name == name
        assert len(simulation.feature_names) == simulation.dims
        assert sorted(sum(simulation.normalisation_groups, ())) == list(range(simulation.dims))
        assert simulation.parameters["dt"] in (0.001, 0.01)
        assert num_frames(simulation.default_num_steps, simulation.default_sample_every) == 49
        assert num_frames(simulation.default_num_steps_test, simulation.default_sample_every) == 99


def test_unknown_simulation_raises():
    with pytest.raises(ValueError, match="unknown simulation 'x'; choose one of springs, charged, "
                                         "kuramoto"):
        get_simulation("x")


@pytest.mark.parametrize("name", SIMULATION_NAMES)
def test_sample_shapes_and_dtypes(name):
    simulation = get_simulation(name)
    result = simulation.sample(3, 4, seed=1)
    assert result.trajectories.shape == (3, 4, 49, simulation.dims)
    assert result.trajectories.dtype == np.float32
    assert result.edges.shape == result.interactions.shape == (3, 4, 4)
    assert result.edges.dtype == np.int32 and result.interactions.dtype == np.float32
    assert np.isfinite(result.trajectories).all()
    np.testing.assert_array_equal(simulation.labels_from_interactions(result.interactions),
                                  result.edges)


# --- springs -----------------------------------------------------------------------------

def test_springs_energy_conserved_without_walls():
    rng = np.random.default_rng(0)
    batch, nodes = 8, 5
    positions = rng.normal(0.0, 0.5, (batch, nodes, 2))
    velocities = rng.normal(0.0, 0.3, (batch, nodes, 2))
    spring_constants = np.ones((batch, nodes, nodes)) - np.eye(nodes)   # strong: fast dynamics
    trajectories = integrate_springs(positions, velocities, spring_constants, num_steps=10000)
    assert trajectories.shape == (batch, nodes, 99, 4)
    assert np.abs(trajectories[..., :2]).max() < 5.0        # no wall bounce
    energy = springs_energy(trajectories, spring_constants)
    kinetic = 0.5 * (trajectories[..., 2:] ** 2).sum(axis=(1, 3))
    assert (kinetic.max(1) - kinetic.min(1) > 0.1 * energy.mean(1)).all()   # energy does move
    relative_drift = np.abs(energy / energy[:, :1] - 1)
    assert relative_drift.max() < 0.01


def test_springs_velocities_match_position_differences():
    simulation = get_simulation("springs")
    trajectories = simulation.sample(64, 5, seed=3).trajectories.astype(np.float64)
    inside = np.abs(trajectories[..., :2]).max(axis=(1, 2, 3)) < 4.5   # no wall bounce
    assert inside.sum() > 32
    trajectories = trajectories[inside]
    frame_time = simulation.default_sample_every * DT
    central = (trajectories[:, :, 2:, :2] - trajectories[:, :, :-2, :2]) / (2 * frame_time)
    np.testing.assert_allclose(trajectories[:, :, 1:-1, 2:], central, atol=2e-3)


def test_frame_k_is_the_state_after_step_k_plus_1_times_sample_every():
    positions = np.array([[[0.0, 1.0], [-1.0, 0.0]]])
    velocities = np.array([[[0.3, -0.2], [0.1, 0.4]]])
    no_springs = np.zeros((1, 2, 2))
    trajectories = integrate_springs(positions, velocities, no_springs, num_steps=550,
                                     sample_every=50)
    assert trajectories.shape == (1, 2, 10, 4)
    np.testing.assert_array_equal(positions, [[[0.0, 1.0], [-1.0, 0.0]]])   # inputs untouched
    times = DT * 50 * np.arange(1, 11)
    expected = positions[0, :, None, :] + velocities[0, :, None, :] * times[None, :, None]
    np.testing.assert_allclose(trajectories[0, :, :, :2], expected, atol=1e-12)
    np.testing.assert_allclose(trajectories[0, :, :, 2:],
                               np.broadcast_to(velocities[0, :, None, :], (2, 10, 2)))


def test_walls_reflect_position_and_flip_velocity():
    positions = np.array([[[4.95, -4.95], [0.0, 0.0]]])
    velocities = np.array([[[1.0, -1.0], [0.0, 0.0]]])
    trajectories = integrate_springs(positions, velocities, np.zeros((1, 2, 2)), num_steps=300)
    # After 100 steps the free path would end at +-5.05: reflected to +-4.95.
    np.testing.assert_allclose(trajectories[0, 0, :, :2], [[4.95, -4.95], [4.85, -4.85]],
                               atol=1e-9)
    np.testing.assert_array_equal(trajectories[0, 0, :, 2:], [[-1.0, 1.0], [-1.0, 1.0]])


def test_spring_forces_hand_computed():
    positions = np.array([[[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]]])
    spring_constants = np.array([[[0.0, 0.1, 0.0], [0.1, 0.0, 0.5], [0.0, 0.5, 0.0]]])
    expected = [[0.1, 0.2], [-0.1 + 1.0, -0.2 - 1.5], [-1.0, 1.5]]
    np.testing.assert_allclose(spring_forces(positions, spring_constants)[0], expected)


def test_springs_edges_symmetric_zero_diagonal_half_connected():
    result = get_simulation("springs").sample(200, 5, num_steps=200, seed=0)
    edges = result.edges
    np.testing.assert_array_equal(edges, np.swapaxes(edges, 1, 2))
    assert (np.diagonal(edges, axis1=1, axis2=2) == 0).all()
    assert set(np.unique(edges)) == {0, 1}
    upper = edges[:, *np.triu_indices(5, 1)]
    assert abs(upper.mean() - 0.5) < 0.05                     # 2000 pairs: 5 sigma ~ 0.056
    np.testing.assert_array_equal(result.interactions, edges)


def test_springs_three_edge_types():
    simulation = get_simulation("springs")
    result = simulation.sample(200, 5, num_steps=200, edge_types=3, seed=0)
    upper = result.edges[:, *np.triu_indices(5, 1)]
    np.testing.assert_allclose(np.bincount(upper.ravel()) / upper.size, [1 / 3] * 3, atol=0.05)
    np.testing.assert_array_equal(result.interactions, np.array([0, 0.5, 1])[result.edges])
    np.testing.assert_array_equal(
        simulation.labels_from_interactions(result.interactions, edge_types=3), result.edges)


def test_non_interacting_particles_move_freely():
    result = get_simulation("springs").sample(20, 5, interacting=False, seed=0)
    assert not result.edges.any() and not result.interactions.any()
    speeds = np.linalg.norm(result.trajectories[..., 2:], axis=-1)
    np.testing.assert_allclose(speeds, 0.5, rtol=1e-5)        # walls flip, never slow down


def test_noise_is_added_on_top_of_the_same_systems():
    simulation = get_simulation("springs")
    clean = simulation.sample(50, 5, num_steps=1000, seed=4)
    noisy = simulation.sample(50, 5, num_steps=1000, seed=4, noise=0.1)
    np.testing.assert_array_equal(clean.edges, noisy.edges)
    difference = noisy.trajectories - clean.trajectories
    assert abs(difference.mean()) < 0.01 and abs(difference.std() - 0.1) < 0.005


# --- charged -----------------------------------------------------------------------------

def test_charged_forces_hand_computed():
    positions = np.array([[[0.0, 0.0], [3.0, 4.0]]])
    opposite = np.array([[[1.0, -1.0], [-1.0, 1.0]]])
    # F_1 = q1 q2 (r1 - r2) / |r1 - r2|^3 = -(-3, -4) / 125: attraction towards node 2.
    np.testing.assert_allclose(charged_forces(positions, opposite)[0],
                               [[0.024, 0.032], [-0.024, -0.032]])
    np.testing.assert_allclose(charged_forces(positions, -opposite)[0],
                               [[-0.024, -0.032], [0.024, 0.032]])


def test_charged_forces_clipped_per_component():
    positions = np.array([[[0.0, 0.0], [0.05, 0.0001]]])
    like = np.ones((1, 2, 2))
    # |d|^3 = (0.05^2 + 0.0001^2)^1.5; x component ~ -400 -> clipped, y ~ -0.8 kept.
    cube = (0.05 ** 2 + 0.0001 ** 2) ** 1.5
    np.testing.assert_allclose(charged_forces(positions, like)[0],
                               [[-100.0, -0.0001 / cube], [100.0, 0.0001 / cube]])
    np.testing.assert_allclose(charged_forces(positions, like, max_force=0.5)[0],
                               [[-0.5, -0.5], [0.5, 0.5]])


def test_charged_energy_conserved_without_clipping():
    # Two like charges far apart: a smooth, unclipped, wall-free scattering.
    positions = np.array([[[-1.0, 0.0], [1.0, 0.1]]])
    velocities = np.array([[[1.0, 0.0], [-1.0, 0.0]]])
    trajectories = integrate_charged(positions, velocities, np.ones((1, 2, 2)), num_steps=3000)
    r = np.linalg.norm(trajectories[0, 0, :, :2] - trajectories[0, 1, :, :2], axis=-1)
    energy = 0.5 * (trajectories[0, :, :, 2:] ** 2).sum(axis=(0, 2)) + 1.0 / r
    assert r.min() < 1.0 and r[-1] > 2.0                       # they came close and parted
    assert np.abs(trajectories[..., :2]).max() < 5.0
    np.testing.assert_allclose(energy, energy[0], rtol=1e-3)


def test_charged_edge_label_is_sign_of_charge_product():
    result = get_simulation("charged").sample(100, 5, num_steps=200, seed=0)
    products = result.interactions
    charges = products[:, 0, :] * products[:, 0, :1]           # q_j q_0 q_0 = q_j up to sign
    np.testing.assert_array_equal(products, charges[:, :, None] * charges[:, None, :])
    assert set(np.unique(products)) == {-1.0, 1.0}
    off_diagonal = ~np.eye(5, dtype=bool)
    np.testing.assert_array_equal(result.edges[:, off_diagonal],
                                  ((np.sign(products) + 1) / 2)[:, off_diagonal])
    assert (np.diagonal(result.edges, axis1=1, axis2=2) == 0).all()


# --- kuramoto ----------------------------------------------------------------------------

def test_kuramoto_uncoupled_pair_keeps_its_frequencies():
    phases = np.array([[0.3, 2.0]])
    frequencies = np.array([[2.0, 7.5]])
    trajectories = integrate_kuramoto(phases, frequencies, np.zeros((1, 2, 2)), num_steps=500)
    times = 0.1 * np.arange(1, 50)
    np.testing.assert_allclose(trajectories[0, :, :, 0], np.repeat(frequencies.T, 49, 1))
    np.testing.assert_allclose(trajectories[0, :, :, 1],
                               np.sin(phases.T + frequencies.T * times), atol=1e-9)
    np.testing.assert_array_equal(trajectories[0, :, :, 2], np.repeat(frequencies.T, 49, 1))


def test_kuramoto_strongly_coupled_pair_phase_locks():
    phases = np.array([[0.0, 3.0]])
    frequencies = np.array([[2.0, 3.0]])
    couplings = np.array([[[0.0, 4.0], [4.0, 0.0]]])
    trajectories = integrate_kuramoto(phases, frequencies, couplings, num_steps=1000)
    late = trajectories[0, :, -20:, 0]                          # dphi/dt of the last 20 frames
    np.testing.assert_allclose(late, 2.5, atol=1e-6)            # both at the mean frequency
    # Locked phase difference: sin(phi_1 - phi_0) = (omega_1 - omega_0) / (2 k).
    np.testing.assert_allclose(kuramoto_phase_velocities(np.array([[0.0, np.arcsin(1 / 8)]]),
                                                         frequencies, couplings), [[2.5, 2.5]])


def test_kuramoto_is_fourth_order_accurate():
    rng = np.random.default_rng(0)
    phases = rng.uniform(0, 2 * np.pi, (4, 5))
    frequencies = rng.uniform(1, 10, (4, 5))
    couplings = np.ones((4, 5, 5))
    coarse = integrate_kuramoto(phases, frequencies, couplings, num_steps=500, sample_every=10)
    fine = integrate_kuramoto(phases, frequencies, couplings, num_steps=2000, sample_every=40,
                              dt=0.0025)
    # RK4: error ~ dt^4 (about 1e-5 here); a first- or second-order method is off by >1e-2.
    np.testing.assert_allclose(coarse, fine, atol=1e-4)


def test_kuramoto_couplings_symmetric_half_connected():
    result = get_simulation("kuramoto").sample(200, 5, num_steps=20, seed=0)
    np.testing.assert_array_equal(result.edges, np.swapaxes(result.edges, 1, 2))
    assert (np.diagonal(result.edges, axis1=1, axis2=2) == 0).all()
    assert abs(result.edges[:, *np.triu_indices(5, 1)].mean() - 0.5) < 0.05
    np.testing.assert_array_equal(result.interactions, result.edges)
    omega = result.trajectories[..., 2]
    assert omega.min() >= 1 and omega.max() < 10
    np.testing.assert_array_equal(omega, omega[:, :, :1].repeat(omega.shape[2], axis=2))


# --- seeding -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SIMULATION_NAMES)
def test_same_seed_same_bytes_for_any_number_of_workers(name):
    simulation = get_simulation(name)
    num_sims = 2 * CHUNK_SIMS + 5                                # three chunks
    steps = 2 * simulation.default_sample_every                  # one frame: cheap
    done = []
    one = simulation.sample(num_sims, 3, num_steps=steps, seed=7, workers=1, noise=0.01)
    two = simulation.sample(num_sims, 3, num_steps=steps, seed=7, workers=2, noise=0.01,
                            progress=done.append)
    for field in ("trajectories", "edges", "interactions"):
        assert getattr(one, field).tobytes() == getattr(two, field).tobytes()
    assert sorted(done) == done and done[-1] == num_sims
    other = simulation.sample(num_sims, 3, num_steps=steps, seed=8)
    assert not np.array_equal(one.edges, other.edges)
    assert not np.array_equal(one.trajectories, other.trajectories)


# --- argument checks ---------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, message", [
    ("springs", dict(num_nodes=1), "num_nodes must be at least 2"),
    ("springs", dict(num_sims=0), "num_sims must be a positive integer"),
    ("springs", dict(num_steps=0), "num_steps must be a positive integer"),
    ("springs", dict(num_steps=150), "gives no frame"),
    ("kuramoto", dict(sample_every=-1), "sample_every must be a positive integer"),
    ("springs", dict(edge_types=4), "springs simulations have edge_types 2 or 3, got 4"),
    ("charged", dict(edge_types=3), "charged simulations have edge_types 2, got 3"),
    ("kuramoto", dict(edge_types=3), "kuramoto simulations have edge_types 2, got 3"),
    ("springs", dict(noise=-0.1), "noise must be"),
    ("springs", dict(seed=-1), "seed must be a non-negative integer"),
    ("charged", dict(workers=0), "workers must be a positive integer"),
])
def test_bad_arguments_raise(name, kwargs, message):
    arguments = dict(num_sims=2, num_nodes=3, num_steps=200) | kwargs
    with pytest.raises(ValueError, match=message):
        get_simulation(name).sample(arguments.pop("num_sims"), arguments.pop("num_nodes"),
                                    **arguments)


def test_bad_shapes_and_interactions_raise():
    with pytest.raises(ValueError, match=r"spring_constants must have shape \[batch, nodes, nodes\]"):
        integrate_springs(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.zeros((2, 3, 4)), 200)
    with pytest.raises(ValueError, match="at least 2 nodes"):
        integrate_kuramoto(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1, 1)), 200)
    with pytest.raises(ValueError, match=r"take values in \[0.0, 1.0\] off the diagonal, found 0.5"):
        get_simulation("springs").labels_from_interactions(np.array([[0, 0.5], [0.5, 0]]))


def test_positions_too_far_out_for_two_reflections_raise():
    free = np.zeros((1, 2, 2))
    start = integrate_springs(np.array([[[16.0, 0.0], [0.0, 0.0]]]), free, free, 200)
    assert start[0, 0, 0, 0] == -4.0                       # 16 -> -6 -> -4: both walls
    with pytest.raises(ValueError, match=r"still outside the box \(\+-5.0\)"):
        integrate_springs(np.array([[[26.0, 0.0], [0.0, 0.0]]]), free, free, 200)
