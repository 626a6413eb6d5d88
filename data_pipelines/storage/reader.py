"""Reading the native format: validated metadata, shard files and verified records.

Building blocks:
  `read_metadata`, `shard_paths`     validated metadata and shard files
  `metadata_fingerprint`           which data a directory holds (runs belong to it)
  `iter_split`, `check_split`, `read_split`   records, every one verified (values too)
  `decode_records`    serialized records -> tensors (the one parser, shared with tf.data)
  `decode_edge_list_record`   the same for one record of a dataset with edge lists

Datasets with edge lists (`DatasetMetadata.has_edge_lists`) come as (trajectories,
`LabelledEdges`) instead of (trajectories, labels [systems, nodes * (nodes - 1)]).

TensorFlow is imported only inside the functions that touch TFRecords, so that the
command-line tools read metadata, and reject bad input, without loading it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import dataclasses

import numpy as np

from data_pipelines.candidates import EdgeLists
from data_pipelines.errors import DatasetError
from data_pipelines.storage.metadata import (EDGE_INDEX_FEATURE, EDGES_FEATURE, METADATA_FILE,
                                             TRAJECTORIES_FEATURE, DatasetMetadata, ShardInfo,
                                             file_sha256)

_EDGE_LIST_BATCH = 256
"""Records per numpy batch when iterating a dataset with edge lists."""


@dataclasses.dataclass(frozen=True)
class LabelledEdges:
    """The labelled pairs of a batch of systems of a dataset with edge lists.

    Attributes:
      edges: `EdgeLists`, each system's (receiver, sender) pairs, receiver-major.
      labels: [total_edges] int32 edge type of each pair of ``edges.edges``.
    """

    edges: EdgeLists
    labels: np.ndarray

    @classmethod
    def concatenate(cls, parts: list["LabelledEdges"]) -> "LabelledEdges":
        """The systems of ``parts``, one after another."""
        return cls(EdgeLists.from_list([part.edges[s] for part in parts for s in range(len(part.edges))]),
                   np.concatenate([part.labels for part in parts]).astype(np.int32))


def read_metadata(data_dir: str) -> DatasetMetadata:
    """The validated metadata of the native dataset in ``data_dir``."""
    path = os.path.join(data_dir, METADATA_FILE)
    if os.path.isfile(data_dir):
        raise DatasetError(f"{data_dir} is a file; pass the dataset directory (the one holding "
                           f"{METADATA_FILE})")
    if not os.path.isfile(path):
        hint = ("it holds reference .npy files: convert them with python -m data_pipelines.generate "
                f"--source reference --input {data_dir} --output NEW_DIR"
                if glob.glob(os.path.join(data_dir, "*_train_*.npy"))
                else "generate one with python -m data_pipelines.generate")
        raise DatasetError(f"{path} not found: {data_dir} is not an nri-tf dataset ({hint})")
    try:
        with open(path) as handle:
            values = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable metadata ({error})") from None
    return DatasetMetadata.from_dict(values, where=path)


def metadata_fingerprint(metadata: DatasetMetadata) -> str:
    """A short hash of a dataset's metadata (shard sizes, statistics, parameters, seed):
    which data it is, not where it lies, so that a copy has the same fingerprint."""
    text = json.dumps(metadata.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _checked_shards(data_dir: str, metadata: DatasetMetadata, split: str) -> list[tuple[str, ShardInfo]]:
    """(path, info) of every shard of ``split``, each present with the size metadata records."""
    if split not in metadata.splits:
        raise DatasetError(f"{data_dir}: no {split!r} split; it has {', '.join(metadata.splits)}")
    checked = []
    for shard in metadata.shards[split]:
        path = os.path.join(data_dir, shard.file)
        if not os.path.isfile(path):
            raise DatasetError(f"{path}: shard missing; regenerate or re-copy the dataset")
        size = os.path.getsize(path)
        if size != shard.bytes:
            raise DatasetError(f"{path}: shard is {size} bytes, metadata says {shard.bytes} "
                               "(truncated or altered); regenerate or re-copy the dataset")
        checked.append((path, shard))
    return checked


def shard_paths(data_dir: str, split: str) -> list[str]:
    """Paths of the TFRecord shards of ``split`` in record order, each checked to exist and
    to have the size recorded in the metadata (this catches truncation)."""
    return [path for path, _ in _checked_shards(data_dir, read_metadata(data_dir), split)]


def decode_records(serialized, nodes: int, frames: int, dims: int):
    """Parses a batch of serialized records (the one parser; tf.data uses it too).

    Args:
      serialized: [batch] tf.string tensor of records.
    Returns:
      (trajectories [batch, nodes, frames, dims] float32 raw units,
       edges [batch, nodes * (nodes - 1)] int32).
    """
    import tensorflow as tf   # only where records are touched (module docstring)

    spec = {TRAJECTORIES_FEATURE: tf.io.FixedLenFeature([], tf.string),
            EDGES_FEATURE: tf.io.FixedLenFeature([], tf.string)}
    features = tf.io.parse_example(serialized, spec)
    trajectories = tf.io.decode_raw(features[TRAJECTORIES_FEATURE], tf.float32, little_endian=True)
    edges = tf.io.decode_raw(features[EDGES_FEATURE], tf.int32, little_endian=True)
    # The batch size is given, not inferred, so that records of another shape fail here
    # rather than being regrouped into a different number of systems.
    batch = tf.shape(serialized)[0]
    return (tf.reshape(trajectories, [batch, nodes, frames, dims]),
            tf.reshape(edges, [batch, nodes * (nodes - 1)]))


def decode_edge_list_record(serialized, nodes: int, frames: int, dims: int):
    """Parses one record of a dataset with edge lists (tf.data maps it over records).

    Args:
      serialized: scalar tf.string record.
    Returns:
      (trajectories [nodes, frames, dims] float32 raw units, pairs [edges, 2] int32
       (receiver, sender), labels [edges] int32).
    """
    import tensorflow as tf   # only where records are touched (module docstring)

    spec = {name: tf.io.FixedLenFeature([], tf.string)
            for name in (TRAJECTORIES_FEATURE, EDGES_FEATURE, EDGE_INDEX_FEATURE)}
    features = tf.io.parse_single_example(serialized, spec)
    trajectories = tf.io.decode_raw(features[TRAJECTORIES_FEATURE], tf.float32, little_endian=True)
    labels = tf.io.decode_raw(features[EDGES_FEATURE], tf.int32, little_endian=True)
    pairs = tf.io.decode_raw(features[EDGE_INDEX_FEATURE], tf.int32, little_endian=True)
    return (tf.reshape(trajectories, [nodes, frames, dims]), tf.reshape(pairs, [tf.size(labels), 2]),
            labels)


def _shard_batches(path: str, metadata: DatasetMetadata, frames: int):
    """(trajectories [b, nodes, frames, dims], edges [b, edges] or `LabelledEdges`) numpy
    batches of one shard."""
    import tensorflow as tf   # only where records are touched (module docstring)

    if not metadata.has_edge_lists:
        batches = tf.data.TFRecordDataset(path).batch(4096).map(
            lambda s: decode_records(s, metadata.nodes, frames, metadata.dims))
        return batches.as_numpy_iterator()
    records = tf.data.TFRecordDataset(path).map(
        lambda s: decode_edge_list_record(s, metadata.nodes, frames, metadata.dims)).as_numpy_iterator()
    return _edge_list_batches(records)


def _edge_list_batches(records):
    batch = []
    for record in records:
        batch.append(record)
        if len(batch) == _EDGE_LIST_BATCH:
            yield _stack_edge_list_records(batch)
            batch = []
    if batch:
        yield _stack_edge_list_records(batch)


def _stack_edge_list_records(records) -> tuple[np.ndarray, LabelledEdges]:
    return (np.stack([trajectories for trajectories, _, _ in records]),
            LabelledEdges(EdgeLists.from_list([pairs for _, pairs, _ in records]),
                          np.concatenate([labels for _, _, labels in records]).astype(np.int32)))


def _check_edge_lists(metadata: DatasetMetadata, edges: LabelledEdges, fail) -> None:
    """``fail(bad_systems [batch] bool, problem)`` for pairs naming a node out of range, self
    loops, pairs out of receiver-major order or repeated, more pairs per node than the
    metadata's max_degree."""
    nodes, pairs = metadata.nodes, edges.edges.edges.astype(np.int64)
    if not len(pairs):
        return
    system = np.repeat(np.arange(len(edges.edges)), edges.edges.num_edges())

    def check(bad_pairs, problem):
        if bad_pairs.any():
            fail(np.bincount(system[bad_pairs], minlength=len(edges.edges)) > 0, problem)

    out_of_range = ((pairs < 0) | (pairs >= nodes)).any(axis=1)
    check(out_of_range, f"has candidate edge {pairs[np.argmax(out_of_range)].tolist()} naming a node "
                        f"outside 0..{nodes - 1}")
    check(pairs[:, 0] == pairs[:, 1], "has an edge joining a node to itself")
    keys = system * nodes * nodes + pairs[:, 0] * nodes + pairs[:, 1]
    repeated = np.concatenate([[False], np.diff(keys) <= 0])
    check(repeated, "has edges listed twice or out of receiver-major order")
    degrees = np.bincount(system * nodes + pairs[:, 0], minlength=len(edges.edges) * nodes)
    too_many = degrees.reshape(len(edges.edges), nodes).max(axis=1) > metadata.edge_lists["max_degree"]
    if too_many.any():
        fail(too_many, f"has a node with more edges than max_degree "
                       f"{metadata.edge_lists['max_degree']} in {METADATA_FILE}")


