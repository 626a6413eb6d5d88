"""Writing the native format: TFRecord shards plus ``metadata.json``, atomically.

Building blocks:
  `DatasetWriter`   stage splits in a temporary sibling directory, move into place at the end
  `write_dataset`   all splits at once through a `DatasetWriter`

Every split with at least 2 systems has at least 2 shards, so that two tf.distribute
workers each get files of their own (`data_pipelines.datasets.make_dataset`).

Large systems store edge lists instead of N*(N-1) labels: a writer made with
``edge_lists={"method": ..., ...}`` takes per split the labelled pairs of every system
(`data_pipelines.candidates.EdgeLists`, receiver-major, and one label per pair) and records
the most pairs any node receives as ``max_degree``.
TensorFlow is imported only inside the functions that write records, so that bad input is
rejected without loading it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Sequence

import numpy as np

from data_pipelines.candidates import EdgeLists
from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.normalisation import (Normalisation, check_method, checked_groups,
                                          compute_normalisation)
from data_pipelines.storage.metadata import (DENSE_FORMAT_VERSION, EDGE_INDEX_FEATURE, EDGES_FEATURE,
                                             FORMAT_VERSION, METADATA_FILE, TRAJECTORIES_FEATURE,
                                             DatasetMetadata, ShardInfo, file_sha256)
from data_pipelines.storage.staging import StagingDirectory

DEFAULT_SHARD_SIZE = 4096


def _shard_bounds(records: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) record ranges of near-equal shards: ceil(records / shard_size) of them,
    and at least 2 when there are at least 2 records."""
    count = max(math.ceil(records / shard_size), min(records, 2))
    edges = np.linspace(0, records, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _serialize(trajectories: np.ndarray, edges: np.ndarray, edge_index: np.ndarray | None = None) -> bytes:
    """One system as a serialized tf.train.Example (see the module docstring); with
    ``edge_index`` [edges, 2] int32 the labelled pairs of an edge-list record."""
    import tensorflow as tf   # only where records are touched (module docstring)

    def feature(array):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()]))

    features = {TRAJECTORIES_FEATURE: feature(trajectories), EDGES_FEATURE: feature(edges)}
    if edge_index is not None:
        features[EDGE_INDEX_FEATURE] = feature(edge_index)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


