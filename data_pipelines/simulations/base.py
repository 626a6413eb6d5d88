"""What every simulator shares: the result type, argument checks, and the seeded,
chunked, multi-threaded batch runner.

Building blocks:
  SimulationResult      trajectories [sims, nodes, frames, dims], edges and interactions
                        [sims, nodes, nodes] of one batch of simulated systems
  Simulation            base class of the three physics; `sample` draws random systems
  num_frames            frames kept from a trajectory: num_steps // sample_every - 1
  check_positive_int, Simulation.check_arguments   the argument checks (UserError), shared
                        with `data_pipelines.generation`
  CHUNK_SIMS            systems per random stream and per unit of parallel work
  check_batch_shapes, compute_dtype, to_batch_last, random_pair_types,
  labels_from_values    helpers of the integrators and samplers

Reproducibility: a batch of ``num_sims`` systems is cut into chunks of `CHUNK_SIMS`
consecutive systems. Chunk c draws everything it needs (interactions, initial state,
noise) from its own generator, ``np.random.default_rng(SeedSequence(seed).spawn(...)[c])``,
so the output bytes depend on ``seed`` and the sizes only, never on how many workers ran
the chunks or in which order they finished.

Workers are threads: the integrators spend their time inside numpy operations on whole
chunks, which release the GIL, and threads write straight into the shared output arrays
(no pickling of results, no process start-up, safe next to TensorFlow's own threads). The
Python overhead during which a thread holds the GIL is about a fifth of a springs5 step on
one chunk (8 of 36 us), so 2 threads are at most about 1.6 times as fast as 1. Spawned worker processes
would avoid the GIL but pay about a second of start-up (they import numpy and the caller's
main module) plus the transfer of their results: for 2048 springs5 systems they took 1.6 s
against 0.7 s with threads (benchmarks/simulate.py compares them).
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import numbers
from typing import Callable, Mapping

import numpy as np

from data_pipelines.errors import UserError

CHUNK_SIMS = 1024
"""Systems per chunk. Part of the mapping seed -> data: changing it changes every data set."""


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """One batch of simulated systems.

    Attributes:
      trajectories: [sims, nodes, frames, dims] float32, raw physical units, features in
        the order of `Simulation.feature_names`.
      edges: [sims, nodes, nodes] int32 edge-type label of every pair (0 .. edge_types-1),
        entry [i, j] for receiver i and sender j; the diagonal is 0.
      interactions: [sims, nodes, nodes] float32 raw interaction matrix exactly as the
        reference code stores its ``edges_*.npy`` (springs: spring-type value 0/1 or
        0/0.5/1; charged: q_i q_j including the diagonal; kuramoto: coupling k_ij).
    """

    trajectories: np.ndarray
    edges: np.ndarray
    interactions: np.ndarray


def num_frames(num_steps: int, sample_every: int) -> int:
    """Frames kept from ``num_steps`` integration steps, as the reference: the states after
    steps sample_every, 2 * sample_every, ..., i.e. ``num_steps // sample_every - 1``
    frames (5000 steps every 100 -> 49 frames; 10000 -> 99).

    Raises:
      UserError: if the sizes are not positive integers or give no frame.
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("sample_every", sample_every)
    frames = num_steps // sample_every - 1
    if frames < 1:
        raise UserError(f"num_steps={num_steps} with sample_every={sample_every} gives no frame: "
                        f"need num_steps >= 2 * sample_every")
    return frames


