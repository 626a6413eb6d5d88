"""The on-disk NRI dataset: TFRecord shards plus ``metadata.json``; reference .npy import/export.

Native layout (``format_version`` 1) of a dataset directory::

    metadata.json                     `DatasetMetadata`: source and parameters, shapes, split
                                      sizes, shard list (records, bytes, SHA-256), training-
                                      split normalisation statistics
    train-00000-of-00013.tfrecord     one `tf.train.Example` per system with two bytes features:
    ...                                 "trajectories": float32 little-endian [nodes, frames, dims],
    valid-00000-of-00003.tfrecord                       raw (unnormalised) units
    test-00000-of-00003.tfrecord        "edges": int32 little-endian [edges] edge-type labels,
                                                 edges = nodes * (nodes - 1) in the receiver-major
                                                 order of `nri_tf.graph`

Every split with at least 2 systems has at least 2 shards, so that two tf.distribute
workers each get files of their own (`data_pipelines.datasets.make_dataset`).

Reference layout (the original PyTorch code's ``data/`` directory), ``{suffix}`` being
``_{source}{nodes}``, e.g. ``_springs5``::

    springs, charged:  loc_{split}{suffix}.npy, vel_{split}{suffix}.npy  [systems, frames, 2, nodes]
                       edges_{split}{suffix}.npy                         [systems, nodes, nodes]
    kuramoto:          feat_{split}{suffix}.npy                          [systems, nodes, frames, 3]
                       edges_{split}{suffix}.npy                         [systems, nodes, nodes]

``edges_*`` hold the simulators' interaction values (springs 0/1 or 0/0.5/1, charged
q_i q_j, Kuramoto k_ij), not labels; `DatasetMetadata.reference_edges` records how labels
map back to them so that an export reproduces the reference files.

Building blocks:
  `DatasetWriter`     stage splits in a temporary sibling directory, move into place at the end
  `write_dataset`     all splits at once through a `DatasetWriter`
  `read_metadata`, `shard_paths`     validated metadata and shard files
  `metadata_fingerprint`           which data a directory holds (runs belong to it)
  `iter_split`, `check_split`, `read_split`   records, every one verified (values too)
  `has_edge_labels`   whether the labels are a true graph (simulations) or placeholders (real data)
  `decode_records`    serialized records -> tensors (the one parser, shared with tf.data)
  `write_reference`, `export_reference`, `import_reference`, `reference_simulation`
                      the reference .npy layout

TensorFlow (also imported by `nri_tf.graph`) is imported only inside the functions that
touch TFRecords or edge lists, so the command-line tools reject bad input, and write the
reference layout, without loading it (and without its start-up log lines on stderr).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import re
import shutil
from typing import Any, Mapping, Sequence

import numpy as np

from data_pipelines import files

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
SPLITS = ("train", "valid", "test")
NORMALISATION_METHODS = ("minmax", "maxabs")
DEFAULT_SHARD_SIZE = 4096
REFERENCE_LAYOUTS = {"springs": "loc_vel", "charged": "loc_vel", "kuramoto": "feat"}
NO_EDGE_LABELS = "none"   # metadata.parameters["edge_labels"] of data without a true graph
_TRAJECTORIES_KEY = "trajectories"
_EDGES_KEY = "edges"
# The names of what this package writes into a dataset directory: --overwrite replaces only
# directories holding nothing else (native: metadata and shards; reference: the .npy files).
_SHARD_NAME = rf"({'|'.join(SPLITS)})-\d{{5,}}-of-\d{{5,}}\.tfrecord"
_REFERENCE_NAME = rf"(loc|vel|edges|feat)_({'|'.join(SPLITS)})_[A-Za-z]+\d+\.npy"
_OWN_FILE_PATTERN = re.compile(rf"{re.escape(METADATA_FILE)}|{_SHARD_NAME}|{_REFERENCE_NAME}")


class DatasetError(ValueError):
    """A dataset cannot be written or read; the one-line message names the file and problem."""


# ---------------------------------------------------------------------------------------
# Metadata

@dataclasses.dataclass
class Normalisation:
    """Training-split statistics that scale each dim to [-1, 1]: x' = (x - min) * 2 / (max - min) - 1.

    method: "minmax" (min/max over the training split, as the reference does) or "maxabs"
      (min = -m, max = +m with m the largest |value|: real data scaled to max |value| 1).
    groups: dims sharing one scalar min/max, e.g. ((0, 1), (2, 3)) for position and velocity.
    min, max: [dims] per-dim statistics, equal within a group.
    """
    method: str
    groups: list
    min: list
    max: list

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ShardInfo:
    """One TFRecord file of a split: its name inside the dataset directory, records, size
    and SHA-256 of its contents (None in datasets written before checksums were kept)."""
    file: str
    records: int
    bytes: int
    sha256: str | None = None


@dataclasses.dataclass
class DatasetMetadata:
    """What `metadata.json` says about a native dataset.

    source: the simulation ("springs", "charged", "kuramoto") or real-data source name.
    parameters: how the data was made (simulation settings, imported file names, ...).
    nodes, dims: every system is [nodes, frames, dims]; ``feature_names`` names the dims.
    edge_types: labels lie in [0, edge_types).
    frames: split -> frames per system (train/valid 49 and test 99 for the simulations).
    splits: split -> number of systems, in `SPLITS` order.
    normalisation: training-split statistics (`Normalisation`).
    shards: split -> its `ShardInfo` list, in record order.
    seed: the generator's seed, if any.
    reference_edges: {"label_values": [value of label k in the reference edges_*.npy, or
      None if unseen], "diagonal": value on the diagonal} or None where labels are all there is.
    extra: free-form source data, e.g. a skeleton's bone graph.
    """
    source: str
    parameters: dict
    nodes: int
    dims: int
    feature_names: list
    edge_types: int
    frames: dict
    splits: dict
    normalisation: Normalisation
    shards: dict
    seed: int | None = None
    reference_edges: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def edges(self) -> int:
        """Directed edges per system: nodes * (nodes - 1)."""
        return self.nodes * (self.nodes - 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "metadata") -> "DatasetMetadata":
        """Builds and validates metadata; DatasetError names ``where`` and the bad field."""
        if not isinstance(values, Mapping):
            raise DatasetError(f"{where}: expected a JSON object, got {type(values).__name__}")
        version = values.get("format_version")
        if not isinstance(version, int):
            raise DatasetError(f"{where}: missing or non-integer format_version")
        if version > FORMAT_VERSION:
            raise DatasetError(f"{where}: format_version {version} is newer than this code reads "
                               f"({FORMAT_VERSION}); upgrade nri-tf")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise DatasetError(f"{where}: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(values) - names)
        if unknown:
            raise DatasetError(f"{where}: unknown field(s) {', '.join(unknown)}")
        fields = dict(values)
        try:
            fields["normalisation"] = Normalisation(**fields["normalisation"])
            fields["shards"] = {split: [ShardInfo(**shard) for shard in shards]
                                for split, shards in fields["shards"].items()}
        except (TypeError, AttributeError) as error:
            raise DatasetError(f"{where}: malformed normalisation or shards ({error})") from None
        try:
            return cls(**fields).validate(where)
        except (TypeError, AttributeError) as error:
            raise DatasetError(f"{where}: a field has the wrong type ({error})") from None

    def validate(self, where: str = "metadata") -> "DatasetMetadata":
        """Checks that the fields agree with each other; raises DatasetError naming ``where``."""
        def fail(problem):
            raise DatasetError(f"{where}: {problem}")

        if not isinstance(self.nodes, int) or self.nodes < 2:
            fail(f"nodes must be an integer >= 2, got {self.nodes!r}")
        if not isinstance(self.dims, int) or self.dims < 1:
            fail(f"dims must be a positive integer, got {self.dims!r}")
        if len(self.feature_names) != self.dims:
            fail(f"{len(self.feature_names)} feature_names for {self.dims} dims")
        if not isinstance(self.edge_types, int) or self.edge_types < 1:
            fail(f"edge_types must be a positive integer, got {self.edge_types!r}")
        unknown = sorted(set(self.splits) - set(SPLITS))
        if unknown:
            fail(f"unknown split(s) {', '.join(unknown)}; splits are {', '.join(SPLITS)}")
        if "train" not in self.splits:
            fail("no train split")
        for name, table in (("frames", self.frames), ("shards", self.shards)):
            if set(table) != set(self.splits):
                fail(f"{name} lists splits {sorted(table)} but splits are {sorted(self.splits)}")
        for split, size in self.splits.items():
            for shard in self.shards[split]:
                if not re.fullmatch(_SHARD_NAME, str(shard.file)):
                    fail(f"shard file name {shard.file!r} of split {split!r} is not a shard name "
                         "such as train-00000-of-00002.tfrecord")
            if sum(shard.records for shard in self.shards[split]) != size:
                fail(f"shards of split {split!r} hold a different number of records than its size {size}")
            if not isinstance(self.frames[split], int) or self.frames[split] < 1:
                fail(f"frames of split {split!r} must be a positive integer")
        norm = self.normalisation
        if norm.method not in NORMALISATION_METHODS:
            fail(f"unknown normalisation method {norm.method!r}")
        if len(norm.min) != self.dims or len(norm.max) != self.dims:
            fail(f"normalisation min/max need {self.dims} entries")
        return self


def has_edge_labels(metadata: DatasetMetadata) -> bool:
    """Whether a dataset's edge labels are a true graph (simulations) rather than
    placeholders (real data, whose every label is 0: ``parameters["edge_labels"] ==
    NO_EDGE_LABELS``)."""
    return metadata.parameters.get("edge_labels") != NO_EDGE_LABELS


def _dims_groups(groups: Sequence[Sequence[int]] | None, dims: int) -> list[list[int]]:
    """Validated normalisation groups; None means every dim on its own."""
    if groups is None:
        return [[d] for d in range(dims)]
    groups = [[int(d) for d in group] for group in groups]
    covered = sorted(d for group in groups for d in group)
    if covered != list(range(dims)):
        raise DatasetError(f"normalisation groups {groups} must cover dims 0..{dims - 1} exactly once")
    return groups


def compute_normalisation(trajectories: np.ndarray, groups: Sequence[Sequence[int]] | None = None,
                          method: str = "minmax") -> Normalisation:
    """Normalisation statistics of ``trajectories`` (the training split).

    Args:
      trajectories: [systems, nodes, frames, dims] raw values.
      groups: dims sharing one scalar min/max (default: each dim alone).
      method: "minmax" or "maxabs" (see `Normalisation`).
    Returns:
      A `Normalisation` with [dims] min and max lists.
    """
    if method not in NORMALISATION_METHODS:
        raise DatasetError(f"unknown normalisation method {method!r}; choose one of "
                           f"{', '.join(NORMALISATION_METHODS)}")
    dims = trajectories.shape[-1]
    groups = _dims_groups(groups, dims)
    flat = trajectories.reshape(-1, dims)
    low, high = flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
    minimum, maximum = np.empty(dims), np.empty(dims)
    for group in groups:
        if method == "minmax":
            minimum[group], maximum[group] = low[group].min(), high[group].max()
        else:
            bound = max(np.abs(low[group]).max(), np.abs(high[group]).max())
            minimum[group], maximum[group] = -bound, bound
    return Normalisation(method=method, groups=groups, min=[float(v) for v in minimum],
                         max=[float(v) for v in maximum])


def reference_edge_encoding(labels: np.ndarray, interactions: np.ndarray) -> dict | None:
    """How edge labels map to the reference's ``edges_*.npy`` values, read off paired examples.

    Args:
      labels: [systems, nodes, nodes] int edge-type labels.
      interactions: [systems, nodes, nodes] the matching reference matrices.
    Returns:
      {"label_values": [value of label k, None if label k never occurs], "diagonal": value}
      or None when a label maps to several values (or the diagonal varies), so that no
      export could reproduce the matrices from labels alone.
    """
    labels, interactions = np.asarray(labels), np.asarray(interactions)
    nodes = labels.shape[-1]
    off_diagonal = ~np.eye(nodes, dtype=bool)
    diagonal = np.unique(interactions[..., ~off_diagonal])
    if len(diagonal) != 1:
        return None
    flat_labels, flat_values = labels[..., off_diagonal].ravel(), interactions[..., off_diagonal].ravel()
    values = []
    for label in range(int(flat_labels.max()) + 1 if flat_labels.size else 0):
        seen = np.unique(flat_values[flat_labels == label])
        if len(seen) > 1:
            return None
        values.append(float(seen[0]) if len(seen) else None)
    return {"label_values": values, "diagonal": float(diagonal[0])}


# ---------------------------------------------------------------------------------------
# Atomic output directories

def foreign_entries(directory: str) -> list[str]:
    """The entries of ``directory`` (sorted) that no dataset of this package would hold."""
    return sorted(entry for entry in os.listdir(directory) if not _OWN_FILE_PATTERN.fullmatch(entry))


class _StagingDirectory:
    """A temporary sibling of ``output_dir`` that `commit` moves into place atomically.

    Creating it is the writability check: it fails (DatasetError) before any work is done
    if the output exists and is not empty (unless ``overwrite``, which replaces only a
    dataset directory: `foreign_entries` must find nothing) or cannot be created. Staging
    directories that killed runs left for the same output are removed first
    (`data_pipelines.files.staging_directory`); the committed directory gets the umask's
    permissions.
    """

    def __init__(self, output_dir: str, overwrite: bool = False):
        self.output_dir = os.path.abspath(output_dir)
        self.overwrite = overwrite
        self._check_target()
        parent, self._name = os.path.split(self.output_dir)
        self._created_parent = _first_missing_ancestor(parent)
        existing = os.path.dirname(self._created_parent) if self._created_parent else parent
        if not os.path.isdir(existing):
            raise DatasetError(f"cannot write dataset to {output_dir}: {existing} is not a directory")
        try:
            os.makedirs(parent, exist_ok=True)
            self.path = files.staging_directory(parent, self._name)
        except OSError as error:
            self._remove_created_parents()
            raise DatasetError(f"cannot write dataset to {output_dir}: "
                               f"{error.strerror or error}") from None

    def _check_target(self) -> None:
        target = self.output_dir
        if os.path.isdir(target):
            if not os.listdir(target):
                return
            if not self.overwrite:
                raise DatasetError(f"{target} already exists and is not empty; "
                                   "choose another output or pass overwrite (--overwrite)")
            foreign = foreign_entries(target)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise DatasetError(f"{target} is not a dataset directory (it holds {shown}); "
                                   "overwrite only replaces datasets: remove it yourself or "
                                   "choose another output")
        elif os.path.lexists(target):
            raise DatasetError(f"{target} exists and is not a directory")

    def commit(self) -> None:
        """Moves the staged directory to ``output_dir`` (replacing it if ``overwrite``)."""
        self._check_target()
        files.apply_umask(self.path)
        parent = os.path.dirname(self.output_dir)
        old = None
        if os.path.isdir(self.output_dir) and os.listdir(self.output_dir):
            old = files.staging_directory(parent, self._name, kind="old")
            os.replace(self.output_dir, os.path.join(old, "dataset"))
        os.replace(self.path, self.output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Removes everything staged, and parent directories this object created."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created_parents()

    def _remove_created_parents(self) -> None:
        if self._created_parent is None:
            return
        directory = os.path.dirname(self.output_dir)
        while True:
            try:
                os.rmdir(directory)
            except OSError:
                return
            if directory == self._created_parent:
                return
            directory = os.path.dirname(directory)


def check_output_dir(output_dir: str, overwrite: bool = False) -> None:
    """Raises DatasetError unless a dataset could be written to ``output_dir`` now: it
    must be absent or empty (or ``overwrite``) and its parent creatable and writable.
    Leaves nothing behind."""
    _StagingDirectory(output_dir, overwrite).abort()


def _first_missing_ancestor(path: str) -> str | None:
    """The outermost directory on ``path`` that does not exist yet (None if path exists)."""
    missing = None
    while not os.path.exists(path):
        missing = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


# ---------------------------------------------------------------------------------------
# Writing the native format

def _shard_bounds(records: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) record ranges of near-equal shards: ceil(records / shard_size) of them,
    and at least 2 when there are at least 2 records."""
    count = max(math.ceil(records / shard_size), min(records, 2))
    edges = np.linspace(0, records, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _serialize(trajectories: np.ndarray, edges: np.ndarray) -> bytes:
    """One system as a serialized tf.train.Example (see the module docstring)."""
    import tensorflow as tf

    return tf.train.Example(features=tf.train.Features(feature={
        _TRAJECTORIES_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[trajectories.tobytes()])),
        _EDGES_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[edges.tobytes()])),
    })).SerializeToString()


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
                 shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False):
        if normalisation_method not in NORMALISATION_METHODS:
            raise DatasetError(f"unknown normalisation method {normalisation_method!r}; choose one of "
                               f"{', '.join(NORMALISATION_METHODS)}")
        if not isinstance(edge_types, (int, np.integer)) or edge_types < 1:
            raise DatasetError(f"edge_types must be a positive integer, got {edge_types!r}")
        if shard_size < 1:
            raise DatasetError(f"shard_size must be a positive integer, got {shard_size}")
        self.feature_names = [str(name) for name in feature_names]
        self.groups = _dims_groups(normalisation_groups, len(self.feature_names))
        self.output_dir = output_dir
        self.source, self.parameters, self.edge_types = source, dict(parameters), int(edge_types)
        self.method, self.seed, self.shard_size = normalisation_method, seed, shard_size
        self.extra, self.reference_edges = dict(extra or {}), reference_edges
        self.nodes: int | None = None
        self.frames: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.shards: dict[str, list[ShardInfo]] = {}
        self.normalisation: Normalisation | None = None
        self.metadata: DatasetMetadata | None = None
        self._staging = _StagingDirectory(output_dir, overwrite)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.abort()
        elif self.metadata is None:
            self.commit()

    def write_split(self, split: str, trajectories: np.ndarray, edges: np.ndarray) -> list[ShardInfo]:
        """Validates one split and writes its shards.

        Args:
          split: one of `SPLITS`, each written once.
          trajectories: [systems, nodes, frames, dims] finite raw values (stored as float32).
          edges: [systems, nodes * (nodes - 1)] int labels in [0, edge_types), receiver-major.
        Returns:
          The split's `ShardInfo` list.
        """
        import tensorflow as tf

        trajectories, edges = self._validated(split, trajectories, edges)
        if split == "train":
            self.normalisation = compute_normalisation(trajectories, self.groups, self.method)
        shards = []
        for index, (start, stop) in enumerate(bounds := _shard_bounds(len(trajectories), self.shard_size)):
            name = f"{split}-{index:05d}-of-{len(bounds):05d}.tfrecord"
            path = os.path.join(self._staging.path, name)
            try:
                with tf.io.TFRecordWriter(path) as writer:
                    for i in range(start, stop):
                        writer.write(_serialize(trajectories[i], edges[i]))
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
        trajectories, edges = np.asarray(trajectories), np.asarray(edges)
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
        if edges.shape != (systems, nodes * (nodes - 1)):
            raise DatasetError(f"{where}: edges must be [{systems}, {nodes * (nodes - 1)}] labels "
                               f"(systems, nodes*(nodes-1)), got shape {edges.shape}")
        if not np.issubdtype(edges.dtype, np.integer):
            raise DatasetError(f"{where}: edge labels must be integers, got {edges.dtype}")
        if edges.min() < 0 or edges.max() >= self.edge_types:
            raise DatasetError(f"{where}: edge labels must lie in [0, {self.edge_types}), "
                               f"got {edges.min()}..{edges.max()}")
        self.nodes = nodes
        return trajectories, np.ascontiguousarray(edges, dtype="<i4")

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
                reference_edges=self.reference_edges, extra=self.extra).validate(self.output_dir)
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


