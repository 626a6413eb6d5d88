"""The run state behind resume (`trainers.callbacks.RunState`): the best weights and the
checkpoint that names their epoch change together whatever moment a kill comes at, a full
disk is named, a NaN validation score stops the run, and TensorBoard keeps each epoch once.

A kill is a `Killed` exception raised by a hook at a chosen moment (deterministic, unlike
timing a SIGKILL); nothing of the killed call runs after it, as after a real kill.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import json
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from nri_tf.config import ConfigError, NRIConfig
from trainers import callbacks, loop, run_directory
from trainers.strategy import process_count
from trainers.run_directory import RunDirectoryError

CONFIG = NRIConfig(dims=4, frames=5, encoder_hidden=4, decoder_hidden=4, batch_size=2)
NODES = 3


class Killed(BaseException):
    """A SIGKILL at the moment a hook raises it."""


def kill(*args, **kwargs):
    raise Killed


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    return str(path)


def new_state(run):
    """(model, RunState) as a fresh process builds them for ``run``."""
    model = loop.build_model(CONFIG, NODES, steps_per_epoch=1, jit_compile=False)
    return model, callbacks.RunState(run, model)


def assert_same_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def best_weights(run):
    model, _ = new_state(run)
    assert run_directory.load_best_weights(run, model)
    return model.get_weights()


def two_epochs_killed_in_the_second(run, monkeypatch, target, name):
    """Saves epoch 1 (best), then epoch 2 (a new best) with ``target.name`` killing it.

    Returns: (weights of epoch 1, weights of epoch 2).
    """
    model, state = new_state(run)
    state.save_epoch(1, 5.0)
    epoch_1 = model.get_weights()
    model.set_weights([w + 1 for w in epoch_1])
    epoch_2 = model.get_weights()
    monkeypatch.setattr(target(state), name, kill)
    with pytest.raises(Killed):
        state.save_epoch(2, 4.0)
    monkeypatch.undo()
    return epoch_1, epoch_2


@pytest.mark.parametrize("moment, target, name, expected_epoch", [
    ("after the best weights, before the checkpoint", lambda state: state._latest, "save", 1),
    ("after the checkpoint, before the switch", lambda state: run_directory, "settle_best_weights", 2),
])
def test_a_kill_between_best_weights_and_checkpoint_resumes_consistent(
        run, monkeypatch, moment, target, name, expected_epoch):
    weights = dict(zip((1, 2), two_epochs_killed_in_the_second(run, monkeypatch, target, name)))
    model, resumed = new_state(run)
    assert resumed.restore() == expected_epoch
    assert int(resumed.best_epoch.numpy()) == expected_epoch
    assert_same_weights(model.get_weights(), weights[expected_epoch])
    assert_same_weights(best_weights(run), weights[expected_epoch])   # what the checkpoint names
    assert not glob.glob(os.path.join(run, ".best-epoch-*"))


@pytest.mark.parametrize("target, name", [
    (lambda state: state._latest, "save"),                 # the checkpoint
    (lambda state: run_directory, "stage_best_weights"),   # the weights file
])
def test_a_full_disk_while_saving_is_named_and_keeps_the_last_epoch(run, monkeypatch, target, name):
    model, state = new_state(run)
    state.save_epoch(1, 5.0)
    epoch_1 = model.get_weights()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target(state), name, full)
    with pytest.raises(RunDirectoryError, match="cannot save epoch 2 in .*: No space left on device; "
                                                "free space or fix permissions, then re-run"):
        state.save_epoch(2, 4.0)
    monkeypatch.undo()
    model, resumed = new_state(run)
    assert resumed.restore() == 1
    assert_same_weights(best_weights(run), epoch_1)


def test_a_nan_validation_score_stops_the_run_before_saving(run):
    _, state = new_state(run)
    with pytest.raises(FloatingPointError, match="validation score became nan in epoch 1"):
        state.save_epoch(1, float("nan"))
    assert os.listdir(run) == []


def _remove(path):
    os.remove(path)


def _truncate(path):
    with open(path, "r+b") as stream:
        stream.truncate(os.path.getsize(path) // 2)


def _scramble(path):
    with open(path, "r+b") as stream:
        data = bytearray(stream.read())
        data[len(data) // 2:] = bytes(255 - b for b in data[len(data) // 2:])
        stream.seek(0)
        stream.write(data)


@pytest.mark.parametrize("part, damage", [(part, damage) for part in ("ckpt-1.data-*", "ckpt-1.index")
                                          for damage in (_remove, _truncate, _scramble)]
                         + [("checkpoint", _remove), ("checkpoint", _truncate)])
def test_an_unreadable_checkpoint_is_named(run, damage, part):
    """A checkpoint file gone, cut short (a copy or a disk that failed) or overwritten is a
    RunDirectoryError naming it, whatever TensorFlow's reader raised, never a silent start
    from epoch 0 (TensorFlow finds no checkpoint when its index or state file is damaged)."""
    _, state = new_state(run)
    state.save_epoch(1, 5.0)
    for path in glob.glob(os.path.join(run, "checkpoints", part)):
        damage(path)
    with pytest.raises(RunDirectoryError, match="checkpoint .*ckpt-1 is unreadable .*; delete .*checkpoints"):
        new_state(run)[1].restore()


def test_a_missing_best_weights_file_is_named_instead_of_scoring_the_last_epoch(run):
    model, state = new_state(run)
    state.save_epoch(1, 5.0)
    model.set_weights([w + 1 for w in model.get_weights()])
    state.save_epoch(2, 6.0)                          # not a new best: best.weights.h5 stays epoch 1's
    assert state.restore_best() == 1
    os.remove(os.path.join(run, run_directory.BEST_WEIGHTS_FILE))
    model, resumed = new_state(run)
    assert resumed.restore() == 2
    with pytest.raises(RunDirectoryError, match=r"best.weights.h5 \(the weights of best epoch 1\) is missing; "
                                                "restore it from a copy"):
        resumed.restore_best()


def event_steps(log_dir) -> dict:
    """{tag: sorted steps} over the event files under ``log_dir``."""
    steps = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return {tag: sorted(values) for tag, values in steps.items()}


def test_resume_drops_the_summaries_a_killed_run_wrote_after_its_checkpoint(tmp_path):
    logs = tmp_path / "logs"
    writer = tf.summary.create_file_writer(str(logs / "validation"))
    with writer.as_default():
        for epoch in range(4):   # Keras' conventions, 10 steps per epoch
            tf.summary.scalar("epoch_nll", float(epoch), step=epoch)
            tf.summary.scalar("evaluation_nll_vs_iterations", float(epoch), step=10 * (epoch + 1))
    writer.close()
    (killed,) = glob.glob(str(logs / "validation" / "events.out.tfevents.*"))
    (logs / "train").mkdir()
    truncated = logs / "train" / os.path.basename(killed)   # a kill in the middle of a record
    shutil.copy(killed, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-7])

    callbacks.trim_event_files(str(logs), completed_epochs=2, steps_per_epoch=10)
    assert event_steps(logs / "validation") == {"epoch_nll": [0, 1], "evaluation_nll_vs_iterations": [10, 20]}
    assert event_steps(logs / "train") == {"epoch_nll": [0, 1], "evaluation_nll_vs_iterations": [10, 20]}
    assert sorted(os.listdir(logs / "train")) == [os.path.basename(killed)]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_an_interrupt_during_an_epoch_ends_training_before_that_epoch_ends(signum):
    """The signal only sets a flag; fit stops at the batch's end, before any epoch-end
    callback (the checkpoint) runs, and the handlers are restored. (Raised inside
    TensorFlow's input op instead, KeyboardInterrupt reads as the end of the data: the
    epoch was cut short, checkpointed as complete, and training went on.)"""
    import signal

    import keras

    model = keras.Sequential([keras.Input([1]), keras.layers.Dense(1)])   # any model will do
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensors((tf.zeros([2, 1]), tf.zeros([2, 1]))).repeat()
    ended, trained = [], []

    class Signal(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            trained.append(batch)
            if batch == 1:
                os.kill(os.getpid(), getattr(signal, signum))

        def on_epoch_end(self, epoch, logs=None):
            ended.append(epoch)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with callbacks.interrupts_between_batches() as stop:
            model.fit(data, epochs=2, steps_per_epoch=4, verbose=0, callbacks=[stop, Signal()])
    assert trained == [0, 1] and ended == []
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_the_time_limit_stops_once_another_epoch_would_end_past_it(monkeypatch):
    """Epochs of 10 s with 25 s trained earlier and a 60 s limit: after epoch 2 (45 s) another
    would end at 55 s, so it goes on; after epoch 3 (55 s) the next would end at 65 s."""
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    said = []
    stop = callbacks.StopAtTimeLimit(60, earlier_seconds=25, log=said.append)
    stop.set_model(type("Model", (), {"stop_training": False})())
    for epoch in range(3):
        assert not stop.model.stop_training
        stop.on_epoch_begin(epoch)
        stop.on_epoch_end(epoch)
    assert stop.model.stop_training and stop.stopped_after == 3
    assert said == ["stopping after epoch 3: 0.9 minutes trained, and another epoch of about 0.2 would "
                    "pass the --time-limit of 1 minutes"]


def test_a_time_limit_is_refused_for_several_training_processes(tiny_data, tmp_path):
    """Two workers could disagree on the last epoch: refused before anything is written."""
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    resolver = type("Resolver", (), {"cluster_spec": lambda self: tf.train.ClusterSpec(cluster),
                                     "task_type": "worker", "task_id": 0})()
    strategy = type("TwoWorkers", (), {"cluster_resolver": resolver, "num_replicas_in_sync": 1})()
    assert process_count(strategy) == 2 and process_count(tf.distribute.get_strategy()) == 1
    with pytest.raises(ConfigError, match="--time-limit needs a single training process"):
        loop.train(CONFIG, tiny_data, str(tmp_path / "run"), strategy,
                   loop.TrainingOptions(time_limit_seconds=60))
    assert not (tmp_path / "run").exists()


def test_schedule_logger_adds_the_learning_rate_and_the_kl_weight_during_warmup():
    logger = callbacks.ScheduleLogger()
    for config, expected in ((CONFIG, [{"learning_rate": 5e-4}] * 2),
                             (dataclasses.replace(CONFIG, kl_warmup=2),
                              [{"learning_rate": 5e-4, "kl_weight": 0.0}, {"learning_rate": 5e-4, "kl_weight": 0.5}])):
        logger.set_model(loop.build_model(config, NODES, steps_per_epoch=1, jit_compile=False))
        for epoch, want in enumerate(expected):
            logger.model.optimizer.iterations.assign(epoch)
            logs = {}
            logger.on_epoch_end(epoch, logs)
            assert logs == pytest.approx(want)


def test_epoch_history_records_the_epochs_cpu_time_apart_from_its_wall_time(tmp_path):
    history = callbacks.EpochHistory(str(tmp_path), initial_epoch=0)
    history.on_epoch_begin(0)
    busy_until = time.process_time() + 0.3
    while time.process_time() < busy_until:       # 0.3 s of CPU
        pass
    time.sleep(0.3)                              # 0.3 s waiting, as a paused or starved run
    history.on_epoch_end(0, {"loss": 1.0})
    record, = run_directory.read_history(str(tmp_path))
    assert record["epoch"] == 1 and record["loss"] == 1.0
    assert 0.3 <= record["cpu_seconds"] < 0.45 and record["seconds"] >= 0.6


def test_a_resumed_history_drops_later_epochs_and_a_line_cut_short_but_names_a_damaged_one(tmp_path):
    path = tmp_path / run_directory.HISTORY_FILE
    lines = [json.dumps({"epoch": epoch, "seconds": 1.0}) + "\n" for epoch in (1, 2, 3)]
    path.write_text("".join(lines) + '{"epoch": 4, "seco')          # killed while writing epoch 4
    assert [r["epoch"] for r in run_directory.read_history(str(tmp_path))] == [1, 2, 3]
    callbacks.EpochHistory(str(tmp_path), initial_epoch=2)          # resumed after epoch 2
    assert path.read_text() == "".join(lines[:2])
    path.write_text(lines[0] + '{"epoch": 2, "seco\n' + lines[2])   # damaged inside: not a torn write
    with pytest.raises(RunDirectoryError, match=r"history.jsonl line 2 is unreadable .*restore the file"):
        callbacks.EpochHistory(str(tmp_path), initial_epoch=3)
    assert path.read_text() == lines[0] + '{"epoch": 2, "seco\n' + lines[2]     # left as it was


def test_epoch_progress_reports_at_most_once_a_minute_with_the_time_left_at_the_median_pace(monkeypatch):
    clock = iter([0.0, 30.0, 70.0, 100.0, 400.0, 3000.0, 9000.0])   # train begins, then 6 epochs end
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    lines = []
    progress = callbacks.EpochProgress(lines.append, "val_nll", every_seconds=60)
    progress.set_params({"epochs": 6})
    progress.on_train_begin()
    for epoch in range(6):
        progress.on_epoch_end(epoch, {"val_nll": 10.0 - epoch, "loss": 0.0})
    # Epochs of 30, 40, 30, 300 (starved), 2600 and 6000 s (paused): the median paces the rest.
    assert lines == ["epoch 2/6: val_nll 9, 35 s an epoch, about 2 min left",   # 4 x 35 s
                     "epoch 4/6: val_nll 7, 35 s an epoch, about 70 s left",
                     "epoch 5/6: val_nll 6, 40 s an epoch, about 40 s left",
                     "epoch 6/6: val_nll 5, 3 min an epoch"]                    # (40 + 300) / 2
    clock = iter([0.0, 5.0 * 3600])
    progress.on_train_begin()
    progress.on_epoch_end(0, {})                                      # a metric the logs lack
    assert lines[-1] == "epoch 1/6: 5.0 h an epoch, about 25.0 h left"