def check_positive_int(name: str, value) -> None:
    """UserError unless ``value`` is an integer >= 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value!r}")


def check_batch_shapes(**arrays: tuple[np.ndarray, str]) -> tuple[int, int]:
    """Checks that arrays share [batch, nodes] leading dims and have their trailing dims.

    Args:
      arrays: name -> (array, trailing spec), the spec a string of trailing sizes where
        "n" stands for the node count, e.g. ``positions=(x, "2")`` for [batch, nodes, 2],
        ``spring_constants=(k, "n")`` for [batch, nodes, nodes], ``phases=(p, "")``.
    Returns:
      (batch, nodes).
    Raises:
      ValueError: naming the first array whose shape does not fit.
    """
    batch = nodes = None
    for name, (array, spec) in arrays.items():
        shape = tuple(np.shape(array))
        layout = ", ".join(["batch", "nodes"] + ["nodes" if s == "n" else s for s in spec])
        if batch is None:
            if len(shape) != 2 + len(spec):
                raise ValueError(f"{name} must have shape [{layout}], got {list(shape)}")
            batch, nodes = shape[:2]
        expected = (batch, nodes) + tuple(nodes if s == "n" else int(s) for s in spec)
        if shape != expected:
            raise ValueError(f"{name} must have shape [{layout}] = {list(expected)}, "
                             f"got {list(shape)}")
    if nodes < 2:
        raise ValueError(f"a system needs at least 2 nodes, got {nodes}")
    return batch, nodes


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """The floating dtype the integrators compute in: that of the inputs, at least float32."""
    return np.result_type(np.float32, *arrays)


def to_batch_last(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """[batch, ...] -> contiguous [..., batch] copy (never a view: the integrators work in
    place), their working layout: every elementwise operation runs over one contiguous
    batch axis."""
    return np.array(np.moveaxis(np.asarray(array), 0, -1), dtype=dtype, order="C", copy=True)


def random_pair_types(rng: np.random.Generator, num_sims: int, num_nodes: int,
                      edge_types: int) -> np.ndarray:
    """Undirected random edge types, each equally likely, as the reference samples springs.

    Returns:
      [num_sims, nodes, nodes] int32, symmetric (the lower triangle mirrored), zero diagonal.
    """
    types = rng.integers(0, edge_types, size=(num_sims, num_nodes, num_nodes), dtype=np.int32)
    lower = np.tril(types, -1)
    return lower + np.swapaxes(lower, 1, 2)


class Simulation(abc.ABC):
    """One physics: its description and a sampler of random systems.

    Subclasses set the class attributes and implement `_simulate_chunk` and
    `labels_from_interactions`; `sample` does the argument checks, seeding, chunking,
    threading and observation noise for all of them.

    Attributes:
      name: registry name.
      dims: features per node and frame.
      feature_names: the `dims` feature names, in trajectory order.
      default_num_steps, default_num_steps_test, default_sample_every: the paper's
        train/valid length, test length and sampling period (49 and 99 frames).
      normalisation_groups: feature indices sharing one min/max when normalising.
      edge_types_choices: the supported ``edge_types``.
      type_zero_is_no_interaction: edge label 0 means the pair does not interact (no
        spring, no coupling), so a model may hard-code type 0 as "no edge" (``skip_first``);
        False where every pair interacts (charged particles attract or repel).
      undirected_interactions: a pair's interaction is the same both ways (k_ij = k_ji), so
        a model may tie the two directions of a pair (``symmetric``).
      parameters: the fixed physical constants, name -> value (for data set metadata).
    """

    name: str
    dims: int
    feature_names: tuple[str, ...]
    default_num_steps: int
    default_num_steps_test: int
    default_sample_every: int
    normalisation_groups: tuple[tuple[int, ...], ...]
    edge_types_choices: tuple[int, ...] = (2,)
    type_zero_is_no_interaction: bool
    undirected_interactions: bool
    parameters: Mapping[str, float]

    def check_arguments(self, *, num_nodes, edge_types, noise, seed, workers) -> None:
        """The checks of `sample`'s arguments other than the sizes: UserError naming the
        first bad one (num_nodes >= 2, edge_types one of `edge_types_choices`, noise a
        finite value >= 0, seed an integer >= 0, workers >= 1)."""
        check_positive_int("num_nodes", num_nodes)
        if num_nodes < 2:
            raise UserError(f"num_nodes must be at least 2, got {num_nodes}")
        if edge_types not in self.edge_types_choices:
            choices = " or ".join(map(str, self.edge_types_choices))
            raise UserError(f"{self.name} simulations have edge_types {choices}, got {edge_types!r}")
        if not (isinstance(noise, numbers.Real) and np.isfinite(noise) and noise >= 0):
            raise UserError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {seed!r}")
        check_positive_int("workers", workers)

    def sample(self, num_sims: int, num_nodes: int, *, num_steps: int | None = None,
               sample_every: int | None = None, edge_types: int = 2, noise: float = 0.0,
               interacting: bool = True, seed: int = 0, workers: int = 2,
               progress: Callable[[int], None] | None = None) -> SimulationResult:
        """Simulates ``num_sims`` independent random systems.

        Args:
          num_sims: systems to simulate, >= 1.
          num_nodes: nodes per system, >= 2.
          num_steps: integration steps (default `default_num_steps`).
          sample_every: keep every this many steps (default `default_sample_every`).
          edge_types: number of edge types, one of `edge_types_choices`.
          noise: standard deviation of Gaussian noise added to every observed feature.
          interacting: False for systems without any interaction (all interactions and
            edge labels 0), the "empty graph" test set.
          seed: non-negative integer; same seed and sizes -> same bytes.
          workers: threads running chunks of `CHUNK_SIMS` systems; does not change the output.
          progress: called in the calling thread with the number of systems done so far.
        Returns:
          SimulationResult with trajectories [num_sims, num_nodes, frames, dims],
          frames = num_steps // sample_every - 1.
        Raises:
          UserError: naming the bad argument.
        """
        num_steps = self.default_num_steps if num_steps is None else num_steps
        sample_every = self.default_sample_every if sample_every is None else sample_every
        check_positive_int("num_sims", num_sims)
        self.check_arguments(num_nodes=num_nodes, edge_types=edge_types, noise=noise, seed=seed,
                             workers=workers)
        frames = num_frames(num_steps, sample_every)

        trajectories = np.empty((num_sims, num_nodes, frames, self.dims), np.float32)
        edges = np.empty((num_sims, num_nodes, num_nodes), np.int32)
        interactions = np.empty((num_sims, num_nodes, num_nodes), np.float32)
        num_chunks = -(-num_sims // CHUNK_SIMS)
        chunk_seeds = np.random.SeedSequence(int(seed)).spawn(num_chunks)

        def run_chunk(chunk: int) -> int:
            start, stop = chunk * CHUNK_SIMS, min((chunk + 1) * CHUNK_SIMS, num_sims)
            rng = np.random.default_rng(chunk_seeds[chunk])
            chunk_interactions, chunk_edges = self._sample_interactions(
                rng, stop - start, num_nodes, edge_types, interacting)
            chunk_trajectories = self._simulate_chunk(rng, chunk_interactions, num_steps,
                                                      sample_every)
            if noise > 0:
                chunk_trajectories += rng.normal(0.0, noise, chunk_trajectories.shape)
            trajectories[start:stop] = chunk_trajectories
            edges[start:stop] = chunk_edges
            interactions[start:stop] = chunk_interactions
            return stop - start

        done = 0
        if workers == 1 or num_chunks == 1:
            for chunk in range(num_chunks):
                done += run_chunk(chunk)
                if progress is not None:
                    progress(done)
        else:
            with concurrent.futures.ThreadPoolExecutor(min(workers, num_chunks)) as pool:
                futures = [pool.submit(run_chunk, chunk) for chunk in range(num_chunks)]
                try:
                    for future in concurrent.futures.as_completed(futures):
                        done += future.result()
                        if progress is not None:
                            progress(done)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        return SimulationResult(trajectories, edges, interactions)

    @abc.abstractmethod
    def _sample_interactions(self, rng: np.random.Generator, num_sims: int, num_nodes: int,
                             edge_types: int, interacting: bool) -> tuple[np.ndarray, np.ndarray]:
        """Random interaction matrices and their labels.

        Returns:
          (interactions [num_sims, nodes, nodes] float64, edges [num_sims, nodes, nodes] int32)
          as in `SimulationResult`.
        """

    @abc.abstractmethod
    def _simulate_chunk(self, rng: np.random.Generator, interactions: np.ndarray,
                        num_steps: int, sample_every: int) -> np.ndarray:
        """Draws initial states from ``rng`` and integrates.

        Args:
          interactions: [num_sims, nodes, nodes] from `_sample_interactions`.
        Returns:
          [num_sims, nodes, frames, dims] float64 trajectories.
        """

    @abc.abstractmethod
    def labels_from_interactions(self, interactions: np.ndarray, *,
                                 edge_types: int = 2) -> np.ndarray:
        """Edge-type labels of reference-style interaction matrices (for importing the
        reference's ``edges_*.npy``).

        Args:
          interactions: [..., nodes, nodes] as `SimulationResult.interactions`.
          edge_types: the data set's number of edge types (matters for springs only).
        Returns:
          [..., nodes, nodes] int32 labels as `SimulationResult.edges`, diagonal 0.
        Raises:
          ValueError: if a value is not one this simulation produces.
        """


def labels_from_values(interactions: np.ndarray, values: np.ndarray, what: str,
                       diagonal: float | None = 0.0) -> np.ndarray:
    """Index of each off-diagonal entry of ``interactions`` in ``values``; diagonal 0.

    Args:
      interactions: [..., nodes, nodes].
      values: [edge_types] the interaction value of each label, increasing.
      what: description for the error message, e.g. "springs interactions".
      diagonal: the value the simulation puts on every diagonal entry (None: any), which
        tells one simulation's matrices from another's (charged: q_i^2 = 1, others 0).
    Returns:
      [..., nodes, nodes] int32.
    Raises:
      ValueError: naming the first off-diagonal value not in ``values``, or the first
        diagonal value other than ``diagonal``.
    """
    interactions = np.asarray(interactions, dtype=np.float64)
    if interactions.ndim < 2 or interactions.shape[-1] != interactions.shape[-2]:
        raise ValueError(f"{what} must have shape [..., nodes, nodes], got {list(interactions.shape)}")
    off_diagonal = ~np.eye(interactions.shape[-1], dtype=bool)
    labels = np.searchsorted(values, interactions).clip(0, len(values) - 1)
    bad = (values[labels] != interactions) & off_diagonal
    if bad.any():
        raise ValueError(f"{what} must take values in {values.tolist()} off the diagonal, "
                         f"found {float(interactions[bad][0])}")
    on_diagonal = np.diagonal(interactions, axis1=-2, axis2=-1)
    if diagonal is not None and (on_diagonal != diagonal).any():
        raise ValueError(f"{what} must have {diagonal} on the diagonal, found "
                         f"{float(on_diagonal[on_diagonal != diagonal][0])} (another simulation's data?)")
    return np.where(off_diagonal, labels, 0).astype(np.int32)
