"""`python -m nri_tf.experiments`: the paper's Tables 1 and 2, at a chosen compute budget.

    python -m nri_tf.experiments table1 --simulation springs --num-nodes 5 --budget cpu
    python -m nri_tf.experiments table2 --simulation charged --budget smoke --seeds 2
    python -m nri_tf.experiments table2 --data data/cmu35 --budget smoke --decoder rnn --edge-types 4 --skip-first
    python -m nri_tf.experiments report experiments/springs5-cpu experiments/charged5-cpu --output docs

Flags of `python -m nri_tf.train` (``--decoder rnn``, ...) change every NRI-type model of
the budget (learned, sim., full / true graph); ``--batch-size`` changes every model's.

Table 1 is edge accuracy (%) on the test systems: Corr. (path), Corr. (LSTM), NRI (sim.),
NRI (learned), Supervised. Table 2 is the MSE of the frames predicted 1, 10 and 20 steps
after the 49 the models see: Static, LSTM (single), LSTM (joint), NRI (full graph),
NRI (learned), NRI (true graph). Definitions: paper appendix D.1.1 and `nri_tf.baselines`.

The command simulates the dataset the budget asks for (cached like the training command's
built-in data) unless ``--data`` names one, trains every model of the table for every seed,
and writes into the output directory (default ``experiments/<source><nodes>-<budget>``):

  table1.md / table2.md       the table, ours (mean +- standard error over seeds) next to
                              the paper's numbers
  table1.json / table2.json   the same numbers, per-seed values and wall times
  models/<model>-seed<S>.json each finished model's test metrics: a re-run (after an
                              interruption, or for the other table) reuses them
  runs/                       the NRI runs (`nri_tf.train` run directories, resumable)

Both tables share the output directory, so NRI (learned) is trained once for both.
Seeds vary the models' initialisation, shuffling and sampling; the dataset stays the same.
On data without a true graph (motion capture, basketball: ``--data``) the models that need
one (correlation thresholds, supervised, true graph) are reported as not applicable.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from typing import Callable

TABLE_ROWS = {
    "table1": ("corr_path", "corr_lstm", "nri_sim", "nri_learned", "supervised"),
    "table2": ("static", "lstm_single", "lstm_joint", "nri_full_graph", "nri_learned",
               "nri_true_graph"),
}
ROW_NAMES = {
    "corr_path": "Corr. (path)", "corr_lstm": "Corr. (LSTM)", "nri_sim": "NRI (sim.)",
    "nri_learned": "NRI (learned)", "supervised": "Supervised", "static": "Static",
    "lstm_single": "LSTM (single)", "lstm_joint": "LSTM (joint)",
    "nri_full_graph": "NRI (full graph)", "nri_true_graph": "NRI (true graph)",
}
SIMULATIONS = ("springs", "charged", "kuramoto")
TABLE2_STEPS = (1, 10, 20)

# Paper, Table 1: edge accuracy in %, (5 nodes, 10 nodes).
PAPER_TABLE1 = {
    "springs": {"corr_path": (52.4, 50.4), "corr_lstm": (52.7, 54.9), "nri_sim": (99.8, 98.2),
                "nri_learned": (99.9, 98.4), "supervised": (99.9, 98.8)},
    "charged": {"corr_path": (55.8, 51.4), "corr_lstm": (54.2, 52.7), "nri_sim": (59.6, 53.7),
                "nri_learned": (82.1, 70.8), "supervised": (95.0, 94.6)},
    "kuramoto": {"corr_path": (62.8, 59.3), "corr_lstm": (54.4, 56.2),
                 "nri_learned": (96.0, 75.7), "supervised": (99.7, 97.1)},
}
# Paper, Table 2: MSE after 1 / 10 / 20 predicted steps, 5 nodes.
PAPER_TABLE2 = {
    "springs": {"static": (7.93e-5, 7.59e-3, 2.82e-2), "lstm_single": (2.27e-6, 4.69e-4, 4.90e-3),
                "lstm_joint": (4.13e-8, 2.19e-5, 7.02e-4), "nri_full_graph": (1.66e-5, 1.64e-3, 6.31e-3),
                "nri_learned": (3.12e-8, 3.29e-6, 2.13e-5), "nri_true_graph": (1.69e-11, 1.32e-9, 7.06e-6)},
    "charged": {"static": (5.09e-3, 2.26e-2, 5.42e-2), "lstm_single": (2.71e-3, 7.05e-3, 1.65e-2),
                "lstm_joint": (1.68e-3, 6.45e-3, 1.49e-2), "nri_full_graph": (1.09e-3, 3.78e-3, 9.24e-3),
                "nri_learned": (1.05e-3, 3.21e-3, 7.06e-3), "nri_true_graph": (1.04e-3, 3.03e-3, 5.71e-3)},
    "kuramoto": {"static": (5.75e-2, 3.79e-1, 3.39e-1), "lstm_single": (7.81e-4, 3.80e-2, 8.08e-2),
                 "lstm_joint": (3.44e-4, 1.29e-2, 4.74e-2), "nri_full_graph": (2.15e-2, 5.19e-2, 8.96e-2),
                 "nri_learned": (1.40e-2, 2.01e-2, 3.26e-2), "nri_true_graph": (1.35e-2, 1.54e-2, 2.19e-2)},
}


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much data and training one table gets.

    data: split sizes of the simulated dataset.
    nri: NRIConfig values of every NRI-type model (learned, sim., full / true graph) and
      of the supervised encoder.
    baseline: "hidden", "epochs", "batch_size", "lr" of the LSTM baselines.
    corr_lstm_epochs: Corr. (LSTM)'s training epochs (10 in the paper).
    by_source: NRIConfig values per dataset source over ``nri`` (`nri_tf.config.Preset.by_source`:
      e.g. type 0 = no edge where the simulator has a no-interaction type).
    """
    help: str
    data: dict
    nri: dict
    baseline: dict
    corr_lstm_epochs: int
    by_source: dict


