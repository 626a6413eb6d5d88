"""End-to-end tests of `python -m nri_tf.train` and `python -m nri_tf.evaluate`.

One tiny run (`conftest.tiny_run`: hidden 8, 3 epochs, a few hundred short springs systems)
is trained once per session and inspected by several tests, and by test_export; it is also
the uninterrupted run a killed-and-resumed one is compared with. Resume tests start their
own processes; candidate edges and tf.distribute strategies: test_train_candidates.
Everything here runs on 2 CPU cores in about two minutes.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest

from conftest import (TINY_EPOCHS, TINY_MODEL, event_tags, free_port, last_line, rewrite_records,
                      rewrite_system, tree_contents)
from nri_tf.cli import evaluate as evaluate_cli, train as train_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALIDATION_TAGS = {"epoch_loss", "epoch_nll", "epoch_kl", "epoch_mse", "epoch_edge_accuracy"}
TRAIN_TAGS = VALIDATION_TAGS | {"epoch_learning_rate"}
SPLIT_TAGS = {"train": TRAIN_TAGS, "validation": VALIDATION_TAGS}


def run_module(module: str, *args: str, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, **kwargs)


def test_run_directory_contents(tiny_run):
    for name in ("config.json", "dataset.json", "history.jsonl", "results.json"):
        assert os.path.isfile(os.path.join(tiny_run, name)), name
    assert glob.glob(os.path.join(tiny_run, "checkpoints", "ckpt-3.index"))
    assert os.path.isfile(os.path.join(tiny_run, "best.weights.h5"))
    results = json.load(open(os.path.join(tiny_run, "results.json")))
    assert len(results["mse_per_step"]) == 20
    assert all(math.isfinite(v) and v >= 0 for v in results["mse_per_step"])
    assert 0.0 <= results["edge_accuracy"] <= 1.0
    confusion = np.array(results["edge_confusion"])                # [true type, inferred type]
    assert confusion.shape == (2, 2) and confusion.sum() == pytest.approx(1.0)
    assert np.trace(confusion) == pytest.approx(results["edge_accuracy"], abs=1e-6)
    assert results["epochs"] == 3 and 1 <= results["best_epoch"] <= 3
    assert results["systems"] == 64
    history = [json.loads(line) for line in open(os.path.join(tiny_run, "history.jsonl"))]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_tensorboard_scalars_hparams_and_graph_images(tiny_run):
    logs = os.path.join(tiny_run, "logs")
    for split, expected in SPLIT_TAGS.items():
        tags = event_tags(os.path.join(logs, split))
        assert set(tags) == expected, (split, sorted(tags))      # each metric once, no duplicates
        assert all([step for step, _ in tags[tag]] == [0, 1, 2] for tag in expected)
    images = event_tags(os.path.join(logs, "images"))
    assert [step for step, _ in images["graphs"]] == [0, 1, 2]  # the scalars' steps
    encoded = images["graphs"][-1][1]  # [width, height, png...] strings, one per validation system
    import tensorflow as tf

    assert len(encoded) == 2 + 3
    picture = tf.io.decode_png(encoded[2]).numpy()
    assert picture.shape == (420, 1040, 3)                # true | inferred | legend (nri_tf.figures)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 10  # something drawn
    # The run's settings for the HPARAMS tab, in the run's log directory.
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    session = None
    for path in glob.glob(os.path.join(logs, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
                    session = hparams_metadata.parse_session_start_info_plugin_data(
                        value.metadata.plugin_data.content)
    assert session is not None and session.group_name == os.path.basename(tiny_run)
    assert session.hparams["encoder_hidden"].number_value == 8
    assert session.hparams["skip_first"].bool_value is True
    assert session.hparams["data"].string_value.endswith("springs5")


def test_evaluate_reproduces_results(tiny_run, tmp_path):
    output = str(tmp_path / "eval.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert evaluate_cli.main(["--run", tiny_run, "--output", output]) == 0
    # Neither Keras' "ran out of data" nor its optimizer-loading warning for an evaluation model.
    assert not [w for w in caught if "ran out of data" in str(w.message) or "Skipping variable" in str(w.message)]
    trained = json.load(open(os.path.join(tiny_run, "results.json")))
    again = json.load(open(output))
    for key in ("edge_accuracy", "nll", "kl"):
        assert again[key] == pytest.approx(trained[key], rel=1e-5)
    np.testing.assert_allclose(again["mse_per_step"], trained["mse_per_step"], rtol=1e-5)
    # Refined graphs by default where training scores them (5 nodes: the exact search).
    assert again["refined"]["edge_accuracy"] == pytest.approx(trained["refined"]["edge_accuracy"])
    np.testing.assert_allclose(again["refined"]["mse_per_step"], trained["refined"]["mse_per_step"], rtol=1e-5)


def test_finished_run_is_not_retrained(tiny_run, capsys):
    before = open(os.path.join(tiny_run, "history.jsonl")).read()
    assert train_cli.main(["--data", json.load(open(os.path.join(tiny_run, "dataset.json")))["path"],
                           "--logdir", tiny_run, "--epochs", "3", *TINY_MODEL]) == 0
    assert open(os.path.join(tiny_run, "history.jsonl")).read() == before
    # The start-up names the preset and every effective setting with its origin.
    started = capsys.readouterr().err
    assert "preset fast; settings" in started
    assert "skip_first=True [data]" in started and "encoder_hidden=8 [flag]" in started
    assert "lr_decay=40 [data]" in started


@pytest.mark.slow
def test_tensorboard_server_serves_the_scalars(tiny_run):
    port = free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "tensorboard"),
                               "--logdir", os.path.join(tiny_run, "logs"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, tags = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags",
                                            timeout=5) as response:
                    tags = json.load(response)
                if all(expected <= set(tags.get(split, {})) for split, expected in SPLIT_TAGS.items()):
                    break
            except OSError:
                pass
            time.sleep(1)
        for split, expected in SPLIT_TAGS.items():
            assert expected <= set(tags.get(split, {})), tags
        url = (f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=validation&tag=epoch_nll")
        with urllib.request.urlopen(url, timeout=5) as response:
            points = json.load(response)
        assert [step for _, step, _ in points] == [0, 1, 2]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_killed_run_resumes_without_retraining_epochs(tiny_data, tiny_run, tmp_path, capsys):
    """The kill comes after epoch 2 of 3; the straight run to compare with is `tiny_run`
    (the same command, uninterrupted)."""
    # No XLA (a run option, not in config.json): the compilations were a third of the test's
    # time, and what is tested is which epochs the files record, not the compiled steps.
    args = ["--data", tiny_data, "--epochs", str(TINY_EPOCHS), *TINY_MODEL, "--jit-compile", "off"]
    # Only the kill needs a process of its own; resuming trains in here.
    killed = str(tmp_path / "killed")
    process = subprocess.Popen([sys.executable, "-m", "nri_tf.train", *args, "--logdir", killed],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = os.path.join(killed, "history.jsonl")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(history) and len(open(history).read().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed_before_kill = len(open(history).read().splitlines())
    assert 2 <= completed_before_kill < TINY_EPOCHS

    capsys.readouterr()
    assert train_cli.main([*args, "--logdir", killed]) == 0
    assert "resuming" in capsys.readouterr().err
    epochs = [json.loads(line)["epoch"] for line in open(history)]
    assert epochs == list(range(1, TINY_EPOCHS + 1))  # each epoch once

    killed_results = json.load(open(os.path.join(killed, "results.json")))
    straight_results = json.load(open(os.path.join(tiny_run, "results.json")))
    assert json.load(open(os.path.join(tiny_run, "config.json"))) == \
        json.load(open(os.path.join(killed, "config.json")))      # the same run, uninterrupted
    assert killed_results["epochs"] == straight_results["epochs"] == TINY_EPOCHS
    assert killed_results["nll"] == pytest.approx(straight_results["nll"], rel=0.5)
    # A caller timing the run (the tables) is told what the earlier processes trained.
    from trainers import loop, run_directory
    told = []
    loop.train(run_directory.load_config(killed), tiny_data, killed, options=loop.TrainingOptions(
        jit_compile=False, graph_images=0, refine_sweeps=0, count_earlier_seconds=told.append))
    assert told == [pytest.approx(sum(json.loads(line)["seconds"] for line in open(history)))]


def test_missing_dataset_is_one_line_error(tmp_path):
    result = run_module("nri_tf.train", "--data", str(tmp_path / "nope"), "--logdir",
                        str(tmp_path / "run"))
    assert result.returncode == 2
    assert last_line(result.stderr).startswith("error:") and "nope" in last_line(result.stderr)
    assert not os.path.exists(tmp_path / "run")


def test_training_also_scores_refined_graphs_where_that_is_cheap(tiny_run, tiny_data, tmp_path, capsys):
    from nri_tf.config import NRIConfig
    from trainers.loop import default_refine_sweeps

    refined = json.load(open(os.path.join(tiny_run, "results.json")))["refined"]   # 5 nodes: exact
    assert refined["exact"] and refined["sweeps"] == 10 and 0.0 <= refined["edge_accuracy"] <= 1.0
    mlp, rnn = NRIConfig(), NRIConfig(decoder="rnn")
    assert default_refine_sweeps(mlp, 5, labelled=True) == 10
    assert default_refine_sweeps(mlp, 5, labelled=False) == 0            # nothing to score it by
    assert default_refine_sweeps(rnn, 5, labelled=True) == 0
    assert default_refine_sweeps(mlp, 10, labelled=True) == 0            # sweeps: minutes, not seconds
    assert default_refine_sweeps(NRIConfig(candidate_edges="knn", candidate_k=2), 5, labelled=True) == 0
    for flags, message in ((["--refine-sweeps", "-1"], "--refine-sweeps must be >= 0, got -1"),
                           (["--refine-sweeps", "3", "--decoder", "rnn"], "--refine-sweeps needs the mlp decoder")):
        assert train_cli.main(["--data", tiny_data, "--logdir", str(tmp_path / "run"), *flags]) == 2
        assert message in last_line(capsys.readouterr().err)
        assert not os.path.exists(tmp_path / "run")


def test_unknown_flag_value_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        train_cli.main(["--encoder", "transformer", "--logdir", str(tmp_path / "run")])
    assert exit.value.code == 2 and "invalid choice: 'transformer'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_resume_on_dataset_with_other_node_count_is_refused(tiny_run, tmp_path):
    from data_pipelines.generation import generate_dataset

    other = str(tmp_path / "springs4")
    generate_dataset(other, num_nodes=4, num_train=32, num_valid=16, num_test=16, length=1000,
                     length_test=3000, progress=False)
    before = {p: open(p, "rb").read() for p in glob.glob(os.path.join(tiny_run, "**", "*"), recursive=True)
              if os.path.isfile(p)}
    status = train_cli.main(["--data", other, "--logdir", tiny_run, "--epochs", "3", *TINY_MODEL])
    assert status == 2
    after = {p: open(p, "rb").read() for p in glob.glob(os.path.join(tiny_run, "**", "*"), recursive=True)
             if os.path.isfile(p)}
    assert after == before


def test_changed_config_on_existing_run_is_refused(tiny_run, tiny_data, capsys):
    status = train_cli.main(["--data", tiny_data, "--logdir", tiny_run, "--epochs", "3", "--lr", "0.002",
                             *TINY_MODEL])
    assert status == 2
    assert "different configuration (lr: 0.001 -> 0.002)" in capsys.readouterr().err
    assert train_cli.main(["--data", tiny_data, "--logdir", tiny_run, "--epochs", "2", *TINY_MODEL]) == 2
    assert "(epochs: 3 -> 2); a run can be extended with more epochs, not shortened" in capsys.readouterr().err


def test_finished_run_is_extended_by_more_epochs(tiny_run, tiny_data, tmp_path, capsys):
    import shutil

    run_dir = str(tmp_path / "extended")
    shutil.copytree(tiny_run, run_dir)
    assert train_cli.main(["--data", tiny_data, "--logdir", run_dir, "--epochs", "4", *TINY_MODEL,
                           "--jit-compile", "off"]) == 0          # no XLA compile wait for one epoch
    assert f"resuming {run_dir} after epoch 3 of 4" in capsys.readouterr().err
    history = [json.loads(line) for line in open(os.path.join(run_dir, "history.jsonl"))]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]                 # epochs 1-3 kept, one more trained
    assert json.load(open(os.path.join(run_dir, "config.json")))["epochs"] == 4
    assert json.load(open(os.path.join(run_dir, "results.json")))["epochs"] == 4
    assert glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-4.index"))


def test_time_limit_ends_training_and_a_run_past_it_is_only_evaluated(tiny_run, tiny_data, tmp_path, capsys):
    """A limit just above what the finished 3-epoch run trained: one more epoch of the 6
    asked for, then the stop; the same command again trains nothing and reports the run."""
    import shutil

    run_dir = str(tmp_path / "limited")
    shutil.copytree(tiny_run, run_dir)
    history = os.path.join(run_dir, "history.jsonl")
    earlier = sum(json.loads(line)["seconds"] for line in open(history))
    command = ["--data", tiny_data, "--logdir", run_dir, "--epochs", "6", *TINY_MODEL, "--jit-compile", "off",
               "--time-limit", str(earlier / 60 + 1e-4)]
    assert train_cli.main(command) == 0
    assert "stopping after epoch 4:" in capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in open(history)] == [1, 2, 3, 4]
    assert json.load(open(os.path.join(run_dir, "results.json")))["epochs"] == 4
    assert train_cli.main(command) == 0
    assert "not training: the run has trained" in capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in open(history)] == [1, 2, 3, 4]


def test_time_limit_must_be_positive(tiny_data, tmp_path, capsys):
    assert train_cli.main(["--data", tiny_data, "--logdir", str(tmp_path / "run"), "--time-limit", "0"]) == 2
    assert last_line(capsys.readouterr().err) == "error: --time-limit must be > 0 minutes, got 0.0"
    assert not os.path.exists(tmp_path / "run")


def test_default_run_directory_does_not_depend_on_epochs():
    from nri_tf.config import NRIConfig

    assert train_cli.default_run_dir("data/springs5", NRIConfig(epochs=3)) == \
        train_cli.default_run_dir("data/springs5/", NRIConfig(epochs=40))
    assert train_cli.default_run_dir("data/springs5", NRIConfig(lr=1e-3)) != \
        train_cli.default_run_dir("data/springs5", NRIConfig())
    # Options that are off leave their fields out: the paper's config keeps the directory it
    # had before candidate edges and relative positions existed.
    assert train_cli.default_run_dir("data/springs5", NRIConfig(position_dims=2)) == "runs/springs5-f00824d0"
    assert train_cli.default_run_dir("data/springs5", NRIConfig(position_dims=2, relative_positions=True)) != \
        "runs/springs5-f00824d0"


def test_evaluate_on_ten_nodes(tiny_run, tiny_data, tmp_path, capsys):
    from data_pipelines.generation import generate_dataset

    ten = str(tmp_path / "springs10")
    generate_dataset(ten, num_nodes=10, num_train=16, num_valid=16, num_test=16, length=1000,
                     length_test=3000, progress=False)
    output = str(tmp_path / "ten.json")
    assert evaluate_cli.main(["--run", tiny_run, "--data", ten, "--output", output]) == 0
    results = json.load(open(output))
    assert results["systems"] == 16 and len(results["mse_per_step"]) == 20
    # The run's training statistics by default, as its SavedModel; --normalisation data on request.
    assert results["normalisation"] == {"statistics": "run", "dataset": os.path.abspath(tiny_data)}
    assert "normalisation: the training statistics of " + tiny_data + " (the run's)" in capsys.readouterr().out
    own = str(tmp_path / "own.json")
    assert evaluate_cli.main(["--run", tiny_run, "--data", ten, "--output", own, "--normalisation", "data"]) == 0
    by_own = json.load(open(own))
    assert by_own["normalisation"] == {"statistics": "data", "dataset": os.path.abspath(ten)}
    assert by_own["mse_per_step"] != results["mse_per_step"]


def test_evaluation_normaliser_holds_the_chosen_statistics(tiny_data, tmp_path):
    from data_pipelines.generation import generate_dataset
    from data_pipelines.storage.reader import read_metadata

    other = str(tmp_path / "charged5")
    generate_dataset(other, simulation="charged", num_train=16, num_valid=16, num_test=16, length=1000,
                     length_test=3000, progress=False)
    for choice, source in (("run", tiny_data), ("data", other)):
        normaliser, used = evaluate_cli.evaluation_normaliser(choice, tiny_data, other)
        assert used == source
        np.testing.assert_allclose(normaliser.max, read_metadata(source).normalisation.max, rtol=1e-6)
    with pytest.raises(ValueError, match="pass --normalisation data"):
        evaluate_cli.evaluation_normaliser("run", str(tmp_path / "gone"), other)


# --- faults and bad input (issue 18) ---------------------------------------------------------

def damaged_copy(tiny_data, tmp_path, damage) -> tuple[str, str]:
    """(copy, damaged file): a copy of the tiny dataset after ``damage(copy) -> the file it damaged``."""
    import shutil

    copy = str(tmp_path / "damaged")
    shutil.copytree(tiny_data, copy)
    return copy, damage(copy)


def flip_bytes(data_dir):
    """16 bytes flipped in the middle of a valid shard's 3rd record, CRCs recomputed."""
    def flip(records):
        record = bytearray(records[2])
        middle = len(record) // 2
        record[middle:middle + 16] = bytes(b ^ 0xFF for b in record[middle:middle + 16])
        return records[:2] + [bytes(record)] + records[3:]

    path = os.path.join(data_dir, "valid-00001-of-00002.tfrecord")
    rewrite_records(path, flip)
    return path