class DatasetWriter:
    """Writes a native dataset split by split, atomically.

    The splits are written into a temporary sibling of ``output_dir``; `commit` writes
    ``metadata.json`` and moves the directory into place. Leaving the ``with`` block by an
    exception (or calling `abort`) removes everything, so an interrupted generation never
    leaves a directory that looks complete. Constructing the writer fails with a
    DatasetError before any work if ``output_dir`` is unusable.

        with DatasetWriter(out, source="springs", parameters={...}, edge_types=2,
                           feature_names=[...], normalisation_groups=[[0, 1], [2, 3]]) as writer:
            writer.write_split("train", trajectories, edges)   # [S, N, T, D], [S, N*(N-1)]
            ...
        writer.metadata   # committed on leaving the block without an exception
    """

    def __init__(self, output_dir: str, *, source: str, parameters: dict, edge_types: int,
                 feature_names: Sequence[str], normalisation_groups: Sequence[Sequence[int]] | None,
                 normalisation_method: str = "minmax", seed: int | None = None,
                 extra: dict | None = None, reference_edges: dict | None = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False,
                 edge_lists: dict | None = None):
        check_method(normalisation_method)
        if edge_lists is not None and not isinstance(edge_lists.get("method"), str):
            raise DatasetError(f"edge_lists must name the \"method\" that chose the pairs, got {edge_lists!r}")
        if not isinstance(edge_types, (int, np.integer)) or edge_types < 1:
            raise DatasetError(f"edge_types must be a positive integer, got {edge_types!r}")
        if shard_size < 1:
            raise DatasetError(f"shard_size must be a positive integer, got {shard_size}")
        self.feature_names = [str(name) for name in feature_names]
        self.groups = checked_groups(normalisation_groups, len(self.feature_names))
        self.output_dir = output_dir
        self.source, self.parameters, self.edge_types = source, dict(parameters), int(edge_types)
        self.method, self.seed, self.shard_size = normalisation_method, seed, shard_size
        self.extra, self.reference_edges = dict(extra or {}), reference_edges
        self.edge_lists = None if edge_lists is None else {**edge_lists, "max_degree": 0}
        self.nodes: int | None = None
        self.frames: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.shards: dict[str, list[ShardInfo]] = {}
        self.normalisation: Normalisation | None = None
        self.metadata: DatasetMetadata | None = None
        self._staging = StagingDirectory(output_dir, overwrite)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.abort()
        elif self.metadata is None:
            self.commit()

    def write_split(self, split: str, trajectories: np.ndarray, edges: np.ndarray,
                    edge_index: EdgeLists | None = None) -> list[ShardInfo]:
        """Validates one split and writes its shards.

        Args:
          split: one of `SPLITS`, each written once.
          trajectories: [systems, nodes, frames, dims] finite raw values (stored as float32).
          edges: [systems, nodes * (nodes - 1)] int labels in [0, edge_types), receiver-major;
            for a writer with ``edge_lists``: [total_edges] labels of ``edge_index.edges``.
          edge_index: for a writer with ``edge_lists`` only: the labelled (receiver, sender)
            pairs of every system, receiver-major, no duplicates or self loops.
        Returns:
          The split's `ShardInfo` list.
        """
        import tensorflow as tf   # only where records are touched (module docstring)

        if (edge_index is None) != (self.edge_lists is None):
            raise DatasetError(f"{self.output_dir}, split {split!r}: "
                               + ("this writer stores edge lists: pass edge_index" if edge_index is None
                                  else "edge_index given to a writer without edge_lists"))
        if edge_index is not None:
            trajectories, _ = self._validated(split, trajectories, None)
            edges, pairs = self._validated_edge_lists(split, trajectories.shape, edges, edge_index)
            records = lambda i: _serialize(trajectories[i], edges[i], pairs[i])   # noqa: E731
        else:
            trajectories, edges = self._validated(split, trajectories, edges)
            records = lambda i: _serialize(trajectories[i], edges[i])   # noqa: E731
        if split == "train":
            self.normalisation = compute_normalisation(trajectories, self.groups, self.method)
        shards = []
        for index, (start, stop) in enumerate(bounds := _shard_bounds(len(trajectories), self.shard_size)):
            name = f"{split}-{index:05d}-of-{len(bounds):05d}.tfrecord"
            path = os.path.join(self._staging.path, name)
            try:
                with tf.io.TFRecordWriter(path) as writer:
                    for i in range(start, stop):
                        writer.write(records(i))
            except (OSError, tf.errors.OpError) as error:
                raise DatasetError(f"cannot write {path}: {getattr(error, 'message', error)}") from None
            shards.append(ShardInfo(file=name, records=stop - start, bytes=os.path.getsize(path),
                                    sha256=file_sha256(path)))
        self.frames[split], self.sizes[split], self.shards[split] = trajectories.shape[2], len(trajectories), shards
        return shards

    def _validated(self, split, trajectories, edges) -> tuple[np.ndarray, np.ndarray]:
        """Little-endian float32 trajectories and int32 edges, or a DatasetError naming the problem."""
        where = f"{self.output_dir}, split {split!r}"
        if split not in SPLITS:
            raise DatasetError(f"{where}: unknown split; splits are {', '.join(SPLITS)}")
        if split in self.sizes:
            raise DatasetError(f"{where}: written twice")
        trajectories = np.asarray(trajectories)
        edges = None if edges is None else np.asarray(edges)
        if trajectories.ndim != 4:
            raise DatasetError(f"{where}: trajectories must be [systems, nodes, frames, dims], "
                               f"got shape {trajectories.shape}")
        systems, nodes, frames, dims = trajectories.shape
        if systems == 0 or frames == 0:
            raise DatasetError(f"{where}: no systems or no frames (shape {trajectories.shape})")
        if nodes < 2:
            raise DatasetError(f"{where}: needs at least 2 nodes, got {nodes}")
        if dims != len(self.feature_names):
            raise DatasetError(f"{where}: {dims} dims but {len(self.feature_names)} feature_names")
        if self.nodes is not None and nodes != self.nodes:
            raise DatasetError(f"{where}: {nodes} nodes, other splits have {self.nodes}")
        if not np.issubdtype(trajectories.dtype, np.floating):
            raise DatasetError(f"{where}: trajectories must be floating point, got {trajectories.dtype}")
        trajectories = np.ascontiguousarray(trajectories, dtype="<f4")
        finite = np.isfinite(trajectories).reshape(systems, -1).all(axis=1)
        if not finite.all():
            raise DatasetError(f"{where}: trajectories contain NaN or Inf (first in system "
                               f"{int(np.argmin(finite))})")
        self.nodes = nodes
        if edges is None:
            return trajectories, None
        if edges.shape != (systems, nodes * (nodes - 1)):
            raise DatasetError(f"{where}: edges must be [{systems}, {nodes * (nodes - 1)}] labels "
                               f"(systems, nodes*(nodes-1)), got shape {edges.shape}")
        if not np.issubdtype(edges.dtype, np.integer):
            raise DatasetError(f"{where}: edge labels must be integers, got {edges.dtype}")
        if edges.min() < 0 or edges.max() >= self.edge_types:
            raise DatasetError(f"{where}: edge labels must lie in [0, {self.edge_types}), "
                               f"got {edges.min()}..{edges.max()}")
        return trajectories, np.ascontiguousarray(edges, dtype="<i4")

    def _validated_edge_lists(self, split, shape, labels, edge_index: EdgeLists):
        """Per system (labels [edges_s] little-endian int32, pairs [edges_s, 2] int32) of a
        split's edge lists, or a DatasetError naming the first bad system; raises
        ``max_degree`` to the split's."""
        where = f"{self.output_dir}, split {split!r}"
        systems, nodes = shape[:2]
        labels, pairs = np.asarray(labels), np.asarray(edge_index.edges)
        if len(edge_index) != systems or labels.shape != (len(pairs),) or pairs.shape[1:] != (2,):
            raise DatasetError(f"{where}: need edge lists of {systems} systems and one label per "
                               f"pair, got {len(edge_index)} systems, {len(pairs)} pairs and "
                               f"{labels.shape[0] if labels.ndim else 0} labels")
        if not (np.issubdtype(labels.dtype, np.integer) and np.issubdtype(pairs.dtype, np.integer)):
            raise DatasetError(f"{where}: edge labels and pairs must be integers")
        system = np.repeat(np.arange(systems), edge_index.num_edges())

        if len(pairs):
            keys = (system.astype(np.int64) * nodes * nodes + pairs[:, 0].astype(np.int64) * nodes
                    + pairs[:, 1])
            for bad, problem in (
                    (((pairs < 0) | (pairs >= nodes)).any(axis=1), f"has a pair naming a node outside 0..{nodes - 1}"),
                    (pairs[:, 0] == pairs[:, 1], "has a pair joining a node to itself"),
                    (np.concatenate([[False], np.diff(keys) <= 0]),
                     "has pairs out of receiver-major order or listed twice"),
                    ((labels < 0) | (labels >= self.edge_types), f"has an edge label outside [0, {self.edge_types})")):
                if bad.any():
                    raise DatasetError(f"{where}: system {int(system[np.argmax(bad)])} {problem}")
            degrees = np.bincount(system * nodes + pairs[:, 0], minlength=systems * nodes)
            self.edge_lists["max_degree"] = max(self.edge_lists["max_degree"], int(degrees.max()))
        labels = np.ascontiguousarray(labels, dtype="<i4")
        pairs = np.ascontiguousarray(pairs, dtype="<i4")
        splits = edge_index.row_splits
        return ([labels[splits[s]:splits[s + 1]] for s in range(systems)],
                [pairs[splits[s]:splits[s + 1]] for s in range(systems)])

    def commit(self) -> DatasetMetadata:
        """Writes metadata.json and moves the dataset into place; returns its metadata."""
        try:
            if "train" not in self.sizes:
                raise DatasetError(f"{self.output_dir}: no train split written; the normalisation "
                                   "statistics come from it")
            order = [split for split in SPLITS if split in self.sizes]
            metadata = DatasetMetadata(
                source=self.source, parameters=self.parameters, nodes=self.nodes,
                dims=len(self.feature_names), feature_names=self.feature_names,
                edge_types=self.edge_types, frames={s: self.frames[s] for s in order},
                splits={s: self.sizes[s] for s in order}, normalisation=self.normalisation,
                shards={s: self.shards[s] for s in order}, seed=self.seed,
                reference_edges=self.reference_edges, extra=self.extra, edge_lists=self.edge_lists,
                format_version=DENSE_FORMAT_VERSION if self.edge_lists is None else FORMAT_VERSION,
            ).validate(self.output_dir)
            try:
                text = json.dumps(metadata.to_dict(), indent=2, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise DatasetError(f"{self.output_dir}: metadata is not JSON-serialisable ({error})") from None
            # What readers will see (tuples become lists): returned, so it equals read_metadata's.
            metadata = DatasetMetadata.from_dict(json.loads(text), where=self.output_dir)
            with open(os.path.join(self._staging.path, METADATA_FILE), "w") as handle:
                handle.write(text + "\n")
            self._staging.commit()
        except BaseException:
            self.abort()
            raise
        self.metadata = metadata
        return metadata

    def abort(self) -> None:
        """Discards everything written so far."""
        self._staging.abort()


def write_dataset(output_dir: str, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                  source: str, parameters: dict, edge_types: int, feature_names: Sequence[str],
                  normalisation_groups: Sequence[Sequence[int]] | None,
                  normalisation_method: str = "minmax", seed: int | None = None,
                  extra: dict | None = None, reference_edges: dict | None = None,
                  shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False) -> DatasetMetadata:
    """Writes a native dataset atomically (see `DatasetWriter`).

    Args:
      output_dir: the dataset directory; refused if it exists and is not empty, unless
        ``overwrite``.
      splits: split name -> (trajectories [systems, nodes, frames, dims] raw float,
        edge labels [systems, nodes * (nodes - 1)] int, receiver-major). Needs "train".
      source, parameters, seed, extra, reference_edges: stored in the metadata.
      edge_types: labels lie in [0, edge_types).
      feature_names: [dims] names of the features.
      normalisation_groups: dims sharing a scalar min/max (None: each dim alone).
      normalisation_method: "minmax" or "maxabs", statistics of the train split only.
      shard_size: most records per TFRecord file.
    Returns:
      The written `DatasetMetadata`.
    """
    with DatasetWriter(output_dir, source=source, parameters=parameters, edge_types=edge_types,
                       feature_names=feature_names, normalisation_groups=normalisation_groups,
                       normalisation_method=normalisation_method, seed=seed, extra=extra,
                       reference_edges=reference_edges, shard_size=shard_size,
                       overwrite=overwrite) as writer:
        for split in sorted(splits, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS)):
            writer.write_split(split, *splits[split])
    return writer.metadata