def _budgets() -> dict:
    from nri_tf.config import PAPER_DATA, PRESETS

    def sizes(data):
        return {k: data[k] for k in ("num_train", "num_valid", "num_test")}

    fast = PRESETS["fast"]
    return {
        "smoke": Budget("minutes, for CI: 200 training systems, hidden 16, 2 epochs",
                        data={"num_train": 200, "num_valid": 50, "num_test": 50},
                        nri={"encoder_hidden": 16, "decoder_hidden": 16, "batch_size": 25, "lr": 1e-3,
                             "epochs": 2},
                        baseline={"hidden": 16, "epochs": 2, "batch_size": 25, "lr": 1e-3},
                        corr_lstm_epochs=1, by_source=fast.by_source),
        "cpu": Budget("about an hour on 2 CPU cores for springs5: the default training preset "
                      "('fast': 10k systems, hidden 64, 30 epochs) for the NRI models and the "
                      "supervised encoder, 10 epochs at hidden 64 for the LSTM baselines",
                      data=sizes(fast.data), nri=dict(fast.config),
                      baseline={"hidden": 64, "epochs": 10, "batch_size": 32, "lr": 1e-3},
                      corr_lstm_epochs=10, by_source=fast.by_source),
        "paper": Budget("the paper's data sizes (50k/10k/10k) and settings (hidden 256, 500 "
                        "epochs): days on a CPU",
                        data=sizes(PAPER_DATA), nri={},
                        baseline={"hidden": 256, "epochs": 500, "batch_size": 128, "lr": 5e-4},
                        corr_lstm_epochs=10, by_source=PRESETS["paper"].by_source),
    }


class NotApplicable(Exception):
    """A model that does not exist for this data (NRI (sim.) without a simulator)."""


