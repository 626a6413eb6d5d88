"""The models of the paper's Tables 1 and 2, each trained and scored on one dataset.

Every runner is ``run_<model>(experiment, seed) -> test metrics`` (a JSON-able dict):
edge accuracy for Table 1, ``mse_per_step`` for Table 2, or `NotApplicable`.
Definitions: paper appendix D.1.1 and `nri_tf.baselines`.

Building blocks:
  `Experiment`     one table's setting: dataset, budget, output directory, NRI overrides
  `RUNNERS`        model key (`nri_tf.cli.paper_results.ROW_NAMES`) -> runner
  `BUILDS_ON`      row -> the rows whose models its runner builds on
  `NotApplicable`  a model that does not exist for this data
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

import keras
import numpy as np

from data_pipelines.contract import has_edge_labels
from data_pipelines.datasets import first_frames, make_dataset
from data_pipelines.errors import UserError
from data_pipelines.files import read_json
from data_pipelines.normalisation import Normaliser
from data_pipelines.storage.reader import read_split
from nri_tf.baselines.correlation import correlation_scores, fit_threshold_rule
from nri_tf.baselines.lstm import LSTMPredictor
from nri_tf.baselines.predictors import static_prediction
from nri_tf.baselines.supervised import ACCURACY_METRIC, supervised_encoder
from nri_tf.cli.budgets import Budget, baseline_settings
from nri_tf.config import decoder_settings_of_others
from nri_tf import refinement
from nri_tf.evaluation import likeliest_graphs, prediction_horizon, prediction_mse, refined_evaluation
from nri_tf.model import NRI
from nri_tf.physics import SIMULATIONS as SIMULATED
from nri_tf.presets import config_for_dataset, source_rule
from trainers import loop, run_directory
from trainers.callbacks import EpochHistory, EpochProgress, RunState, RunStateCheckpoint, StopOnNonFiniteLoss
from trainers.refit import refit_run
from trainers.refit_options import REFINE_SWEEPS, RefitOptions

# How often a silent table (``--verbose 0``) reports a model's training: hours-long models
# say where they are, models shorter than this say nothing until their result.
PROGRESS_EVERY_SECONDS = 60.0


class NotApplicable(Exception):
    """A model that does not exist for this data (NRI (sim.) without a simulator)."""


@dataclasses.dataclass
class Experiment:
    """One table's setting: the dataset, the budget and where results go.

    nri_overrides: NRIConfig values on top of ``budget.nri`` (command-line flags).
    row_record: how a runner gets the record of a row it builds on (`BUILDS_ON`): the
      table's (`nri_tf.cli.tables.ModelRecords`: cached under that row's name, its time its
      own); None: by that row's runner, here.
    count_earlier_seconds: told the seconds of the epochs that earlier processes trained
      whenever a runner restores a model it trains (0 for a fresh one), so a resumed model's
      time is its whole training (`loop.TrainingOptions.count_earlier_seconds`).
    """
    data_dir: str
    metadata: object            # data_pipelines.storage.metadata.DatasetMetadata
    budget: Budget
    root: str
    verbose: int = 0
    log: Callable[[str], None] = print
    nri_overrides: dict = dataclasses.field(default_factory=dict)
    row_record: Callable[[str, int], dict] | None = None
    count_earlier_seconds: Callable[[float], None] | None = None

    def record(self, row: str, seed: int) -> dict:
        """The test record of ``row`` (a row in `BUILDS_ON` of the calling one) for ``seed``;
        NotApplicable where that row is."""
        record = self.row_record(row, seed) if self.row_record else RUNNERS[row](self, seed)
        if "not_applicable" in record:
            raise NotApplicable(record["not_applicable"])
        return record

    @property
    def baseline(self) -> dict:
        """The LSTM baselines' settings (`nri_tf.cli.budgets.baseline_settings`)."""
        rule = source_rule(self.budget.by_source, self.metadata.source, self.metadata.nodes)
        return baseline_settings(self.budget.baseline, self.metadata.source, rule, self.nri_overrides)

    def progress(self, name: str, monitor: str) -> list:
        """The callbacks that report the training of model ``name`` as it goes: a line every
        minute or so (`EpochProgress`) when Keras prints nothing (``verbose`` 0), else none."""
        if self.verbose:
            return []
        return [EpochProgress(lambda line: self.log(f"    {name}: {line}"), monitor, PROGRESS_EVERY_SECONDS)]

    def require_labels(self) -> None:
        """NotApplicable unless the data has a true graph."""

        if not has_edge_labels(self.metadata):
            raise NotApplicable(f"no true graph in {self.metadata.source} data")

    def require_complete_graph(self) -> None:
        """NotApplicable when the models reason over candidate edges (the data's rule or the
        flags): only NRI (learned) and Supervised run on them (the other models are the
        paper's, on every node pair)."""
        method = self.nri_config(42).candidate_edges
        if method != "complete":
            raise NotApplicable(f"complete graph only; this table reasons over {method} candidate edges")

    @property
    def frames(self) -> int:
        """Frames the models see (the training systems' length, 49 for the simulations)."""
        return self.metadata.frames["train"]

    def nri_config(self, seed: int, **changes):
        """The NRIConfig of an NRI-type model: flags (and the model's own ``changes``) win
        over the data's settings and the budget's; a model with its own decoder (NRI
        (sim.)) leaves out the flags of the other decoders, which are meant for those."""
        flags = dict(self.nri_overrides)
        if "decoder" in changes:
            for name in decoder_settings_of_others(changes["decoder"]):
                flags.pop(name, None)
        return config_for_dataset({**self.budget.nri, "seed": seed}, {**flags, **changes},
                                  self.metadata, self.budget.by_source, self.data_dir)

    def path(self, *parts: str) -> str:
        path = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def split(self, split: str, batch_size: int, *, training: bool = False, seed: int = 0,
              frames: int | None = None, candidates=None):
        """(trajectories, edges) batches of a split, normalised; training: shuffled, repeated.
        With ``candidates`` (a CandidateSpec) each batch also has its candidate edges."""
        dataset = make_dataset(self.data_dir, split, batch_size, shuffle=training, seed=seed,
                               drop_remainder=training, repeat=training, cache=True,
                               candidates=candidates)
        return dataset if frames is None else first_frames(dataset, frames)

    def arrays(self, split: str):
        """A whole split as normalised numpy arrays ([systems, nodes, frames, dims], edges)."""

        trajectories, edges = read_split(self.data_dir, split)
        return Normaliser.from_metadata(self.metadata).normalise(trajectories), edges

    def horizon(self) -> int:
        return prediction_horizon(self.metadata.frames["test"], self.frames, data_dir=self.data_dir)


