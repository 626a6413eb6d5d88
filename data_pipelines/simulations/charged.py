"""Charged particles (paper appendix B.2): point masses in a 2-D box, every pair
interacting through a Coulomb-like force.

Building blocks:
  charged_forces          F_i = C sum_j q_i q_j (r_i - r_j) / |r_i - r_j|^3, each component
                          clipped to +-max_force
  integrate_charged       caller-given initial states and charge products -> trajectories
  ChargedSimulation       random systems: charges +1 / -1 with probability 0.5 each; edge
                          label 1 where q_i q_j > 0 (the pair repels), 0 where it attracts

Random systems as the reference: positions ~ N(0, 1) per coordinate, velocities of norm
0.5 in a random direction; C = 1, leapfrog with dt = 0.001, walls at +-5 and forces
clipped to +-100 (see `particles`). Interaction matrices are stored as the reference's
``edges_*.npy``: q_i q_j including the diagonal (1).
"""

from __future__ import annotations

import numpy as np

from data_pipelines.simulations import base, particles

INTERACTION_STRENGTH = 1.0
CHARGE_PRODUCT_VALUES = np.array([-1.0, 0.0, 1.0])
"""The possible q_i q_j: -1 attract (label 0), 0 no interaction (label 0, non-interacting
systems only), 1 repel (label 1)."""


def _charged_force_law(charge_products: np.ndarray, strength: float,
                       max_force: float) -> particles.ForceLaw:
    """Coulomb forces for batch-last charge products [nodes, nodes, batch] (upper triangle
    read: q_i q_j is symmetric).

    Works on the nodes * (nodes - 1) / 2 unordered pairs i < j: pair differences
    r_i - r_j = incidence^T r and node forces F = incidence (w * (r_i - r_j)) are two
    small matrix products with the constant [nodes, pairs] incidence matrix (+1 at i,
    -1 at j: Newton's third law), the distances elementwise on [pairs, batch]. Work
    buffers are allocated once.
    """
    nodes, _, batch = charge_products.shape
    first, second = np.triu_indices(nodes, 1)
    pairs = len(first)
    dtype = charge_products.dtype
    incidence = np.zeros((nodes, pairs), dtype)
    incidence[first, np.arange(pairs)] = 1
    incidence[second, np.arange(pairs)] = -1
    incidence_t = np.ascontiguousarray(incidence.T)
    coupling = strength * charge_products[first, second]              # [pairs, batch]
    differences = np.empty((pairs, 2, batch), dtype)
    weights = np.empty((pairs, batch), dtype)
    root = np.empty_like(weights)
    pair_forces = np.empty_like(differences)

    def force_law(positions: np.ndarray, forces: np.ndarray) -> None:
        np.matmul(incidence_t, positions.reshape(nodes, -1), out=differences.reshape(pairs, -1))
        np.einsum("pdb,pdb->pb", differences, differences, out=weights)   # |r_i - r_j|^2
        np.sqrt(weights, out=root)
        np.multiply(weights, root, out=weights)
        np.divide(coupling, weights, out=weights)                         # C q_i q_j / |.|^3
        np.multiply(differences, weights[:, None, :], out=pair_forces)
        np.matmul(incidence, pair_forces.reshape(pairs, -1), out=forces.reshape(nodes, -1))
        particles.clip_forces(forces, max_force)

    return force_law


