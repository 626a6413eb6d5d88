"""The native on-disk dataset (`data_pipelines.storage`): round trips, normalisation
statistics, atomic writes, validation of damaged datasets, the reference .npy layout."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import rewrite_records, rewrite_system, tree_contents
from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.normalisation import compute_normalisation
from data_pipelines.storage.metadata import DENSE_FORMAT_VERSION, FORMAT_VERSION, DatasetMetadata
from data_pipelines.storage.reader import check_split, read_metadata, read_split, shard_paths
from data_pipelines.storage.reference import (export_reference, import_reference,
                                              merge_reference_edge_encodings, reference_edge_encoding,
                                              write_reference)
from data_pipelines.storage.staging import check_output_dir
from data_pipelines.storage import writer as storage_writer
from data_pipelines.storage.writer import DatasetWriter, _serialize, _shard_bounds, write_dataset

FEATURES = ("x", "y", "vx", "vy")
GROUPS = ((0, 1), (2, 3))
NODES = 3


def make_splits(seed: int = 0, sizes=(10, 4, 5), frames=(6, 6, 11)) -> dict:
    """split -> (trajectories [S, 3, T, 4] float32, labels [S, 6] int32); valid values x100."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, size, length in zip(SPLITS, sizes, frames):
        scale = 100.0 if split == "valid" else 1.0
        trajectories = (rng.standard_normal((size, NODES, length, 4)) * scale).astype(np.float32)
        splits[split] = (trajectories, rng.integers(0, 2, (size, NODES * (NODES - 1))).astype(np.int32))
    return splits