def _weights_dir(experiment: Experiment, name: str) -> str:
    """Where `_fit` keeps the model ``name``'s checkpoints and best weights."""
    return os.path.join(experiment.root, "weights", name)


def _fit(experiment: Experiment, model, name: str, *, epochs: int, batch_size: int, seed: int,
         monitor: str = "val_nll", mode: str = "min", keep_best: bool = True, candidates=None) -> None:
    """Trains the compiled, built ``model`` on the training split, resumable: every epoch's
    model and optimizer state is checkpointed under ``weights/<name>`` (`RunState`), so a
    killed table resumes the model it was training after its last completed epoch; its
    history.jsonl has every epoch's seconds and metrics, as a run's. A NaN or infinite
    training loss stops it with FloatingPointError, as it stops a run.

    Args:
      monitor, mode: the epoch metric that picks the best epoch (lower is better unless
        ``mode="max"``); with ``keep_best`` it is validated on the validation split and the
        best epoch's weights are restored at the end, else the last epoch's stay.
      candidates: see `Experiment.split`.
    """
    steps_per_epoch = experiment.metadata.splits["train"] // batch_size
    if steps_per_epoch == 0:
        raise UserError(f"batch size {batch_size} is larger than the training split")
    run_dir = _weights_dir(experiment, name)
    os.makedirs(run_dir, exist_ok=True)
    model.optimizer.build(model.trainable_variables)
    state = RunState(run_dir, model)
    initial_epoch = state.restore()
    if initial_epoch:
        experiment.log(f"resuming {name} after epoch {initial_epoch} of {epochs}")
    if experiment.count_earlier_seconds:
        experiment.count_earlier_seconds(run_directory.seconds_trained(run_dir, initial_epoch))
    if initial_epoch < epochs:
        validation = experiment.split("valid", batch_size, frames=experiment.frames,
                                      candidates=candidates) if keep_best else None
        # Reseeded on resume, as `trainers.loop.train`, so epoch 1's order is not replayed.
        model.fit(experiment.split("train", batch_size, training=True, seed=seed + initial_epoch,
                                   frames=experiment.frames, candidates=candidates),
                  validation_data=validation, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, shuffle=False, verbose=experiment.verbose,
                  callbacks=[StopOnNonFiniteLoss(),
                             EpochHistory(run_dir, initial_epoch),
                             RunStateCheckpoint(state, monitor, mode),
                             *experiment.progress(name, monitor)])
    if keep_best:
        state.restore_best()
    state.close()