# ---------------------------------------------------------------------------------------
# Reading the native format

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


def file_sha256(path: str) -> str:
    """The hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    import tensorflow as tf

    spec = {_TRAJECTORIES_KEY: tf.io.FixedLenFeature([], tf.string),
            _EDGES_KEY: tf.io.FixedLenFeature([], tf.string)}
    features = tf.io.parse_example(serialized, spec)
    trajectories = tf.io.decode_raw(features[_TRAJECTORIES_KEY], tf.float32, little_endian=True)
    edges = tf.io.decode_raw(features[_EDGES_KEY], tf.int32, little_endian=True)
    # The batch size is given, not inferred, so that records of another shape fail here
    # rather than being regrouped into a different number of systems.
    batch = tf.shape(serialized)[0]
    return (tf.reshape(trajectories, [batch, nodes, frames, dims]),
            tf.reshape(edges, [batch, nodes * (nodes - 1)]))


def _shard_batches(path: str, metadata: DatasetMetadata, frames: int):
    """(trajectories [b, nodes, frames, dims], edges [b, edges]) numpy batches of one shard."""
    import tensorflow as tf

    batches = tf.data.TFRecordDataset(path).batch(4096).map(
        lambda s: decode_records(s, metadata.nodes, frames, metadata.dims))
    return batches.as_numpy_iterator()


def _check_values(path: str, metadata: DatasetMetadata, split: str, first: int,
                  trajectories: np.ndarray, edges: np.ndarray) -> None:
    """DatasetError naming the shard and the split's system index for non-finite values,
    edge labels outside [0, edge_types), or (training split) values outside the
    normalisation statistics, which were computed from exactly these values.

    Args:
      first: index in the split of the first system of the batch.
      trajectories: [batch, nodes, frames, dims]; edges: [batch, edges].
    """
    def fail(bad_systems: np.ndarray, problem: str):
        raise DatasetError(f"{path}: system {first + int(np.argmax(bad_systems))} of split {split!r} "
                           f"{problem}; regenerate or re-copy the dataset")

    flat = trajectories.reshape(len(trajectories), -1, metadata.dims)
    finite = np.isfinite(flat).all(axis=(1, 2))
    if not finite.all():
        fail(~finite, "contains NaN or Inf")
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
       edges [batch, nodes * (nodes - 1)] int32 labels, receiver-major).
    Raises:
      DatasetError naming the file for a missing split, a missing, truncated or corrupt
      shard (contents that differ from the metadata's SHA-256, bad CRC, unparsable
      records), records of another shape than the metadata's,
      a record count that differs from it, and (`_check_values`, naming the system)
      non-finite values, edge labels out of range or training values outside the
      normalisation statistics.
    """
    import tensorflow as tf

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
       edges [systems, nodes * (nodes - 1)] int32 labels, receiver-major).
    """
    batches = list(iter_split(data_dir, split))
    return (np.concatenate([x for x, _ in batches]), np.concatenate([e for _, e in batches]))


# ---------------------------------------------------------------------------------------
# The reference .npy layout

def reference_suffix(source: str, nodes: int) -> str:
    """The reference file-name suffix, e.g. "_springs5" in loc_train_springs5.npy."""
    return f"_{source}{nodes}"


def _reference_layout(source: str) -> str:
    if source not in REFERENCE_LAYOUTS:
        raise DatasetError(f"the reference layout exists for {', '.join(REFERENCE_LAYOUTS)}, "
                           f"not {source!r}")
    return REFERENCE_LAYOUTS[source]


def write_reference(output_dir: str, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                    source: str, overwrite: bool = False) -> list[str]:
    """Writes splits in the reference .npy layout, atomically (see the module docstring).

    Args:
      splits: split -> (trajectories [systems, nodes, frames, dims] raw,
        interactions [systems, nodes, nodes] the reference's edges_*.npy values).
      source: "springs", "charged" (dims = 2D position, 2D velocity) or "kuramoto".
    Returns:
      The written file names, inside ``output_dir``.
    """
    layout = _reference_layout(source)
    arrays = {}
    for split, (trajectories, interactions) in splits.items():
        trajectories = np.asarray(trajectories)
        if split not in SPLITS or trajectories.ndim != 4:
            raise DatasetError(f"{output_dir}: split {split!r} must be one of {', '.join(SPLITS)} "
                               f"with [systems, nodes, frames, dims] trajectories")
        suffix = reference_suffix(source, trajectories.shape[1])
        if layout == "loc_vel":
            if trajectories.shape[-1] != 4:
                raise DatasetError(f"{output_dir}: {source} needs 4 dims (position, velocity), "
                                   f"got {trajectories.shape[-1]}")
            # [systems, nodes, frames, 2] -> [systems, frames, 2, nodes]
            arrays[f"loc_{split}{suffix}.npy"] = trajectories[..., :2].transpose(0, 2, 3, 1)
            arrays[f"vel_{split}{suffix}.npy"] = trajectories[..., 2:].transpose(0, 2, 3, 1)
        else:
            arrays[f"feat_{split}{suffix}.npy"] = trajectories
        arrays[f"edges_{split}{suffix}.npy"] = np.asarray(interactions)
    staging = _StagingDirectory(output_dir, overwrite)
    try:
        for name, array in arrays.items():
            np.save(os.path.join(staging.path, name), np.ascontiguousarray(array))
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    return sorted(arrays)


def export_reference(data_dir: str, output_dir: str, *, overwrite: bool = False) -> list[str]:
    """Writes a native simulation dataset in the reference .npy layout.

    The edges_*.npy matrices are rebuilt from the labels with the dataset's
    ``reference_edges`` encoding, so importing them again gives identical arrays.
    Returns the written file names.
    """
    from nri_tf.graph import edge_matrix_from_labels

    metadata = read_metadata(data_dir)
    _reference_layout(metadata.source)
    encoding = metadata.reference_edges
    if encoding is None:
        raise DatasetError(f"{data_dir}: metadata has no reference_edges encoding, so the "
                           "reference edges_*.npy values cannot be rebuilt from labels")
    splits = {}
    for split in metadata.splits:
        trajectories, labels = read_split(data_dir, split)
        known = [v is not None for v in encoding["label_values"]]
        if labels.max() >= len(known) or not all(known[k] for k in np.unique(labels)):
            raise DatasetError(f"{data_dir}: split {split!r} has edge labels without a "
                               "reference value in metadata reference_edges")
        values = np.array([np.nan if v is None else v for v in encoding["label_values"]], np.float32)
        interactions = edge_matrix_from_labels(values[labels], metadata.nodes,
                                               diagonal=np.float32(encoding["diagonal"]))
        splits[split] = (trajectories, interactions)
    return write_reference(output_dir, splits, source=metadata.source, overwrite=overwrite)


def reference_simulation(reference_dir: str) -> str:
    """The simulation whose reference training files ``reference_dir`` holds, read off the
    file names (loc_train_springs5.npy -> "springs"); DatasetError unless exactly one."""
    found = sorted(source for source, layout in REFERENCE_LAYOUTS.items()
                   if glob.glob(os.path.join(reference_dir, f"{'loc' if layout == 'loc_vel' else 'feat'}"
                                                            f"_train_{source}*.npy")))
    if len(found) != 1:
        what = f"files of several simulations ({', '.join(found)})" if found else "no loc_train_* or feat_train_* file"
        raise DatasetError(f"{reference_dir}: {what}; pass --simulation")
    return found[0]


def _find_reference_suffix(reference_dir: str, source: str, nodes: int | None) -> str:
    first = "loc" if _reference_layout(source) == "loc_vel" else "feat"
    if nodes is not None:
        return reference_suffix(source, nodes)
    found = sorted(glob.glob(os.path.join(reference_dir, f"{first}_train_{source}*.npy")))
    if not found:
        raise DatasetError(f"{reference_dir}: no {first}_train_{source}<N>.npy file")
    if len(found) > 1:
        names = ", ".join(os.path.basename(path) for path in found)
        raise DatasetError(f"{reference_dir}: several training files ({names}); pass the number of nodes")
    name = os.path.basename(found[0])
    return name[len(f"{first}_train"):-len(".npy")]


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file missing") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable .npy array ({error})") from None


def _reference_names(split: str, suffix: str, layout: str) -> list[str]:
    """The .npy file names of one split in the reference layout."""
    arrays = ("loc", "vel", "edges") if layout == "loc_vel" else ("feat", "edges")
    return [f"{array}_{split}{suffix}.npy" for array in arrays]


def _reference_files_present(reference_dir: str, split: str, suffix: str, layout: str) -> bool:
    """Whether ``split`` is there: all its files (True), none (False); DatasetError naming
    the missing file when only some are, rather than silently dropping the split."""
    paths = [os.path.join(reference_dir, name) for name in _reference_names(split, suffix, layout)]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing and len(missing) < len(paths):
        raise DatasetError(f"{missing[0]}: file missing, but other {split} files are there; "
                           f"restore it or remove the {split} split's files")
    return not missing


def _read_reference_split(reference_dir: str, split: str, suffix: str,
                          layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(trajectories [systems, nodes, frames, dims], interactions [systems, nodes, nodes])."""
    edges_path = os.path.join(reference_dir, f"edges_{split}{suffix}.npy")
    if layout == "loc_vel":
        loc_path = os.path.join(reference_dir, f"loc_{split}{suffix}.npy")
        loc, vel = _load_npy(loc_path), _load_npy(os.path.join(reference_dir, f"vel_{split}{suffix}.npy"))
        if loc.ndim != 4 or loc.shape[2] != 2 or vel.shape != loc.shape:
            raise DatasetError(f"{loc_path}: loc/vel must both be [systems, frames, 2, nodes], "
                               f"got {loc.shape} and {vel.shape}")
        # [systems, frames, 2, nodes] -> [systems, nodes, frames, 2]
        trajectories = np.concatenate([loc.transpose(0, 3, 1, 2), vel.transpose(0, 3, 1, 2)], axis=-1)
    else:
        feat_path = os.path.join(reference_dir, f"feat_{split}{suffix}.npy")
        trajectories = _load_npy(feat_path)
        if trajectories.ndim != 4:
            raise DatasetError(f"{feat_path}: feat must be [systems, nodes, frames, dims], "
                               f"got {trajectories.shape}")
    interactions = _load_npy(edges_path)
    systems, nodes = trajectories.shape[:2]
    if interactions.shape != (systems, nodes, nodes):
        raise DatasetError(f"{edges_path}: expected shape {(systems, nodes, nodes)}, got {interactions.shape}")
    return trajectories.astype(np.float32), interactions


def import_reference(reference_dir: str, output_dir: str, *, simulation: str,
                     num_nodes: int | None = None, edge_types: int | None = None,
                     overwrite: bool = False, shard_size: int = DEFAULT_SHARD_SIZE) -> DatasetMetadata:
    """Converts reference .npy files of ``simulation`` into a native dataset.

    Args:
      reference_dir: holds {loc,vel,edges}_{split}_{simulation}{N}.npy (or feat_/edges_ for
        kuramoto); train is required, valid and test are taken when present.
      simulation: "springs", "charged" or "kuramoto": picks the layout, the feature names,
        the normalisation groups and the interaction -> label mapping
        (`labels_from_interactions`).
      num_nodes: selects among several N in one directory (default: the only one present).
      edge_types: default: the first of the simulation's ``edge_types_choices`` whose
        interaction values match the files (springs: 2 for 0/1, 3 for 0/0.5/1).
    Returns:
      The written `DatasetMetadata`; ``reference_edges`` lets `export_reference` reproduce
      the files.
    """
    from data_pipelines.simulations import get_simulation
    from nri_tf.graph import edge_labels_from_matrix

    try:
        sim = get_simulation(simulation)
    except ValueError as error:
        raise DatasetError(str(error)) from None
    layout = _reference_layout(simulation)
    suffix = _find_reference_suffix(reference_dir, simulation, num_nodes)
    raw = {}
    for split in SPLITS:
        if split == "train" or _reference_files_present(reference_dir, split, suffix, layout):
            raw[split] = _read_reference_split(reference_dir, split, suffix, layout)
    if edge_types is None:
        edge_types = _reference_edge_types(sim, raw, reference_dir, suffix)
    splits, encodings = {}, []
    for split, (trajectories, interactions) in raw.items():
        try:
            label_matrix = np.asarray(sim.labels_from_interactions(interactions, edge_types=edge_types))
        except ValueError as error:
            raise DatasetError(f"{os.path.join(reference_dir, f'edges_{split}{suffix}.npy')}: {error}") from None
        encodings.append(reference_edge_encoding(label_matrix, interactions))
        splits[split] = (trajectories, edge_labels_from_matrix(label_matrix).astype(np.int32))
    return write_dataset(
        output_dir, splits, source=simulation,
        parameters={"imported_from": os.path.abspath(reference_dir), "suffix": suffix},
        edge_types=edge_types, feature_names=sim.feature_names,
        normalisation_groups=sim.normalisation_groups, shard_size=shard_size, overwrite=overwrite,
        reference_edges=merge_reference_edge_encodings(encodings))


def _reference_edge_types(sim, raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
                          reference_dir: str, suffix: str) -> int:
    """The first of the simulation's edge-type counts that reads every split's interactions."""
    problems = []
    for edge_types in sim.edge_types_choices:
        try:
            for _, interactions in raw.values():
                sim.labels_from_interactions(interactions, edge_types=edge_types)
        except ValueError as error:
            problems.append(str(error))
            continue
        return edge_types
    raise DatasetError(f"{os.path.join(reference_dir, f'edges_train{suffix}.npy')}: values are not "
                       f"{sim.name} interactions for edge_types {', '.join(map(str, sim.edge_types_choices))} "
                       f"({problems[-1]})")


def merge_reference_edge_encodings(encodings: Sequence[dict | None]) -> dict | None:
    """One encoding consistent with every split's `reference_edge_encoding`, or None."""
    if not encodings or any(e is None for e in encodings):
        return None
    if len({e["diagonal"] for e in encodings}) != 1:
        return None
    values: list = []
    for encoding in encodings:
        for label, value in enumerate(encoding["label_values"]):
            if label == len(values):
                values.append(value)
            elif value is not None and values[label] is not None and values[label] != value:
                return None
            elif values[label] is None:
                values[label] = value
    return {"label_values": values, "diagonal": encodings[0]["diagonal"]}
