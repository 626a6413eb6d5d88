"""`python -m nri_tf.train`: train an NRI model, watch it in TensorBoard, evaluate it.

With no arguments it runs the built-in default: it simulates the default preset's springs
dataset (cached after the first run), trains, and prints the held-out edge accuracy.
Re-running the same command resumes an interrupted run from its last completed epoch;
a finished run just reports its results again, and with more --epochs continues training.

    python -m nri_tf.train                         # built-in default
    python -m nri_tf.train --preset paper          # the paper's settings
    python -m nri_tf.train --data data/charged5 --encoder cnn --logdir runs/charged
    tensorboard --logdir runs

Metrics (progress lines, TensorBoard, history.jsonl; the README's "What the numbers mean"):
nll is the Gaussian negative log-likelihood per node, squared errors / (2 * var) summed
over frames and dims, so with var 5e-5 an nll of 100 over 48 frames x 4 dims is an MSE of
5.2e-5. Training (nll, loss) scores the decoder's rollout with ground truth every
--prediction-steps frames; validation (val_nll) and the test summary score one-step
predictions of the MLP decoder, which are far easier: val_nll is much lower than nll.
kl is per node without the constant log K (<= 0 with a uniform prior); loss = nll + kl;
mse is the mean squared error in normalised units (features scaled to [-1, 1] by the
training split's min and max); edge_accuracy is the share of edges whose type is right,
under the best permutation of exchangeable types.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

from data_pipelines.errors import UserError, report_known_errors
from data_pipelines.files import interrupt_on_sigterm
from data_pipelines.generation import generate_dataset
from data_pipelines.storage.reader import read_metadata
from data_pipelines.tf_startup import import_tensorflow
from nri_tf.cli.common import keras_verbose, log_to_stderr
from nri_tf.flags import add_config_arguments, config_overrides
from nri_tf.presets import DEFAULT_PRESET, PRESETS, config_for_dataset, describe_config, setting_origins
from trainers.refit_options import REFINE_SWEEPS
from trainers.run_directory import load_config
from trainers.strategy import STRATEGIES, make_strategy

DEFAULT_RUNS_ROOT = "runs"
DATA_CACHE_ENV = "NRI_TF_DATA"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nri_tf.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                        help=f"named defaults applied under the data's settings and the flags "
                             f"(default: {DEFAULT_PRESET}): "
                             + "; ".join(f"{name}: {p.help}" for name, p in sorted(PRESETS.items())))
    parser.add_argument("--data", help="native dataset directory (default: the preset's built-in "
                        f"dataset, simulated once into ${DATA_CACHE_ENV} or ~/.cache/nri-tf)")
    parser.add_argument("--logdir", help="run directory (default: runs/<dataset>-<config hash>, so the "
                        "same command resumes the same run)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy (multi-worker reads TF_CONFIG)")
    parser.add_argument("--logical-cpus", type=int, default=1,
                        help="with --strategy mirrored on a CPU-only machine: split the CPU into "
                             "this many logical devices")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA-compile the training step")
    parser.add_argument("--verbose", choices=("auto", "0", "1", "2"), default="auto",
                        help="0 silent, 1 progress bar per epoch, 2 one line per epoch; auto: 1 on "
                             "a terminal, 2 when the output goes to a file or pipe (default: auto)")
    parser.add_argument("--refine-sweeps", type=int, metavar="N",
                        help="the test evaluation also scores the graphs improved against the decoder "
                             "with up to N sweeps (nri_tf.refinement; 0: the paper's evaluation alone; "
                             f"default: {REFINE_SWEEPS}, an exact search, where it is cheap: the mlp decoder "
                             "on labelled data with small complete graphs, e.g. 5 nodes; else 0)")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES",
                        help="stop once another epoch would end past this many minutes of training, "
                             "counted over every process that trained the run (a resumed run trains "
                             "only what is left; a larger limit continues it); the best epoch so far "
                             "is evaluated as usual (default: none, all --epochs)")
    add_config_arguments(parser)
    return parser.parse_args(argv)


def default_data_name(preset_data: dict) -> str:
    """The folder name of a preset's (or budget's) built-in dataset: its parameters."""
    d = preset_data
    return (f"{d['simulation']}{d['num_nodes']}-{d['num_train']}-{d['num_valid']}-{d['num_test']}"
            f"-seed{d['seed']}")


def default_data_dir(preset_data: dict) -> str:
    """Where the preset's built-in dataset is cached, named after its parameters."""
    root = os.environ.get(DATA_CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "nri-tf")
    return os.path.join(root, default_data_name(preset_data))