def other_node_count(data_dir):
    path = os.path.join(data_dir, "metadata.json")
    values = json.load(open(path))
    values["nodes"] = 4
    json.dump(values, open(path, "w"))
    return os.path.join(data_dir, "train-00000-of-00002.tfrecord")


def nan_at(split, system):
    return lambda d: rewrite_system(d, split, system, lambda x, e: (x * np.nan, e))


@pytest.mark.parametrize("damage, message", [
    (nan_at("train", 3), "system 3 of split 'train' contains NaN or Inf"),
    (nan_at("valid", 40), "system 40 of split 'valid' contains NaN or Inf"),
    (nan_at("test", 63), "system 63 of split 'test' contains NaN or Inf"),
    (lambda d: rewrite_system(d, "train", 5, lambda x, e: (x, np.full_like(e, 7))),
     r"system 5 of split 'train' has edge label 7, outside \[0, 2\)"),
    (flip_bytes, "valid-00001-of-00002.tfrecord: "),
    (other_node_count, r"records unreadable as 4 nodes x 9 frames x 4 dims"),
])
def test_bad_data_is_a_one_line_error_before_anything_is_written(tiny_data, tmp_path, capsys, damage, message):
    """Every split is read and checked before the first step; the run directory is not created."""
    data, damaged = damaged_copy(tiny_data, tmp_path, damage)
    run_dir = tmp_path / "run"
    assert train_cli.main(["--data", data, "--logdir", str(run_dir), "--epochs", "1", *TINY_MODEL]) == 2
    error = last_line(capsys.readouterr().err)
    assert error.startswith(f"error: {damaged}: ") and re.search(message, error), error
    assert not run_dir.exists()