def _trajectory_predictor(experiment: Experiment, predictor, graph: str, config, learning_rate):
    """A built `NRI` on the fixed graph source ``graph`` with ``predictor`` as decoder (None:
    the config's), compiled with Adam(``learning_rate``)."""
    model = NRI(config, graph_source=graph, decoder=predictor)
    model.build((None, experiment.metadata.nodes, experiment.frames, config.dims))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


def _prediction_results(experiment: Experiment, predict, pass_recorded: bool = False) -> dict:
    test = experiment.split("test", 128)
    return {"mse_per_step": prediction_mse(predict, test, experiment.frames, experiment.horizon(),
                                           pass_recorded=pass_recorded)["mse_per_step"]}


def _correlation_accuracy(scores) -> dict:
    """Fits the threshold rule on training + validation, scores it on test.

    Args:
      scores: ``scores(split) -> (correlations [systems, edges], labels [systems, edges])``.
    """
    fit = [scores(split) for split in ("train", "valid")]
    rule = fit_threshold_rule(np.concatenate([f[0] for f in fit]), np.concatenate([f[1] for f in fit]))
    return {"edge_accuracy": rule.accuracy(*scores("test")), "rule": dataclasses.asdict(rule)}


def run_corr_path(experiment: Experiment, seed: int) -> dict:
    """Correlations of the flattened trajectories (the first ``frames`` frames)."""
    experiment.require_labels()

    def scores(split):
        trajectories, edges = experiment.arrays(split)
        trajectories = trajectories[:, :, :experiment.frames]
        return correlation_scores(trajectories.reshape(*trajectories.shape[:2], -1)), edges

    return _correlation_accuracy(scores)


def run_corr_lstm(experiment: Experiment, seed: int) -> dict:
    """An LSTM (single) trained with ground truth at every step; correlations of its last output."""
    experiment.require_labels()
    keras.utils.set_random_seed(seed)
    baseline = experiment.baseline
    config = experiment.nri_config(seed, prediction_steps=1)
    predictor = LSTMPredictor(config.dims, baseline["hidden"])
    model = _trajectory_predictor(experiment, predictor, "none", config, baseline["lr"])
    _fit(experiment, model, f"corr_lstm-seed{seed}", epochs=experiment.budget.corr_lstm_epochs,
         batch_size=baseline["batch_size"], seed=seed, monitor="loss", keep_best=False)

    def scores(split):
        features, labels = [], []
        for trajectories, edges in experiment.split(split, 256, frames=experiment.frames):
            features.append(predictor.final_features(trajectories).numpy())
            labels.append(edges.numpy())
        return correlation_scores(np.concatenate(features)), np.concatenate(labels)

    return _correlation_accuracy(scores)