def ensure_default_data(preset_data: dict, log) -> str:
    """The preset's dataset directory, simulating it first if it is not cached."""
    data_dir = default_data_dir(preset_data)
    if not os.path.exists(os.path.join(data_dir, "metadata.json")):
        log(f"simulating the built-in dataset into {data_dir} (once; later runs reuse it)")
        generate_dataset(output=data_dir, **preset_data)
    return data_dir


def default_run_dir(data_dir: str, config) -> str:
    """runs/<dataset>-<hash of the config without epochs>: the same command resumes the
    same run, and the same command with more --epochs extends it. Options that are off
    (the complete graph, absolute positions) leave their fields out of the hash
    (`NRIConfig.identity`)."""
    settings = {k: v for k, v in config.identity().items() if k != "epochs"}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return os.path.join(DEFAULT_RUNS_ROOT, f"{os.path.basename(os.path.normpath(data_dir))}-{digest}")


def _type_name(edge_type: int, config) -> str:
    """"0 (no edge)" for the hard-coded no-edge type, else the number."""
    return f"{edge_type}{' (no edge)' if edge_type == 0 and config.skip_first else ''}"


def format_summary(results: dict, run_dir: str, results_path: str) -> str:
    """The closing summary printed after training or evaluation, with what each number
    measures and its units (the README's "What the numbers mean").

    Args:
      results: `nri_tf.evaluation.evaluate`'s dict (plus best_epoch, epochs).
      run_dir: the run; its config.json gives the likelihood's variance and schedule.
    """
    config = load_config(run_dir)
    so_far = "" if results.get("finished", True) else " trained so far"
    lines = [f"run: {run_dir} (best epoch {results['best_epoch']} of {results['epochs']}{so_far}, "
             "by validation nll)",
             f"test systems: {results['systems']}"]
    if "edge_accuracy" in results:
        over = ("" if config.candidate_edges == "complete"
                else f", over the {config.candidate_edges} candidate edges")
        lines.append(f"edge accuracy: {100 * results['edge_accuracy']:.1f}% (best permutation of "
                     f"the exchangeable edge types{over})")
    if "candidate_recall" in results:
        lines.append(f"candidate recall: {100 * results['candidate_recall']:.2f}% of the true "
                     f"interactions are among the candidates (the rest the model cannot find)")
    if "edge_confusion" in results:
        recovered = [(k, row[k] / sum(row)) for k, row in enumerate(results["edge_confusion"]) if sum(row) > 0]
        lines.append("recovered per true edge type: " + ", ".join(
            f"{_type_name(k, config)} {100 * share:.1f}%" for k, share in recovered))
    if "accuracy_by_closest_approach" in results:
        rows = results["accuracy_by_closest_approach"]
        lines.append("edge accuracy by the pair's closest approach over the encoder's frames "
                     f"(data units; {len(rows)} bins of equal shares of the edges): " + ", ".join(
                         f"{row['from']:.2g}-{row['to']:.2g} {100 * row['accuracy']:.1f}%"
                         for row in rows))
    if "edge_type_shares" in results:
        lines.append("inferred edge types (most likely type of each edge): " + ", ".join(
            f"{_type_name(k, config)} {100 * share:.1f}%" for k, share in enumerate(results["edge_type_shares"])))
    if config.decoder == "rnn":
        horizon = f"burn-in, then {config.prediction_steps} frames open loop, as in training"
    else:
        horizon = (f"one-step predictions, as val_nll; training's nll feeds ground truth only "
                   f"every {config.prediction_steps} frames")
    lines.append(f"nll: {results['nll']:.4g} per node: squared errors / (2 x variance {config.var:g}) "
                 f"summed over frames 2..{config.frames} and dims ({horizon})")
    if "nll_true_graph" in results:
        verdict = ("the decoder prefers the truth" if results["nll_true_graph"] < results["nll_inferred_graph"]
                   else "the decoder has adapted to the encoder's mistakes")
        lines.append(f"nll on the most likely graph: {results['nll_inferred_graph']:.4g}, on the true graph "
                     f"(types matched): {results['nll_true_graph']:.4g} ({verdict})")
    if "refined" in results:
        refined = results["refined"]
        search = "exact search" if refined.get("exact") else f"{refined['sweeps']} sweeps at most"
        lines.append(f"refined against the decoder ({search}, "
                     f"{100 * refined['changed']:.1f}% of the edges changed): edge accuracy "
                     f"{100 * refined['edge_accuracy']:.1f}%, nll {refined['nll']:.4g}, "
                     + _mse_after(refined["mse_per_step"]))
    lines.append(f"kl: {results['kl']:.4g} per node (without the constant log K, so <= 0 with a "
                 "uniform prior)")
    window = {"predictions": "; the graph re-inferred before every frame from the frames seen, its "
                             "own predictions among them",
              "recorded": "; the graph re-inferred before every frame from the recorded frames "
                          "before it, as the reference's test"}.get(results.get("graph_window"), "")
    lines.append(_mse_after(results["mse_per_step"])
                 + " (normalised units: every feature scaled to [-1, 1] by the training split's "
                   f"min and max{window})")
    lines.append(f"results: {results_path}")
    return "\n".join(lines)