@dataclasses.dataclass
class Experiment:
    """One table's setting: the dataset, the budget and where results go.

    nri_overrides: NRIConfig values on top of ``budget.nri`` (command-line flags).
    """
    data_dir: str
    metadata: object            # data_pipelines.storage.DatasetMetadata
    budget: Budget
    root: str
    verbose: int = 0
    log: Callable[[str], None] = print
    nri_overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def baseline(self) -> dict:
        """The budget's LSTM settings, with a command-line batch size."""
        return {**self.budget.baseline, **{k: v for k, v in self.nri_overrides.items() if k == "batch_size"}}

    def require_labels(self) -> None:
        """NotApplicable unless the data has a true graph."""
        from nri_tf.evaluation import has_edge_labels

        if not has_edge_labels(self.metadata):
            raise NotApplicable(f"no true graph in {self.metadata.source} data")

    @property
    def frames(self) -> int:
        """Frames the models see (the training systems' length, 49 for the simulations)."""
        return self.metadata.frames["train"]

    def nri_config(self, seed: int, **changes):
        from nri_tf.config import config_for_dataset

        # Flags (and the model's own changes) win over the data's settings and the budget's.
        return config_for_dataset({**self.budget.nri, "seed": seed}, {**self.nri_overrides, **changes},
                                  self.metadata, self.budget.by_source)

    def path(self, *parts: str) -> str:
        path = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def split(self, split: str, batch_size: int, *, training: bool = False, seed: int = 0,
              frames: int | None = None):
        """(trajectories, edges) batches of a split, normalised; training: shuffled, repeated."""
        from data_pipelines.datasets import first_frames, make_dataset

        dataset = make_dataset(self.data_dir, split, batch_size, shuffle=training, seed=seed,
                               drop_remainder=training, repeat=training, cache=True)
        return dataset if frames is None else first_frames(dataset, frames)

    def arrays(self, split: str):
        """A whole split as normalised numpy arrays ([systems, nodes, frames, dims], edges)."""
        from data_pipelines.datasets import Normaliser
        from data_pipelines.storage import read_split

        trajectories, edges = read_split(self.data_dir, split)
        return Normaliser.from_metadata(self.metadata).normalise(trajectories), edges

    def horizon(self) -> int:
        from nri_tf.evaluation import prediction_horizon

        return prediction_horizon(self.metadata.frames["test"], self.frames)


# --- Training helpers ---------------------------------------------------------------------

def _fit_best(experiment: Experiment, model, name: str, *, epochs: int, batch_size: int,
              seed: int, monitor: str, mode: str = "min") -> None:
    """Trains the compiled ``model`` on the training split and restores its best epoch on
    validation (``monitor``, lower is better unless ``mode="max"``)."""
    import keras

    steps_per_epoch = experiment.metadata.splits["train"] // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training split")
    weights = experiment.path("weights", f"{name}.weights.h5")
    checkpoint = keras.callbacks.ModelCheckpoint(weights, monitor=monitor, mode=mode,
                                                 save_best_only=True, save_weights_only=True)
    model.fit(experiment.split("train", batch_size, training=True, seed=seed, frames=experiment.frames),
              validation_data=experiment.split("valid", batch_size, frames=experiment.frames),
              epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[checkpoint], shuffle=False,
              verbose=experiment.verbose)
    model.load_weights(weights)


def _trajectory_predictor(experiment: Experiment, predictor, graph: str, config, learning_rate):
    """A built `NRI` on the fixed graph source ``graph`` with ``predictor`` as decoder (None:
    the config's), compiled with Adam(``learning_rate``)."""
    import keras

    from nri_tf.model import NRI

    model = NRI(config, graph_source=graph, decoder=predictor)
    model.build((None, experiment.metadata.nodes, experiment.frames, config.dims))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


def _prediction_results(experiment: Experiment, predict) -> dict:
    from nri_tf.evaluation import prediction_mse

    test = experiment.split("test", 128)
    return {"mse_per_step": prediction_mse(predict, test, experiment.frames, experiment.horizon())["mse_per_step"]}


# --- The models ---------------------------------------------------------------------------

def _correlation_accuracy(scores) -> dict:
    """Fits the threshold rule on training + validation, scores it on test.

    Args:
      scores: ``scores(split) -> (correlations [systems, edges], labels [systems, edges])``.
    """
    import numpy as np

    from nri_tf.baselines.correlation import fit_threshold_rule

    fit = [scores(split) for split in ("train", "valid")]
    rule = fit_threshold_rule(np.concatenate([f[0] for f in fit]), np.concatenate([f[1] for f in fit]))
    return {"edge_accuracy": rule.accuracy(*scores("test")), "rule": dataclasses.asdict(rule)}


