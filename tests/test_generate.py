"""`python -m data_pipelines.generate` and `generate_dataset`: wiring to the simulators,
both output formats, progress output, and bad input (exit code 2, one line, nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines.contract import SPLITS, edge_labels_from_matrix
from data_pipelines.generation import generate_dataset, split_seed
from data_pipelines.simulations import get_simulation
from data_pipelines.storage.reader import read_split
from data_pipelines.storage.reference import export_reference, import_reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny particle datasets: 2 frames for train/valid, 4 for test.
TINY = dict(num_nodes=4, num_train=6, num_valid=3, num_test=3, length=300, length_test=500, progress=False)
TINY_FLAGS = ["--num-nodes", "4", "--num-train", "6", "--num-valid", "3", "--num-test", "3",
              "--length", "300", "--length-test", "500"]


def run_cli(*flags, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "data_pipelines.generate", *flags], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO})


def test_generated_splits_are_the_simulators_output(tmp_path):
    metadata = generate_dataset(str(tmp_path / "d"), simulation="springs", seed=5, **TINY)
    assert metadata.splits == {"train": 6, "valid": 3, "test": 3}
    assert metadata.frames == {"train": 2, "valid": 2, "test": 4}
    assert (metadata.source, metadata.nodes, metadata.dims, metadata.edge_types) == ("springs", 4, 4, 2)
    assert metadata.parameters["num_steps"] == {"train": 300, "valid": 300, "test": 500}
    assert metadata.reference_edges == {"label_values": [0.0, 1.0], "diagonal": 0.0}
    seeds = {split: split_seed(5, split) for split in SPLITS}
    assert len(set(seeds.values())) == 3
    for split, size in metadata.splits.items():
        result = get_simulation("springs").sample(size, 4, num_steps=metadata.parameters["num_steps"][split],
                                                  seed=seeds[split])
        trajectories, labels = read_split(str(tmp_path / "d"), split)
        np.testing.assert_array_equal(trajectories, result.trajectories)
        np.testing.assert_array_equal(labels, edge_labels_from_matrix(result.edges))


def test_native_export_equals_direct_reference_generation(tmp_path):
    generate_dataset(str(tmp_path / "native"), simulation="charged", seed=1, **TINY)
    exported = export_reference(str(tmp_path / "native"), str(tmp_path / "exported"))
    generate_dataset(str(tmp_path / "direct"), simulation="charged", seed=1, format="reference", **TINY)
    assert sorted(os.listdir(tmp_path / "direct")) == exported
    for name in exported:  # including the charged q_i q_j diagonal
        np.testing.assert_array_equal(np.load(tmp_path / "direct" / name), np.load(tmp_path / "exported" / name))


def test_kuramoto_native_reference_native_round_trip(tmp_path):
    metadata = generate_dataset(str(tmp_path / "native"), simulation="kuramoto", num_nodes=3, num_train=4,
                                num_valid=2, num_test=2, length=50, length_test=100, progress=False)
    names = export_reference(str(tmp_path / "native"), str(tmp_path / "ref"))
    assert "feat_test_kuramoto3.npy" in names
    assert np.load(tmp_path / "ref" / "feat_test_kuramoto3.npy").shape == (2, 3, metadata.frames["test"], 3)
    imported = import_reference(str(tmp_path / "ref"), str(tmp_path / "back"), simulation="kuramoto")
    assert imported.normalisation == metadata.normalisation
    for split in SPLITS:
        for original, back in zip(read_split(str(tmp_path / "native"), split),
                                  read_split(str(tmp_path / "back"), split)):
            np.testing.assert_array_equal(original, back)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    sim = get_simulation("springs")
    sample = sim.sample

    def interrupted_at_test(num_sims, num_nodes, **kwargs):
        if kwargs["num_steps"] == TINY["length_test"]:
            raise KeyboardInterrupt
        return sample(num_sims, num_nodes, **kwargs)

    monkeypatch.setattr(sim, "sample", interrupted_at_test)
    for format in ("tfrecord", "reference"):
        with pytest.raises(KeyboardInterrupt):
            generate_dataset(str(tmp_path / "data" / "d"), simulation="springs", format=format, **TINY)
        assert os.listdir(tmp_path) == []


def test_cli_reference_format(tmp_path):
    completed = run_cli("--simulation", "springs", "--format", "reference", *TINY_FLAGS, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "wrote data/springs4 (reference)" in completed.stdout
    files = sorted(os.listdir(tmp_path / "data" / "springs4"))
    assert files == sorted(f"{kind}_{split}_springs4.npy" for kind in ("loc", "vel", "edges")
                           for split in SPLITS)
    assert np.load(tmp_path / "data" / "springs4" / "loc_test_springs4.npy").shape == (3, 4, 2, 4)
    assert np.load(tmp_path / "data" / "springs4" / "edges_train_springs4.npy").shape == (6, 4, 4)
    assert [line.split()[0] for line in completed.stderr.splitlines()[-3:]] == list(SPLITS)


def bad_inputs(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("")
    return [
        (["--simulation", "magnets"], "invalid choice: 'magnets'"),
        (["--num-nodes", "1"], "num_nodes must be at least 2"),
        (["--num-train", "0"], "num_train must be a positive integer"),
        (["--num-test", "-5"], "num_test must be a positive integer"),
        (["--edge-types", "3", "--simulation", "charged"], "edge_types 2"),
        (["--length", "100"], "gives no frame"),
        (["--simulation", "local-springs", "--format", "reference"], "stored as edge lists in the native format only"),
        (["--cutoff", "1.0"], "--cutoff: settings of --simulation local-springs only"),
        (["--simulation", "local-springs", "--density", "0"], "local-springs: density must be a finite number > 0"),
        (["--simulation", "local-springs", "--spring-probability", "2"], "spring_probability must be in [0, 1]"),
        (["--walls"], "--walls: settings of --simulation local-springs only"),
        (["--output", str(blocker / "d")], "a_file is not a directory"),
        (["--output", str(existing)], "already exists and is not empty"),
        # --overwrite replaces datasets only, never a folder of the user's.
        (["--output", str(existing), "--overwrite"], "is not a dataset directory (it holds keep.txt)"),
    ]


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    before = None
    for flags, message in bad_inputs(tmp_path):
        before = sorted(os.listdir(tmp_path))
        completed = run_cli(*TINY_FLAGS, *flags, cwd=tmp_path)  # the last flag wins
        assert completed.returncode == 2, (flags, completed.stderr)
        assert completed.stderr.startswith("error: ") and completed.stderr.count("\n") == 1, completed.stderr
        assert message in completed.stderr, completed.stderr
        assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "existing") == ["keep.txt"]


def test_cli_local_springs_writes_edge_lists_that_hold_the_simulated_springs(tmp_path):
    """python -m data_pipelines.generate --simulation local-springs: per-system edge lists and
    labels (not N x N), the candidate method in the metadata, the simulator's bytes."""
    from data_pipelines.simulations import LocalSpringsSimulation
    from data_pipelines.storage.reader import read_metadata

    completed = run_cli("--simulation", "local-springs", "--output", str(tmp_path / "large"),
                        "--num-nodes", "30", "--num-train", "4", "--num-valid", "2", "--num-test", "2",
                        "--length", "300", "--length-test", "500", "--shard-size", "2")
    assert completed.returncode == 0, completed.stderr
    assert "wrote " + str(tmp_path / "large") + " (tfrecord): local-springs, 30 nodes" in completed.stdout
    metadata = read_metadata(str(tmp_path / "large"))
    assert metadata.edge_lists["method"] == "radius" and metadata.edge_lists["radius"] == 1.5
    assert metadata.parameters["density"] == 1.0 and metadata.format_version == 2
    assert len(metadata.shards["train"]) == 2
    result = LocalSpringsSimulation().sample(2, 30, num_steps=300, seed=split_seed(42, "valid"))
    trajectories, stored = read_split(str(tmp_path / "large"), "valid")
    np.testing.assert_array_equal(trajectories, result.trajectories)
    np.testing.assert_array_equal(stored.edges.edges, result.edges.edges)
    np.testing.assert_array_equal(stored.labels, result.edge_labels)
    degrees = [np.bincount(result.edges[s][:, 0]).max() for s in range(2)]
    assert metadata.edge_lists["max_degree"] >= max(degrees)