def test_missing_split_and_too_few_frames_fail_before_the_first_step(tmp_path, capsys):
    from data_pipelines.storage.writer import write_dataset
    from data_pipelines.generation import generate_dataset

    rng = np.random.default_rng(0)
    splits = {split: (rng.standard_normal((32, 3, 9, 4)).astype(np.float32), np.zeros((32, 6), np.int32))
              for split in ("train", "valid")}
    no_test = str(tmp_path / "no-test")
    write_dataset(no_test, splits, source="springs", parameters={}, edge_types=2,
                          feature_names=["x", "y", "vx", "vy"], normalisation_groups=None)
    two_frames = str(tmp_path / "two-frames")
    generate_dataset(two_frames, num_nodes=3, num_train=32, num_valid=16, num_test=16, length=300,
                     length_test=300, progress=False)
    for data, message in ((no_test, "no test split; training needs train, valid"),
                          (two_frames, "test systems have 2 frames; prediction needs more than the 2")):
        run_dir = tmp_path / f"run-{os.path.basename(data)}"
        assert train_cli.main(["--data", data, "--logdir", str(run_dir), *TINY_MODEL]) == 2
        assert message in last_line(capsys.readouterr().err)
        assert not run_dir.exists()


def test_prediction_horizon_is_capped_and_too_short_test_systems_are_a_dataset_error():
    from data_pipelines.errors import DatasetError
    from nri_tf.evaluation import prediction_horizon

    assert prediction_horizon(69, 49) == 20 and prediction_horizon(29, 9, 5) == 5
    assert prediction_horizon(20, 9) == 11
    with pytest.raises(DatasetError, match=r"^data/short: test systems have 9 frames; prediction needs "
                                           r"more than the 9 context frames the encoder sees$"):
        prediction_horizon(9, 9, data_dir="data/short")
    with pytest.raises(DatasetError, match=r"^test systems have 8 frames"):
        prediction_horizon(8, 9)


