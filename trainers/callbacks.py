"""Keras callbacks of a training run: resumable checkpoints, learning-rate logging and
TensorBoard scalars, hyperparameters and images of inferred graphs, a time limit.

TensorBoard layout of RUN/logs (one step convention: step n is the end of epoch n + 1, as
Keras writes its epoch scalars):
  train/, validation/   ``epoch_<metric>`` scalars (`EpochTensorBoard`, Keras' own callback
                        without its duplicate ``evaluation_<metric>_vs_iterations`` tags);
                        `ScheduleLogger` adds ``epoch_learning_rate`` (and with
                        ``--kl-warmup`` ``epoch_kl_weight``) to train/
  images/               ``graphs``: `GraphImages`
  .                     the run's settings for TensorBoard's HPARAMS tab (`log_hparams`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import math
import os
import shutil
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from data_pipelines.files import write_text_atomic
from data_pipelines.progress import duration_text
from trainers import run_directory
from trainers.strategy import wait_for_every_process


class RunState:
    """Everything a killed run needs to continue: model and optimizer variables (the
    optimizer's iteration count drives the learning-rate schedule), the last completed
    epoch, and the best validation score so far with its epoch.

    The latest state is written with `tf.train.CheckpointManager` (the index file is
    replaced only once a checkpoint is complete), so a kill at any moment leaves the
    previous completed epoch restorable. The best epoch's weights are a Keras weights
    file that changes together with the checkpoint naming its epoch: staged before the
    checkpoint is saved, switched in after (`run_directory.settle_best_weights`, which
    `restore` calls too, so a kill in between is finished or undone on resume).

    In a multi-worker cluster every worker must save the checkpoint (the variables are
    synchronised collectively); only the chief writes into the run directory, the others
    into a scratch directory that is removed afterwards. Every worker restores the chief's
    checkpoint, so a resumed cluster continues from one state.
    """

    def __init__(self, run_dir: str, model: keras.Model, chief: bool = True):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self.best_score = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self._run_dir = run_dir
        self._model = model
        self._chief = chief
        self._scratch = None if chief else os.path.join(run_dir, f".worker-scratch-{os.getpid()}")
        latest = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self.epoch,
                                     best_score=self.best_score, best_epoch=self.best_epoch)
        self._latest = tf.train.CheckpointManager(
            latest, os.path.join(self._scratch or run_dir, run_directory.CHECKPOINT_DIR),
            max_to_keep=1)

    def restore(self) -> int:
        """Restores the latest completed epoch if there is one; returns the epoch count.

        Raises:
          RunDirectoryError naming the checkpoint when it cannot be read.
        """
        directory = os.path.join(self._run_dir, run_directory.CHECKPOINT_DIR)
        checkpoint = tf.train.latest_checkpoint(directory)
        if checkpoint:
            try:
                self._latest.checkpoint.restore(checkpoint).assert_existing_objects_matched()
            except (tf.errors.OpError, IndexError) as error:   # what reading a damaged checkpoint raises
                # (IndexError: the reader's "Read less bytes than requested" of a data file cut short)
                message = getattr(error, "message", None) or str(error)
                raise run_directory.RunDirectoryError(
                    f"checkpoint {checkpoint} is unreadable ({message.splitlines()[0]}); "
                    f"delete {directory} to train this run from the start") from None
        else:
            left = {os.path.basename(path).split(".")[0] for path in glob.glob(os.path.join(directory, "ckpt-*"))}
            if left:     # its index or the state file naming it is gone or damaged: no silent restart
                latest = max(left, key=lambda name: int(name.removeprefix("ckpt-")))
                raise run_directory.RunDirectoryError(
                    f"checkpoint {os.path.join(directory, latest)} is unreadable (no readable index and state "
                    f"file name it); delete {directory} to train this run from the start")
        if self._chief:
            run_directory.settle_best_weights(self._run_dir, int(self.best_epoch.numpy()))
        return int(self.epoch.numpy())

    def save_epoch(self, completed_epochs: int, score: float) -> bool:
        """Records a completed epoch; returns True when ``score`` is a new best (lower).

        Raises:
          FloatingPointError: ``score`` is NaN or infinite (nothing is saved).
          RunDirectoryError: the weights or the checkpoint cannot be written (disk full,
            permissions); the previous epoch's state stays intact.
        """
        if not math.isfinite(score):
            raise FloatingPointError(f"the validation score became {score} in epoch {completed_epochs}; "
                                     "check the data for NaN/Inf or lower --lr")
        improved = score < float(self.best_score.numpy())
        with self._writing(completed_epochs):
            if improved:
                self.best_score.assign(score)
                self.best_epoch.assign(completed_epochs)
                if self._chief:
                    run_directory.stage_best_weights(self._run_dir, self._model, completed_epochs)
            self.epoch.assign(completed_epochs)
            self._latest.save(checkpoint_number=completed_epochs)
            if self._chief:
                run_directory.settle_best_weights(self._run_dir, int(self.best_epoch.numpy()))
        return improved

    @contextlib.contextmanager
    def _writing(self, completed_epochs: int):
        """Turns a failed write into a RunDirectoryError that names the run and what to do."""
        try:
            yield
        except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
            raise run_directory.RunDirectoryError(
                f"cannot save epoch {completed_epochs} in {self._run_dir}: {reason.splitlines()[0]}; "
                "free space or fix permissions, then re-run the same command to resume") from None

    def restore_best(self) -> int:
        """Loads the best epoch's weights into the model; returns that epoch (0 if none).

        Every worker of a cluster reads the chief's file, once the chief has switched in
        the last epoch's (`run_directory.settle_best_weights`).

        Raises:
          RunDirectoryError: the checkpoint names a best epoch but its weights file is gone
            (the model would otherwise be scored with the last epoch's weights as the best's).
        """
        wait_for_every_process(self._model.distribute_strategy)
        best_epoch = int(self.best_epoch.numpy())
        if not run_directory.load_best_weights(self._run_dir, self._model) and best_epoch:
            raise run_directory.missing_best_weights(self._run_dir, best_epoch)
        return best_epoch

    def close(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


class RunStateCheckpoint(keras.callbacks.Callback):
    """Saves `RunState` after every epoch, keeping the best epoch by ``monitor`` (lower is
    better; ``mode="max"``: higher, e.g. an accuracy)."""

    def __init__(self, state: RunState, monitor: str = "val_nll", mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.state = state
        self.monitor = monitor
        self._sign = -1.0 if mode == "max" else 1.0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"cannot keep the best checkpoint: metric {self.monitor!r} is not in the "
                           f"epoch logs ({', '.join(sorted(logs))})")
        self.state.save_epoch(epoch + 1, self._sign * float(logs[self.monitor]))


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback writing each metric once per epoch (``epoch_<name>`` in
    train/ and validation/): Keras also writes every validation metric again as
    ``evaluation_<name>_vs_iterations`` at the optimizer's step, a duplicate on another
    step scale."""

    def on_test_end(self, logs=None):
        self._pop_writer()


def log_hparams(log_dir: str, config, data_dir: str, run_name: str) -> None:
    """Writes the run's NRIConfig (command-line fields) and dataset to ``log_dir`` with
    TensorBoard's hparams plugin, so that runs under one ``--logdir`` compare side by side
    in the HPARAMS tab against their metrics (which the plugin finds in train/ and
    validation/). No experiment-wide config is written: each run only describes itself."""
    from tensorboard.plugins.hparams import api as hp   # TensorBoard's plugin: only runs that log

    values = {"data": os.path.abspath(data_dir)}
    for field in dataclasses.fields(config):
        if field.metadata.get("cli", True):
            value = getattr(config, field.name)
            values[field.name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams(values, trial_id=run_name)
    writer.close()


class StopOnInterrupt(keras.callbacks.Callback):
    """Ends training between two batches when SIGINT (Ctrl-C) or SIGTERM arrives.

    A KeyboardInterrupt raised while a TensorFlow op reads the input reaches Keras as the
    end of the data: the epoch is cut short, checkpointed as if complete, and training
    goes on. While `interrupts_between_batches` holds, the signals only set a flag (a
    second one interrupts at once); this callback, placed first, raises KeyboardInterrupt
    at the next batch end or before the epoch's end callbacks, so the last checkpoint is
    always the last complete epoch.
    """

    def __init__(self):
        super().__init__()
        self.received = None

    def receive(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def _stop_if_received(self, *args, **kwargs):
        if self.received is not None:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _stop_if_received


@contextlib.contextmanager
def interrupts_between_batches():
    """Yields a `StopOnInterrupt` and routes SIGINT and SIGTERM to it (main thread only:
    elsewhere signals cannot be handled); the previous handlers come back afterwards."""
    stop = StopOnInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, stop.receive) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class ScheduleLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs as ``learning_rate`` and,
    for a model with a KL warm-up (`NRI.kl_weight`), the KL term's current weight as
    ``kl_weight``.

    Place it before the TensorBoard callback: later callbacks see the same logs dict.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if getattr(self.model, "kl_weight", None) is not None:
            logs["kl_weight"] = float(keras.ops.convert_to_numpy(self.model.kl_weight(optimizer.iterations)))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with a clear error as soon as the loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"training loss became {float(loss)} at batch {batch}; check the data for NaN/Inf "
                "or lower --lr")


class StopAtTimeLimit(keras.callbacks.Callback):
    """Ends training once another epoch as long as the last one would end past a time limit.

    Args:
      limit_seconds: the training time allowed, counting ``earlier_seconds``.
      earlier_seconds: what earlier processes trained of this run (`run_directory.seconds_trained`).
      log: told one line when training stops early.
    An epoch's time runs from its start to the end of its validation, as `EpochHistory`
    counts it; ``stopped_after`` is the last epoch trained (1-based) once it stops, else None.
    """

    def __init__(self, limit_seconds: float, earlier_seconds: float = 0.0, log=print):
        super().__init__()
        self.limit_seconds = float(limit_seconds)
        self.trained_seconds = float(earlier_seconds)
        self.log = log
        self.stopped_after = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._started
        self.trained_seconds += took
        if self.trained_seconds + took > self.limit_seconds:
            self.model.stop_training = True
            self.stopped_after = epoch + 1
            self.log(f"stopping after epoch {epoch + 1}: {self.trained_seconds / 60:.1f} minutes trained, "
                     f"and another epoch of about {took / 60:.1f} would pass the --time-limit of "
                     f"{self.limit_seconds / 60:g} minutes")


class EpochProgress(keras.callbacks.Callback):
    """Logs one line at the end of an epoch once ``every_seconds`` have passed since the
    last (or since training began): the epoch, its ``monitor`` value, the median time of
    this process's epochs (an epoch paused or starved by other work does not skew it) and
    the time the remaining epochs would take at that rate, e.g.
    ``epoch 7/200: val_nll 591.2, 88 s an epoch, about 4.7 h left``.

    For long, otherwise silent training (a table's models); epochs shorter than
    ``every_seconds`` are reported only now and then, training shorter than it not at all.
    """

    def __init__(self, log, monitor: str, every_seconds: float = 60.0):
        super().__init__()
        self.log = log
        self.monitor = monitor
        self.every_seconds = float(every_seconds)

    def on_train_begin(self, logs=None):
        self._ended = self._logged = time.perf_counter()
        self._epoch_seconds = []

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._epoch_seconds.append(now - self._ended)
        self._ended = now
        if now - self._logged < self.every_seconds:
            return
        self._logged = now
        per_epoch = float(np.median(self._epoch_seconds))
        left = self.params["epochs"] - (epoch + 1)
        value = (logs or {}).get(self.monitor)
        line = f"epoch {epoch + 1}/{self.params['epochs']}: "
        line += f"{self.monitor} {float(value):.4g}, " if value is not None else ""
        line += f"{duration_text(per_epoch)} an epoch"
        self.log(line + (f", about {duration_text(left * per_epoch)} left" if left else ""))


class EpochHistory(keras.callbacks.Callback):
    """Appends one JSON line per completed epoch to ``run_dir/history.jsonl``: the epoch, its
    seconds (training and validation), the seconds of its validation alone, the CPU seconds
    of this process in the epoch (all its threads: near cores x seconds when the run had the
    machine, far below when it waited for the CPU or stood paused), and every epoch metric
    (train and ``val_``).

    The file is what `benchmarks/recovery_curve.py` reads to draw accuracy over time. On
    resume, lines of epochs after the restored checkpoint (trained but never checkpointed
    before a kill) are dropped first, so each epoch appears once (the file is replaced
    atomically: a kill then loses nothing).
    """

    def __init__(self, run_dir: str, initial_epoch: int):
        super().__init__()
        self.path = os.path.join(run_dir, run_directory.HISTORY_FILE)
        kept = [record for record in run_directory.read_history(run_dir) if record["epoch"] <= initial_epoch]
        write_text_atomic(self.path, "".join(json.dumps(record) + "\n" for record in kept))

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()
        self._validation_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._validation_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self._validation_seconds += time.perf_counter() - self._validation_started

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._started,
                  "validation_seconds": self._validation_seconds,
                  "cpu_seconds": time.process_time() - self._cpu_started,
                  **{k: float(v) for k, v in (logs or {}).items()}}
        with open(self.path, "a") as stream:
            stream.write(json.dumps(record) + "\n")


