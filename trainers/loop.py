"""The training loop: epochs with validation, best checkpoint, resume, test evaluation.

`train` is what `python -m nri_tf.train` runs once it has a config and a dataset. It uses
`model.fit` with standard Keras callbacks, so everything Keras offers (progress bar,
TensorBoard, distribution strategies) applies unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from typing import Callable, TextIO

import keras
import tensorflow as tf

from data_pipelines.candidate_selection import CandidateSpec
from data_pipelines.contract import SPLITS, has_edge_labels, position_dims
from data_pipelines.datasets import first_frames, make_dataset
from data_pipelines.errors import DatasetError
from data_pipelines.normalisation import Normaliser
from data_pipelines.progress import progress_bar
from data_pipelines.storage.reader import check_split, metadata_fingerprint, read_metadata
from nri_tf import evaluation, refinement
from nri_tf.config import ConfigError, NRIConfig
from nri_tf.model import NRI
from trainers import callbacks as run_callbacks, run_directory
from trainers.refit_options import REFINE_SWEEPS
from trainers.strategy import is_chief, process_count


@dataclasses.dataclass
class TrainingOptions:
    """How to run training, as opposed to what to train (NRIConfig).

    jit_compile: XLA-compile the train/test steps ("auto" lets Keras decide).
    verbose: Keras progress output (0 silent, 1 progress bar per epoch, 2 one line per epoch).
    graph_images: validation systems drawn in TensorBoard each epoch (0 disables).
    refine_sweeps: the test evaluation also scores the graphs refined against the decoder
      (`nri_tf.refinement`) with this many sweeps; None: `default_refine_sweeps`.
    count_earlier_seconds: told, once the run is restored, the seconds of the epochs that
      earlier processes trained (`run_directory.seconds_trained`), so that a caller timing
      this call can count a resumed run's whole training.
    time_limit_seconds: stop training once another epoch would end past this much training
      time, counted over every process that trained the run (`callbacks.StopAtTimeLimit`);
      a run already past it trains no further and is evaluated as it is. None: no limit.
      Not with several workers, whose clocks could disagree on the last epoch.
    callbacks: more Keras callbacks for ``model.fit``, after the run's own (e.g.
      `callbacks.EpochProgress` where Keras prints nothing).
    """
    jit_compile: bool | str = "auto"
    verbose: int | str = "auto"
    graph_images: int = 3
    refine_sweeps: int | None = None
    count_earlier_seconds: Callable[[float], None] | None = None
    time_limit_seconds: float | None = None
    callbacks: list = dataclasses.field(default_factory=list)


def default_refine_sweeps(config: NRIConfig, nodes: int, labelled: bool) -> int:
    """`REFINE_SWEEPS` where refining the test graphs is cheap and can be scored: the MLP
    decoder on data with a true graph, complete graphs small enough for the exact search
    (`nri_tf.refinement.exact_search_fits`: 5 nodes, about 15 s for 1000 springs5 systems);
    else 0 (the paper's evaluation alone)."""
    cheap = config.decoder == "mlp" and refinement.exact_search_fits(config, nodes)
    return REFINE_SWEEPS if labelled and cheap else 0


def dataset_description(data_dir: str, frames: int | None = None) -> dict:
    """{"path", "nodes", "dims", "frames", "edge_types", "splits", "fingerprint"} of a
    dataset directory (`data_pipelines.storage.reader.metadata_fingerprint`)."""
    metadata = read_metadata(data_dir)
    return {"path": os.path.abspath(data_dir), "nodes": metadata.nodes, "dims": metadata.dims,
            "frames": frames or metadata.frames["train"], "edge_types": metadata.edge_types,
            "splits": dict(metadata.splits), "fingerprint": metadata_fingerprint(metadata)}


def candidate_spec(config: NRIConfig) -> CandidateSpec:
    """The candidate edges a config trains on (`NRIConfig.candidate_edges` and its parameters)."""
    return CandidateSpec(config.candidate_edges, config.candidate_k, config.candidate_radius)


def check_training_data(config: NRIConfig, data_dir: str, metadata) -> None:
    """Checks, before anything is written or trained, everything a run will read: the
    candidate edges fit the data, the train, valid (best epoch) and test (results) splits
    with enough frames, and every record of them (`data_pipelines.storage.reader.check_split`:
    CRCs, shapes, finite values, edge labels, stored edge lists).

    Raises:
      DatasetError naming the split, file or system at fault; CandidateSpecError for
      candidate settings the data cannot give.
    """
    candidate_spec(config).check(metadata)
    missing = [split for split in SPLITS if split not in metadata.splits]
    if missing:
        raise DatasetError(f"{data_dir}: no {' or '.join(missing)} split; training needs train, "
                           "valid (to pick the best epoch) and test (for the results)")
    split_frames = metadata.frames            # {split: frames per system}
    if split_frames["train"] < 2:
        raise DatasetError(f"{data_dir}: training systems have {split_frames['train']} frame; the decoder "
                           "needs at least 2 (it predicts each frame from the one before)")
    if split_frames["valid"] < split_frames["train"]:
        raise DatasetError(f"{data_dir}: validation systems have {split_frames['valid']} frames, fewer than "
                           f"the {split_frames['train']} of the training systems")
    evaluation.prediction_horizon(split_frames["test"], config.frames, data_dir=data_dir)
    for split in SPLITS:
        check_split(data_dir, split, metadata)


def learning_rate_schedule(config: NRIConfig, steps_per_epoch: int):
    """``config.lr`` multiplied by ``config.gamma`` every ``config.lr_decay`` epochs.

    The schedule reads the optimizer's iteration count, which checkpoints restore.
    """
    return keras.optimizers.schedules.ExponentialDecay(
        config.lr, decay_steps=config.lr_decay * steps_per_epoch, decay_rate=config.gamma,
        staircase=True)


def kl_weight_schedule(config: NRIConfig, steps_per_epoch: int):
    """Training's weight on the KL term, rising linearly from 0 to 1 over ``config.kl_warmup``
    epochs and 1 after (a schedule of the optimizer's iteration count, which checkpoints
    restore); None without warm-up."""
    if not config.kl_warmup:
        return None
    return keras.optimizers.schedules.PolynomialDecay(
        0.0, decay_steps=config.kl_warmup * steps_per_epoch, end_learning_rate=1.0, power=1.0)


def build_model(config: NRIConfig, num_nodes: int, steps_per_epoch: int,
                jit_compile: bool | str = "auto") -> NRI:
    """An NRI model with its Adam optimizer (`learning_rate_schedule`) and KL weight
    (`kl_weight_schedule`), built for ``num_nodes`` nodes (`NRI.build_for_nodes`)."""
    model = NRI(config)
    model.kl_weight = kl_weight_schedule(config, steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(config, steps_per_epoch)),
                  jit_compile=jit_compile)
    model.build_for_nodes(num_nodes)
    model.optimizer.build(model.trainable_variables)
    return model