def test_rerun_on_other_data_of_the_same_shape_changes_nothing(tiny_run, tmp_path, capsys):
    from data_pipelines.generation import generate_dataset

    other = str(tmp_path / "other")
    generate_dataset(other, num_train=32, num_valid=16, num_test=16, length=1000, length_test=3000,
                     seed=2, progress=False)
    before = tree_contents(tiny_run)
    assert train_cli.main(["--data", other, "--logdir", tiny_run, "--epochs", "3", *TINY_MODEL]) == 2
    assert f"not on {other} (other data of the same shape)" in last_line(capsys.readouterr().err)
    assert tree_contents(tiny_run) == before


def test_a_second_training_process_on_the_same_run_is_refused(tiny_data, tmp_path, capsys):
    from trainers import run_directory

    run_dir = str(tmp_path / "run")
    with run_directory.claimed(run_dir):   # as another process's training would
        assert train_cli.main(["--data", tiny_data, "--logdir", run_dir, *TINY_MODEL]) == 2
    assert "is in use by another training process" in last_line(capsys.readouterr().err)
    assert os.listdir(run_dir) == [".lock"]


class Killed(BaseException):
    """A SIGKILL at the moment a hook raises it (nothing after it runs)."""


def test_kill_between_best_weights_and_checkpoint_resumes_each_epoch_once(tiny_data, tmp_path, monkeypatch):
    """Epoch 2 is trained and is a new best; the kill comes after its best weights are
    written and before its checkpoint. The resumed run must see epoch 1's state, with the
    best weights that checkpoint names, and show every epoch once in history and TensorBoard."""
    import tensorflow as tf

    from trainers import callbacks, loop, run_directory

    import keras

    save_epoch, save_checkpoint = callbacks.RunState.save_epoch, tf.train.CheckpointManager.save
    tensorboard_epoch_end = keras.callbacks.TensorBoard.on_epoch_end

    def every_epoch_a_new_best(state, epoch, score):
        return save_epoch(state, epoch, -float(epoch))

    def flushed_at_epoch_end(tensorboard, epoch, logs=None):   # the killed run's events reach the disk
        tensorboard_epoch_end(tensorboard, epoch, logs)
        for writer in tensorboard._writers.values():
            writer.flush()

    def killed_at_epoch_2(manager, checkpoint_number=None, **kwargs):
        if checkpoint_number == 2:
            raise Killed
        return save_checkpoint(manager, checkpoint_number=checkpoint_number, **kwargs)

    run_dir = str(tmp_path / "run")
    # No XLA: what is tested is the order of the files written, not the compiled steps
    # (the XLA compilations of both runs took half the test's time).
    args = ["--data", tiny_data, "--logdir", run_dir, "--epochs", "2", *TINY_MODEL, "--batch-size", "64",
            "--jit-compile", "off"]
    monkeypatch.setattr(callbacks.RunState, "save_epoch", every_epoch_a_new_best)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", killed_at_epoch_2)
    monkeypatch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", flushed_at_epoch_end)
    with pytest.raises(Killed):
        train_cli.main(args)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_checkpoint)

    config = run_directory.load_config(run_dir)
    in_checkpoint = loop.build_model(config, 5, steps_per_epoch=4, jit_compile=False)
    tf.train.Checkpoint(model=in_checkpoint).restore(
        tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))).expect_partial()
    best = loop.build_model(config, 5, steps_per_epoch=4, jit_compile=False)
    assert run_directory.load_best_weights(run_dir, best)
    for a, b in zip(best.get_weights(), in_checkpoint.get_weights()):
        np.testing.assert_array_equal(a, b)   # best weights are those of checkpoint 1's best epoch

    assert train_cli.main(args) == 0
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run_dir, "history.jsonl"))] == [1, 2]
    def steps(split, tag):   # over the killed run's event files and the resumed run's
        return sorted(step for step, _ in event_tags(os.path.join(run_dir, "logs", split))[tag])

    assert steps("train", "epoch_nll") == steps("validation", "epoch_nll") == [0, 1]
    assert steps("images", "graphs") == [0, 1]
    assert json.load(open(os.path.join(run_dir, "results.json")))["best_epoch"] == 2