def trim_event_files(log_dir: str, completed_epochs: int, steps_per_epoch: int) -> None:
    """Removes from the TensorBoard event files under ``log_dir`` the summaries of epochs
    after ``completed_epochs``, so that a resumed run shows each epoch once.

    A killed run may have written an epoch's summaries before its checkpoint was saved;
    the resumed run trains that epoch again. Summaries are written at step = the 0-based
    epoch, except Keras' ``evaluation_*_vs_iterations`` at the optimizer's iteration count
    (``epochs * steps_per_epoch`` after the validation of the last completed epoch). A
    truncated last record (a kill while writing) goes too. Files needing no change are not
    rewritten; the others are replaced atomically.
    """
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        kept, changed = [], False
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                if _after(tf.compat.v1.Event.FromString(record), completed_epochs, steps_per_epoch):
                    changed = True
                else:
                    kept.append(record)
        except tf.errors.DataLossError:
            changed = True
        if changed:
            _write_records_atomic(path, kept)


def _after(event, completed_epochs: int, steps_per_epoch: int) -> bool:
    """Whether an event holds summaries of an epoch after ``completed_epochs``."""
    tags = [value.tag for value in event.summary.value]
    if not tags:
        return False
    if all(tag.endswith("_vs_iterations") for tag in tags):
        return event.step > completed_epochs * steps_per_epoch
    return event.step >= completed_epochs