def split_dataset(data_dir: str, split: str, config: NRIConfig, *, training: bool, seed: int,
                   frames: int | None, labelled: bool = True) -> tf.data.Dataset:
    """The split in global batches, trajectories cut to ``frames``; (trajectories, edge_labels)
    batches, or trajectories alone when the data has no true graph (not ``labelled``).

    Keras distributes it over the replicas of the model's strategy; under a multi-worker
    strategy tf.data's auto-sharding gives each worker its own shard files (falling back
    to every n-th batch when there are fewer files than workers). A dataset function with
    an explicit `input_context` would express the same thing, but Keras 3's `fit` cannot
    build a model from a multi-worker distributed batch.
    """
    # Training data repeats and `fit` counts the epoch's steps, so every epoch has the
    # same number of full batches on every replica.
    dataset = make_dataset(data_dir, split, config.batch_size, shuffle=training, seed=seed,
                           drop_remainder=training, repeat=training, cache=True,
                           candidates=candidate_spec(config))
    if frames is not None:
        dataset = first_frames(dataset, frames)
    return dataset if labelled else evaluation.trajectories_only(dataset)


def train(config: NRIConfig, data_dir: str, run_dir: str, strategy: tf.distribute.Strategy | None = None,
          options: TrainingOptions | None = None, log: Callable[[str], None] = print) -> dict:
    """Trains (or resumes) the run in ``run_dir`` and evaluates its best checkpoint on the test split.

    Args:
      config: what to train; ``dims`` and ``frames`` must match the dataset.
      data_dir: a native dataset directory (see `data_pipelines.storage`).
      run_dir: the run directory (see `trainers.run_directory`); resumed if it exists.
      strategy: a tf.distribute strategy (default: the current one).
      options: how to train (`TrainingOptions`).
      log: where progress messages go.
    Everything the run will read is checked first (`check_training_data`); only then does
    the chief claim the run directory (`run_directory.claimed`: one training process at a
    time) and write into it.

    Returns:
      the test results written to ``run_dir/results.json``. Data without a true graph
      (metadata ``edge_labels: "none"``, e.g. motion capture) is fed without its
      placeholder labels: no edge accuracy anywhere. The test rollout re-infers the graph
      on a sliding window when ``config.dynamic_graph``.
    """
    options = options or TrainingOptions()
    strategy = strategy or tf.distribute.get_strategy()
    dataset = dataset_description(data_dir, config.frames)
    metadata = read_metadata(data_dir)
    labelled = has_edge_labels(metadata)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch size {config.batch_size} is not divisible by the {replicas} replicas")
    steps_per_epoch = dataset["splits"]["train"] // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"batch size {config.batch_size} is larger than the training split "
                          f"({dataset['splits']['train']} systems)")
    if options.time_limit_seconds is not None and process_count(strategy) > 1:
        raise ConfigError("--time-limit needs a single training process: several workers could "
                          "disagree on which epoch is the last")
    check_training_data(config, data_dir, metadata)
    # Only the chief writes into the run directory; it holds the lock while it does.
    with run_directory.claimed(run_dir) if chief else contextlib.nullcontext():
        resumed = run_directory.prepare(run_dir, config, dataset) if chief else False

        keras.utils.set_random_seed(config.seed)  # weight initialisation, dropout
        with strategy.scope():
            model = build_model(config, dataset["nodes"], steps_per_epoch, options.jit_compile)
        state = run_callbacks.RunState(run_dir, model, chief=chief)
        initial_epoch = state.restore()
        if resumed or initial_epoch:
            log(f"resuming {run_dir} after epoch {initial_epoch} of {config.epochs}")
        earlier_seconds = run_directory.seconds_trained(run_dir, initial_epoch)
        if options.count_earlier_seconds:
            options.count_earlier_seconds(earlier_seconds)
        out_of_time = options.time_limit_seconds is not None and earlier_seconds >= options.time_limit_seconds
        if out_of_time and initial_epoch < config.epochs:
            log(f"not training: the run has trained {earlier_seconds / 60:.1f} minutes, the --time-limit "
                f"is {options.time_limit_seconds / 60:g} minutes; evaluating its best epoch")
        if chief:
            run_callbacks.trim_event_files(os.path.join(run_dir, run_directory.LOG_DIR),
                                           initial_epoch, steps_per_epoch)

        if initial_epoch < config.epochs and not out_of_time:
            # Reseed shuffling on resume, so a resumed run does not replay epoch 1's order. The
            # encoder reads the first config.frames frames, the decoder reconstructs them all.
            frames = metadata.frames["train"]
            train_data = split_dataset(data_dir, "train", config, training=True,
                                        seed=config.seed + initial_epoch, frames=frames,
                                        labelled=labelled)
            valid_data = split_dataset(data_dir, "valid", config, training=False,
                                        seed=config.seed, frames=frames, labelled=labelled)
            fit_callbacks = [run_callbacks.StopOnNonFiniteLoss(), run_callbacks.ScheduleLogger()]
            if options.time_limit_seconds is not None:
                fit_callbacks.append(run_callbacks.StopAtTimeLimit(options.time_limit_seconds, earlier_seconds, log))
            if chief:
                logs = os.path.join(run_dir, run_directory.LOG_DIR)
                fit_callbacks.append(run_callbacks.EpochTensorBoard(logs, write_graph=False, profile_batch=0))
                run_callbacks.log_hparams(logs, config, data_dir, os.path.basename(os.path.normpath(run_dir)))
                if options.graph_images:
                    shown = make_dataset(data_dir, "valid", options.graph_images, shuffle=False,
                                         candidates=candidate_spec(config))
                    trajectories, labels, *candidates = next(iter(shown))
                    fit_callbacks.append(run_callbacks.GraphImages(
                        logs, trajectories[:, :, :config.frames], labels if labelled else None, metadata,
                        candidates[0] if candidates else None))
                fit_callbacks.append(run_callbacks.EpochHistory(run_dir, initial_epoch))
            fit_callbacks.append(run_callbacks.RunStateCheckpoint(state, run_directory.BEST_CHECKPOINT_METRIC))
            with run_callbacks.interrupts_between_batches() as stop_on_interrupt:
                model.fit(train_data, validation_data=valid_data, epochs=config.epochs,
                          initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch, shuffle=False,
                          callbacks=[stop_on_interrupt, *fit_callbacks, *options.callbacks],
                          verbose=options.verbose)

        best_epoch = state.restore_best()
        state.close()
        refine_sweeps = options.refine_sweeps
        if refine_sweeps is None:
            refine_sweeps = default_refine_sweeps(config, dataset["nodes"], labelled)
        results = evaluate_test_split(model, config, data_dir, metadata, refine_sweeps,
                                      progress=sys.stderr if options.verbose and chief else None)
        results.update(best_epoch=best_epoch, epochs=int(state.epoch.numpy()), data=dataset["path"])
        if chief:
            run_directory.write_json_atomic(os.path.join(run_dir, run_directory.RESULTS_FILE), results)
        return results


