"""Run directories: new runs, resume checks, and refusing to clobber earlier runs."""

import errno
import json
import os

import keras
import pytest

from data_pipelines import files
from data_pipelines.errors import UserError
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


def test_a_run_made_before_an_option_existed_resumes_with_the_option_off(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(epochs=3), DATASET)
    saved = json.load(open(os.path.join(run, "config.json")))
    old = {k: v for k, v in saved.items() if k not in ("relative_positions", "position_dims")}
    files.write_json_atomic(os.path.join(run, "config.json"), old)
    assert run_directory.prepare(run, NRIConfig(epochs=3, position_dims=2), DATASET) is True
    with pytest.raises(RunDirectoryError, match="relative_positions"):
        run_directory.prepare(run, NRIConfig(epochs=3, position_dims=2, relative_positions=True), DATASET)


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
    files.write_json_atomic(path, {"a": 1})
    files.write_json_atomic(path, {"a": 2})
    assert json.load(open(path)) == {"a": 2}
    assert os.listdir(tmp_path) == ["results.json"]


def test_load_config_of_non_run(tmp_path):
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        run_directory.load_config(str(tmp_path))


# --- faults and bad input (issue 18) ---------------------------------------------------------

def test_resume_on_other_data_of_the_same_shape_is_refused(tmp_path):
    """A run belongs to its data: same shape is not enough, the fingerprint must match."""
    run = str(tmp_path / "run")
    trained_on = {**DATASET, "fingerprint": "aaaa"}
    run_directory.prepare(run, NRIConfig(), trained_on)
    before = snapshot(run)
    with pytest.raises(RunDirectoryError, match="trains on /data/springs5, not on /data/other"):
        run_directory.prepare(run, NRIConfig(), {**trained_on, "path": "/data/other", "fingerprint": "bbbb"})
    with pytest.raises(RunDirectoryError, match="/data/springs5 has changed since run"):
        run_directory.prepare(run, NRIConfig(), {**trained_on, "fingerprint": "bbbb"})
    assert snapshot(run) == before
    assert run_directory.prepare(run, NRIConfig(), {**trained_on, "path": "/copy/springs5"}) is True

    legacy = str(tmp_path / "legacy")   # a run saved before fingerprints: the path decides
    run_directory.prepare(legacy, NRIConfig(), DATASET)
    with pytest.raises(RunDirectoryError, match="not on /data/other"):
        run_directory.prepare(legacy, NRIConfig(), {**DATASET, "path": "/data/other", "fingerprint": "b"})


def test_a_second_process_cannot_claim_a_run_directory(tmp_path):
    run = str(tmp_path / "run")
    with run_directory.claimed(run):
        with pytest.raises(RunDirectoryError, match=r"in use by another training process \(it holds .*/run/.lock"):
            with run_directory.claimed(run):
                pass
    with run_directory.claimed(run):   # released when the holder is done
        run_directory.prepare(run, NRIConfig(), DATASET)


def test_an_unwritable_run_directory_is_named(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(run_directory, "open", read_only, raising=False)
    with pytest.raises(RunDirectoryError, match="cannot use run directory .*run: Permission denied"):
        with run_directory.claimed(str(tmp_path / "run")):
            pass


def test_claiming_leaves_foreign_directories_alone_and_cleans_killed_temporaries(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirectoryError, match="not empty"):
        with run_directory.claimed(str(tmp_path)):
            pass
    assert os.listdir(tmp_path) == ["notes.txt"]

    run = tmp_path / "run"   # killed while writing its first file: only our leftovers
    run.mkdir()
    (run / ".tmp-abc.json").write_text('{"half')
    (run / ".best-epoch-1.weights.h5").write_bytes(b"")
    with run_directory.claimed(str(run)):
        assert run_directory.prepare(str(run), NRIConfig(), DATASET) is False
    assert not (run / ".tmp-abc.json").exists()


@pytest.mark.parametrize("name, content, message", [
    ("config.json", '{"epochs": 3', "config.json is unreadable"),
    ("config.json", "[1, 2]", "config.json does not hold a JSON object"),
    ("dataset.json", None, "dataset.json is missing"),
])
def test_damaged_run_files_are_named(tmp_path, name, content, message):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(), DATASET)
    if content is None:
        os.remove(os.path.join(run, name))
    else:
        open(os.path.join(run, name), "w").write(content)
    with pytest.raises(UserError, match=message) as error:
        run_directory.prepare(run, NRIConfig(), DATASET)
    assert "\n" not in str(error.value)


def test_json_is_strict_honours_the_umask_and_a_full_disk_is_named(tmp_path, monkeypatch):
    path = str(tmp_path / "results.json")
    with pytest.raises(ValueError, match="Out of range float values"):
        files.write_json_atomic(path, {"nll": float("nan")})
    previous = os.umask(0o002)
    try:
        files.write_json_atomic(path, {"a": 1})
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o664

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(UserError, match=f"cannot write {path}: No space left on device"):
        files.write_json_atomic(path, {"a": 2})
    assert json.load(open(path)) == {"a": 1} and os.listdir(tmp_path) == ["results.json"]


def test_training_progress_of_finished_and_unfinished_runs(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(epochs=3), DATASET)
    assert run_directory.training_progress(run) == {"best_epoch": None, "epochs": 0, "finished": False}
    with open(os.path.join(run, run_directory.HISTORY_FILE), "w") as stream:
        for epoch, nll in ((1, 9.0), (2, 4.0), (3, 5.0)):
            stream.write(json.dumps({"epoch": epoch, "val_nll": nll}) + "\n")
    assert run_directory.training_progress(run) == {"best_epoch": 2, "epochs": 3, "finished": False}
    files.write_json_atomic(os.path.join(run, run_directory.RESULTS_FILE), {"best_epoch": 3, "epochs": 3})
    assert run_directory.training_progress(run) == {"best_epoch": 3, "epochs": 3, "finished": True}


def test_a_run_without_best_weights_says_whether_they_are_yet_to_come_or_lost(tmp_path):
    run = str(tmp_path / "run")
    run_directory.prepare(run, NRIConfig(dims=4, encoder_hidden=4, decoder_hidden=4, epochs=3), DATASET)
    with pytest.raises(RunDirectoryError, match="has no best weights yet: no epoch has completed"):
        run_directory.load_best_model(run, 5)
    with open(os.path.join(run, run_directory.HISTORY_FILE), "w") as stream:
        stream.write(json.dumps({"epoch": 1, "val_nll": 9.0}) + "\n")     # best.weights.h5 since deleted
    with pytest.raises(RunDirectoryError, match=r"best.weights.h5 \(the weights of best epoch 1\) is missing; "
                                                "restore it from a copy"):
        run_directory.load_best_model(run, 5)


@pytest.mark.parametrize("damage", [lambda data: data[:1000], lambda data: b"not an HDF5 file"])
def test_damaged_best_weights_are_named_and_kept(tmp_path, damage):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / run_directory.BEST_WEIGHTS_FILE
    model.save_weights(str(path))
    assert run_directory.load_best_weights(str(tmp_path), model) is True
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(RunDirectoryError,
                       match=f"{run_directory.BEST_WEIGHTS_FILE} is unreadable .*restore it from a copy") as error:
        run_directory.load_best_weights(str(tmp_path), model)
    assert "\n" not in str(error.value) and path.read_bytes() == damaged
