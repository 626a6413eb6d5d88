"""Local springs: point masses in a 2-D box that grows with N at fixed density, springs only
between nodes that start within a cutoff, integrated in O(springs) per step (issue 15).

Building blocks:
  box_size_for              half-width L of the box holding N nodes at a density: (2L)^2 = N / density
  local_spring_forces       Hooke's law on per-system spring lists, F_i = sum_j k_ij (r_j - r_i)
                            over the springs (i, j), clipped per component
  integrate_local_springs   caller-given initial states and spring lists -> trajectories
  SparseSimulationResult    trajectories [sims, nodes, frames, 4], the directed pairs within
                            the cutoff at the start (`EdgeLists`) and their edge types
  LocalSpringsSimulation    random systems: positions uniform in the box, velocities of norm
                            0.5; each pair within the cutoff gets a spring (type 1) with
                            probability p, else none (type 0); undirected; open space (the
                            box is only where the nodes start), or elastic walls at its edges
  CHUNK_NODES               nodes per random stream and unit of parallel work

Random systems: with the defaults (density 1 node per unit area, cutoff 1.5, p = 0.5) a node
has about pi * 1.5^2 = 7 pairs within the cutoff (fewer near the box's edges) and half as many
springs, whatever N; N = 100 fills the reference box, +-5. Spring constant 0.1, dt
0.001, force clip 100 and the leapfrog/walls of `particles` are those of the springs data
(`springs`). Springs have rest length 0, as there. A node moves about 2.5 units in 49
frames, so with walls a fifth of the nodes of N = 100 bounce off one (half at N = 10), a jump
that costs NRI about 5 points of edge accuracy at equal epochs, and a box that grows with N
would tie a model to one size: open space (``walls=False``) is the default.

Spring lists are directed and hold both directions of every spring, receiver-major, each
with its spring constant: the force on node i sums over the springs (i, j) that i receives,
with one `np.bincount` over the flat [nodes, 2, batch] state, no N x N matrix anywhere.

Reproducibility as `base`: systems are cut into chunks of ``max(1, CHUNK_NODES // nodes)``
consecutive systems, each drawing from its own generator spawned from ``seed``; the bytes
depend on the seed and the sizes only, not on the number of worker threads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import numbers
import types
from typing import Callable

import numpy as np

from data_pipelines import candidates
from data_pipelines.simulations import base, particles
from data_pipelines.simulations.springs import INTERACTION_STRENGTH

CHUNK_NODES = 8192
"""Nodes per chunk (at least one system). Part of the mapping seed -> data."""


def box_size_for(num_nodes: int, density: float) -> float:
    """Half-width L of the square box [-L, L]^2 holding ``num_nodes`` at ``density`` nodes
    per unit area: (2L)^2 = num_nodes / density (100 nodes at density 1 -> L = 5)."""
    return 0.5 * float(np.sqrt(num_nodes / density))


def _local_spring_force_law(springs: candidates.EdgeLists, spring_constants: np.ndarray,
                            num_nodes: int, max_force: float, dtype: np.dtype) -> particles.ForceLaw:
    """Hooke's law on the flat batch-last state: entry (node, coordinate, system) of the
    [nodes, 2, batch] positions is element (2 * node + coordinate) * batch + system.

    Args:
      springs: directed springs of `batch` systems.
      spring_constants: [total_edges] k of each directed spring.
    """
    batch = len(springs)
    system = np.repeat(np.arange(batch, dtype=np.int64), springs.num_edges())
    receiver_x = 2 * springs.edges[:, 0].astype(np.int64) * batch + system
    sender_x = 2 * springs.edges[:, 1].astype(np.int64) * batch + system
    receivers = np.concatenate([receiver_x, receiver_x + batch])      # [2 * total_edges]
    senders = np.concatenate([sender_x, sender_x + batch])
    constants = np.tile(np.asarray(spring_constants, dtype), 2)
    pull = np.empty(len(receivers), dtype)
    size = num_nodes * 2 * batch

    def force_law(positions: np.ndarray, forces: np.ndarray) -> None:
        flat = positions.reshape(-1)
        np.take(flat, senders, out=pull)
        np.subtract(pull, flat[receivers], out=pull)
        np.multiply(pull, constants, out=pull)
        forces.reshape(-1)[:] = np.bincount(receivers, pull, minlength=size)
        particles.clip_forces(forces, max_force)

    return force_law


def _check_springs(batch: int, springs: candidates.EdgeLists, spring_constants: np.ndarray) -> None:
    if len(springs) != batch or np.shape(spring_constants) != (len(springs.edges),):
        raise ValueError(f"need spring lists of {batch} systems and one spring constant per "
                         f"spring, got {len(springs)} systems, {len(springs.edges)} springs and "
                         f"spring_constants of shape {list(np.shape(spring_constants))}")


def local_spring_forces(positions: np.ndarray, springs: candidates.EdgeLists,
                        spring_constants: np.ndarray,
                        max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Spring force on every node, F_i = sum over springs (i, j) of k_ij (r_j - r_i), each
    component clipped.

    Args:
      positions: [batch, nodes, 2].
      springs: `EdgeLists` of the batch, directed (receiver i, sender j) springs with both
        directions of each for Newton's third law.
      spring_constants: [total_edges] k of each spring in ``springs.edges``.
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, 2] forces in the inputs' floating dtype (at least float32).
    """
    batch, num_nodes = base.check_batch_shapes(positions=(positions, "2"))
    _check_springs(batch, springs, spring_constants)
    dtype = base.compute_dtype(positions, spring_constants)
    positions = base.to_batch_last(positions, dtype)
    forces = np.empty_like(positions)
    _local_spring_force_law(springs, spring_constants, num_nodes, max_force, dtype)(positions, forces)
    return np.ascontiguousarray(np.moveaxis(forces, -1, 0))


