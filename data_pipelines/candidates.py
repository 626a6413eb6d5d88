"""Candidate edges: the directed edges (receivers, senders) a model reasons over, per system.

NRI scores every ordered pair of nodes, N*(N-1) edges; for large systems the candidates are
a sparse subset chosen from the observed positions, or given with the data. numpy only (no
TensorFlow), so data pipelines, simulators and command-line checks can use it.

Building blocks:
  EdgeLists               per-system edge lists of a batch, flat [total_edges, 2] plus
                          row splits [systems + 1] (the tf.RaggedTensor layout)
  complete_edges          all N*(N-1) ordered pairs, receiver-major (`nri_tf.graph`'s order)
  knn_edges               each node receives from its k nearest nodes, per frame, union
  radius_edges            all ordered pairs within a distance, per frame, union
  validate_edges          checks of a given edge list; sorts it receiver-major
  select_candidates       one of the methods above for every system of a batch -> EdgeLists
  candidate_labels        edge type of every candidate from a true edge list (0 elsewhere)
  candidate_recall        fraction of the true edges the candidates include
  CandidateEdgeError      base of the errors below (a ValueError): NodeIndexError,
                          SelfLoopError, DuplicateEdgeError, IsolatedNodeError,
                          CandidateParameterError

Edges are int32 arrays [edges, 2] of (receiver, sender) pairs, sorted receiver-major
(by receiver, then sender): the complete graph's order restricted to the candidates.

Decisions:
  - k >= N: k is clipped to N - 1, so knn on a system of at most k + 1 nodes is the
    complete graph (a model trained with k = 16 applies unchanged to N = 2).
  - A node with no incoming candidate edge receives no messages: the decoder moves it from
    its own state alone. knn never produces one; radius and given edge lists may, and
    `validate_edges` refuses them only with ``allow_isolated=False``.
  - knn ties at the k-th distance are broken deterministically but in no documented order.
  - Distances are computed in blocks of receivers: O(N^2 * frames) time per system,
    memory bounded by `_DISTANCE_BLOCK_ENTRIES` whatever N.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Sequence

import numpy as np

from data_pipelines.contract import fully_connected_edges

CANDIDATE_METHODS = ("complete", "knn", "radius", "given")
_DISTANCE_BLOCK_ENTRIES = 2 ** 21
"""Squared distances [receivers, nodes, frames] per block of the pairwise computation
(16 MiB of float64), which bounds its memory for any system size and window."""


class CandidateEdgeError(ValueError):
    """A candidate edge list or its parameters are invalid."""


class NodeIndexError(CandidateEdgeError):
    """An edge names a node outside 0 .. nodes-1."""


class SelfLoopError(CandidateEdgeError):
    """An edge joins a node to itself."""


class DuplicateEdgeError(CandidateEdgeError):
    """An edge appears twice."""


class IsolatedNodeError(CandidateEdgeError):
    """A node has no incoming candidate edge where one is required."""


class CandidateParameterError(CandidateEdgeError):
    """A method, k or radius is not valid."""


@dataclasses.dataclass(frozen=True)
class EdgeLists:
    """Directed edge lists of a batch of systems, one after another.

    Attributes:
      edges: [total_edges, 2] int32 (receiver, sender) node indices within each system.
      row_splits: [systems + 1] int64; system s owns edges[row_splits[s]:row_splits[s + 1]].
    """

    edges: np.ndarray
    row_splits: np.ndarray

    @classmethod
    def from_list(cls, edge_lists: Sequence[np.ndarray]) -> "EdgeLists":
        """[systems] arrays [edges_s, 2] -> EdgeLists."""
        counts = [len(edges) for edges in edge_lists]
        row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        edges = (np.concatenate(edge_lists).astype(np.int32) if edge_lists
                 else np.zeros((0, 2), np.int32))
        return cls(edges.reshape(-1, 2), row_splits)

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    def __getitem__(self, system: int) -> np.ndarray:
        """[edges_s, 2] edges of one system (a view)."""
        return self.edges[self.row_splits[system]:self.row_splits[system + 1]]

    def num_edges(self) -> np.ndarray:
        """[systems] int64 edges per system."""
        return np.diff(self.row_splits)


def complete_edges(num_nodes: int) -> np.ndarray:
    """All ordered pairs of distinct nodes in the receiver-major order of
    `data_pipelines.contract.fully_connected_edges` (the off-diagonal of an N x N matrix, row-major).

    Args:
      num_nodes: N >= 2.
    Returns:
      [N*(N-1), 2] int32 (receiver, sender).
    """
    _check_num_nodes(num_nodes)
    return np.stack(fully_connected_edges(num_nodes), axis=1)


def knn_edges(positions: np.ndarray, k: int) -> np.ndarray:
    """Each node receives from its k nearest other nodes in every frame; the union over frames.

    Pass one frame (``positions[:, :1]``) for first-frame neighbours, or the encoder's
    window for the union over it. Not symmetric: j among i's neighbours gives (i, j) only.

    Args:
      positions: [nodes, frames, coords] positions of one system.
      k: neighbours per node and frame, >= 1; clipped to nodes - 1.
    Returns:
      [edges, 2] int32 (receiver, sender), receiver-major; at least nodes * min(k, nodes - 1)
      edges, at most that times frames.
    Raises:
      CandidateParameterError: if k is not a positive integer or positions not [nodes, frames, coords].
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise CandidateParameterError(f"knn candidates need k >= 1 neighbours per node, got "
                                      f"{k!r}; pass a positive integer such as 16")
    positions = _check_positions(positions)
    num_nodes = positions.shape[0]
    k = min(int(k), num_nodes - 1)
    keys = []
    for receivers, squared in _blocked_squared_distances(positions):
        nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]     # [block, k, frames]
        keys.append(receivers[:, None, None] * num_nodes + nearest)
    return _edges_from_keys(np.concatenate(keys, axis=None), num_nodes)


