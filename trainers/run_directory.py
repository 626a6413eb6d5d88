"""The on-disk layout of one training run, and the checks that keep earlier runs intact.

    RUN_DIR/
      config.json        the NRIConfig the run trains (written once, before training)
      dataset.json       the dataset it trains on: path and shape (nodes, dims, frames)
      checkpoints/       latest completed epoch: model, optimizer, epoch, best-so-far
      best.weights.h5    model weights of the epoch with the best validation score
      logs/              TensorBoard event files (train/, validation/, images/)
      history.jsonl      one line per epoch: its seconds and train/validation metrics
      results.json       test metrics of the best checkpoint

Re-running the same command on an existing run directory resumes it; asking for more
epochs extends it (finished or not: training continues after its last completed epoch); any
other change of config, fewer epochs, or an incompatible dataset is refused before anything
is written.
"""

from __future__ import annotations

import json
import os
import tempfile

from nri_tf.config import NRIConfig

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"
RESULTS_FILE = "results.json"
HISTORY_FILE = "history.jsonl"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best.weights.h5"
LOG_DIR = "logs"
# Dataset properties a run's weights depend on; a resumed or evaluated run must match them.
DATASET_SHAPE_KEYS = ("nodes", "dims", "frames")


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def write_json_atomic(path: str, payload: dict) -> None:
    """Writes ``payload`` as JSON so that readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_json(path: str) -> dict:
    with open(path) as stream:
        return json.load(stream)


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
        more epochs than asked for) or dataset shape, or is a non-empty directory that is
        not a run directory.
    """
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(config_path):
        saved, requested = read_json(config_path), config.to_dict()
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
        if extended:
            write_json_atomic(config_path, requested)
        return True
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        raise RunDirectoryError(f"{run_dir} exists, is not empty and holds no {CONFIG_FILE}; "
                                "choose another --logdir")
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


def load_config(run_dir: str) -> NRIConfig:
    """The configuration of an existing run; RunDirectoryError if there is none."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise RunDirectoryError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return NRIConfig.load(path)


def save_best_weights(run_dir: str, model) -> None:
    """Writes the model's weights as the run's best, atomically (old file or new, never half)."""
    path = os.path.join(run_dir, BEST_WEIGHTS_FILE)
    temporary = os.path.join(run_dir, ".tmp-" + BEST_WEIGHTS_FILE)
    model.save_weights(temporary)
    os.replace(temporary, path)


def load_best_weights(run_dir: str, model) -> bool:
    """Loads the run's best model weights into a built ``model``; False if there are none yet.

    The optimizer's state in the file is not loaded: after training only evaluation and
    export read these weights (and an evaluation model's optimizer is not the run's).
    """
    path = os.path.join(run_dir, BEST_WEIGHTS_FILE)
    if not os.path.exists(path):
        return False
    optimizer = getattr(model, "optimizer", None)
    model.load_weights(path, objects_to_skip=[optimizer] if optimizer is not None else None)
    return True


def load_best_model(run_dir: str, nodes: int):
    """The run's model with the weights of its best epoch, built for ``nodes`` nodes.

    Returns:
      (model, config).
    Raises:
      RunDirectoryError: not a run directory, or no epoch has completed yet.
    """
    import tensorflow as tf

    from nri_tf.model import NRI

    config = load_config(run_dir)
    model = NRI(config)
    model.compile()  # `evaluate` needs a compiled model; no optimizer state is loaded
    model(tf.zeros([1, nodes, config.frames, config.dims]))
    if not load_best_weights(run_dir, model):
        raise RunDirectoryError(f"run {run_dir} has no best weights yet (no epoch completed)")
    return model, config
