"""Candidate edges inside tf.data: each system's candidate senders and their labels, as tensors.

The TensorFlow side of `data_pipelines.candidates` (the numpy module that chooses, checks and
scores edge lists): `data_pipelines.datasets.make_dataset` maps `candidate_features` over
the records of a split, one system at a time, so a batch carries its candidates in the
fixed-degree layout of `nri_tf.graph.CandidateEdges`: receiver i owns ``degree``
consecutive edges, edge i * degree + s comes from node senders[i, s].

Building blocks:
  CandidateSpec          method, k and radius (the training flags --candidate-edges,
                         --candidate-k, --candidate-radius) and its checks against a dataset
  candidate_degree       the static number of candidate slots per node
  dataset_candidate_degree  the same on a dataset's systems
  nearest_senders        the k nearest other nodes of every node (squared distances too)
  select_senders         senders [nodes, degree] and mask (None for knn) of one system
  labels_from_edge_list  labels of candidate edges looked up in a stored edge list
  labels_from_dense      labels of candidate edges picked from N*(N-1) dense labels
  edge_list_to_dense     a stored edge list as N*(N-1) dense labels (the complete graph)
  candidate_features     one system's (labels, {"senders", ["mask"], "interactions"})

Decisions (documented in the README's "Large systems"):
  - knn and radius look at the first frame of the trajectories the dataset yields (its
    positions, features "x", "y"), in raw units, before normalisation.
  - k is clipped to N - 1: on N <= k + 1 nodes knn is the complete graph (a model trained
    with k = 16 runs on N = 2). knn gives every node exactly k candidates: no padding.
  - radius keeps, of each node's k nearest nodes, those within the radius: at most k per
    node (the nearest), the others padding slots (mask 0). A pair within the radius beyond
    the k nearest is dropped; a true interaction dropped so counts in the recall.
  - given uses the pairs stored with the data, padded to the dataset's max_degree.
  - Padding slots hold the receiver itself as sender, label 0 and mask 0. A node without
    any real candidate receives no messages; the decoder moves it by its own state.
  - "interactions" counts a system's true interactions over all node pairs (labels > 0),
    so that the share the candidates missed can be reported (`nri_tf.metrics.CandidateRecall`).
"""

from __future__ import annotations

import dataclasses
import numbers

import tensorflow as tf

from data_pipelines.candidates import CANDIDATE_METHODS
from data_pipelines.contract import position_dims
from data_pipelines.errors import UserError

POSITION_FEATURES = ["x", "y"]


class CandidateSpecError(UserError):
    """Candidate settings that do not fit the data (one line, names the fix)."""


@dataclasses.dataclass(frozen=True)
class CandidateSpec:
    """Which candidate edges a dataset yields.

    Attributes:
      method: one of `CANDIDATE_METHODS`.
      k: knn: neighbours per node; radius: most candidates per node (clipped to N - 1).
      radius: radius: the distance on the first frame, in raw position units.
    """

    method: str = "complete"
    k: int = 16
    radius: float = 1.5

    def check(self, metadata) -> "CandidateSpec":
        """Raises CandidateSpecError (a UserError) unless this spec applies to the dataset
        described by ``metadata`` (a `DatasetMetadata`); returns self."""
        if self.method not in CANDIDATE_METHODS:
            raise CandidateSpecError(f"unknown candidate method {self.method!r}; choose one of "
                                     f"{', '.join(CANDIDATE_METHODS)}")
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise CandidateSpecError(f"--candidate-k must be a positive integer, got {self.k!r}")
        if not (isinstance(self.radius, numbers.Real) and self.radius > 0):
            raise CandidateSpecError(f"--candidate-radius must be a distance > 0, got {self.radius!r}")
        if self.method == "given" and not metadata.has_edge_lists:
            raise CandidateSpecError(
                "--candidate-edges given needs data stored with edge lists (e.g. python -m "
                "data_pipelines.generate --simulation local-springs); this dataset has one label "
                "per node pair: use complete, knn or radius")
        if self.method == "given" and metadata.edge_lists["max_degree"] < 1:
            raise CandidateSpecError("--candidate-edges given: the dataset's edge lists are all "
                                     "empty (max_degree 0), nothing to reason over; use knn or radius")
        if self.method in ("knn", "radius") and position_dims(metadata) < len(POSITION_FEATURES):
            raise CandidateSpecError(
                f"--candidate-edges {self.method} measures distances between positions, features "
                f"x, y first; this data's features are {', '.join(metadata.feature_names)}: use "
                "complete or given")
        return self