def integrate_local_springs(positions: np.ndarray, velocities: np.ndarray,
                            springs: candidates.EdgeLists, spring_constants: np.ndarray,
                            num_steps: int, box_size: float, sample_every: int = 100,
                            dt: float = particles.DT,
                            max_force: float = particles.MAX_FORCE) -> np.ndarray:
    """Integrates systems joined by the given springs (leapfrog and walls of `particles`).

    Args:
      positions: [batch, nodes, 2] initial positions, inside +-box_size.
      velocities: [batch, nodes, 2] initial velocities.
      springs, spring_constants: as `local_spring_forces`.
      num_steps: integration steps; frames = num_steps // sample_every - 1.
      box_size: elastic walls at +-box_size (`box_size_for` for a density); math.inf for none.
      sample_every: keep every this many steps.
      dt: step size.
      max_force: clip bound of each force component.
    Returns:
      [batch, nodes, frames, 4] trajectories (x, y, vx, vy) in the inputs' floating dtype
      (at least float32): frame k is the state after step (k + 1) * sample_every.
    """
    batch, num_nodes = base.check_batch_shapes(positions=(positions, "2"),
                                               velocities=(velocities, "2"))
    _check_springs(batch, springs, spring_constants)
    dtype = base.compute_dtype(positions, velocities, spring_constants)
    force_law = _local_spring_force_law(springs, spring_constants, num_nodes, max_force, dtype)
    return particles.integrate_leapfrog(base.to_batch_last(positions, dtype),
                                        base.to_batch_last(velocities, dtype), force_law,
                                        num_steps, sample_every, dt, box_size)


@dataclasses.dataclass(frozen=True)
class SparseSimulationResult:
    """One batch of simulated systems with sparse ground truth.

    Attributes:
      trajectories: [sims, nodes, frames, 4] float32 (x, y, vx, vy), raw physical units.
      edges: `EdgeLists` of the sims: every directed pair (receiver, sender) within the
        cutoff at the start, receiver-major; the candidates that contain every spring.
      edge_labels: [total_edges] int32 edge type of each of ``edges.edges``: 1 spring, 0 none.
    """

    trajectories: np.ndarray
    edges: candidates.EdgeLists
    edge_labels: np.ndarray

    def interacting_edges(self) -> candidates.EdgeLists:
        """`EdgeLists` of the springs alone: the true interacting (receiver, sender) pairs."""
        springs = self.edge_labels > 0
        kept = np.concatenate([[0], np.cumsum(springs)])[self.edges.row_splits]
        return candidates.EdgeLists(self.edges.edges[springs], kept.astype(np.int64))