def radius_edges(positions: np.ndarray, radius: float) -> np.ndarray:
    """All ordered pairs of distinct nodes at most ``radius`` apart in some frame. Symmetric.

    Args:
      positions: [nodes, frames, coords] positions of one system.
      radius: distance > 0, in the units of ``positions``.
    Returns:
      [edges, 2] int32 (receiver, sender), receiver-major.
    Raises:
      CandidateParameterError: if radius is not a positive finite number or positions not
        [nodes, frames, coords].
    """
    if (isinstance(radius, bool) or not isinstance(radius, numbers.Real)
            or not np.isfinite(radius) or radius <= 0):
        raise CandidateParameterError(f"radius candidates need a radius > 0, got {radius!r}; "
                                      f"pass a distance in the units of the positions")
    positions = _check_positions(positions)
    num_nodes = positions.shape[0]
    keys = []
    for receivers, squared in _blocked_squared_distances(positions):
        block, senders = np.nonzero((squared <= radius * radius).any(axis=2))
        keys.append(receivers[block] * num_nodes + senders)
    return _edges_from_keys(np.concatenate(keys), num_nodes)


def validate_edges(edges: np.ndarray, num_nodes: int, *, allow_isolated: bool = True) -> np.ndarray:
    """Checks a user-supplied edge list of one system and sorts it receiver-major.

    Args:
      edges: [edges, 2] integer (receiver, sender) pairs.
      num_nodes: nodes of the system, >= 2.
      allow_isolated: False to refuse a node without incoming edges (see the module notes).
    Returns:
      [edges, 2] int32, receiver-major.
    Raises:
      CandidateEdgeError: for a bad shape or dtype; NodeIndexError, SelfLoopError,
        DuplicateEdgeError, IsolatedNodeError naming the first offending edge or node.
    """
    _check_num_nodes(num_nodes)
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[1] != 2 or not (
            np.issubdtype(edges.dtype, np.integer) or edges.size == 0):
        raise CandidateEdgeError(f"candidate edges must be an integer array [edges, 2] of "
                                 f"(receiver, sender) pairs, got {edges.dtype} {list(edges.shape)}")
    edges = edges.astype(np.int64)
    bad = np.flatnonzero(((edges < 0) | (edges >= num_nodes)).any(axis=1))
    if bad.size:
        raise NodeIndexError(f"candidate edge {bad[0]} = {edges[bad[0]].tolist()} names a node "
                             f"outside 0..{num_nodes - 1}; node indices count from 0 within "
                             f"each system of {num_nodes} nodes")
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        raise SelfLoopError(f"candidate edge {loops[0]} = {edges[loops[0]].tolist()} joins a node "
                            f"to itself; NRI models only edges between distinct nodes: drop it")
    keys = edges[:, 0] * num_nodes + edges[:, 1]
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(np.diff(keys[order]) == 0)
    if repeated.size:
        first, second = sorted(order[repeated[0]:repeated[0] + 2])
        raise DuplicateEdgeError(f"candidate edges {first} and {second} are both "
                                 f"{edges[first].tolist()}; list each (receiver, sender) once")
    if not allow_isolated:
        isolated = np.setdiff1d(np.arange(num_nodes), edges[:, 0])
        if isolated.size:
            raise IsolatedNodeError(f"node {isolated[0]} ({isolated.size} in all) has no incoming "
                                    f"candidate edge; add one or allow isolated nodes (they then "
                                    f"receive no messages)")
    return edges[order].astype(np.int32)


