"""tf.data pipelines (`data_pipelines.datasets`): shapes, normalisation, seeded shuffling,
per-worker sharding by file."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.datasets import make_dataset
from data_pipelines.errors import DatasetError
from data_pipelines.normalisation import Normaliser
from data_pipelines.storage.reader import read_metadata, read_split
from data_pipelines.storage.writer import write_dataset

NODES, FRAMES, DIMS = 3, 5, 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """train: 23 systems in 4 shards (record i has x[..., 0, 0, 0] == i), valid: 6, test: 2."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, size in (("train", 23), ("valid", 6), ("test", 2)):
        trajectories = rng.uniform(-3, 3, (size, NODES, FRAMES, DIMS)).astype(np.float32)
        trajectories[:, 0, 0, 0] = np.arange(size)
        if split == "valid":
            trajectories *= 50
        splits[split] = (trajectories, rng.integers(0, 2, (size, NODES * (NODES - 1))).astype(np.int32))
    path = str(tmp_path_factory.mktemp("datasets") / "d")
    write_dataset(path, splits, source="springs", parameters={}, edge_types=2,
                          feature_names=["x", "y", "vx", "vy"], normalisation_groups=[[0, 1], [2, 3]],
                          shard_size=6)
    return path


def record_ids(dataset) -> list[int]:
    """The ids (x[..., 0, 0, 0]) of the systems of a raw (normalise=False) dataset, in order."""
    ids = []
    for trajectories, _ in dataset:
        ids.extend(np.rint(trajectories[:, 0, 0, 0].numpy()).astype(int).tolist())
    return ids


def test_shapes_dtypes_and_normalised_range(data_dir):
    metadata = read_metadata(data_dir)
    dataset = make_dataset(data_dir, "train", 8, drop_remainder=True)
    assert dataset.element_spec == (tf.TensorSpec([8, NODES, FRAMES, DIMS], tf.float32),
                                    tf.TensorSpec([8, NODES * (NODES - 1)], tf.int32))
    values = np.concatenate([x.numpy() for x, _ in make_dataset(data_dir, "train", 8)])
    assert values.shape == (23, NODES, FRAMES, DIMS)
    assert values.min() >= -1 - 1e-6 and values.max() <= 1 + 1e-6
    for group in ([0, 1], [2, 3]):  # each group spans exactly [-1, 1]
        assert values[..., group].min() == pytest.approx(-1) and values[..., group].max() == pytest.approx(1)
    assert make_dataset(data_dir, "valid", 4).element_spec[0].shape.as_list() == [None, NODES, FRAMES, DIMS]
    assert len(metadata.shards["train"]) == 4


def test_unshuffled_order_and_values_match_storage(data_dir):
    trajectories, edges = read_split(data_dir, "valid")
    normaliser = Normaliser.from_metadata(read_metadata(data_dir))
    batches = list(make_dataset(data_dir, "valid", 4))
    assert [len(x) for x, _ in batches] == [4, 2]
    np.testing.assert_allclose(np.concatenate([x for x, _ in batches]), normaliser.normalise(trajectories),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([e for _, e in batches]), edges)
    raw = np.concatenate([x for x, _ in make_dataset(data_dir, "valid", 4, normalise=False)])
    np.testing.assert_array_equal(raw, trajectories)


def test_normaliser_formula_and_inverse():
    normaliser = Normaliser([0.0, -2.0, 5.0], [4.0, 2.0, 5.0])
    x = np.array([[1.0, 0.0, 5.0], [4.0, -2.0, 5.0]], np.float32)
    expected = np.array([[-0.5, 0.0, -1.0], [1.0, -1.0, -1.0]], np.float32)  # constant dim -> -1
    np.testing.assert_allclose(normaliser.normalise(x), expected)
    np.testing.assert_allclose(normaliser.denormalise(expected), x)
    tensor = normaliser.normalise(tf.constant(x))
    assert tf.is_tensor(tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor.numpy(), expected)
    assert normaliser.normalise(x.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 3\]"):
        normaliser.normalise(np.zeros((2, 4)))