def test_evaluate_never_replaces_the_evaluation_of_other_data(tiny_run, tmp_path, capsys):
    output = tmp_path / "springs5.json"
    output.write_text(json.dumps({"data": "/elsewhere/springs5", "nll": 1.0}))
    before = output.read_bytes()
    assert evaluate_cli.main(["--run", tiny_run, "--output", str(output)]) == 2
    assert "holds the evaluation of /elsewhere/springs5; pass --output" in last_line(capsys.readouterr().err)
    assert output.read_bytes() == before


def test_evaluate_refuses_a_zero_batch_size_instead_of_using_the_runs(tiny_run, tmp_path, capsys):
    assert evaluate_cli.main(["--run", tiny_run, "--batch-size", "0", "--output", str(tmp_path / "e.json")]) == 2
    assert "--batch-size must be a positive integer, got 0" in last_line(capsys.readouterr().err)
    assert not (tmp_path / "e.json").exists()


def test_evaluate_refines_the_graph_when_asked_and_keeps_the_plain_evaluation(tiny_run, tmp_path, capsys):
    output = str(tmp_path / "refined.json")
    assert evaluate_cli.main(["--run", tiny_run, "--refine-sweeps", "3", "--output", output]) == 0
    results = json.load(open(output))
    refined = results["refined"]
    assert refined["sweeps"] == 3 and 0.0 <= refined["changed"] <= 1.0
    assert refined["exact"]                           # 5 nodes: every graph is searched
    # The search never raises the decoder's nll of the encoder's most likely graph.
    assert refined["nll"] <= results["nll_inferred_graph"] * (1 + 1e-5)
    captured = capsys.readouterr()
    assert f"edge accuracy {100 * refined['edge_accuracy']:.1f}%" in captured.out and "(exact search, " in captured.out
    systems = results["systems"]                      # a progress bar while refining, on stderr
    assert f"{systems}/{systems}" in [line for line in captured.err.splitlines()
                                      if line.startswith("refining test graphs")][-1].split()
    assert evaluate_cli.main(["--run", tiny_run, "--refine-sweeps", "-1", "--output", output]) == 2
    assert "--refine-sweeps must be >= 0, got -1" in last_line(capsys.readouterr().err)