def select_candidates(method: str, positions: np.ndarray, *, k: int | None = None,
                      radius: float | None = None, window: bool = False,
                      given: Sequence[np.ndarray] | None = None) -> EdgeLists:
    """Candidate edges of every system of a batch by one of `CANDIDATE_METHODS`.

    Args:
      method: "complete", "knn", "radius" or "given".
      positions: [systems, nodes, frames, coords] observed positions, e.g.
        ``trajectories[..., :2]`` of the encoder's window (complete and given read only
        the sizes).
      k: neighbours per node for knn.
      radius: distance for radius.
      window: knn and radius: True for the union over all frames of ``positions``, False
        for the first frame only.
      given: [systems] arrays [edges_s, 2] (receiver, sender) for "given".
    Returns:
      EdgeLists, each system's edges receiver-major.
    Raises:
      CandidateEdgeError: naming the bad method, parameter or edge.
    """
    positions = np.asarray(positions)
    if positions.ndim != 4:
        raise CandidateParameterError(f"positions must have shape [systems, nodes, frames, "
                                      f"coords], got {list(positions.shape)}")
    num_systems, num_nodes = positions.shape[:2]
    if method == "complete":
        return EdgeLists.from_list([complete_edges(num_nodes)] * num_systems)
    if method == "given":
        if given is None or len(given) != num_systems:
            raise CandidateParameterError(f"given candidates need one edge list per system: "
                                          f"pass given= with {num_systems} arrays [edges, 2]")
        return EdgeLists.from_list([validate_edges(edges, num_nodes) for edges in given])
    if method not in ("knn", "radius"):
        raise CandidateParameterError(f"unknown candidate method {method!r}; choose one of "
                                      f"{', '.join(CANDIDATE_METHODS)}")
    frames = positions if window else positions[:, :, :1]
    if method == "knn":
        return EdgeLists.from_list([knn_edges(system, k) for system in frames])
    return EdgeLists.from_list([radius_edges(system, radius) for system in frames])


def candidate_labels(candidates: np.ndarray, true_edges: np.ndarray,
                     true_labels: np.ndarray | None = None) -> np.ndarray:
    """Edge type of every candidate: that of the same (receiver, sender) in the true edge
    list, 0 (no interaction) for a candidate not in it.

    Args:
      candidates: [edges, 2] (receiver, sender), no duplicates.
      true_edges: [true_edges, 2] interacting pairs, no duplicates.
      true_labels: [true_edges] int edge type of each (default: all 1).
    Returns:
      [edges] int32.
    """
    candidate_keys, true_keys = _pair_keys(candidates, true_edges)
    if true_labels is None:
        true_labels = np.ones(len(true_keys), np.int32)
    order = np.argsort(true_keys)
    sorted_keys = np.append(true_keys[order], -1)          # -1: no pair has this key
    position = np.searchsorted(sorted_keys[:-1], candidate_keys)
    found = sorted_keys[position] == candidate_keys
    labels = np.zeros(len(candidate_keys), np.int32)
    labels[found] = np.asarray(true_labels)[order][position[found]]
    return labels


def candidate_recall(candidates: np.ndarray, true_edges: np.ndarray) -> float:
    """Fraction of the true interacting pairs that are among the candidates.

    Args:
      candidates: [edges, 2] (receiver, sender).
      true_edges: [true_edges, 2] (receiver, sender), no duplicates.
    Returns:
      recall in [0, 1]; 1.0 if there are no true edges (none was missed).
    """
    candidate_keys, true_keys = _pair_keys(candidates, true_edges)
    if not len(true_keys):
        return 1.0
    return float(np.isin(true_keys, candidate_keys).mean())


def _check_num_nodes(num_nodes: int) -> None:
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, numbers.Integral) or num_nodes < 2:
        raise CandidateParameterError(f"a system needs at least 2 nodes for candidate edges, "
                                      f"got {num_nodes!r}")


def _check_positions(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1] < 1:
        raise CandidateParameterError(f"positions must have shape [nodes, frames, coords] "
                                      f"with at least one frame, got {list(positions.shape)}")
    _check_num_nodes(positions.shape[0])
    return positions


def _blocked_squared_distances(positions: np.ndarray):
    """Yields (receivers [block] int64, squared distances [block, nodes, frames]) with an
    infinite distance from each receiver to itself.

    Args:
      positions: [nodes, frames, coords] float64.
    """
    num_nodes, num_frames = positions.shape[:2]
    block = max(1, _DISTANCE_BLOCK_ENTRIES // (num_nodes * num_frames))
    for start in range(0, num_nodes, block):
        receivers = np.arange(start, min(start + block, num_nodes))
        squared = ((positions[receivers, None] - positions[None]) ** 2).sum(axis=-1)
        squared[np.arange(len(receivers)), receivers] = np.inf
        yield receivers, squared


def _edges_from_keys(keys: np.ndarray, num_nodes: int) -> np.ndarray:
    """Unique receiver * nodes + sender keys -> [edges, 2] int32, receiver-major."""
    keys = np.unique(keys)
    return np.stack([keys // num_nodes, keys % num_nodes], axis=1).astype(np.int32)


def _pair_keys(*edge_lists: np.ndarray) -> list[np.ndarray]:
    """One int64 key per (receiver, sender) row, comparable across the given lists."""
    edge_lists = [np.asarray(edges, np.int64).reshape(-1, 2) for edges in edge_lists]
    num_nodes = max((int(edges.max()) + 1 for edges in edge_lists if edges.size), default=1)
    return [edges[:, 0] * num_nodes + edges[:, 1] for edges in edge_lists]
