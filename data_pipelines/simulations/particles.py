"""Point masses in a 2-D box: the leapfrog integrator and elastic walls shared by the
springs and charged-particle simulations (paper appendix B.1, B.2).

Building blocks:
  integrate_leapfrog      caller-given initial states and force law -> trajectories
                          [batch, nodes, frames, 4] of (x, y, vx, vy)
  clip_forces             the reference's per-component force clipping
  ParticleSimulation      `Simulation` base of springs and charged: initial-state sampling

Integration follows the reference code step for step (dt = 0.001, walls at +-5):

  step 0:   reflect the initial state at the walls; v += dt * F(r)
  step i:   r += dt * v; reflect at the walls; [keep (r, v) if i % sample_every == 0];
            v += dt * F(r)

so the frames are the states after steps sample_every, 2 * sample_every, ...,
F * sample_every with F = num_steps // sample_every - 1 (frame k, counted from 0, after step
(k + 1) * sample_every), each velocity the leapfrog velocity at that moment. Reflection at a wall
(the reference `_clamp`): a coordinate beyond +box becomes 2 * box - r with velocity -|v|,
one beyond -box becomes -2 * box - r with velocity +|v|. Each force component is clipped to
+-max_force (0.1 / dt = 100) as in the reference.

Internally arrays are batch-last, positions [nodes, 2, batch], so that every elementwise
operation runs over one contiguous axis of the whole batch.
"""

from __future__ import annotations

import abc
import types
from typing import Callable

import numpy as np

from data_pipelines.simulations import base

DT = 0.001
BOX_SIZE = 5.0
MAX_FORCE = 0.1 / DT
VELOCITY_NORM = 0.5

ForceLaw = Callable[[np.ndarray, np.ndarray], None]
"""force_law(positions [nodes, 2, batch], forces_out [nodes, 2, batch]): writes the clipped
forces on each node into ``forces_out``."""


def clip_forces(forces: np.ndarray, max_force: float) -> np.ndarray:
    """Clips every force component to [-max_force, max_force] in place, as the reference."""
    return np.clip(forces, -max_force, max_force, out=forces)


def _reflect_at_walls(positions: np.ndarray, velocities: np.ndarray, box_size: float) -> None:
    """Elastic walls at +-box_size, in place (the reference `_clamp`): first off the upper
    wall, then off the lower one, so a coordinate up to 3 * box_size out comes back.

    Args:
      positions, velocities: [nodes, 2, batch] (any shape, matching).
    Raises:
      ValueError: if a coordinate is still outside the box afterwards.
    """
    if positions.max() <= box_size and positions.min() >= -box_size:
        return
    over = positions > box_size
    positions[over] = 2 * box_size - positions[over]
    velocities[over] = -np.abs(velocities[over])
    under = positions < -box_size
    positions[under] = -2 * box_size - positions[under]
    velocities[under] = np.abs(velocities[under])
    if positions.max() > box_size or positions.min() < -box_size:
        raise ValueError(f"a node is still outside the box (+-{box_size}) after reflecting off "
                         f"both walls: it started too far out or moved more than "
                         f"2 * box_size in one step")


def forces_of_couplings(force_law_of: Callable[[np.ndarray], ForceLaw], positions: np.ndarray,
                        couplings: np.ndarray, couplings_name: str) -> np.ndarray:
    """The force on every node of batch-first systems, from a force law built on their couplings.

    Args:
      force_law_of: batch-last couplings [nodes, nodes, batch] -> `ForceLaw`.
      positions: [batch, nodes, 2].
      couplings: [batch, nodes, nodes] (spring constants, charge products).
      couplings_name: the argument's name in shape errors.
    Returns:
      [batch, nodes, 2] forces, in the inputs' floating dtype (at least float32).
    """
    base.check_batch_shapes(positions=(positions, "2"), **{couplings_name: (couplings, "n")})
    dtype = base.compute_dtype(positions, couplings)
    positions = base.to_batch_last(positions, dtype)
    forces = np.empty_like(positions)
    force_law_of(base.to_batch_last(couplings, dtype))(positions, forces)
    return np.ascontiguousarray(np.moveaxis(forces, -1, 0))