def _check_values(path: str, metadata: DatasetMetadata, split: str, first: int,
                  trajectories: np.ndarray, edges: np.ndarray) -> None:
    """DatasetError naming the shard and the split's system index for non-finite values,
    edge labels outside [0, edge_types), or (training split) values outside the
    normalisation statistics, which were computed from exactly these values.

    Args:
      first: index in the split of the first system of the batch.
      trajectories: [batch, nodes, frames, dims]; edges: [batch, edges], or the
        `LabelledEdges` of a dataset with edge lists (also checked by `_check_edge_lists`).
    """
    def fail(bad_systems: np.ndarray, problem: str):
        raise DatasetError(f"{path}: system {first + int(np.argmax(bad_systems))} of split {split!r} "
                           f"{problem}; regenerate or re-copy the dataset")

    flat = trajectories.reshape(len(trajectories), -1, metadata.dims)
    finite = np.isfinite(flat).all(axis=(1, 2))
    if not finite.all():
        fail(~finite, "contains NaN or Inf")
    if isinstance(edges, LabelledEdges):
        _check_edge_lists(metadata, edges, fail)
        per_system = np.split(edges.labels, edges.edges.row_splits[1:-1])
        out_of_range = np.array([((labels < 0) | (labels >= metadata.edge_types)).any()
                                 for labels in per_system])
        if out_of_range.any():
            labels = per_system[int(np.argmax(out_of_range))]
            bad = labels[(labels < 0) | (labels >= metadata.edge_types)][0]
            fail(out_of_range, f"has edge label {int(bad)}, outside [0, {metadata.edge_types}) "
                               "(metadata edge_types)")
    else:
        out_of_range = (edges < 0) | (edges >= metadata.edge_types)
        if out_of_range.any():
            fail(out_of_range.any(axis=1), f"has edge label {int(edges[out_of_range][0])}, outside "
                                           f"[0, {metadata.edge_types}) (metadata edge_types)")
    if split == "train":
        norm = metadata.normalisation
        inside = ((flat >= np.asarray(norm.min)) & (flat <= np.asarray(norm.max))).all(axis=(1, 2))
        if not inside.all():
            fail(~inside, f"has values outside the training statistics in {METADATA_FILE} "
                          "(an altered or corrupt shard)")