def _run_nri(experiment: Experiment, seed: int, name: str, **changes) -> dict:
    config = experiment.nri_config(seed, **changes)
    run_name = f"{name}-seed{seed}"
    run_dir = os.path.join(experiment.root, "runs", run_name)
    options = loop.TrainingOptions(verbose=experiment.verbose, graph_images=0,
                                   count_earlier_seconds=experiment.count_earlier_seconds,
                                   callbacks=experiment.progress(run_name, run_directory.BEST_CHECKPOINT_METRIC))
    results = loop.train(config, experiment.data_dir, run_dir, options=options, log=experiment.log)
    return _run_row(results, run_dir)


def _run_row(results: dict, run_dir: str) -> dict:
    """A row's record of a run's test ``results`` (its results.json)."""
    return {"edge_accuracy": results.get("edge_accuracy"), "mse_per_step": results["mse_per_step"],
            "run": run_dir}


def run_nri_learned(experiment: Experiment, seed: int) -> dict:
    return _run_nri(experiment, seed, "nri_learned")


def run_nri_refined(experiment: Experiment, seed: int) -> dict:
    """NRI (learned)'s model (the same run, trained once for all its rows) with every test
    system's graph refined against its decoder (`nri_tf.refinement`, `REFINE_SWEEPS` sweeps
    or the exact search): the refined graphs' edge accuracy (Table 1) and predictions (Table 2)."""
    learned = _refinable(experiment, seed).record("nri_learned", seed)
    return _refined_row(experiment, seed, learned["run"])


def run_nri_recorded_window(experiment: Experiment, seed: int) -> dict:
    """NRI (learned)'s model (the same run) tested as the reference code tests a dynamic graph:
    the window the graph is re-inferred from before each predicted frame slides over the
    recorded test frames, not over the model's predictions (`NRI.predict_future`'s
    ``recorded``; an oracle, for comparison with the paper's Figure 6)."""
    if not experiment.nri_config(seed).dynamic_graph:
        raise NotApplicable("the recorded window is the dynamic graph's; this setting's graph is static")
    learned = experiment.record("nri_learned", seed)
    model, _ = run_directory.load_best_model(learned["run"], experiment.metadata.nodes)
    steps = experiment.horizon()
    return {**_prediction_results(
        experiment, lambda context, labels, recorded: model.predict_future(
            context, steps, dynamic_graph=True, recorded=recorded), pass_recorded=True),
        "run": learned["run"]}


def run_nri_refit_plain(experiment: Experiment, seed: int) -> dict:
    """NRI (learned)'s run refit on the training systems' refined graphs (`trainers.refit`:
    the decoder and the encoder, `REFINE_SWEEPS` sweeps or the exact search, the budget's
    ``refit_epochs``; a finished refit is reused), scored as it is: on its encoder's own
    graphs, as its exported model serves them (the refit's results.json)."""
    learned = _refinable(experiment, seed).record("nri_learned", seed)
    run_dir = os.path.join(experiment.root, "runs", f"nri_refit-seed{seed}")
    if not os.path.exists(os.path.join(run_dir, run_directory.RESULTS_FILE)):
        options = RefitOptions(refine_sweeps=REFINE_SWEEPS, epochs=experiment.budget.refit_epochs, seed=seed)
        refit_run(learned["run"], run_dir, options, log=experiment.log)
    return _run_row(read_json(os.path.join(run_dir, run_directory.RESULTS_FILE)), run_dir)


def run_nri_refit(experiment: Experiment, seed: int) -> dict:
    """`run_nri_refit_plain`'s refit run, scored as `run_nri_refined` scores NRI (learned)'s."""
    return _refined_row(experiment, seed, experiment.record("nri_refit_plain", seed)["run"])


def _refinable(experiment: Experiment, seed: int) -> Experiment:
    """``experiment``, or NotApplicable where its NRI model's graph cannot be refined."""
    experiment.require_labels()
    decoder = experiment.nri_config(seed).decoder
    if decoder != "mlp":
        raise NotApplicable(f"graph refinement needs the mlp decoder, not the {decoder} decoder")
    return experiment


