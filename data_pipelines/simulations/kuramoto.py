"""Phase-coupled oscillators, the Kuramoto model (paper appendix B.3).

Building blocks:
  kuramoto_phase_velocities   dphi_i/dt = omega_i + sum_j k_ij sin(phi_j - phi_i)
  integrate_kuramoto          caller-given phases, frequencies and couplings -> trajectories
                              [batch, nodes, frames, 3] of (dphi/dt, sin phi, omega)
  KuramotoSimulation          random systems: omega ~ U[1, 10), phi ~ U[0, 2 pi), each
                              undirected pair coupled with k_ij = 1 with probability 0.5

Coupling sign. The paper's eq. 20 writes sin(phi_i - phi_j); with k_ij > 0 that term
pushes coupled oscillators *apart* (repulsive coupling, which never synchronises). We use
the standard, attractive Kuramoto form sin(phi_j - phi_i), under which coupled oscillators
pull towards each other's phase and lock when the coupling exceeds their frequency gap:
this is the model the paper's name and its description of "phase-coupled oscillators" refer
to, and the one whose interactions visibly shape the trajectories.

Integration: classic 4th-order Runge-Kutta, dt = 0.01, keeping every 10th step. Frames
follow the same rule as the particle simulations: the states after steps sample_every,
2 * sample_every, ..., F * sample_every with F = num_steps // sample_every - 1, so the
default 500 / 1000 steps give 49 / 99 frames. The dphi/dt feature is the exact right-hand side at the kept
state (not a finite difference); omega is repeated in every frame.

The pairwise sum uses sin(phi_j - phi_i) = sin phi_j cos phi_i - cos phi_j sin phi_i, so
each evaluation costs 2 * nodes trigonometric calls and one batched matrix product instead
of nodes^2 sines.
"""

from __future__ import annotations

import types
from typing import Callable

import numpy as np

from data_pipelines.simulations import base

DT = 0.01
FREQUENCY_RANGE = (1.0, 10.0)
COUPLING_VALUES = np.array([0.0, 1.0])
"""k_ij of each edge label: 0 = uncoupled, 1 = coupled."""


PhaseVelocityLaw = Callable[[np.ndarray, np.ndarray], None]
"""law(phases [nodes, batch], out [nodes, batch]): writes dphi/dt into ``out``."""


def _phase_velocity_law(frequencies: np.ndarray, couplings: np.ndarray) -> PhaseVelocityLaw:
    """dphi/dt for batch-last frequencies [nodes, batch] and couplings [nodes, nodes, batch]
    (diagonal ignored); work buffers are allocated once."""
    nodes, batch = frequencies.shape
    couplings = couplings.copy()
    diagonal = np.arange(nodes)
    couplings[diagonal, diagonal] = 0
    trig = np.empty((nodes, 2, batch), frequencies.dtype)
    coupled = np.empty_like(trig)
    product = np.empty_like(frequencies)

    def phase_velocities(phases: np.ndarray, out: np.ndarray) -> None:
        sin, cos = trig[:, 0], trig[:, 1]
        np.sin(phases, out=sin)
        np.cos(phases, out=cos)
        # coupled[i] = (sum_j k_ij sin phi_j, sum_j k_ij cos phi_j)
        np.einsum("ijb,jdb->idb", couplings, trig, out=coupled)
        np.multiply(cos, coupled[:, 0], out=out)
        np.multiply(sin, coupled[:, 1], out=product)
        np.subtract(out, product, out=out)
        np.add(out, frequencies, out=out)

    return phase_velocities


def kuramoto_phase_velocities(phases: np.ndarray, frequencies: np.ndarray,
                              couplings: np.ndarray) -> np.ndarray:
    """dphi_i/dt = omega_i + sum_j k_ij sin(phi_j - phi_i).

    Args:
      phases: [batch, nodes] phi.
      frequencies: [batch, nodes] intrinsic frequencies omega.
      couplings: [batch, nodes, nodes] k_ij (the diagonal is ignored).
    Returns:
      [batch, nodes] in the inputs' floating dtype (at least float32).
    """
    base.check_batch_shapes(phases=(phases, ""), frequencies=(frequencies, ""),
                            couplings=(couplings, "n"))
    dtype = base.compute_dtype(phases, frequencies, couplings)
    law = _phase_velocity_law(base.to_batch_last(frequencies, dtype),
                              base.to_batch_last(couplings, dtype))
    phases = base.to_batch_last(phases, dtype)
    velocities = np.empty_like(phases)
    law(phases, velocities)
    return np.ascontiguousarray(velocities.T)