def test_change_rms_is_each_scaled_features_rms_frame_to_frame_change():
    from data_pipelines.normalisation import change_rms

    normaliser = Normaliser([0.0, -2.0, 5.0], [4.0, 2.0, 5.0])           # spans 4, 4, 0 (constant)
    frames = np.arange(6, dtype=np.float32)
    first = np.zeros([2, 3, 6, 3], np.float32)
    first[..., 0] = 0.1 * frames                    # steady: every change 0.1 raw = 0.05 scaled
    first[0, :, :, 1] = 0.4 * (frames % 2)          # alternating: changes of +-0.4 raw = 0.2 scaled
    first[..., 2] = 5.0
    later = np.full([2, 3, 6, 3], 100.0, np.float32)                     # beyond max_systems
    got = change_rms(iter([first, later]), normaliser, max_systems=2)
    # feature 1 moves in one of the two systems only: the mean square is half of 0.2^2.
    np.testing.assert_allclose(got, [0.05, np.sqrt(0.02), 0.0], rtol=1e-6)
    assert change_rms(iter([first, later]), normaliser, max_systems=1)[1] == pytest.approx(0.2)
    with pytest.raises(DatasetError, match="two frames"):
        change_rms(iter([first[:, :, :1]]), normaliser, max_systems=2)


def test_seeded_shuffle_is_reproducible_per_epoch(data_dir):
    def two_epochs(seed):
        dataset = make_dataset(data_dir, "train", 5, seed=seed, normalise=False)
        return record_ids(dataset), record_ids(dataset)

    first, second = two_epochs(3)
    assert sorted(first) == sorted(second) == list(range(23))
    assert first != second                       # reshuffled every epoch
    assert two_epochs(3) == (first, second)      # same seed, same epoch -> same order
    assert two_epochs(4)[0] != first
    assert record_ids(make_dataset(data_dir, "train", 5, shuffle=False, normalise=False)) == list(range(23))
    cached = make_dataset(data_dir, "train", 5, seed=3, cache=True, normalise=False)
    assert sorted(record_ids(cached)) == sorted(record_ids(cached)) == list(range(23))
    repeated = record_ids(make_dataset(data_dir, "train", 23, seed=3, repeat=True, drop_remainder=True,
                                         normalise=False).take(2))
    assert sorted(repeated[:23]) == sorted(repeated[23:]) == list(range(23))


@pytest.mark.parametrize("pipelines", [2, 3, 5])
def test_input_context_splits_records_without_overlap(data_dir, pipelines):
    parts = []
    for pipeline in range(pipelines):
        context = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=pipelines)
        parts.append(record_ids(make_dataset(data_dir, "train", 4, input_context=context, normalise=False)))
    assert all(parts)
    assert sorted(sum(parts, [])) == list(range(23))
    if pipelines <= 4:  # by file: pipeline p reads exactly shards p, p + pipelines, ...
        starts = np.cumsum([0] + [shard.records for shard in read_metadata(data_dir).shards["train"]])
        for pipeline, part in enumerate(parts):
            shards = range(pipeline, len(starts) - 1, pipelines)
            assert sorted(part) == [i for k in shards for i in range(starts[k], starts[k + 1])]


def test_bad_input(data_dir, tmp_path):
    with pytest.raises(DatasetError, match="no 'extra' split"):
        make_dataset(data_dir, "extra", 4)
    with pytest.raises(DatasetError, match="metadata.json not found"):
        make_dataset(str(tmp_path), "train", 4)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(data_dir, "train", 0)


def test_finite_pipelines_know_their_length(data_dir):
    # Keras counts the steps of a known-length split instead of warning that it "ran out of data".
    assert make_dataset(data_dir, "train", 5, shuffle=True).cardinality().numpy() == 5      # 23 -> 4 full + 1
    assert make_dataset(data_dir, "train", 5, drop_remainder=True).cardinality().numpy() == 4
    valid = make_dataset(data_dir, "valid", 4)
    assert valid.cardinality().numpy() == 2 and len(list(valid)) == 2
    assert make_dataset(data_dir, "train", 5, repeat=True).cardinality().numpy() == tf.data.INFINITE_CARDINALITY
