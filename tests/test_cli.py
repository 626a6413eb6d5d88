"""What the command lines share: boolean flags in both forms, --help without TensorFlow,
a quiet TensorFlow start-up, and progress output that suits a terminal or a log file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from data_pipelines import errors, generate, tf_startup
from nri_tf.cli import common, evaluate as evaluate_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_generate_booleans_have_both_forms():
    parser = generate.build_parser()
    assert parser.parse_args([]).interacting and not parser.parse_args([]).overwrite
    assert not parser.parse_args(["--no-interacting"]).interacting
    assert parser.parse_args(["--overwrite"]).overwrite
    assert not parser.parse_args(["--no-overwrite"]).overwrite
    assert generate.given_options(["--no-interacting"]) == {"interacting"}
    with pytest.raises(ValueError, match="--interacting does not apply to --source cmu"):
        generate.check_source_options("cmu", generate.given_options(["--source", "cmu", "--no-interacting"]))


def test_evaluate_dynamic_graph_defaults_to_the_run():
    assert evaluate_cli.parse_args(["--run", "r"]).dynamic_graph is None
    assert evaluate_cli.parse_args(["--run", "r", "--dynamic-graph"]).dynamic_graph is True
    assert evaluate_cli.parse_args(["--run", "r", "--no-dynamic-graph"]).dynamic_graph is False


def test_help_of_every_command_needs_no_tensorflow():
    script = """
import contextlib, io, sys
from data_pipelines import generate
from nri_tf.cli import evaluate, experiments, export, refit, train
for parse in (train.parse_args, evaluate.parse_args, export.parse_args, experiments.parse_args,
              refit.parse_args, generate.build_parser().parse_args):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        parse(["--help"])
assert "tensorflow" not in sys.modules, "TensorFlow imported for --help"
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_known_start_up_noise_is_recognised_and_nothing_else():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796304752.123293    4274 port.cc:153] oneDNN custom operations are on. You may see",
        "I0000 00:00:1796304752.123707    4274 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
        "E0000 00:00:1796304755.873491    4274 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    assert all(tf_startup.is_noise(line) for line in noise)
    assert not tf_startup.is_noise("W0000 00:00:1796304755.873491 4274 op_kernel.cc:1840] OP_REQUIRES failed")
    assert not tf_startup.is_noise("Traceback (most recent call last):")


@pytest.mark.slow
def test_tensorflow_starts_quietly():
    """A fresh process: TensorFlow's own start-up lines are filtered, other stderr output is kept;
    the CPU allocator is the BFC pool (malloc's has no memory statistics: ValueError)."""
    script = ("import sys; from data_pipelines.tf_startup import import_tensorflow; tf = import_tensorflow(); "
              "print('after', file=sys.stderr); tf.zeros([1]); tf.config.experimental.get_memory_info('CPU:0')")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC", tf_startup.SHOW_STARTUP_ENV)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "after", done.stderr


@pytest.mark.parametrize("tty, expected", [(True, 1), (False, 2)])
def test_progress_output_is_one_line_per_epoch_off_a_terminal(monkeypatch, tty, expected):
    monkeypatch.setattr(sys, "stdout", type("Stream", (), {"isatty": lambda self: tty})())
    assert common.keras_verbose("auto") == expected
    assert common.keras_verbose("0") == 0 and common.keras_verbose(1) == 1


def test_generate_help_has_examples_and_sportvu_segments_have_their_own_flag():
    text = generate.build_parser().format_help()
    assert "examples:" in text and "--source cmu --asf" in text and "then: python -m nri_tf.train" in text
    assert "--segment-frames" in text and "\n  --frames" not in text      # train's --frames is the encoder's


def test_console_scripts_name_existing_entry_points():
    import importlib
    import re

    setup = open(os.path.join(REPO, "setup.py")).read()
    scripts = dict(re.findall(r'"(nri-[a-z]+)=([a-z_.]+:[a-z_]+)"', setup))
    assert set(scripts) == {"nri-train", "nri-evaluate", "nri-export", "nri-experiments", "nri-generate",
                            "nri-refit"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


# --- Error policy: only known user errors become one line -------------------------------

def run_python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "experiments", "generate", "refit"])
def test_an_internal_value_error_keeps_its_traceback(command):
    """A bug raised as ValueError deep inside a command is no user error: it must not be
    shortened to ``error: ...`` but end the process with its traceback."""
    work = {"train": "run", "evaluate": "evaluate_run", "export": "export_run",
            "experiments": "_run", "generate": "_generate", "refit": "refit"}[command]
    argv = {"train": [], "evaluate": ["--run", "r"], "export": ["--run", "r"],
            "experiments": ["table1"], "generate": [], "refit": ["--run", "r"]}[command]
    package = "data_pipelines" if command == "generate" else "nri_tf.cli"
    script = f"""
import sys
from {package} import {command} as cli
def bug(*args, **kwargs):
    raise ValueError("an internal bug")
setattr(cli, {work!r}, bug)
cli.import_tensorflow = lambda: None
sys.exit(cli.main({argv!r}))
"""
    done = run_python(script)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr and "ValueError: an internal bug" in done.stderr
    assert not done.stderr.startswith("error: ")


def test_known_user_errors_are_one_line_without_traceback(tmp_path):
    for module, argv, message in [
            ("nri_tf.export", ["--run", str(tmp_path / "missing")], "missing"),
            ("nri_tf.export", ["--run", str(tmp_path), "--name", "bad name"], "model name 'bad name'"),
            ("data_pipelines.generate", ["--num-nodes", "1", "--output", str(tmp_path / "d")],
             "num_nodes must be at least 2")]:
        done = subprocess.run([sys.executable, "-m", module, *argv], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


def test_report_known_errors_lets_other_exceptions_through():
    from data_pipelines.errors import DatasetError

    def raise_(error):
        raise error

    assert errors.report_known_errors(lambda: raise_(DatasetError("bad data")), "x") == 2
    assert errors.report_known_errors(lambda: raise_(FloatingPointError("diverged")), "x") == 2
    with pytest.raises(ValueError, match="a bug"):
        errors.report_known_errors(lambda: raise_(ValueError("a bug")), "x")
    with pytest.raises(KeyError):
        errors.report_known_errors(lambda: raise_(KeyError("k")), "x")