def integrate_couplings(force_law_of: Callable[[np.ndarray], ForceLaw], positions: np.ndarray,
                        velocities: np.ndarray, couplings: np.ndarray, couplings_name: str,
                        num_steps: int, sample_every: int, dt: float, box_size: float) -> np.ndarray:
    """`integrate_leapfrog` of batch-first systems [batch, nodes, 2] with couplings
    [batch, nodes, nodes] (see `forces_of_couplings`) -> [batch, nodes, frames, 4]."""
    base.check_batch_shapes(positions=(positions, "2"), velocities=(velocities, "2"),
                            **{couplings_name: (couplings, "n")})
    dtype = base.compute_dtype(positions, velocities, couplings)
    return integrate_leapfrog(base.to_batch_last(positions, dtype), base.to_batch_last(velocities, dtype),
                              force_law_of(base.to_batch_last(couplings, dtype)),
                              num_steps, sample_every, dt, box_size)


def integrate_leapfrog(positions: np.ndarray, velocities: np.ndarray, force_law: ForceLaw,
                       num_steps: int, sample_every: int, dt: float,
                       box_size: float) -> np.ndarray:
    """Leapfrog integration of point masses in a box with elastic walls.

    Args:
      positions, velocities: [nodes, 2, batch] batch-last initial state, in the compute
        dtype; integrated in place.
      force_law: see `ForceLaw`.
      num_steps, sample_every: trajectory length and sampling period, in steps.
      dt: step size.
      box_size: walls at +-box_size in both coordinates.
    Returns:
      [batch, nodes, frames, 4] trajectories (x, y, vx, vy), frames =
      num_steps // sample_every - 1, in the compute dtype.
    """
    frames = base.num_frames(num_steps, sample_every)
    nodes, _, batch = positions.shape
    trajectories = np.empty((batch, nodes, frames, 4), positions.dtype)
    forces = np.empty_like(positions)
    drift = np.empty_like(positions)

    def kick() -> None:
        force_law(positions, forces)
        np.multiply(forces, dt, out=forces)
        np.add(velocities, forces, out=velocities)

    _reflect_at_walls(positions, velocities, box_size)
    kick()
    for frame in range(frames):
        for step in range(sample_every):
            np.multiply(velocities, dt, out=drift)
            positions += drift
            _reflect_at_walls(positions, velocities, box_size)
            if step == sample_every - 1:
                trajectories[:, :, frame, :2] = positions.transpose(2, 0, 1)
                trajectories[:, :, frame, 2:] = velocities.transpose(2, 0, 1)
                if frame == frames - 1:
                    break
            kick()
    return trajectories


class ParticleSimulation(base.Simulation):
    """Shared by springs and charged: 2-D (x, y, vx, vy) states, random initial states.

    Subclasses set ``position_std`` (initial positions ~ N(0, position_std^2) per
    coordinate; velocities point in a uniformly random direction with norm 0.5) and
    implement `_integrate`.
    """

    dims = 4
    feature_names = ("x", "y", "vx", "vy")
    default_num_steps = 5000
    default_num_steps_test = 10000
    default_sample_every = 100
    normalisation_groups = ((0, 1), (2, 3))
    position_std: float
    interaction_strength: float

    @property
    def parameters(self):
        """Step size, walls, force clip, force strength and initial-state scales."""
        return types.MappingProxyType({
            "dt": DT, "box_size": BOX_SIZE, "max_force": MAX_FORCE,
            "interaction_strength": self.interaction_strength,
            "position_std": self.position_std, "velocity_norm": VELOCITY_NORM})

    def _simulate_chunk(self, rng, interactions, num_steps, sample_every):
        num_sims, num_nodes = interactions.shape[:2]
        positions = rng.standard_normal((num_sims, num_nodes, 2)) * self.position_std
        velocities = rng.standard_normal((num_sims, num_nodes, 2))
        velocities *= VELOCITY_NORM / np.linalg.norm(velocities, axis=-1, keepdims=True)
        return self._integrate(positions, velocities, interactions, num_steps, sample_every)

    @abc.abstractmethod
    def _integrate(self, positions: np.ndarray, velocities: np.ndarray,
                   interactions: np.ndarray, num_steps: int, sample_every: int) -> np.ndarray:
        """Integrates with the reference constants: [batch, nodes, 2] initial positions and
        velocities, [batch, nodes, nodes] interactions -> [batch, nodes, frames, 4]."""