def _mse_after(mse: list) -> str:
    """"mse after 1 steps: ..., 10 steps: ..., 20 steps: ..." (the steps the list has)."""
    shown = [s for s in (1, 10, 20) if s <= len(mse)]
    return "mse after " + ", ".join(f"{s} steps: {mse[s - 1]:.3g}" for s in shown)


def run(args: argparse.Namespace, log) -> tuple[dict, str]:
    """Trains as ``args`` say; returns (test results, run directory).

    Raises UserError (ConfigError, DatasetError, RunDirectoryError) for bad input and
    FloatingPointError when training diverges.
    """
    # Imported here: the training loop imports TensorFlow, which --help must not wait for.
    # Importing creates no tensors, so the strategy can still split the CPU into logical
    # devices below.
    from trainers import loop

    if args.refine_sweeps is not None and args.refine_sweeps < 0:
        raise UserError(f"--refine-sweeps must be >= 0, got {args.refine_sweeps}")
    if args.time_limit is not None and not args.time_limit > 0:
        raise UserError(f"--time-limit must be > 0 minutes, got {args.time_limit}")
    strategy = make_strategy(args.strategy, args.logical_cpus)
    preset = PRESETS[args.preset]
    data_dir = args.data or ensure_default_data(preset.data, log)
    metadata = read_metadata(data_dir)
    overrides = config_overrides(args)
    config = config_for_dataset(preset.config, overrides, metadata, preset.by_source, data_dir)
    run_dir = args.logdir or default_run_dir(data_dir, config)
    log(f"preset {args.preset}; settings ([flag] given, [data] decided by the {metadata.source} "
        f"data, [preset] from the preset, the rest the paper's defaults):\n"
        + describe_config(config, setting_origins(preset.config, overrides, metadata, preset.by_source)))
    if args.refine_sweeps and config.decoder != "mlp":
        raise UserError(f"--refine-sweeps needs the mlp decoder, this run has the {config.decoder} decoder")
    options = loop.TrainingOptions(
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
        verbose=keras_verbose(args.verbose), refine_sweeps=args.refine_sweeps,
        time_limit_seconds=None if args.time_limit is None else 60.0 * args.time_limit)
    log(f"training {config.encoder} encoder / {config.decoder} decoder on {data_dir} "
        f"({metadata.nodes} nodes, {config.frames} frames) -> {run_dir}")
    return loop.train(config, data_dir, run_dir, strategy, options, log=log), run_dir


def main(argv=None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    import_tensorflow()

    def command() -> int:
        results, run_dir = run(args, log_to_stderr)
        print(format_summary(results, run_dir, os.path.join(run_dir, "results.json")))
        return 0

    return report_known_errors(command, "the same command resumes after the last completed epoch")