def charged_forces(positions: np.ndarray, charge_products: np.ndarray,
                   strength: float = INTERACTION_STRENGTH,
                   max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Force on every node, F_i = C sum_{j != i} q_i q_j (r_i - r_j) / |r_i - r_j|^3, each
    component clipped to [-max_force, max_force] (like charges repel).

    Args:
      positions: [batch, nodes, 2], distinct positions within each system.
      charge_products: [batch, nodes, nodes] q_i q_j, symmetric (the upper triangle is
        read, the diagonal ignored).
      strength: C.
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, 2] forces, in the inputs' floating dtype (at least float32).
    """
    return particles.forces_of_couplings(lambda c: _charged_force_law(c, strength, max_force),
                                         positions, charge_products, "charge_products")


def integrate_charged(positions: np.ndarray, velocities: np.ndarray,
                      charge_products: np.ndarray, num_steps: int, sample_every: int = 100,
                      dt: float = particles.DT, box_size: float = particles.BOX_SIZE,
                      strength: float = INTERACTION_STRENGTH,
                      max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Integrates charged-particle systems from the given initial states (see `particles`).

    Args:
      positions: [batch, nodes, 2] initial positions, distinct within each system.
      velocities: [batch, nodes, 2] initial velocities.
      charge_products: [batch, nodes, nodes] q_i q_j, e.g. the reference's ``edges_*.npy``,
        symmetric (the upper triangle is read, the diagonal ignored).
      num_steps: integration steps; frames = num_steps // sample_every - 1.
      sample_every: keep every this many steps.
      dt: step size.
      box_size: elastic walls at +-box_size.
      strength: C.
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, frames, 4] trajectories (x, y, vx, vy) in the inputs' floating dtype
      (at least float32): frame k is the state after step (k + 1) * sample_every.
    """
    return particles.integrate_couplings(lambda c: _charged_force_law(c, strength, max_force),
                                         positions, velocities, charge_products, "charge_products",
                                         num_steps, sample_every, dt, box_size)


class ChargedSimulation(particles.ParticleSimulation):
    """Random charged-particle systems; edge label 1 = like charges (repel)."""

    name = "charged"
    type_zero_is_no_interaction = False     # label 0 = unlike charges: they attract
    undirected_interactions = True          # q_i q_j: Newton's third law
    position_std = 1.0
    interaction_strength = INTERACTION_STRENGTH

    def _sample_interactions(self, rng, num_sims, num_nodes, edge_types, interacting):
        if interacting:
            charges = 2.0 * rng.integers(0, 2, size=(num_sims, num_nodes)) - 1.0
        else:
            charges = np.zeros((num_sims, num_nodes))
        interactions = charges[:, :, None] * charges[:, None, :]
        edges = (interactions > 0).astype(np.int32)
        diagonal = np.arange(num_nodes)
        edges[:, diagonal, diagonal] = 0
        return interactions, edges

    def _integrate(self, positions, velocities, interactions, num_steps, sample_every):
        return integrate_charged(positions, velocities, interactions, num_steps, sample_every)

    def labels_from_interactions(self, interactions, *, edge_types=2):
        if edge_types != 2:
            raise ValueError(f"charged simulations have edge_types 2, got {edge_types!r}")
        value_index = base.labels_from_values(interactions, CHARGE_PRODUCT_VALUES,
                                              "charged interactions", diagonal=None)
        _check_charge_products(interactions)
        return (value_index == 2).astype(np.int32)


def _check_charge_products(interactions: np.ndarray) -> None:
    """ValueError unless each [nodes, nodes] matrix is q q^T for charges q_i = +-1 (so
    q_i^2 = 1 on the diagonal) or all 0 (a non-interacting system).

    Row 0 holds q_0 q_j, and q_0^2 = 1, so its outer product with itself is q q^T.
    """
    interactions = np.asarray(interactions, dtype=np.float64)
    row = interactions[..., 0, :]
    products = row[..., :, None] * row[..., None, :]
    valid = (products == interactions).all(axis=(-2, -1)) & (np.abs(row) == 1).all(axis=-1)
    valid |= (interactions == 0).all(axis=(-2, -1))
    if not valid.all():
        diagonal = np.diagonal(interactions, axis1=-2, axis2=-1)[~valid][0]
        raise ValueError("charged interactions must be products q_i q_j of charges +-1 (q_i^2 = 1 "
                         f"on the diagonal); found a matrix with diagonal {diagonal.tolist()} "
                         "(another simulation's data?)")
