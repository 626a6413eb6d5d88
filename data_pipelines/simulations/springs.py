"""Springs (paper appendix B.1): point masses in a 2-D box, pairs joined by springs.

Building blocks:
  spring_forces           Hooke's law F_i = -sum_j k_ij (r_i - r_j), clipped per component
  integrate_springs       caller-given initial states and spring constants -> trajectories
  SpringsSimulation       random systems: each pair gets an edge type, equally likely,
                          undirected; spring constant = 0.1 * type value with values
                          (0, 1) for 2 edge types and (0, 0.5, 1) for 3 (appendix A.2)

Random systems as the reference: positions ~ N(0, 0.5^2) per coordinate, velocities of
norm 0.5 in a random direction; leapfrog with dt = 0.001 and walls at +-5 (see
`particles`).
"""

from __future__ import annotations

import numpy as np

from data_pipelines.simulations import base, particles

INTERACTION_STRENGTH = 0.1
SPRING_TYPE_VALUES = {2: np.array([0.0, 1.0]), 3: np.array([0.0, 0.5, 1.0])}
"""edge_types -> the spring-type value of each label (spring constant / 0.1)."""


def _spring_force_law(spring_constants: np.ndarray, max_force: float) -> particles.ForceLaw:
    """Hooke's law for batch-last spring constants [nodes, nodes, batch] (diagonal ignored).

    F = M r with M_ij = k_ij (i != j), M_ii = -sum_{j != i} k_ij: one batched contraction
    per step, M built once. M is repeated for the x and y halves of positions viewed as
    [nodes, 2 * batch], which numpy's einsum contracts faster than [nodes, 2, batch].
    """
    nodes = spring_constants.shape[0]
    coupling = spring_constants.copy()
    diagonal = np.arange(nodes)
    coupling[diagonal, diagonal] = 0
    coupling[diagonal, diagonal] = -coupling.sum(axis=1)
    coupling_xy = np.concatenate([coupling, coupling], axis=-1)   # [nodes, nodes, 2 * batch]

    def force_law(positions: np.ndarray, forces: np.ndarray) -> None:
        np.einsum("ijb,jb->ib", coupling_xy, positions.reshape(nodes, -1),
                  out=forces.reshape(nodes, -1))
        particles.clip_forces(forces, max_force)

    return force_law


def spring_forces(positions: np.ndarray, spring_constants: np.ndarray,
                  max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Spring force on every node, F_i = -sum_j k_ij (r_i - r_j), each component clipped.

    Args:
      positions: [batch, nodes, 2].
      spring_constants: [batch, nodes, nodes] k_ij (the diagonal is ignored).
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, 2] forces, in the inputs' floating dtype (at least float32).
    """
    return particles.forces_of_couplings(lambda k: _spring_force_law(k, max_force),
                                         positions, spring_constants, "spring_constants")


def integrate_springs(positions: np.ndarray, velocities: np.ndarray,
                      spring_constants: np.ndarray, num_steps: int, sample_every: int = 100,
                      dt: float = particles.DT, box_size: float = particles.BOX_SIZE,
                      max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Integrates springs systems from the given initial states (see `particles`).

    Args:
      positions: [batch, nodes, 2] initial positions.
      velocities: [batch, nodes, 2] initial velocities.
      spring_constants: [batch, nodes, nodes] k_ij, symmetric for Newton's third law (the
        diagonal is ignored); the random systems use 0.1 * spring-type value.
      num_steps: integration steps; frames = num_steps // sample_every - 1.
      sample_every: keep every this many steps.
      dt: step size.
      box_size: elastic walls at +-box_size.
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, frames, 4] trajectories (x, y, vx, vy) in the inputs' floating dtype
      (at least float32): frame k is the state after step (k + 1) * sample_every.
    """
    return particles.integrate_couplings(lambda k: _spring_force_law(k, max_force),
                                         positions, velocities, spring_constants, "spring_constants",
                                         num_steps, sample_every, dt, box_size)


class SpringsSimulation(particles.ParticleSimulation):
    """Random springs systems; edge label = spring-type index (0 = no spring)."""

    name = "springs"
    edge_types_choices = (2, 3)
    type_zero_is_no_interaction = True
    undirected_interactions = True          # one spring constant per pair
    position_std = 0.5
    interaction_strength = INTERACTION_STRENGTH

    def _sample_interactions(self, rng, num_sims, num_nodes, edge_types, interacting):
        if interacting:
            edges = base.random_pair_types(rng, num_sims, num_nodes, edge_types)
        else:
            edges = np.zeros((num_sims, num_nodes, num_nodes), np.int32)
        return SPRING_TYPE_VALUES[edge_types][edges], edges

    def _integrate(self, positions, velocities, interactions, num_steps, sample_every):
        return integrate_springs(positions, velocities, INTERACTION_STRENGTH * interactions,
                                 num_steps, sample_every)

    def labels_from_interactions(self, interactions, *, edge_types=2):
        if edge_types not in SPRING_TYPE_VALUES:
            raise ValueError(f"springs simulations have edge_types 2 or 3, got {edge_types!r}")
        return base.labels_from_values(interactions, SPRING_TYPE_VALUES[edge_types],
                                       "springs interactions")
