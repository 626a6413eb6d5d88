"""The on-disk layout of one training run, and the checks that keep earlier runs intact.

    RUN_DIR/
      config.json        the NRIConfig the run trains (written once, before training)
      dataset.json       the dataset it trains on: path, shape (nodes, dims, frames) and
                         fingerprint (of its metadata: the run belongs to that data)
      checkpoints/       latest completed epoch: model, optimizer, epoch, best-so-far
      best.weights.h5    model weights of the epoch with the best validation score
      logs/              TensorBoard event files (train/, validation/, images/)
      history.jsonl      one line per epoch: its seconds and train/validation metrics
      results.json       test metrics of the best checkpoint
      .lock              held (flock) by the training process using the directory
      refit.json         only in a refit's directory (`trainers.refit`), which
                         has no checkpoints: it is evaluated and exported, never trained

Re-running the same command on an existing run directory resumes it; asking for more
epochs extends it (finished or not: training continues after its last completed epoch); any
other change of config, fewer epochs, an incompatible dataset or other data of the same
shape is refused before anything is written, and so is a second training process while the
first holds the lock (`claimed`).

The best weights and the checkpoint that names their epoch change together: a new best
is first written to a hidden pending file (`stage_best_weights`), the epoch checkpoint is
saved, and only then does the pending file become best.weights.h5 (`settle_best_weights`,
which a resumed run also calls, finishing or discarding what a kill interrupted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re

from data_pipelines.errors import UserError
from data_pipelines.files import read_json, write_json_atomic
from nri_tf.config import NRIConfig

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"
RESULTS_FILE = "results.json"
# The validation metric that picks the best checkpoint, best.weights.h5 (lower is better). It
# uses no labels, as the reference implementation's choice of the best validation NLL.
BEST_CHECKPOINT_METRIC = "val_nll"
HISTORY_FILE = "history.jsonl"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best.weights.h5"
LOG_DIR = "logs"
LOCK_FILE = ".lock"
# Marks a run directory written by `trainers.refit` (refit weights, not a training run).
REFIT_FILE = "refit.json"
# Dataset properties a run's weights depend on; a resumed or evaluated run must match them.
DATASET_SHAPE_KEYS = ("nodes", "dims", "frames")
# Best weights of an epoch whose checkpoint may not be saved yet (`stage_best_weights`).
_PENDING_BEST = re.compile(r"\.best-epoch-(\d+)\.weights\.h5")
# Hidden files of this module that do not make a directory a run (a kill can leave them
# before config.json exists): the lock, temporaries of `files.write_json_atomic`, pending weights.
_OWN_LEFTOVER = re.compile(rf"{re.escape(LOCK_FILE)}|\.tmp-.*|{_PENDING_BEST.pattern}")


class RunDirectoryError(UserError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def _holds_a_run(run_dir: str) -> bool:
    return os.path.exists(os.path.join(run_dir, CONFIG_FILE))


def _check_not_foreign(run_dir: str) -> None:
    """RunDirectoryError if ``run_dir`` is a non-empty directory that is no run directory
    (this module's own hidden leftovers do not count)."""
    if _holds_a_run(run_dir) or not os.path.isdir(run_dir):
        return
    if any(not _OWN_LEFTOVER.fullmatch(entry) for entry in os.listdir(run_dir)):
        raise RunDirectoryError(f"{run_dir} exists, is not empty and holds no {CONFIG_FILE}; "
                                "choose another --logdir")


@contextlib.contextmanager
def claimed(run_dir: str):
    """Holds ``RUN/.lock`` (an exclusive `flock`, released when the process ends, however it
    ends) while the block runs; creates ``run_dir`` if needed and removes the temporaries
    that killed processes left in it.

    Raises:
      RunDirectoryError: another process holds the lock, ``run_dir`` is a foreign
        directory, or it cannot be created or written.
    """
    _check_not_foreign(run_dir)
    path = os.path.join(run_dir, LOCK_FILE)
    try:
        os.makedirs(run_dir, exist_ok=True)
        stream = open(path, "a")
    except OSError as error:
        raise RunDirectoryError(f"cannot use run directory {run_dir}: {error.strerror}") from None
    with stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(f"{run_dir} is in use by another training process (it holds {path}, "
                                    "see fuser); wait for it to finish or use another --logdir") from None
        for entry in os.listdir(run_dir):
            if entry.startswith(".tmp-"):
                os.remove(os.path.join(run_dir, entry))
        yield


def prepare(run_dir: str, config: NRIConfig, dataset: dict) -> bool:
    """Creates ``run_dir`` for a new run, or checks that it can resume.

    Args:
      run_dir: the run directory.
      config: the configuration the command asks for.
      dataset: {"path": ..., "nodes": N, "dims": D, "frames": T} of the training data.
    Returns:
      True when an existing run is being resumed (or extended: more ``epochs`` than it
      was started with; its config.json then records the new count).
    Raises:
      RunDirectoryError: the directory belongs to a run with another configuration (or
        more epochs than asked for) or dataset shape, holds a refit, or is a
        non-empty directory that is not a run directory.
    """
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(os.path.join(run_dir, REFIT_FILE)):
        source = read_json(os.path.join(run_dir, REFIT_FILE)).get("source", "another run")
        raise RunDirectoryError(f"{run_dir} holds a refit of {source}, not a training run: "
                                "train that run, or use another --logdir")
    if _holds_a_run(run_dir):
        saved, requested = load_config(run_dir).identity(), config.identity()
        changed = sorted(key for key in set(saved) | set(requested) if saved.get(key) != requested.get(key))
        extended = changed == ["epochs"] and requested["epochs"] > saved["epochs"]
        if changed and not extended:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {requested.get(k)!r}" for k in changed)
            hint = ("a run can be extended with more epochs, not shortened; " if changed == ["epochs"]
                    else "")
            raise RunDirectoryError(
                f"{run_dir} holds a run with a different configuration ({details}); "
                f"{hint}use another --logdir for a new run")
        check_dataset(run_dir, dataset, same_nodes=True)
        check_same_data(run_dir, dataset)
        if extended:
            write_json_atomic(config_path, config.to_dict())
        return True
    _check_not_foreign(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create run directory {run_dir}: {error.strerror}") from error
    write_json_atomic(os.path.join(run_dir, DATASET_FILE), dataset)
    write_json_atomic(config_path, config.to_dict())
    return False


def check_dataset(run_dir: str, dataset: dict, same_nodes: bool) -> None:
    """Raises RunDirectoryError if ``dataset`` does not fit the run's saved dataset shape.

    Dims and frames must always match the run's weights; the node count must match too
    when resuming training (``same_nodes``), but not to evaluate on, say, 10 nodes.
    """
    saved = read_json(os.path.join(run_dir, DATASET_FILE))
    keys = [k for k in DATASET_SHAPE_KEYS if same_nodes or k != "nodes"]
    mismatched = [k for k in keys if saved.get(k) != dataset.get(k)]
    if mismatched:
        details = ", ".join(f"{k} {dataset.get(k)} (run trained on {saved.get(k)})" for k in mismatched)
        raise RunDirectoryError(f"dataset {dataset.get('path')} does not match run {run_dir}: {details}; "
                                "use the run's dataset or another --logdir")


def check_same_data(run_dir: str, dataset: dict) -> None:
    """RunDirectoryError unless ``dataset`` is the data the run trains on: the same
    metadata fingerprint (a copy elsewhere is the same data) or, for runs saved without
    one, the same path. A run's results and checkpoints belong to its data."""
    saved = read_json(os.path.join(run_dir, DATASET_FILE))
    if "fingerprint" in saved:
        same = saved["fingerprint"] == dataset.get("fingerprint")
    else:
        same = os.path.abspath(saved.get("path", "")) == os.path.abspath(dataset.get("path", ""))
    if same:
        return
    if os.path.abspath(saved.get("path", "")) == os.path.abspath(dataset.get("path", "")):
        raise RunDirectoryError(f"dataset {dataset.get('path')} has changed since run {run_dir} trained "
                                "on it (its metadata differs); use another --logdir for the new data")
    raise RunDirectoryError(f"run {run_dir} trains on {saved.get('path')}, not on {dataset.get('path')} "
                            "(other data of the same shape): pass that --data, or use another "
                            "--logdir for a run on this data")


def load_config(run_dir: str) -> NRIConfig:
    """The configuration of an existing run; RunDirectoryError if there is none."""
    if not _holds_a_run(run_dir):
        raise RunDirectoryError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return NRIConfig.from_dict(read_json(os.path.join(run_dir, CONFIG_FILE)))


def _pending_best_path(run_dir: str, epoch: int) -> str:
    return os.path.join(run_dir, f".best-epoch-{epoch}.weights.h5")


def stage_best_weights(run_dir: str, model, epoch: int) -> None:
    """Writes the model's weights, the best so far, as epoch ``epoch``'s pending best
    (a hidden file); `settle_best_weights` makes them the run's best."""
    model.save_weights(_pending_best_path(run_dir, epoch))


def settle_best_weights(run_dir: str, best_epoch: int) -> None:
    """Makes the pending best weights of ``best_epoch`` (if any) the run's best.weights.h5,
    in one rename, and removes those of any other epoch.

    Call it once a checkpoint that records ``best_epoch`` is saved, and after restoring a
    checkpoint: pending weights of a later epoch were never checkpointed (a kill came
    between), those of the restored best epoch were checkpointed but not yet switched.
    """
    for entry in os.listdir(run_dir):
        match = _PENDING_BEST.fullmatch(entry)
        if match and int(match.group(1)) == best_epoch:
            os.replace(os.path.join(run_dir, entry), os.path.join(run_dir, BEST_WEIGHTS_FILE))
        elif match:
            os.remove(os.path.join(run_dir, entry))


def load_best_weights(run_dir: str, model) -> bool:
    """Loads the run's best model weights into a built ``model``; False if there are none yet.

    The optimizer's state in the file is not loaded: after training only evaluation and
    export read these weights (and an evaluation model's optimizer is not the run's).
    """
    path = os.path.join(run_dir, BEST_WEIGHTS_FILE)
    if not os.path.exists(path):
        return False
    optimizer = getattr(model, "optimizer", None)
    try:
        model.load_weights(path, objects_to_skip=[optimizer] if optimizer is not None else None)
    except OSError as error:                     # h5py: truncated or not an HDF5 file
        raise RunDirectoryError(f"{path} is unreadable ({error}); restore it from a copy, or train "
                                "again into a new --logdir") from None
    return True


def read_history(run_dir: str) -> list:
    """The run's history.jsonl as one dict per completed epoch, in order ([] before the first).

    A last line cut short (the process killed, or the disk full, while writing it) is left
    out: that epoch was never checkpointed, so a resumed run trains it again.

    Raises:
      RunDirectoryError naming the file and line when any other line is unreadable.
    """
    path = os.path.join(run_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        lines = stream.readlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise RunDirectoryError(f"{path} line {number} is unreadable ({error.msg}); restore the file from a "
                                    "copy, or delete that line (the history feeds the curves and timings, "
                                    "not the model)") from None
    return records


def seconds_trained(run_dir: str, epochs: int) -> float:
    """Seconds of the run's first ``epochs`` epochs by its history.jsonl (training and
    validation, whichever process trained them; 0 where the history is missing)."""
    return sum(record["seconds"] for record in read_history(run_dir) if record["epoch"] <= epochs)


def training_progress(run_dir: str, metric: str = BEST_CHECKPOINT_METRIC) -> dict:
    """{"best_epoch", "epochs", "finished"} of a run: results.json's once it has finished;
    before that (a run stopped or still training) the epochs of history.jsonl so far and
    the one with the lowest ``metric``, whose weights best.weights.h5 holds (None, 0 before
    the first epoch)."""
    results_path = os.path.join(run_dir, RESULTS_FILE)
    if os.path.exists(results_path):
        results = read_json(results_path)
        return {"best_epoch": results.get("best_epoch"), "epochs": results.get("epochs"), "finished": True}
    records = read_history(run_dir)
    scored = [record for record in records if metric in record]
    best = min(scored, key=lambda record: record[metric])["epoch"] if scored else None
    return {"best_epoch": best, "epochs": len(records), "finished": False}


def load_best_model(run_dir: str, nodes: int):
    """The run's model with the weights of its best epoch, built for ``nodes`` nodes.

    Returns:
      (model, config).
    Raises:
      RunDirectoryError: not a run directory, or no epoch has completed yet.
    """
    # The model (and TensorFlow) only here: the checks above run without loading them.
    from nri_tf.model import NRI

    config = load_config(run_dir)
    model = NRI(config)
    model.compile()  # `evaluate` needs a compiled model; no optimizer state is loaded
    model.build_for_nodes(nodes)
    if not load_best_weights(run_dir, model):
        raise missing_best_weights(run_dir, training_progress(run_dir)["best_epoch"])
    return model, config


def missing_best_weights(run_dir: str, best_epoch: int | None) -> RunDirectoryError:
    """The error for a run without best.weights.h5 whose best epoch so far is ``best_epoch``
    (None or 0: no epoch has completed): before the first epoch that is normal, after it
    the file was removed and only a copy brings those weights back."""
    if not best_epoch:
        return RunDirectoryError(f"run {run_dir} has no best weights yet: no epoch has completed, or "
                                 "training stopped while saving the first; re-run its train command")
    return RunDirectoryError(f"{os.path.join(run_dir, BEST_WEIGHTS_FILE)} (the weights of best epoch "
                             f"{best_epoch}) is missing; restore it from a copy, or train again into a "
                             "new --logdir")
