"""Run directories: new runs, resume checks, and refusing to clobber earlier runs."""

import json
import os

import pytest

from nri_tf.config import NRIConfig
from trainers import run_directory
from trainers.run_directory import RunDirectoryError

DATASET = {"path": "/data/springs5", "nodes": 5, "dims": 4, "frames": 49}


def snapshot(directory):
    return {name: open(os.path.join(directory, name)).read() for name in sorted(os.listdir(directory))}


def test_new_run_writes_config_and_dataset(tmp_path):
    run = str(tmp_path / "run")
    assert run_directory.prepare(run, NRIConfig(epochs=3), DATASET) is False
    assert run_directory.load_config(run) == NRIConfig(epochs=3)
    assert json.load(open(os.path.join(run, "dataset.json"))) == DATASET


def test_same_config_resumes(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(epochs=3), DATASET)
    assert run_directory.prepare(run, NRIConfig(epochs=3), DATASET) is True


def test_different_config_is_refused_and_run_untouched(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(epochs=3), DATASET)
    before = snapshot(run)
    with pytest.raises(RunDirectoryError, match=r"different configuration \(lr: 0.0005 -> 0.01\)"):
        run_directory.prepare(run, NRIConfig(epochs=3, lr=0.01), DATASET)
    assert snapshot(run) == before


@pytest.mark.parametrize("change, message", [({"nodes": 10}, "nodes 10"), ({"dims": 3}, "dims 3")])
def test_resume_with_other_dataset_shape_is_refused(tmp_path, change, message):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(), DATASET)
    before = snapshot(run)
    with pytest.raises(RunDirectoryError, match=message):
        run_directory.prepare(run, NRIConfig(), {**DATASET, **change})
    assert snapshot(run) == before


def test_evaluation_may_change_node_count_but_not_dims(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(), DATASET)
    run_directory.check_dataset(run, {**DATASET, "nodes": 10}, same_nodes=False)
    with pytest.raises(RunDirectoryError, match="dims 3"):
        run_directory.check_dataset(run, {**DATASET, "dims": 3}, same_nodes=False)


def test_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirectoryError, match="not empty"):
        run_directory.prepare(str(tmp_path), NRIConfig(), DATASET)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_atomic_json_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "results.json")
    run_directory.write_json_atomic(path, {"a": 1})
    run_directory.write_json_atomic(path, {"a": 2})
    assert json.load(open(path)) == {"a": 2}
    assert os.listdir(tmp_path) == ["results.json"]


def test_load_config_of_non_run(tmp_path):
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        run_directory.load_config(str(tmp_path))