def _runge_kutta_step(law: PhaseVelocityLaw, phases: np.ndarray, dt: float,
                      rates: list[np.ndarray], stage: np.ndarray) -> None:
    """One classic RK4 step of ``phases`` [nodes, batch] in place; ``rates`` (4 arrays) and
    ``stage`` are work buffers of the same shape."""
    k1, k2, k3, k4 = rates
    law(phases, k1)
    np.multiply(k1, dt / 2, out=stage)
    np.add(stage, phases, out=stage)
    law(stage, k2)
    np.multiply(k2, dt / 2, out=stage)
    np.add(stage, phases, out=stage)
    law(stage, k3)
    np.multiply(k3, dt, out=stage)
    np.add(stage, phases, out=stage)
    law(stage, k4)
    np.add(k2, k3, out=stage)          # phases += dt / 6 * (k1 + 2 k2 + 2 k3 + k4)
    np.multiply(stage, 2, out=stage)
    np.add(stage, k1, out=stage)
    np.add(stage, k4, out=stage)
    np.multiply(stage, dt / 6, out=stage)
    np.add(phases, stage, out=phases)


def integrate_kuramoto(phases: np.ndarray, frequencies: np.ndarray, couplings: np.ndarray,
                       num_steps: int, sample_every: int = 10, dt: float = DT) -> np.ndarray:
    """RK4 integration of Kuramoto systems from the given initial phases.

    Args:
      phases: [batch, nodes] initial phases.
      frequencies: [batch, nodes] intrinsic frequencies omega.
      couplings: [batch, nodes, nodes] k_ij (the diagonal is ignored).
      num_steps: integration steps; frames = num_steps // sample_every - 1.
      sample_every: keep every this many steps.
      dt: step size.
    Returns:
      [batch, nodes, frames, 3] trajectories (dphi/dt, sin phi, omega) in the inputs'
      floating dtype (at least float32): frame k is the state after step
      (k + 1) * sample_every.
    """
    base.check_batch_shapes(phases=(phases, ""), frequencies=(frequencies, ""),
                            couplings=(couplings, "n"))
    frames = base.num_frames(num_steps, sample_every)
    dtype = base.compute_dtype(phases, frequencies, couplings)
    frequencies = base.to_batch_last(frequencies, dtype)
    phi = base.to_batch_last(phases, dtype)
    law = _phase_velocity_law(frequencies, base.to_batch_last(couplings, dtype))
    nodes, batch = phi.shape
    trajectories = np.empty((batch, nodes, frames, 3), dtype)
    trajectories[..., 2] = frequencies.T[:, :, None]
    rates = [np.empty_like(phi) for _ in range(4)]     # the four RK4 slopes
    stage = np.empty_like(phi)
    for frame in range(frames):
        for _ in range(sample_every):
            _runge_kutta_step(law, phi, dt, rates, stage)
        law(phi, stage)
        trajectories[:, :, frame, 0] = stage.T
        trajectories[:, :, frame, 1] = np.sin(phi).T
    return trajectories


class KuramotoSimulation(base.Simulation):
    """Random Kuramoto systems; edge label = k_ij (0 uncoupled, 1 coupled)."""

    name = "kuramoto"
    type_zero_is_no_interaction = True      # label 0 = k_ij 0, uncoupled
    undirected_interactions = True          # k_ij = k_ji
    dims = 3
    feature_names = ("dphi_dt", "sin_phi", "omega")
    default_num_steps = 500
    default_num_steps_test = 1000
    default_sample_every = 10
    normalisation_groups = ((0,), (1,), (2,))
    parameters = types.MappingProxyType({"dt": DT, "frequency_min": FREQUENCY_RANGE[0],
                                         "frequency_max": FREQUENCY_RANGE[1],
                                         "coupling": float(COUPLING_VALUES[1])})

    def _sample_interactions(self, rng, num_sims, num_nodes, edge_types, interacting):
        if interacting:
            edges = base.random_pair_types(rng, num_sims, num_nodes, 2)
        else:
            edges = np.zeros((num_sims, num_nodes, num_nodes), np.int32)
        return COUPLING_VALUES[edges], edges

    def _simulate_chunk(self, rng, interactions, num_steps, sample_every):
        num_sims, num_nodes = interactions.shape[:2]
        frequencies = rng.uniform(*FREQUENCY_RANGE, size=(num_sims, num_nodes))
        phases = rng.uniform(0.0, 2 * np.pi, size=(num_sims, num_nodes))
        return integrate_kuramoto(phases, frequencies, interactions, num_steps, sample_every)

    def labels_from_interactions(self, interactions, *, edge_types=2):
        if edge_types != 2:
            raise ValueError(f"kuramoto simulations have edge_types 2, got {edge_types!r}")
        return base.labels_from_values(interactions, COUPLING_VALUES, "kuramoto interactions")