def candidate_degree(spec: CandidateSpec, num_nodes: int, max_degree: int | None = None) -> int:
    """Candidate slots per node: N - 1 (complete), min(k, N - 1) (knn, radius) or the
    dataset's ``max_degree`` (given)."""
    if spec.method == "complete":
        return num_nodes - 1
    if spec.method == "given":
        return int(max_degree)
    return min(int(spec.k), num_nodes - 1)


def dataset_candidate_degree(spec: CandidateSpec, metadata) -> int:
    """`candidate_degree` on the systems of a dataset (``metadata``: a `DatasetMetadata`;
    its stored ``max_degree`` for given)."""
    max_degree = metadata.edge_lists["max_degree"] if metadata.has_edge_lists else None
    return candidate_degree(spec, metadata.nodes, max_degree)


def nearest_senders(positions: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The k nearest other nodes of every node of one system.

    Args:
      positions: [nodes, coords] float.
      k: neighbours, 1 <= k <= nodes - 1 (static).
    Returns:
      (senders [nodes, k] int32, squared distances [nodes, k] float32), nearest first; ties
      broken towards the lower node index.
    """
    positions = tf.cast(positions, tf.float32)
    offsets = positions[:, None, :] - positions[None, :, :]                 # [nodes, nodes, coords]
    squared = tf.reduce_sum(tf.square(offsets), axis=-1)
    num_nodes = tf.shape(positions)[0]
    squared = tf.where(tf.eye(num_nodes, dtype=tf.bool), tf.constant(float("inf")), squared)
    negative, senders = tf.math.top_k(-squared, k=k, sorted=True)
    return tf.cast(senders, tf.int32), -negative


def _sorted_by_sender(senders: tf.Tensor, *others: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Sorts each row of senders [nodes, d] ascending and the ``others`` [nodes, d] with it
    (receiver-major, then sender: the complete graph's order restricted to the candidates)."""
    order = tf.argsort(senders, axis=1, stable=True)
    return tuple(tf.gather(values, order, axis=1, batch_dims=1) for values in (senders,) + others)


def select_senders(spec: CandidateSpec, positions: tf.Tensor, num_nodes: int, degree: int,
                   pairs: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor | None]:
    """The candidate senders of one system in the fixed-degree layout.

    Args:
      spec: knn, radius or given.
      positions: [nodes, coords] first-frame positions (raw units).
      num_nodes: N (static).
      degree: `candidate_degree`.
      pairs: given: [edges, 2] int32 stored (receiver, sender) pairs, receiver-major.
    Returns:
      (senders [nodes, degree] int32, each row ascending among real candidates;
       mask [nodes, degree] float32 with 1 for real candidates, or None for knn).
    """
    if spec.method == "knn":
        senders, _ = nearest_senders(positions, degree)
        return _sorted_by_sender(senders)[0], None
    if spec.method == "radius":
        senders, squared = nearest_senders(positions, degree)
        mask = tf.cast(squared <= float(spec.radius) ** 2, tf.float32)
        senders = tf.where(mask > 0, senders, tf.range(num_nodes)[:, None])   # padding: itself
        senders, mask = _sorted_by_sender(senders, mask)
        return senders, mask
    if spec.method == "given":
        receivers = pairs[:, 0]
        first = tf.searchsorted(receivers, tf.range(num_nodes, dtype=receivers.dtype), side="left")
        slot = tf.range(tf.shape(pairs)[0], dtype=receivers.dtype) - tf.gather(first, receivers)
        index = tf.stack([receivers, slot], axis=1)
        itself = tf.broadcast_to(tf.range(num_nodes)[:, None], [num_nodes, degree])
        senders = tf.tensor_scatter_nd_update(itself, index, pairs[:, 1])
        mask = tf.scatter_nd(index, tf.ones_like(receivers, tf.float32), [num_nodes, degree])
        return senders, mask
    raise ValueError(f"select_senders picks knn, radius or given candidates, not {spec.method!r}")


def _candidate_keys(senders: tf.Tensor, num_nodes: int) -> tf.Tensor:
    """[nodes, d] senders -> [nodes * d] int64 keys receiver * N + sender."""
    receivers = tf.range(num_nodes, dtype=tf.int64)[:, None]
    return tf.reshape(receivers * num_nodes + tf.cast(senders, tf.int64), [-1])


def labels_from_edge_list(senders: tf.Tensor, num_nodes: int, pairs: tf.Tensor,
                          labels: tf.Tensor) -> tf.Tensor:
    """Edge type of every candidate: that of the same pair in the stored list, else 0.

    Args:
      senders: [nodes, d] candidate senders.
      pairs: [edges, 2] stored (receiver, sender) pairs, receiver-major, no duplicates.
      labels: [edges] their edge types.
    Returns:
      [nodes * d] int32.
    """
    stored = tf.cast(pairs[:, 0], tf.int64) * num_nodes + tf.cast(pairs[:, 1], tf.int64)
    keys = _candidate_keys(senders, num_nodes)
    position = tf.searchsorted(stored, keys, side="left")                       # in 0..edges
    padded_keys = tf.concat([stored, [-1]], axis=0)                            # -1: no key
    padded_labels = tf.concat([tf.cast(labels, tf.int32), [0]], axis=0)
    found = tf.gather(padded_keys, position) == keys
    return tf.where(found, tf.gather(padded_labels, position), 0)


def _dense_index(receivers: tf.Tensor, senders: tf.Tensor, num_nodes: int) -> tf.Tensor:
    """Index of edge (receiver, sender) in the complete graph's receiver-major order."""
    return receivers * (num_nodes - 1) + senders - tf.cast(senders > receivers, senders.dtype)


def labels_from_dense(senders: tf.Tensor, num_nodes: int, dense_labels: tf.Tensor) -> tf.Tensor:
    """Edge type of every candidate from [N*(N-1)] receiver-major labels: [nodes * d] int32.

    Padding slots (sender = receiver) get label 0.
    """
    receivers = tf.broadcast_to(tf.range(num_nodes)[:, None], tf.shape(senders))
    itself = tf.equal(receivers, senders)
    index = _dense_index(receivers, tf.where(itself, (receivers + 1) % num_nodes, senders), num_nodes)
    return tf.reshape(tf.where(itself, 0, tf.gather(tf.cast(dense_labels, tf.int32), index)), [-1])


def edge_list_to_dense(pairs: tf.Tensor, labels: tf.Tensor, num_nodes: int) -> tf.Tensor:
    """A stored edge list as [N*(N-1)] receiver-major int32 labels (0 for unlisted pairs)."""
    index = _dense_index(pairs[:, 0], pairs[:, 1], num_nodes)
    return tf.scatter_nd(index[:, None], tf.cast(labels, tf.int32), [num_nodes * (num_nodes - 1)])


def candidate_features(spec: CandidateSpec, trajectories: tf.Tensor, num_nodes: int, degree: int,
                       dense_labels: tf.Tensor | None = None, pairs: tf.Tensor | None = None,
                       labels: tf.Tensor | None = None):
    """One system's candidate edges and their labels.

    Args:
      spec: knn, radius or given.
      trajectories: [nodes, frames, dims] raw units; knn/radius read frame 0, dims 0..1.
      num_nodes, degree: N and `candidate_degree` (static).
      dense_labels: [N*(N-1)] labels of data stored densely; or
      pairs, labels: [edges, 2] and [edges] of data stored with edge lists.
    Returns:
      (labels [nodes * degree] int32, {"senders": [nodes, degree] int32, "mask": [nodes,
       degree] float32 (radius and given only), "interactions": int32 true interactions of
       the system over all pairs}).
    """
    senders, mask = select_senders(spec, trajectories[:, 0, :2], num_nodes, degree, pairs)
    if dense_labels is not None:
        candidate_labels = labels_from_dense(senders, num_nodes, dense_labels)
        truth = dense_labels
    else:
        candidate_labels = labels_from_edge_list(senders, num_nodes, pairs, labels)
        truth = labels
    if mask is not None:
        candidate_labels *= tf.cast(tf.reshape(mask, [-1]), tf.int32)
    features = {"senders": senders,
                "interactions": tf.reduce_sum(tf.cast(tf.cast(truth, tf.int32) > 0, tf.int32))}
    if mask is not None:
        features["mask"] = mask
    return candidate_labels, features