def _write_records_atomic(path: str, records: list) -> None:
    temporary = os.path.join(os.path.dirname(path), ".tmp-trimmed-events")
    with tf.io.TFRecordWriter(temporary) as writer:
        for record in records:
            writer.write(record)
    os.replace(temporary, path)


class GraphImages(keras.callbacks.Callback):
    """Draws, after every epoch, the graph the model infers for a few validation systems,
    as TensorBoard images (``logs/images``, tag ``graphs``, one image per system) at the
    step of Keras' epoch scalars (epoch index, from 0).

    The drawing is `nri_tf.visualise.graph_figures` (also behind ``python -m
    nri_tf.evaluate --image``): for simulations the true graph next to the inferred one
    with missed and spurious edges marked, over the trajectories; for unlabelled data the
    inferred graph alone; for skeleton data (mocap) the first frame of the first system
    with the learned edges of each edge type.

    Args:
      log_dir: the run's TensorBoard directory.
      trajectories: [systems, nodes, frames, dims] normalised validation systems.
      labels: [systems, edges] their true edge types, or None for data without a true
        graph (`data_pipelines.contract.has_edge_labels`).
      metadata: the dataset's `DatasetMetadata` (skeleton bones, normalisation).
      candidates: the systems' candidate edges ({"senders", ["mask"], ...}) with labels
        over them, or None for the complete graph; large systems are drawn as a window
        (`nri_tf.visualise.drawn_nodes`).
    """

    def __init__(self, log_dir: str, trajectories, labels, metadata, candidates=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
        self.trajectories = np.asarray(trajectories)
        self.labels = None if labels is None else np.asarray(labels)
        self.metadata = metadata
        self.candidates = None if candidates is None else {
            name: np.asarray(value) for name, value in candidates.items() if name in ("senders", "mask")}

    def on_epoch_end(self, epoch, logs=None):
        # matplotlib, loaded only by runs that draw graph images.
        from nri_tf.figures import figure_image
        from nri_tf.visualise import graph_figures

        drawn = graph_figures(self.model, self.trajectories, self.labels, self.metadata, split="validation",
                              candidates=self.candidates)
        images = np.stack([figure_image(figure) for figure in drawn])
        with self.writer.as_default():
            tf.summary.image("graphs", images, step=epoch, max_outputs=len(images),
                             description=f"validation systems 0..{len(images) - 1} after epoch "
                                         f"{epoch + 1}: true and inferred graphs (nri_tf.visualise)")
        self.writer.flush()