def test_cli_local_springs_settings_reach_the_simulator_and_the_metadata(tmp_path):
    from data_pipelines.simulations import LocalSpringsSimulation
    from data_pipelines.simulations.local_springs import box_size_for
    from data_pipelines.storage.reader import read_metadata

    output = str(tmp_path / "dense")
    completed = run_cli("--simulation", "local-springs", "--output", output, "--num-nodes", "40",
                        "--density", "4", "--cutoff", "0.8", "--spring-probability", "1",
                        "--num-train", "2", "--num-valid", "2", "--num-test", "2",
                        "--length", "300", "--length-test", "500")
    assert completed.returncode == 0, completed.stderr
    metadata = read_metadata(output)
    assert (metadata.parameters["density"], metadata.parameters["cutoff"],
            metadata.parameters["spring_probability"]) == (4.0, 0.8, 1.0)
    assert metadata.edge_lists["radius"] == 0.8
    trajectories, stored = read_split(output, "train")
    assert (stored.labels == 1).all()                         # p = 1: every pair within the cutoff
    expected = LocalSpringsSimulation(4.0, 0.8, 1.0).sample(2, 40, num_steps=300, seed=split_seed(42, "train"))
    np.testing.assert_array_equal(trajectories, expected.trajectories)
    assert metadata.parameters["walls"] is False                       # open space by default
    walled = str(tmp_path / "walled")
    completed = run_cli("--simulation", "local-springs", "--output", walled, "--num-nodes", "10",
                        "--walls", "--num-train", "2", "--num-valid", "2", "--num-test", "2",
                        "--length", "2000", "--length-test", "2000")
    assert completed.returncode == 0, completed.stderr
    assert read_metadata(walled).parameters["walls"] is True
    trajectories, _ = read_split(walled, "train")
    expected = LocalSpringsSimulation(walls=True).sample(2, 10, num_steps=2000, seed=split_seed(42, "train"))
    np.testing.assert_array_equal(trajectories, expected.trajectories)
    assert np.abs(trajectories[..., :2]).max() <= box_size_for(10, 1.0) + 1e-6