def iter_split(data_dir: str, split: str, metadata: DatasetMetadata | None = None):
    """Yields a split's records in stored order as numpy batches, every one verified.

    Yields:
      (trajectories [batch, nodes, frames, dims] float32 raw units,
       edges [batch, nodes * (nodes - 1)] int32 labels, receiver-major, or for a dataset
       with edge lists their `LabelledEdges`).
    Raises:
      DatasetError naming the file for a missing split, a missing, truncated or corrupt
      shard (contents that differ from the metadata's SHA-256, bad CRC, unparsable
      records), records of another shape than the metadata's,
      a record count that differs from it, and (`_check_values`, naming the system)
      non-finite values, edge labels out of range or training values outside the
      normalisation statistics.
    """
    import tensorflow as tf   # only where records are touched (module docstring)

    metadata = metadata or read_metadata(data_dir)
    first = 0
    for path, shard in _checked_shards(data_dir, metadata, split):
        if shard.sha256 is not None and file_sha256(path) != shard.sha256:
            raise DatasetError(f"{path}: contents differ from the checksum in {METADATA_FILE} (an "
                               "altered or corrupt shard); regenerate or re-copy the dataset")
        records = 0
        try:
            for trajectories, edges in _shard_batches(path, metadata, metadata.frames[split]):
                _check_values(path, metadata, split, first + records, trajectories, edges)
                records += len(trajectories)
                yield trajectories, edges
        except tf.errors.DataLossError as error:
            raise DatasetError(f"{path}: corrupt shard ({error.message.splitlines()[-1].strip()}); "
                               "regenerate or re-copy the dataset") from None
        except tf.errors.InvalidArgumentError as error:
            raise DatasetError(f"{path}: records unreadable as {metadata.nodes} nodes x "
                               f"{metadata.frames[split]} frames x {metadata.dims} dims "
                               f"({error.message.splitlines()[0].strip()}): a corrupt shard or "
                               "metadata that does not describe it") from None
        if records != shard.records:
            raise DatasetError(f"{path}: {records} records, metadata says {shard.records}")
        first += records


def check_split(data_dir: str, split: str, metadata: DatasetMetadata | None = None) -> None:
    """Reads a whole split once, keeping nothing: the DatasetErrors of `iter_split`."""
    for _ in iter_split(data_dir, split, metadata):
        pass


def read_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split as numpy arrays (for baselines and tests), verified by `iter_split`.

    Returns:
      (trajectories [systems, nodes, frames, dims] float32 raw units,
       edges [systems, nodes * (nodes - 1)] int32 labels, receiver-major, or for a dataset
       with edge lists their `LabelledEdges`).
    """
    batches = list(iter_split(data_dir, split))
    edges = [e for _, e in batches]
    return (np.concatenate([x for x, _ in batches]),
            LabelledEdges.concatenate(edges) if isinstance(edges[0], LabelledEdges) else np.concatenate(edges))

