"""The schema of a native dataset's ``metadata.json`` and of its TFRecord shards.

Building blocks:
  `DatasetMetadata`   what metadata.json says: source, shapes, split sizes, shards,
                      normalisation statistics; validated on the way in (`from_dict`)
  `ShardInfo`         one TFRecord file: name, records, bytes, SHA-256
  `file_sha256`       the checksum recorded per shard
  `TRAJECTORIES_FEATURE`, `EDGES_FEATURE`   the two bytes features of every record
  `EDGE_INDEX_FEATURE`  the third feature of records with edge lists (large systems)

Two kinds of records: dense labels (every dataset of format_version 1) hold one label per
ordered node pair, N*(N-1) of them; datasets with edge lists (``edge_lists`` set, written as
format_version 2) hold per system a list of (receiver, sender) pairs, receiver-major, and
one label per listed pair; a pair not listed is type 0 (no interaction).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, Mapping

from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.normalisation import NORMALISATION_METHODS, Normalisation

FORMAT_VERSION = 2
"""The newest format this code reads; datasets with dense labels are still written as 1."""
DENSE_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
TRAJECTORIES_FEATURE = "trajectories"
EDGES_FEATURE = "edges"
EDGE_INDEX_FEATURE = "edge_index"
SHARD_NAME = rf"({'|'.join(SPLITS)})-\d{{5,}}-of-\d{{5,}}\.tfrecord"


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
    edge_lists: None for dense labels; for records with edge lists, how the pairs were
      chosen ("method" and its parameters, e.g. {"method": "radius", "radius": 1.5,
      "positions": "initial state"}) and "max_degree", the most pairs any node receives in
      any system of any split (the padded width of the given candidates).
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
    edge_lists: dict | None = None
    format_version: int = DENSE_FORMAT_VERSION

    @property
    def edges(self) -> int:
        """Directed edges per system: nodes * (nodes - 1)."""
        return self.nodes * (self.nodes - 1)

    @property
    def has_edge_lists(self) -> bool:
        """Whether records hold edge lists (and labels per listed pair), not N*(N-1) labels."""
        return self.edge_lists is not None

    def to_dict(self) -> dict:
        """The JSON object of metadata.json; without ``edge_lists`` for dense labels, so that
        such datasets read as before (and keep their fingerprint)."""
        values = dataclasses.asdict(self)
        if values["edge_lists"] is None:
            del values["edge_lists"]
        return values

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
                if not re.fullmatch(SHARD_NAME, str(shard.file)):
                    fail(f"shard file name {shard.file!r} of split {split!r} is not a shard name "
                         "such as train-00000-of-00002.tfrecord")
            if sum(shard.records for shard in self.shards[split]) != size:
                fail(f"shards of split {split!r} hold a different number of records than its size {size}")
            if not isinstance(self.frames[split], int) or self.frames[split] < 1:
                fail(f"frames of split {split!r} must be a positive integer")
        if self.edge_lists is not None:
            if not isinstance(self.edge_lists, dict) or not isinstance(self.edge_lists.get("method"), str):
                fail("edge_lists must be an object naming its \"method\"")
            degree = self.edge_lists.get("max_degree")
            if not isinstance(degree, int) or not 0 <= degree <= self.nodes - 1:
                fail(f"edge_lists max_degree must be an integer in 0..{self.nodes - 1}, got {degree!r}")
            if self.format_version < FORMAT_VERSION:
                fail(f"edge lists need format_version {FORMAT_VERSION}, got {self.format_version}")
        norm = self.normalisation
        if norm.method not in NORMALISATION_METHODS:
            fail(f"unknown normalisation method {norm.method!r}")
        if len(norm.min) != self.dims or len(norm.max) != self.dims:
            fail(f"normalisation min/max need {self.dims} entries")
        return self


def file_sha256(path: str) -> str:
    """The hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