def write(path, splits=None, **overrides) -> DatasetMetadata:
    arguments = dict(source="springs", parameters={"test": True}, edge_types=2,
                     feature_names=FEATURES, normalisation_groups=GROUPS, seed=7, shard_size=3,
                     reference_edges={"label_values": [0.0, 1.0], "diagonal": 0.0})
    arguments.update(overrides)
    return write_dataset(str(path), make_splits() if splits is None else splits, **arguments)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def no_partial_siblings(path) -> bool:
    parent, name = os.path.split(str(path))
    return not [entry for entry in os.listdir(parent) if entry.startswith(f".{name}.")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("storage") / "springs3"
    return path, write(path)


def test_write_read_round_trip(dataset):
    path, metadata = dataset
    splits = make_splits()
    for split, (trajectories, labels) in splits.items():
        read_trajectories, read_labels = read_split(str(path), split)
        assert read_trajectories.dtype == np.float32 and read_labels.dtype == np.int32
        np.testing.assert_array_equal(read_trajectories, trajectories)
        np.testing.assert_array_equal(read_labels, labels)
    assert read_metadata(str(path)) == metadata
    assert metadata.splits == {"train": 10, "valid": 4, "test": 5}
    assert metadata.frames == {"train": 6, "valid": 6, "test": 11}
    assert (metadata.nodes, metadata.dims, metadata.edges) == (3, 4, 6)
    assert metadata.format_version == DENSE_FORMAT_VERSION and metadata.seed == 7
    assert sorted(os.listdir(path)) == sorted(
        ["metadata.json"] + [shard.file for shards in metadata.shards.values() for shard in shards])


def test_shards_split_evenly_with_at_least_two_per_split(tmp_path):
    assert _shard_bounds(10, 3) == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert _shard_bounds(2, 4096) == [(0, 1), (1, 2)]
    assert _shard_bounds(1, 4096) == [(0, 1)]
    metadata = write(tmp_path / "d", shard_size=1000)
    assert [len(metadata.shards[s]) for s in SPLITS] == [2, 2, 2]
    assert shard_paths(str(tmp_path / "d"), "train") == [
        str(tmp_path / "d" / "train-00000-of-00002.tfrecord"),
        str(tmp_path / "d" / "train-00001-of-00002.tfrecord")]


def test_normalisation_uses_training_split_only(dataset):
    _, metadata = dataset
    train = make_splits()["train"][0]
    norm = metadata.normalisation
    assert norm.method == "minmax" and norm.groups == [[0, 1], [2, 3]]
    for group in GROUPS:
        for dim in group:  # one scalar per group, from train only (valid is 100x larger)
            assert norm.min[dim] == pytest.approx(train[..., list(group)].min())
            assert norm.max[dim] == pytest.approx(train[..., list(group)].max())
    assert max(norm.max) < 10


def test_maxabs_normalisation_is_symmetric():
    trajectories = np.array([-3.0, 1.0, 2.0, -0.5], np.float32).reshape(1, 1, 1, 4)
    norm = compute_normalisation(trajectories, [[0, 1], [2], [3]], "maxabs")
    assert norm.min == [-3.0, -3.0, -2.0, -0.5] and norm.max == [3.0, 3.0, 2.0, 0.5]
    with pytest.raises(DatasetError, match="cover dims"):
        compute_normalisation(trajectories, [[0, 1], [2]])


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "d"
    write(path)
    with pytest.raises(DatasetError, match="already exists") as error:
        write(path)
    assert str(path) in one_line(error)
    splits = make_splits(seed=1)
    write(path, splits, overwrite=True)
    np.testing.assert_array_equal(read_split(str(path), "train")[0], splits["train"][0])
    assert no_partial_siblings(path)


def test_unwritable_path_fails_before_writing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(DatasetError, match="cannot write dataset") as error:
        DatasetWriter(str(blocker / "sub" / "d"), source="s", parameters={}, edge_types=2,
                              feature_names=FEATURES, normalisation_groups=GROUPS)
    assert str(blocker / "sub" / "d") in one_line(error)
    with pytest.raises(DatasetError):
        check_output_dir(str(blocker / "d"))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    serialize = _serialize

    def failing(*args):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return serialize(*args)

    monkeypatch.setattr(storage_writer, "_serialize", failing)
    path = tmp_path / "new" / "d"
    with pytest.raises(KeyboardInterrupt):
        write(path)
    assert not os.path.exists(tmp_path / "new")  # not even the parent it created
    monkeypatch.undo()
    write(tmp_path / "d")
    with pytest.raises(DatasetError, match="NaN"):
        splits = make_splits()
        splits["test"][0][2, 0, 0, 0] = np.nan
        write(tmp_path / "d", splits, overwrite=True)
    assert read_metadata(str(tmp_path / "d")).splits["train"] == 10  # old one intact
    assert no_partial_siblings(tmp_path / "d")


@pytest.mark.parametrize("change, match", [
    (lambda s: s["valid"].__setitem__(1, s["valid"][1][:, :4]), r"edges must be \[4, 6\]"),
    (lambda s: s["valid"].__setitem__(1, s["valid"][1] + 2), r"edge labels must lie in \[0, 2\)"),
    (lambda s: s["valid"].__setitem__(0, s["valid"][0][:, :2]), "2 nodes, other splits have 3"),
    (lambda s: s["valid"].__setitem__(0, s["valid"][0][..., :3]), "3 dims but 4 feature_names"),
    (lambda s: s["valid"].__setitem__(1, s["valid"][1].astype(float)), "must be integers"),
    (lambda s: s.pop("train"), "no train split"),
])
def test_write_rejects_bad_arrays(tmp_path, change, match):
    splits = {split: list(arrays) for split, arrays in make_splits().items()}
    change(splits)
    with pytest.raises(DatasetError, match=match) as error:
        write(tmp_path / "d", {split: tuple(arrays) for split, arrays in splits.items()})
    one_line(error)
    assert sorted(os.listdir(tmp_path)) == []


def copy_dataset(source, target):
    os.makedirs(target)
    for name in os.listdir(source):
        with open(os.path.join(source, name), "rb") as src, open(os.path.join(target, name), "wb") as dst:
            dst.write(src.read())
    return target


def test_missing_metadata_and_future_version(dataset, tmp_path):
    with pytest.raises(DatasetError, match="metadata.json not found") as error:
        read_metadata(str(tmp_path))
    one_line(error)
    with pytest.raises(DatasetError, match="metadata.json is a file; pass the dataset directory"):
        read_metadata(str(dataset[0] / "metadata.json"))
    path = copy_dataset(dataset[0], tmp_path / "d")
    values = json.loads((path / "metadata.json").read_text())
    values["format_version"] = FORMAT_VERSION + 1
    (path / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(DatasetError, match="newer than this code") as error:
        read_metadata(str(path))
    assert str(path / "metadata.json") in one_line(error)
    del values["nodes"]
    values["format_version"] = FORMAT_VERSION
    (path / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(DatasetError, match="missing field.*nodes"):
        read_metadata(str(path))


def test_missing_truncated_and_corrupt_shards(dataset, tmp_path):
    path = copy_dataset(dataset[0], tmp_path / "d")
    shard = path / "train-00001-of-00004.tfrecord"
    data = shard.read_bytes()

    shard.unlink()
    for read in (shard_paths, read_split):
        with pytest.raises(DatasetError, match="shard missing") as error:
            read(str(path), "train")
        assert str(shard) in one_line(error)

    shard.write_bytes(data[:len(data) // 2])
    with pytest.raises(DatasetError, match="truncated or altered") as error:
        read_split(str(path), "train")
    assert str(shard) in one_line(error)

    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF  # same size, bad CRC
    shard.write_bytes(bytes(corrupt))
    assert shard_paths(str(path), "train")  # size checks pass
    with pytest.raises(DatasetError, match="corrupt shard") as error:
        read_split(str(path), "train")
    assert str(shard) in one_line(error)

    with pytest.raises(DatasetError, match="no 'extra' split"):
        shard_paths(str(path), "extra")


def test_reference_layout_names_and_shapes(dataset, tmp_path):
    path, metadata = dataset
    names = export_reference(str(path), str(tmp_path / "ref"))
    assert names == sorted(f"{kind}_{split}_springs3.npy" for kind in ("loc", "vel", "edges")
                           for split in SPLITS)
    train, labels = make_splits()["train"]
    loc = np.load(tmp_path / "ref" / "loc_train_springs3.npy")
    vel = np.load(tmp_path / "ref" / "vel_train_springs3.npy")
    edges = np.load(tmp_path / "ref" / "edges_train_springs3.npy")
    assert loc.shape == vel.shape == (10, 6, 2, 3) and edges.shape == (10, 3, 3)
    np.testing.assert_array_equal(loc[:, :, :, 1], train[:, 1, :, :2])   # [S, T, 2, N] of node 1
    np.testing.assert_array_equal(vel[:, 4, :, 2], train[:, 2, 4, 2:])
    # receiver-major labels: edge 0 = (receiver 0, sender 1), edge 2 = (1, 0)
    np.testing.assert_array_equal(edges[:, 0, 1], labels[:, 0])
    np.testing.assert_array_equal(edges[:, 1, 0], labels[:, 2])
    np.testing.assert_array_equal(np.diagonal(edges, axis1=1, axis2=2), 0)


def test_native_reference_native_round_trip(dataset, tmp_path):
    path, metadata = dataset
    export_reference(str(path), str(tmp_path / "ref"))
    imported = import_reference(str(tmp_path / "ref"), str(tmp_path / "back"),
                                        simulation="springs", shard_size=3)
    for split in SPLITS:
        for original, back in zip(read_split(str(path), split),
                                  read_split(str(tmp_path / "back"), split)):
            np.testing.assert_array_equal(original, back)
    assert imported.normalisation == metadata.normalisation
    assert imported.reference_edges == metadata.reference_edges
    assert (imported.edge_types, imported.splits, imported.frames) == (2, metadata.splits, metadata.frames)
    assert imported.parameters["suffix"] == "_springs3"
    export_reference(str(tmp_path / "back"), str(tmp_path / "ref2"))
    for name in os.listdir(tmp_path / "ref"):
        np.testing.assert_array_equal(np.load(tmp_path / "ref" / name), np.load(tmp_path / "ref2" / name))


def test_import_reference_errors(tmp_path):
    with pytest.raises(DatasetError, match="no loc_train_springs<N>.npy") as error:
        import_reference(str(tmp_path), str(tmp_path / "out"), simulation="springs")
    one_line(error)
    np.save(tmp_path / "loc_train_springs3.npy", np.zeros((2, 4, 2, 3), np.float32))
    np.save(tmp_path / "vel_train_springs3.npy", np.zeros((2, 4, 2, 3), np.float32))
    np.save(tmp_path / "edges_train_springs3.npy", np.full((2, 3, 3), 0.25, np.float32))
    with pytest.raises(DatasetError, match="edges_train_springs3.npy") as error:
        import_reference(str(tmp_path), str(tmp_path / "out"), simulation="springs")
    one_line(error)
    np.save(tmp_path / "vel_train_springs3.npy", np.zeros((2, 4, 2, 2), np.float32))
    with pytest.raises(DatasetError, match=r"loc/vel must both be \[systems, frames, 2, nodes\]"):
        import_reference(str(tmp_path), str(tmp_path / "out"), simulation="springs")
    with pytest.raises(DatasetError, match="unknown simulation .cmu."):
        import_reference(str(tmp_path), str(tmp_path / "out"), simulation="cmu")
    assert not os.path.exists(tmp_path / "out")


def test_kuramoto_reference_layout(tmp_path):
    trajectories = np.random.default_rng(0).standard_normal((3, 4, 5, 3)).astype(np.float32)
    couplings = np.ones((3, 4, 4), np.float32)
    names = write_reference(str(tmp_path / "ref"), {"train": (trajectories, couplings)},
                                    source="kuramoto")
    assert names == ["edges_train_kuramoto4.npy", "feat_train_kuramoto4.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "ref" / "feat_train_kuramoto4.npy"), trajectories)


def test_reference_edge_encoding():
    labels = np.array([[[0, 1], [0, 0]]])
    charged = np.array([[[1.0, 1.0], [-1.0, 1.0]]])   # q_i q_j with the diagonal q_i^2 = 1
    assert reference_edge_encoding(labels, charged) == {"label_values": [-1.0, 1.0], "diagonal": 1.0}
    continuous = np.array([[[0.0, 0.5], [0.7, 0.0]]])   # label 0 has two values: not reproducible
    assert reference_edge_encoding(np.zeros_like(labels), continuous) is None
    merged = merge_reference_edge_encodings([{"label_values": [0.0], "diagonal": 0.0},
                                                     {"label_values": [0.0, None, 1.0], "diagonal": 0.0}])
    assert merged == {"label_values": [0.0, None, 1.0], "diagonal": 0.0}


# --- faults and bad input (issue 18) ---------------------------------------------------------

def test_overwrite_replaces_only_dataset_directories(tmp_path):
    """--overwrite on a folder that is not a dataset (or holds a file of the user's) is refused."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "thesis.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"is not a dataset directory \(it holds thesis.txt\)") as error:
        write(project, overwrite=True)
    one_line(error)
    assert tree_contents(tmp_path) == {"proj/thesis.txt": b"x"}

    dataset_dir = tmp_path / "d"
    write(dataset_dir)
    (dataset_dir / "notes.txt").write_text("mine")
    before = tree_contents(dataset_dir)
    with pytest.raises(DatasetError, match="it holds notes.txt"):
        write(dataset_dir, make_splits(seed=1), overwrite=True)
    assert tree_contents(dataset_dir) == before
    (dataset_dir / "notes.txt").unlink()
    write(dataset_dir, make_splits(seed=1), overwrite=True)   # ours only: replaced
    names = ["loc_train_springs3.npy", "vel_train_springs3.npy", "edges_train_springs3.npy"]
    reference = tmp_path / "ref"
    export_reference(str(dataset_dir), str(reference))
    export_reference(str(dataset_dir), str(reference), overwrite=True)
    assert set(names) <= set(os.listdir(reference))


@pytest.mark.parametrize("split, system, edit, message", [
    ("valid", 3, lambda x, e: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), e),
     "system 3 of split 'valid' contains NaN or Inf"),
    ("test", 0, lambda x, e: (x + np.inf, e), "system 0 of split 'test' contains NaN or Inf"),
    ("train", 7, lambda x, e: (x, np.full_like(e, 7)), r"system 7 of split 'train' has edge label 7, outside \[0, 2\)"),
    ("train", 4, lambda x, e: (x * 1e6, e), "system 4 of split 'train' has values outside the training statistics"),
])
def test_bad_values_are_named_by_file_split_and_system(dataset, tmp_path, split, system, edit, message):
    path = copy_dataset(dataset[0], tmp_path / "d")
    shard = rewrite_system(str(path), split, system, edit)
    with pytest.raises(DatasetError, match=message) as error:
        check_split(str(path), split)
    assert one_line(error).startswith(shard)


def test_corrupt_content_with_valid_crcs_and_wrong_node_count_name_the_shard(dataset, tmp_path):
    path = copy_dataset(dataset[0], tmp_path / "d")
    shard = str(path / "train-00001-of-00004.tfrecord")

    def flip(records):  # 16 bytes flipped in the middle of the shard, CRCs recomputed
        middle = bytearray(records[1])
        middle[len(middle) // 2:len(middle) // 2 + 16] = bytes(b ^ 0xFF for b in middle[len(middle) // 2:][:16])
        return records[:1] + [bytes(middle)] + records[2:]

    size = os.path.getsize(shard)
    rewrite_records(shard, flip)
    assert os.path.getsize(shard) == size
    with pytest.raises(DatasetError, match="contents differ from the checksum in metadata.json") as error:
        check_split(str(path), "train")
    assert one_line(error).startswith(shard)

    other = copy_dataset(dataset[0], tmp_path / "nodes")
    values = json.loads((other / "metadata.json").read_text())
    values["nodes"] = 4
    (other / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(DatasetError, match="records unreadable as 4 nodes x 6 frames x 4 dims") as error:
        check_split(str(other), "train")
    assert one_line(error).startswith(str(other / "train-00000-of-00004.tfrecord"))


def test_shard_names_in_metadata_cannot_point_outside_the_dataset(dataset, tmp_path):
    path = copy_dataset(dataset[0], tmp_path / "d")
    values = json.loads((path / "metadata.json").read_text())
    values["shards"]["train"][0]["file"] = "../../etc/passwd"
    (path / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(DatasetError, match="'../../etc/passwd' of split 'train' is not a shard name"):
        read_metadata(str(path))


def write_reference_files(directory, splits, suffix="_springs3", diagonal=0.0):
    """Reference .npy files of ``splits`` (names) with off-diagonal springs values 0/1."""
    rng = np.random.default_rng(0)
    for split in splits:
        loc = rng.standard_normal((4, 5, 2, 3)).astype(np.float32)
        edges = rng.integers(0, 2, (4, 3, 3)).astype(np.float64)
        edges = np.triu(edges, 1) + np.triu(edges, 1).transpose(0, 2, 1) + diagonal * np.eye(3)
        np.save(directory / f"loc_{split}{suffix}.npy", loc)
        np.save(directory / f"vel_{split}{suffix}.npy", loc)
        np.save(directory / f"edges_{split}{suffix}.npy", edges)


def test_import_reference_refuses_a_partial_split_and_another_simulations_files(tmp_path):
    source = tmp_path / "ref"
    source.mkdir()
    write_reference_files(source, SPLITS)
    (source / "edges_valid_springs3.npy").unlink()
    with pytest.raises(DatasetError, match="edges_valid_springs3.npy: file missing, but other valid files") as error:
        import_reference(str(source), str(tmp_path / "out"), simulation="springs")
    one_line(error)

    renamed = tmp_path / "renamed"   # springs files (0 on the diagonal) named as charged
    renamed.mkdir()
    write_reference_files(renamed, ["train"], suffix="_charged3")
    with pytest.raises(DatasetError, match="not charged interactions") as error:
        import_reference(str(renamed), str(tmp_path / "out"), simulation="charged")
    one_line(error)
    charged = tmp_path / "charged"   # and charged files (q_i^2 = 1 on the diagonal) as springs
    charged.mkdir()
    write_reference_files(charged, ["train"], diagonal=1.0)
    with pytest.raises(DatasetError, match="not springs interactions") as error:
        import_reference(str(charged), str(tmp_path / "out"), simulation="springs")
    assert not os.path.exists(tmp_path / "out")


def test_datasets_honour_the_umask_and_killed_writes_are_cleaned(tmp_path):
    import socket
    import stat
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stale = tmp_path / f".d.partial-{socket.gethostname()}-{process.pid}-x1"   # a killed generation
    stale.mkdir()
    (stale / "train-00000-of-00002.tfrecord").write_bytes(b"x" * 1000)
    previous = os.umask(0o022)
    try:
        write(tmp_path / "d")
    finally:
        os.umask(previous)
    assert not stale.exists() and no_partial_siblings(tmp_path / "d")
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o755
    for name in os.listdir(tmp_path / "d"):
        assert stat.S_IMODE(os.stat(tmp_path / "d" / name).st_mode) == 0o644, name


# --- datasets with edge lists (large systems, issue 15) -------------------------------------

def _edge_list_split(systems: int, nodes: int = 6, seed: int = 0):
    """(trajectories [systems, nodes, 5, 4], labels [total], EdgeLists): each node lists its
    two successors (mod nodes), label 1 on the first."""
    from data_pipelines.candidates import EdgeLists

    rng = np.random.default_rng(seed)
    pairs = np.array([[i, j] for i in range(nodes) for j in sorted({(i + 1) % nodes, (i + 2) % nodes})])
    labels = np.tile(np.array([1, 0] * nodes, np.int32), systems)
    return (rng.normal(size=(systems, nodes, 5, 4)).astype(np.float32), labels,
            EdgeLists.from_list([pairs] * systems))


def _write_edge_lists(path, **splits):
    with DatasetWriter(str(path), source="test", parameters={}, edge_types=2,
                       feature_names=["x", "y", "vx", "vy"], normalisation_groups=[[0, 1], [2, 3]],
                       edge_lists={"method": "given"}) as writer:
        for split, (trajectories, labels, pairs) in splits.items():
            writer.write_split(split, trajectories, labels, edge_index=pairs)
    return writer.metadata


def test_edge_lists_round_trip_and_metadata(tmp_path):
    splits = {"train": _edge_list_split(4), "valid": _edge_list_split(2, seed=1),
              "test": _edge_list_split(3, seed=2)}
    metadata = _write_edge_lists(tmp_path / "d", **splits)
    assert metadata.format_version == FORMAT_VERSION and metadata.has_edge_lists
    assert metadata.edge_lists == {"method": "given", "max_degree": 2}
    assert read_metadata(str(tmp_path / "d")) == metadata
    for split, (trajectories, labels, pairs) in splits.items():
        check_split(str(tmp_path / "d"), split)
        got_trajectories, got = read_split(str(tmp_path / "d"), split)
        np.testing.assert_array_equal(got_trajectories, trajectories)
        np.testing.assert_array_equal(got.edges.edges, pairs.edges)
        np.testing.assert_array_equal(got.edges.row_splits, pairs.row_splits)
        np.testing.assert_array_equal(got.labels, labels)


@pytest.mark.parametrize("edit,message", [
    (lambda pairs: pairs.__setitem__((3, 1), 6), r"system 0 has a pair naming a node outside 0\.\.5"),
    (lambda pairs: pairs.__setitem__((3, 1), 1), "system 0 has a pair joining a node to itself"),
    (lambda pairs: pairs.__setitem__((3, 1), 2), "system 0 has pairs out of receiver-major order or listed twice"),
])
def test_bad_edge_lists_are_refused_naming_the_system(tmp_path, edit, message):
    from data_pipelines.candidates import EdgeLists

    trajectories, labels, pairs = _edge_list_split(2)
    edges = pairs.edges.copy()
    edit(edges)
    with pytest.raises(DatasetError, match=message):
        _write_edge_lists(tmp_path / "d", train=(trajectories, labels, EdgeLists(edges, pairs.row_splits)))
    assert not (tmp_path / "d").exists()


def test_altered_edge_list_shard_is_caught_by_the_check(tmp_path):
    from data_pipelines.storage.metadata import file_sha256

    trajectories, labels, pairs = _edge_list_split(4)
    _write_edge_lists(tmp_path / "d", train=(trajectories, labels, pairs))
    values = json.loads((tmp_path / "d" / "metadata.json").read_text())
    shard = values["shards"]["train"][0]
    path = str(tmp_path / "d" / shard["file"])
    bad = pairs[0].copy()
    bad[0, 1] = 40                                      # a node outside 0..5, same byte size
    rewrite_records(path, lambda records: [_serialize(trajectories[0], labels[:12].astype("<i4"),
                                                      bad.astype("<i4"))] + records[1:])
    shard["sha256"] = file_sha256(path)
    (tmp_path / "d" / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(DatasetError, match=r"system 0 of split 'train' has candidate edge \[0, 40\] "
                                           r"naming a node outside 0\.\.5"):
        check_split(str(tmp_path / "d"), "train")