@pytest.mark.parametrize("decoder, horizon", [("mlp", "one-step predictions, as val_nll"),
                                              ("rnn", "burn-in, then 10 frames open loop")])
def test_summary_says_what_each_number_measures(tmp_path, decoder, horizon):
    from nri_tf.config import NRIConfig

    NRIConfig(decoder=decoder, frames=49, skip_first=True).save(str(tmp_path / "config.json"))
    results = {"best_epoch": 3, "epochs": 4, "systems": 10, "edge_accuracy": 0.5, "nll": 2.7,
               "kl": -0.6, "mse_per_step": [1e-6] * 20, "edge_confusion": [[0.3, 0.3], [0.2, 0.2]],
               "accuracy_by_closest_approach": [{"from": 0.0, "to": 0.5, "share": 0.5, "accuracy": 0.9},
                                                {"from": 0.5, "to": 2.0, "share": 0.5, "accuracy": 0.55}]}
    text = train_cli.format_summary(results, str(tmp_path), "r.json")
    assert "edge accuracy: 50.0% (best permutation" in text
    assert "by the pair's closest approach over the encoder's frames (data units; 2 bins of equal shares " \
           "of the edges): 0-0.5 90.0%, 0.5-2 55.0%" in text
    assert "recovered per true edge type: 0 (no edge) 50.0%, 1 50.0%" in text
    assert "nll: 2.7 per node: squared errors / (2 x variance 5e-05) summed over frames 2..49" in text
    assert horizon in text and "kl: -0.6 per node (without the constant log K" in text
    assert "mse after 1 steps: 1e-06, 10 steps: 1e-06, 20 steps: 1e-06 (normalised units" in text