def run_corr_path(experiment: Experiment, seed: int) -> dict:
    """Correlations of the flattened trajectories (the first ``frames`` frames)."""
    experiment.require_labels()
    from nri_tf.baselines.correlation import correlation_scores

    def scores(split):
        trajectories, edges = experiment.arrays(split)
        trajectories = trajectories[:, :, :experiment.frames]
        return correlation_scores(trajectories.reshape(*trajectories.shape[:2], -1)), edges

    return _correlation_accuracy(scores)


def run_corr_lstm(experiment: Experiment, seed: int) -> dict:
    """An LSTM (single) trained with ground truth at every step; correlations of its last output."""
    import keras
    import numpy as np

    from nri_tf.baselines.correlation import correlation_scores
    from nri_tf.baselines.lstm import LSTMPredictor

    experiment.require_labels()
    keras.utils.set_random_seed(seed)
    baseline = experiment.baseline
    config = experiment.nri_config(seed, prediction_steps=1)
    predictor = LSTMPredictor(config.dims, baseline["hidden"])
    model = _trajectory_predictor(experiment, predictor, "none", config, baseline["lr"])
    batch = baseline["batch_size"]
    model.fit(experiment.split("train", batch, training=True, seed=seed, frames=experiment.frames),
              epochs=experiment.budget.corr_lstm_epochs,
              steps_per_epoch=max(1, experiment.metadata.splits["train"] // batch), shuffle=False,
              verbose=experiment.verbose)

    def scores(split):
        features, labels = [], []
        for trajectories, edges in experiment.split(split, 256, frames=experiment.frames):
            features.append(predictor.final_features(trajectories).numpy())
            labels.append(edges.numpy())
        return correlation_scores(np.concatenate(features)), np.concatenate(labels)

    return _correlation_accuracy(scores)


def _run_nri(experiment: Experiment, seed: int, name: str, **changes) -> dict:
    from trainers import loop

    config = experiment.nri_config(seed, **changes)
    run_dir = os.path.join(experiment.root, "runs", f"{name}-seed{seed}")
    results = loop.train(config, experiment.data_dir, run_dir,
                         options=loop.TrainingOptions(verbose=experiment.verbose, graph_images=0),
                         log=experiment.log)
    return {"edge_accuracy": results.get("edge_accuracy"), "mse_per_step": results["mse_per_step"],
            "run": run_dir}


def run_nri_learned(experiment: Experiment, seed: int) -> dict:
    return _run_nri(experiment, seed, "nri_learned")


def run_nri_sim(experiment: Experiment, seed: int) -> dict:
    """The encoder trained through the ground-truth simulator (`nri_tf.physics`)."""
    from nri_tf.physics import SIMULATIONS as SIMULATED

    if experiment.metadata.source not in SIMULATED:
        raise NotApplicable(f"no differentiable simulator for {experiment.metadata.source}")
    return _run_nri(experiment, seed, "nri_sim", decoder="sim", skip_first=False)


def run_supervised(experiment: Experiment, seed: int) -> dict:
    """The encoder alone on the true edges, with the NRI (learned) model's training settings."""
    import keras

    from nri_tf.baselines.supervised import ACCURACY_METRIC, supervised_encoder
    from trainers.loop import learning_rate_schedule

    experiment.require_labels()
    keras.utils.set_random_seed(seed)
    config = experiment.nri_config(seed)
    schedule = learning_rate_schedule(config, experiment.metadata.splits["train"] // config.batch_size)
    model = supervised_encoder(config, experiment.metadata.nodes, schedule)
    _fit_best(experiment, model, f"supervised-seed{seed}", epochs=config.epochs,
              batch_size=config.batch_size, seed=seed, monitor="val_" + ACCURACY_METRIC, mode="max")
    test = experiment.split("test", 256, frames=experiment.frames)
    return {"edge_accuracy": float(model.evaluate(test, return_dict=True, verbose=0)[ACCURACY_METRIC])}


def run_static(experiment: Experiment, seed: int) -> dict:
    from nri_tf.baselines.predictors import static_prediction

    steps = experiment.horizon()
    return _prediction_results(experiment, lambda context, labels: static_prediction(context, steps))


def _run_lstm(experiment: Experiment, seed: int, joint: bool) -> dict:
    import keras

    from nri_tf.baselines.lstm import LSTMPredictor

    keras.utils.set_random_seed(seed)
    baseline = experiment.baseline
    config = experiment.nri_config(seed)
    predictor = LSTMPredictor(config.dims, baseline["hidden"], joint=joint, nodes=experiment.metadata.nodes)
    model = _trajectory_predictor(experiment, predictor, "none", config, baseline["lr"])
    _fit_best(experiment, model, f"lstm_{'joint' if joint else 'single'}-seed{seed}",
              epochs=baseline["epochs"], batch_size=baseline["batch_size"], seed=seed, monitor="val_nll")
    steps = experiment.horizon()
    return _prediction_results(experiment, lambda context, labels: model.predict_future(context, steps))


def run_lstm_single(experiment: Experiment, seed: int) -> dict:
    return _run_lstm(experiment, seed, joint=False)


def run_lstm_joint(experiment: Experiment, seed: int) -> dict:
    return _run_lstm(experiment, seed, joint=True)


def _run_fixed_graph(experiment: Experiment, seed: int, graph: str) -> dict:
    """The NRI decoder trained on a given graph with the NRI (learned) model's settings."""
    import keras

    from trainers.loop import learning_rate_schedule

    keras.utils.set_random_seed(seed)
    # Both edge types carry messages, as in the paper (type 0 is a real type of the true graph).
    config = experiment.nri_config(seed, skip_first=False)
    schedule = learning_rate_schedule(config, experiment.metadata.splits["train"] // config.batch_size)
    model = _trajectory_predictor(experiment, None, graph, config, schedule)
    _fit_best(experiment, model, f"nri_{graph}_graph-seed{seed}", epochs=config.epochs,
              batch_size=config.batch_size, seed=seed, monitor="val_nll")
    steps = experiment.horizon()
    return _prediction_results(
        experiment, lambda context, labels: model.predict_future(context, steps, edge_labels=labels))


def run_nri_full_graph(experiment: Experiment, seed: int) -> dict:
    return _run_fixed_graph(experiment, seed, "full")


def run_nri_true_graph(experiment: Experiment, seed: int) -> dict:
    experiment.require_labels()
    return _run_fixed_graph(experiment, seed, "true")


RUNNERS = {
    "corr_path": run_corr_path, "corr_lstm": run_corr_lstm, "nri_sim": run_nri_sim,
    "nri_learned": run_nri_learned, "supervised": run_supervised, "static": run_static,
    "lstm_single": run_lstm_single, "lstm_joint": run_lstm_joint,
    "nri_full_graph": run_nri_full_graph, "nri_true_graph": run_nri_true_graph,
}


# --- Tables -------------------------------------------------------------------------------

def run_model(experiment: Experiment, row: str, seed: int) -> dict:
    """The test metrics of one model and seed: from its cache file, or trained now."""
    from trainers.run_directory import read_json, write_json_atomic

    cache = experiment.path("models", f"{row}-seed{seed}.json")
    if os.path.exists(cache):
        return read_json(cache)
    started = time.perf_counter()
    try:
        metrics = RUNNERS[row](experiment, seed)
    except NotApplicable as reason:
        metrics = {"not_applicable": str(reason)}
    record = {"model": row, "seed": seed, "seconds": time.perf_counter() - started, **metrics}
    write_json_atomic(cache, record)
    return record


def summarise(values: list) -> dict:
    """{"mean", "stderr" (None for one value), "values"} of finite floats."""
    n = len(values)
    mean = sum(values) / n
    stderr = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)) if n > 1 else None
    return {"mean": mean, "stderr": stderr, "values": values}


def table_rows(table: str, records: dict, source: str, nodes: int) -> list:
    """One dict per row: the model's name, our summary over seeds and the paper's number(s).

    Args:
      records: row -> list of `run_model` records (one per seed).
    """
    rows = []
    for row in TABLE_ROWS[table]:
        runs = records[row]
        entry = {"model": ROW_NAMES[row], "key": row, "seconds": sum(r["seconds"] for r in runs)}
        if "not_applicable" in runs[0]:
            entry["not_applicable"] = runs[0]["not_applicable"]
        elif table == "table1" and runs[0].get("edge_accuracy") is None:
            entry["not_applicable"] = "no true graph to score"
        elif table == "table1":
            entry["ours"] = summarise([100 * r["edge_accuracy"] for r in runs])
        else:
            entry["ours"] = {str(step): summarise([r["mse_per_step"][step - 1] for r in runs])
                             for step in TABLE2_STEPS if step <= len(runs[0]["mse_per_step"])}
        entry["paper"] = _paper_value(table, row, source, nodes)
        rows.append(entry)
    return rows


def _paper_value(table: str, row: str, source: str, nodes: int):
    if table == "table1":
        pair = PAPER_TABLE1.get(source, {}).get(row)
        return pair[(5, 10).index(nodes)] if pair and nodes in (5, 10) else None
    values = PAPER_TABLE2.get(source, {}).get(row)
    return dict(zip(map(str, TABLE2_STEPS), values)) if values and nodes == 5 else None


def format_summary(summary: dict | None, number: str) -> str:
    """"mean ± stderr" of a `summarise` dict in ``number`` format ("–" for None)."""
    if summary is None:
        return "–"
    text = format(summary["mean"], number)
    return text + (f" ± {format(summary['stderr'], number)}" if summary["stderr"] is not None else "")


def markdown_table(table: str, rows: list, heading: str) -> str:
    """The table as Markdown, ours next to the paper's numbers."""
    lines = [heading, ""]
    if table == "table1":
        lines += ["| model | ours | paper |", "|---|---|---|"]
        for row in rows:
            ours = row.get("not_applicable") or format_summary(row.get("ours"), ".1f")
            paper = "–" if row["paper"] is None else f"{row['paper']:.1f}"
            lines.append(f"| {row['model']} | {ours} | {paper} |")
    else:
        steps = [str(s) for s in TABLE2_STEPS]
        lines += ["| model | " + " | ".join(f"ours, {s} step{'s' if s != '1' else ''}" for s in steps)
                  + " | paper: " + " / ".join(steps) + " |",
                  "|---|" + "---|" * (len(steps) + 1)]
        for row in rows:
            if "not_applicable" in row:
                ours = [row["not_applicable"]] + ["–"] * (len(steps) - 1)
            else:
                ours = [format_summary(row["ours"].get(s), ".3g") for s in steps]
            paper = "–" if row["paper"] is None else " / ".join(f"{row['paper'][s]:.3g}" for s in steps)
            lines.append(f"| {row['model']} | " + " | ".join(ours) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the cores this process may use."""
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    return f"{model}, {len(os.sched_getaffinity(0))} CPU cores"


def run_table(table: str, experiment: Experiment, source: str, seeds: list,
              budget_name: str) -> dict:
    """Trains (or reuses) every model of ``table`` for every seed; writes the .md and .json."""
    from trainers.run_directory import write_json_atomic

    started = time.perf_counter()
    records = {}
    rows = TABLE_ROWS[table]
    for index, row in enumerate(rows, 1):
        records[row] = []
        for seed in seeds:
            experiment.log(f"[{index}/{len(rows)}] {ROW_NAMES[row]}, seed {seed}")
            record = run_model(experiment, row, seed)
            experiment.log(f"    {_describe(record)} ({record['seconds']:.0f} s)")
            records[row].append(record)
    nodes = experiment.metadata.nodes
    summary_rows = table_rows(table, records, source, nodes)
    what = "edge accuracy (%)" if table == "table1" else "MSE of predicted frames (normalised units)"
    heading = (f"{'Table 1' if table == 'table1' else 'Table 2'}: {what}, {source} with {nodes} "
               f"nodes, budget '{budget_name}', {len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
    result = {"table": table, "source": source, "nodes": nodes, "budget": budget_name,
              "budget_settings": dataclasses.asdict(experiment.budget), "seeds": seeds,
              "data": os.path.abspath(experiment.data_dir), "rows": summary_rows,
              "machine": machine_description(), "seconds": time.perf_counter() - started,
              "training_seconds": sum(r["seconds"] for runs in records.values() for r in runs)}
    markdown = markdown_table(table, summary_rows, heading)
    write_json_atomic(os.path.join(experiment.root, f"{table}.json"), result)
    with open(os.path.join(experiment.root, f"{table}.md"), "w") as handle:
        handle.write(markdown)
    result["markdown"] = markdown
    return result


def _describe(record: dict) -> str:
    if "not_applicable" in record:
        return "not applicable: " + record["not_applicable"]
    parts = []
    if record.get("edge_accuracy") is not None:
        parts.append(f"edge accuracy {100 * record['edge_accuracy']:.1f}%")
    if "mse_per_step" in record:
        mse = record["mse_per_step"]
        parts.append("mse " + " / ".join(f"{mse[s - 1]:.3g}" for s in TABLE2_STEPS if s <= len(mse)))
    return ", ".join(parts)


# --- Command line -------------------------------------------------------------------------

def parse_args(argv=None) -> tuple[argparse.Namespace, dict]:
    """(the command's own arguments, NRIConfig overrides from `python -m nri_tf.train` flags)."""
    from nri_tf.config import add_config_arguments, config_overrides

    budgets = _budgets()
    parser = argparse.ArgumentParser(prog="python -m nri_tf.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLE_ROWS),
                        help="table1: edge accuracy of the graph-inference models; table2: MSE of "
                             "future-state prediction after 1, 10 and 20 frames (and `report DIR...`: "
                             "the results page from finished tables, see `report --help`)")
    parser.add_argument("--simulation", choices=SIMULATIONS, default="springs",
                        help="the simulated dataset to build (default: %(default)s; ignored with --data)")
    parser.add_argument("--num-nodes", type=int, default=5,
                        help="nodes of the simulated dataset (default: %(default)s; ignored with --data)")
    parser.add_argument("--budget", choices=sorted(budgets), default="cpu",
                        help="(default: %(default)s) " + "; ".join(f"{name}: {b.help}" for name, b in sorted(budgets.items())))
    parser.add_argument("--seeds", type=int, default=1,
                        help="independent runs of every model (default: %(default)s)")
    parser.add_argument("--data", help="use this native dataset (any source) instead of simulating one")
    parser.add_argument("--output", help="output directory (default: experiments/<source><nodes>-<budget>)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0,
                        help="Keras progress output while training (0: one line per model)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.num_nodes < 2:
        parser.error(f"--num-nodes must be >= 2, got {args.num_nodes}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    return args, config_overrides(args)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        from nri_tf import experiments_report  # imports this module: the report's own entry point

        return experiments_report.main(argv[1:])
    from nri_tf.cli import import_tensorflow, log_to_stderr

    args, nri_overrides = parse_args(argv)
    import_tensorflow()
    from data_pipelines.storage import read_metadata
    from nri_tf.train import ensure_default_data

    budget = _budgets()[args.budget]
    try:
        data_dir = args.data or ensure_default_data(
            {"simulation": args.simulation, "num_nodes": args.num_nodes, **budget.data, "seed": 42},
            log_to_stderr)
        metadata = read_metadata(data_dir)
        root = args.output or os.path.join("experiments", f"{metadata.source}{metadata.nodes}-{args.budget}")
        experiment = Experiment(data_dir, metadata, budget, root, args.verbose, log_to_stderr,
                                nri_overrides)
        experiment.nri_config(42)       # bad flags fail here, before anything is written
        os.makedirs(root, exist_ok=True)
        seeds = [42 + k for k in range(args.seeds)]
        result = run_table(args.table, experiment, metadata.source, seeds, args.budget)
    except (ValueError, FloatingPointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result["markdown"])
    print(f"wall time {result['seconds']:.0f} s; written to {os.path.join(root, args.table)}.md/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