def _refined_row(experiment: Experiment, seed: int, run_dir: str) -> dict:
    """The test metrics of ``run_dir``'s model with refined graphs (`refined_evaluation`)."""
    config = experiment.nri_config(seed)
    model, _ = run_directory.load_best_model(run_dir, experiment.metadata.nodes)
    candidates = loop.candidate_spec(config)
    test_batch = 128 if candidates.method == "complete" else config.batch_size
    with loop.refinement_progress(experiment.metadata.splits["test"], REFINE_SWEEPS, sys.stderr) as progress:
        refined = refined_evaluation(
            model, experiment.split("test", test_batch, candidates=candidates), config.frames, REFINE_SWEEPS,
            experiment.horizon(), progress)
    return {"edge_accuracy": refined["edge_accuracy"], "mse_per_step": refined["mse_per_step"],
            "refined": refined, "run": run_dir}


def run_nri_sim(experiment: Experiment, seed: int) -> dict:
    """The encoder trained through the ground-truth simulator (`nri_tf.physics`)."""

    if experiment.metadata.source not in SIMULATED:
        raise NotApplicable(f"no differentiable simulator for {experiment.metadata.source}")
    return _run_nri(experiment, seed, "nri_sim", decoder="sim", skip_first=False)


def run_supervised(experiment: Experiment, seed: int) -> dict:
    """The encoder alone on the true edges (on the same candidate edges), with the NRI
    (learned) model's training settings."""
    experiment.require_labels()
    keras.utils.set_random_seed(seed)
    config = experiment.nri_config(seed)
    candidates = loop.candidate_spec(config)
    schedule = loop.learning_rate_schedule(config, experiment.metadata.splits["train"] // config.batch_size)
    model = supervised_encoder(config, experiment.metadata.nodes, schedule, experiment.budget.supervised_dropout)
    _fit(experiment, model, f"supervised-seed{seed}", epochs=config.epochs,
         batch_size=config.batch_size, seed=seed, monitor="val_" + ACCURACY_METRIC, mode="max",
         candidates=candidates)
    # Large systems are tested at the training batch size: a batch of 256 would not fit.
    test_batch = 256 if candidates.method == "complete" else config.batch_size
    test = experiment.split("test", test_batch, frames=experiment.frames, candidates=candidates)
    return {"edge_accuracy": float(model.evaluate(test, return_dict=True, verbose=0)[ACCURACY_METRIC])}


def run_static(experiment: Experiment, seed: int) -> dict:
    steps = experiment.horizon()
    return _prediction_results(experiment, lambda context, labels: static_prediction(context, steps))


def _run_lstm(experiment: Experiment, seed: int, joint: bool) -> dict:
    keras.utils.set_random_seed(seed)
    baseline = experiment.baseline
    config = experiment.nri_config(seed)
    predictor = LSTMPredictor(config.dims, baseline["hidden"], joint=joint, num_nodes=experiment.metadata.nodes)
    model = _trajectory_predictor(experiment, predictor, "none", config, baseline["lr"])
    _fit(experiment, model, f"lstm_{'joint' if joint else 'single'}-seed{seed}",
         epochs=baseline["epochs"], batch_size=baseline["batch_size"], seed=seed)
    steps = experiment.horizon()
    return _prediction_results(experiment, lambda context, labels: model.predict_future(context, steps))


def run_lstm_single(experiment: Experiment, seed: int) -> dict:
    return _run_lstm(experiment, seed, joint=False)


def run_lstm_joint(experiment: Experiment, seed: int) -> dict:
    return _run_lstm(experiment, seed, joint=True)


def _fixed_graph_config(experiment: Experiment, seed: int):
    """The NRIConfig of a model on a given graph: NRI (learned)'s, with messages on both edge
    types, as in the paper (type 0 is a real type of the true graph)."""
    return experiment.nri_config(seed, skip_first=False)


def _fixed_graph_model(experiment: Experiment, seed: int, graph: str) -> NRI:
    """The NRI decoder on a given graph (untrained), compiled with the NRI (learned) model's
    settings and schedule."""
    keras.utils.set_random_seed(seed)
    config = _fixed_graph_config(experiment, seed)
    schedule = loop.learning_rate_schedule(config, experiment.metadata.splits["train"] // config.batch_size)
    return _trajectory_predictor(experiment, None, graph, config, schedule)


def _run_fixed_graph(experiment: Experiment, seed: int, graph: str) -> dict:
    """The NRI decoder trained on a given graph, its predictions scored."""
    model = _fixed_graph_model(experiment, seed, graph)
    config = model.nri_config
    _fit(experiment, model, f"nri_{graph}_graph-seed{seed}", epochs=config.epochs,
         batch_size=config.batch_size, seed=seed)
    steps = experiment.horizon()
    return _prediction_results(
        experiment, lambda context, labels: model.predict_future(context, steps, edge_labels=labels))


def run_nri_full_graph(experiment: Experiment, seed: int) -> dict:
    return _run_fixed_graph(experiment, seed, "full")


def run_nri_true_graph(experiment: Experiment, seed: int) -> dict:
    experiment.require_labels()
    return _run_fixed_graph(experiment, seed, "true")


def run_nri_true_graph_likeliest(experiment: Experiment, seed: int) -> dict:
    """What the likelihood can tell (beyond the paper): NRI (true graph)'s decoder (Table 2's
    model, trained once for both) scores every graph of each test system, and the likeliest
    is compared with the true one (`likeliest_graphs`). Not applicable where that search
    does not fit (`refinement.exact_search_fits`: e.g. 10 nodes, undirected)."""
    _refinable(experiment, seed)
    if not refinement.exact_search_fits(_fixed_graph_config(experiment, seed), experiment.metadata.nodes):
        raise NotApplicable(f"too many graphs of {experiment.metadata.nodes} nodes to search them all")
    experiment.record("nri_true_graph", seed)      # Table 2's model: trained here unless a table has it
    model = _fixed_graph_model(experiment, seed, "true")
    name = f"nri_true_graph-seed{seed}"
    if not run_directory.load_best_weights(_weights_dir(experiment, name), model):
        raise UserError(f"{_weights_dir(experiment, name)} has no trained weights although "
                        f"models/{name}.json says the model was trained: delete that file to train it again")
    return likeliest_graphs(model, experiment.split("test", 128), experiment.frames)


def _complete_graph_only(runner: Callable) -> Callable:
    """``runner`` behind `Experiment.require_complete_graph`."""
    def run(experiment: Experiment, seed: int) -> dict:
        experiment.require_complete_graph()
        return runner(experiment, seed)
    return run


# The rows whose models a row's runner builds on (`Experiment.record`), nearest first.
BUILDS_ON = {"nri_refined": ("nri_learned",), "nri_recorded_window": ("nri_learned",),
             "nri_refit_plain": ("nri_learned",),
             "nri_refit": ("nri_refit_plain", "nri_learned"),
             "nri_true_graph_likeliest": ("nri_true_graph",)}

RUNNERS = {
    "nri_learned": run_nri_learned, "nri_refined": run_nri_refined,
    "nri_recorded_window": run_nri_recorded_window,
    "nri_refit_plain": run_nri_refit_plain, "nri_refit": run_nri_refit,
    "supervised": run_supervised,
    **{key: _complete_graph_only(runner) for key, runner in {
        "corr_path": run_corr_path, "corr_lstm": run_corr_lstm, "nri_sim": run_nri_sim,
        "static": run_static, "lstm_single": run_lstm_single, "lstm_joint": run_lstm_joint,
        "nri_full_graph": run_nri_full_graph, "nri_true_graph": run_nri_true_graph,
        "nri_true_graph_likeliest": run_nri_true_graph_likeliest}.items()},
}