def evaluate_test_split(model, config: NRIConfig, data_dir: str, metadata, refine_sweeps: int = 0,
                        progress: TextIO | None = None) -> dict:
    """`nri_tf.evaluation.evaluate` of ``model`` (trained as ``config`` says) on the test split
    of ``data_dir`` (whose metadata is ``metadata``): without labels where the data has no
    true graph; ``refine_sweeps`` (data with labels) also scores refined graphs, with a
    progress bar on the stream ``progress`` (`refinement_progress`)."""
    labelled = has_edge_labels(metadata)
    test_data = make_dataset(data_dir, "test", config.batch_size, shuffle=False,
                             candidates=candidate_spec(config))
    if not labelled:
        test_data = evaluation.trajectories_only(test_data)
    refine_sweeps = refine_sweeps if labelled else 0
    with refinement_progress(metadata.splits["test"], refine_sweeps, progress) as refine_progress:
        return evaluation.evaluate(model, test_data, config.frames, dynamic_graph=config.dynamic_graph,
                                   normaliser=Normaliser.from_metadata(metadata),
                                   position_dims=position_dims(metadata),
                                   refine_sweeps=refine_sweeps, refine_progress=refine_progress)


def refinement_progress(systems: int, sweeps: int, stream: TextIO | None, label: str = "refining test graphs"):
    """`data_pipelines.progress.progress_bar` of refining ``systems`` graphs with ``sweeps``
    sweeps (minutes for 10-node systems): no bar without sweeps or ``stream``."""
    return progress_bar(label, systems, stream if sweeps else None, unit="systems")