def _run_chunks(num_chunks: int, run_chunk: Callable[[int], int], workers: int,
                progress: Callable[[int], None] | None) -> None:
    """Runs run_chunk(0 .. num_chunks-1) on up to ``workers`` threads; reports the systems
    done after each chunk, in chunk order; the first error cancels the chunks not started."""
    done = 0
    with concurrent.futures.ThreadPoolExecutor(min(workers, num_chunks)) as pool:
        for count in pool.map(run_chunk, range(num_chunks)):
            done += count
            if progress is not None:
                progress(done)


class LocalSpringsSimulation:
    """Random local-springs systems (see the module notes); edge label 1 = spring.

    Has the description attributes of `base.Simulation`; `sample` returns a
    `SparseSimulationResult` instead of N x N matrices.
    """

    name = "local-springs"
    dims = particles.ParticleSimulation.dims
    feature_names = particles.ParticleSimulation.feature_names
    default_num_steps = particles.ParticleSimulation.default_num_steps
    default_num_steps_test = particles.ParticleSimulation.default_num_steps_test
    default_sample_every = particles.ParticleSimulation.default_sample_every
    normalisation_groups = particles.ParticleSimulation.normalisation_groups
    edge_types_choices = (2,)
    type_zero_is_no_interaction = True
    undirected_interactions = True
    interaction_strength = INTERACTION_STRENGTH

    def __init__(self, density: float = 1.0, cutoff: float = 1.5, spring_probability: float = 0.5,
                 walls: bool = False):
        """
        Args:
          density: nodes per unit area, > 0.
          cutoff: pairs closer than this at the start may get a spring, > 0.
          spring_probability: chance that such a pair gets one, in [0, 1].
          walls: elastic walls at the edges of the box the nodes start in; False (default): none.
        Raises:
          ValueError: naming the bad argument.
        """
        for name, value, low in (("density", density, 0.0), ("cutoff", cutoff, 0.0)):
            if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > low):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (isinstance(spring_probability, numbers.Real) and 0 <= spring_probability <= 1):
            raise ValueError(f"spring_probability must be in [0, 1], got {spring_probability!r}")
        if not isinstance(walls, (bool, np.bool_)):
            raise ValueError(f"walls must be True or False, got {walls!r}")
        self.density, self.cutoff, self.spring_probability = density, cutoff, spring_probability
        self.walls = bool(walls)

    def check_arguments(self, *, num_nodes, edge_types, noise, seed, workers) -> None:
        """UserError naming the first bad argument of `sample` other than the sizes (the
        checks of `base.Simulation.check_arguments`)."""
        base.Simulation.check_arguments(self, num_nodes=num_nodes, edge_types=edge_types,
                                        noise=noise, seed=seed, workers=workers)

    def edge_list_description(self) -> dict:
        """How the stored edge lists are chosen (a dataset's ``edge_lists`` metadata, without
        its ``max_degree``): every ordered pair within the cutoff at the initial positions,
        which holds every spring; labels 1 spring, 0 none."""
        return {"method": "radius", "radius": float(self.cutoff),
                "positions": "initial state (the positions sample_every integration steps "
                             "before the first stored frame)",
                "labels": "1 spring, 0 no spring; every spring is listed"}

    @property
    def parameters(self):
        """Physical constants and random-system scales (the box half-width is
        `box_size_for(nodes, density)`)."""
        return types.MappingProxyType({
            "dt": particles.DT, "max_force": particles.MAX_FORCE,
            "interaction_strength": self.interaction_strength, "density": self.density,
            "cutoff": self.cutoff, "spring_probability": self.spring_probability,
            "walls": self.walls, "velocity_norm": particles.VELOCITY_NORM})

    def sample(self, num_sims: int, num_nodes: int, *, num_steps: int | None = None,
               sample_every: int | None = None, edge_types: int = 2, noise: float = 0.0,
               interacting: bool = True, seed: int = 0, workers: int = 2,
               progress: Callable[[int], None] | None = None) -> SparseSimulationResult:
        """Simulates ``num_sims`` independent random systems; arguments as
        `base.Simulation.sample` (``edge_types`` must be 2; ``interacting=False`` keeps the
        candidate pairs, all of type 0).

        Returns:
          SparseSimulationResult with trajectories [num_sims, num_nodes, frames, 4].
        Raises:
          ValueError: naming the bad argument.
        """
        num_steps = self.default_num_steps if num_steps is None else num_steps
        sample_every = self.default_sample_every if sample_every is None else sample_every
        for name, value in (("num_sims", num_sims), ("num_nodes", num_nodes), ("workers", workers)):
            base.check_positive_int(name, value)
        if num_nodes < 2:
            raise ValueError(f"num_nodes must be at least 2, got {num_nodes}")
        frames = base.num_frames(num_steps, sample_every)
        if edge_types not in self.edge_types_choices:
            raise ValueError(f"{self.name} simulations have edge_types 2, got {edge_types!r}")
        if not (isinstance(noise, numbers.Real) and np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

        box_size = box_size_for(num_nodes, self.density)
        chunk_sims = max(1, CHUNK_NODES // num_nodes)
        num_chunks = -(-num_sims // chunk_sims)
        chunk_seeds = np.random.SeedSequence(int(seed)).spawn(num_chunks)
        trajectories = np.empty((num_sims, num_nodes, frames, self.dims), np.float32)
        chunk_edges: list = [None] * num_chunks

        def run_chunk(chunk: int) -> int:
            start, stop = chunk * chunk_sims, min((chunk + 1) * chunk_sims, num_sims)
            rng = np.random.default_rng(chunk_seeds[chunk])
            positions = rng.uniform(-box_size, box_size, (stop - start, num_nodes, 2))
            velocities = rng.standard_normal((stop - start, num_nodes, 2))
            velocities *= particles.VELOCITY_NORM / np.linalg.norm(velocities, axis=-1, keepdims=True)
            pairs = [candidates.radius_edges(system[:, None], self.cutoff) for system in positions]
            labels = [self._spring_labels(rng, system_pairs, num_nodes, interacting)
                      for system_pairs in pairs]
            chunk_springs = candidates.EdgeLists.from_list(
                [system_pairs[system_labels > 0] for system_pairs, system_labels in zip(pairs, labels)])
            chunk_trajectories = integrate_local_springs(
                positions, velocities, chunk_springs,
                np.full(len(chunk_springs.edges), self.interaction_strength), num_steps,
                box_size if self.walls else math.inf, sample_every)
            if noise > 0:
                chunk_trajectories += rng.normal(0.0, noise, chunk_trajectories.shape)
            trajectories[start:stop] = chunk_trajectories
            chunk_edges[chunk] = (pairs, labels)
            return stop - start

        _run_chunks(num_chunks, run_chunk, workers, progress)
        pairs = [system for chunk_pairs, _ in chunk_edges for system in chunk_pairs]
        labels = [system for _, chunk_labels in chunk_edges for system in chunk_labels]
        return SparseSimulationResult(trajectories, candidates.EdgeLists.from_list(pairs),
                                      np.concatenate(labels).astype(np.int32))

    def _spring_labels(self, rng: np.random.Generator, pairs: np.ndarray, num_nodes: int,
                       interacting: bool) -> np.ndarray:
        """Edge type of each directed pair: a spring with probability p per undirected pair,
        the same for both directions.

        Args:
          pairs: [edges, 2] (receiver, sender), receiver-major, containing both directions.
        Returns:
          [edges] int32.
        """
        labels = np.zeros(len(pairs), np.int32)
        if not interacting:
            return labels
        keys = pairs[:, 0].astype(np.int64) * num_nodes + pairs[:, 1]
        reverse = np.searchsorted(keys, pairs[:, 1].astype(np.int64) * num_nodes + pairs[:, 0])
        upper = pairs[:, 0] < pairs[:, 1]
        labels[upper] = rng.random(int(upper.sum())) < self.spring_probability
        labels[~upper] = labels[reverse[~upper]]
        return labels