def test_evaluate_draws_the_chosen_system_and_the_run_plots(tiny_run, tmp_path, capsys, monkeypatch):
    from nri_tf import figures

    saved, original = {}, figures.save_figure

    def keep(figure, path):
        saved[os.path.basename(path)] = figure
        return original(figure, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    png, plots = str(tmp_path / "graph.png"), str(tmp_path / "plots")
    assert evaluate_cli.main(["--run", tiny_run, "--output", str(tmp_path / "e.json"), "--image", png,
                              "--system", "5", "--plots", plots]) == 0
    assert saved["graph.png"].get_suptitle() == "test system 5 (springs, 5 nodes)"
    assert saved["accuracy.png"].axes[0].get_ylabel() == "edge accuracy (%)"
    assert len(saved["accuracy.png"].axes[0].lines[1].get_xdata()) == 3          # one point per epoch
    assert len(saved["mse.png"].axes[0].lines[0].get_ydata()) == 20
    for path in (png, os.path.join(plots, "accuracy.png"), os.path.join(plots, "mse.png")):
        assert open(path, "rb").read(4) == b"\x89PNG"
    out = capsys.readouterr().out
    assert f"plots: {os.path.join(plots, 'accuracy.png')}" in out and out.strip().endswith(f"image: {png}")
    assert evaluate_cli.main(["--run", tiny_run, "--image", png, "--system", "64"]) == 2
    assert "error: --system 64: the test split of " in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--output", "{dir}"], "--output {dir} is a directory; give a file name such as {dir}/evaluation.json"),
    (["--output", "{file}/e.json"], "--output {file}/e.json cannot be written: {file} is not a writable directory"),
    (["--image", "{dir}"], "--image {dir} is a directory; give a file name such as {dir}/graph.png"),
])
def test_evaluate_refuses_an_output_it_cannot_write_before_evaluating(tiny_run, tmp_path, capsys, flags, message):
    places = {"dir": str(tmp_path), "file": str(tmp_path / "notes.txt")}
    (tmp_path / "notes.txt").write_text("mine")
    evaluated = []
    with pytest.MonkeyPatch.context() as patch:
        from nri_tf import evaluation
        patch.setattr(evaluation, "evaluate", lambda *a, **k: evaluated.append(1))
        assert evaluate_cli.main(["--run", tiny_run, *[flag.format(**places) for flag in flags]]) == 2
    assert last_line(capsys.readouterr().err) == "error: " + message.format(**places)
    assert not evaluated and (tmp_path / "notes.txt").read_text() == "mine"


# --- candidate edges on large-system data (issue 15) --------------------------------------
