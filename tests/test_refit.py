"""`python -m nri_tf.refit`: the decoder and the encoder retrained on fixed, refined graphs (`trainers.refit`)."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from conftest import main_here, tree_contents
from data_pipelines.datasets import make_dataset
from nri_tf.cli import evaluate as evaluate_cli, refit as refit_cli, train as train_cli
from nri_tf.config import NRIConfig
from nri_tf.model import NRI
from trainers import refit as refit_module, run_directory
from trainers.loop import split_dataset
from trainers.refit import fit_to_graphs, fixed_graphs, graph_scores, rebatched, refinement_batch_size
from trainers.refit_options import RefitOptions

REFIT = ["--epochs", "2", "--refine-sweeps", "2", "--lr", "1e-3"]
KEEP_ENCODER = ["--no-distill"]


@pytest.fixture(scope="module")
def refit_run(tiny_run, tmp_path_factory):
    """(the refit's run directory, tiny_run's files before the refit, the command's result)."""
    before = tree_contents(tiny_run)
    output = str(tmp_path_factory.mktemp("refit") / "tiny-refit")
    done = main_here(refit_cli.main, "--run", tiny_run, "--output", output, *REFIT, *KEEP_ENCODER)
    return output, before, done


def _outputs(run, tiny_data):
    """(edge logits, one-step predictions on the true graph) of a run's best model on the
    first validation batch."""
    model, config = run_directory.load_best_model(run, 5)
    trajectories, labels = next(iter(make_dataset(tiny_data, "valid", 16, shuffle=False)))
    return (model.encode(trajectories[:, :, :config.frames]).numpy(),
            model.nll_on_graph(trajectories, labels).numpy())


def test_refit_writes_a_new_run_with_the_same_encoder_and_a_new_decoder(refit_run, tiny_run, tiny_data):
    output, before, done = refit_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert tree_contents(tiny_run) == before                      # the source run is untouched
    assert sorted(os.listdir(output)) == ["best.weights.h5", "config.json", "dataset.json",
                                          "history.jsonl", "refit.json", "results.json"]
    assert not [p for p in os.listdir(os.path.dirname(output)) if p.startswith(".")]   # no staging left
    refit = json.loads(open(os.path.join(output, "refit.json")).read())
    assert refit["source"] == os.path.abspath(tiny_run)
    assert (refit["epochs"], refit["refine_sweeps"], refit["lr"], refit["distill"]) == (2, 2, 1e-3, False)
    assert 0 <= refit["changed"] <= 1
    history = run_directory.read_history(output)
    assert [r["epoch"] for r in history] == [1, 2] and all(np.isfinite(r["val_nll"]) for r in history)
    source_logits, source_nll = _outputs(tiny_run, tiny_data)
    refit_logits, refit_nll = _outputs(output, tiny_data)
    np.testing.assert_allclose(refit_logits, source_logits, rtol=1e-5, atol=1e-6)   # encoder kept
    assert not np.allclose(refit_nll, source_nll)                                     # decoder refit
    results = json.loads(open(os.path.join(output, "results.json")).read())
    assert results["refined"]["sweeps"] == 2 and results["epochs"] == 2
    assert results["best_epoch"] in (0, 1, 2) and results["best_epochs"] == {"decoder": results["best_epoch"]}
    assert "run: " + output in done.stdout and "refined against the decoder" in done.stdout
    bars = [line for line in done.stderr.splitlines() if line.startswith("refining")]
    assert [line.split()[:3] for line in bars] == [["refining", name, "graphs"] for name in ("train", "valid", "test")]


def test_evaluate_reads_the_refit_run_and_gives_its_test_numbers(refit_run, tmp_path):
    output, _, _ = refit_run
    written = tmp_path / "evaluation.json"
    done = main_here(evaluate_cli.main, "--run", output, "--refine-sweeps", "2", "--output", written)
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated, results = (json.loads(open(p).read()) for p in (written, os.path.join(output, "results.json")))
    for key in ("edge_accuracy", "nll", "mse_per_step"):
        np.testing.assert_allclose(evaluated[key], results[key], rtol=1e-5)
    np.testing.assert_allclose(evaluated["refined"]["mse_per_step"], results["refined"]["mse_per_step"], rtol=1e-5)


def test_a_refit_directory_is_never_trained_or_overwritten(refit_run, tiny_data):
    output, _, _ = refit_run
    before = tree_contents(output)
    trained = main_here(train_cli.main, "--data", tiny_data, "--logdir", output, "--epochs", "1",
                        "--verbose", "0")
    assert trained.returncode == 2 and "holds a refit of" in trained.stderr
    again = main_here(refit_cli.main, "--run", output.replace("-refit", ""), "--output", output, *REFIT)
    assert again.returncode == 2 and f"{output} exists" in again.stderr
    after = tree_contents(output)
    assert after.pop(".lock", b"") == b"" and after == before    # (the training command's lock)


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--refine-sweeps", "-1"], "--refine-sweeps must be >= 0"),
    (["--lr", "0"], "--lr must be positive"),
    (["--encoder-lr", "-1"], "--encoder-lr must be positive"),
    (["--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
])
def test_bad_options_are_one_line_errors_and_write_nothing(tiny_run, tmp_path, args, message):
    done = main_here(refit_cli.main, "--run", tiny_run, "--output", tmp_path / "out", *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


def test_an_output_under_a_file_is_refused_before_the_refit(tiny_run, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(refit_module, "fixed_graphs", lambda *a, **k: pytest.fail("refit started"))
    done = main_here(refit_cli.main, "--run", tiny_run, "--output", tmp_path / "notes.txt" / "out", *REFIT)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: --output {tmp_path / 'notes.txt' / 'out'} cannot be written: {tmp_path / 'notes.txt'} "
        "is not a writable directory")
    assert os.listdir(tmp_path) == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_diverging_refit_is_an_error_and_writes_nothing(tiny_run, tmp_path):
    done = main_here(refit_cli.main, "--run", tiny_run, "--output", tmp_path / "out", "--epochs", "1",
                     "--refine-sweeps", "0", "--lr", "1e30")
    assert done.returncode == 2 and "the refit's training loss became non-finite in epoch 1" in done.stderr
    assert not os.listdir(tmp_path)


def test_the_refit_fits_the_decoder_and_the_encoder_to_the_fixed_graphs(tiny_run, tiny_data):
    """Refinement lowers each system's nll on the encoder's graphs; training on the refined
    graphs lowers the decoder's nll further and teaches the encoder to output them (it
    agreed with them less before), and each part kept is its best epoch's."""
    model, config = run_directory.load_best_model(tiny_run, 5)
    data = split_dataset(tiny_data, "valid", config, training=False, seed=0, frames=None)
    encoders, unchanged = fixed_graphs(model, data, config.frames, sweeps=0)
    refined, changed = fixed_graphs(model, data, config.frames, sweeps=3)
    assert unchanged == 0 and 0 < changed < 0.5
    own = graph_scores(model, encoders)
    assert own["agreement"] == 1.0                                  # the encoder's own graphs
    start = graph_scores(model, refined)
    assert start["nll"] < own["nll"] and start["agreement"] == pytest.approx(1 - changed, abs=0.02)
    history, best = fit_to_graphs(model, refined, refined, RefitOptions(epochs=3, lr=1e-3), log=lambda _: None)
    assert history[-1]["nll"] < history[0]["nll"] and history[-1]["cross_entropy"] < history[0]["cross_entropy"]
    end = graph_scores(model, refined)
    assert end["nll"] == pytest.approx(min([start["nll"]] + [r["val_nll"] for r in history]), rel=1e-5)
    assert end["cross_entropy"] == pytest.approx(
        min([start["cross_entropy"]] + [r["val_cross_entropy"] for r in history]), rel=1e-5)
    assert best["encoder"] > 0 and end["agreement"] > start["agreement"]
    assert best["decoder"] == 0 or history[best["decoder"] - 1]["val_nll"] < start["nll"]


def test_the_refit_works_on_candidate_edges_batch_by_batch(local_springs_data):
    """Candidate edges travel with their systems through the refinement, the re-batching
    and the decoder's training (local springs, 40 nodes, the 8 nearest as candidates)."""
    config = NRIConfig(dims=4, frames=9, encoder_hidden=8, decoder_hidden=8, skip_first=True, batch_size=4,
                       candidate_edges="knn", candidate_k=8)
    keras.utils.set_random_seed(0)
    model = NRI(config)
    model.compile()
    model.build_for_nodes(40)
    data = split_dataset(local_springs_data, "train", dataclasses.replace(config, batch_size=32),
                         training=False, seed=0, frames=None)
    told = []
    graphs, changed = fixed_graphs(model, data, config.frames, sweeps=1, progress=told.append)
    assert told == [32]                                       # the systems done after each batch
    assert [t.shape for _, _, t in graphs] == [(32, 320)] and 0 < changed < 1
    batches = rebatched(graphs, config.batch_size)
    assert len(batches) == 8 and all(c["senders"].shape == (4, 40, 8) for _, c, _ in batches)
    np.testing.assert_array_equal(np.concatenate([t for _, _, t in batches]), graphs[0][2].numpy())
    before = graph_scores(model, batches)["nll"]
    cross_entropy = graph_scores(model, batches)["cross_entropy"]
    history, best = fit_to_graphs(model, batches, batches, RefitOptions(epochs=2, lr=3e-3), log=lambda _: None)
    assert best["decoder"] > 0 and graph_scores(model, batches)["nll"] < before
    assert best["encoder"] > 0 and graph_scores(model, batches)["cross_entropy"] < cross_entropy


def test_refinement_batches_hold_as_many_edges_as_256_springs5_systems():
    from types import SimpleNamespace

    def data(nodes, max_degree=None):
        return SimpleNamespace(nodes=nodes, has_edge_lists=max_degree is not None,
                               edge_lists={"max_degree": max_degree})

    config = NRIConfig(batch_size=32)
    assert refinement_batch_size(config, data(5)) == 256
    assert refinement_batch_size(config, data(10)) == 56                   # 90 edges a system
    given = dataclasses.replace(config, batch_size=8, candidate_edges="given")
    assert refinement_batch_size(given, data(100, max_degree=20)) == 8     # never below the run's batch
    assert refinement_batch_size(dataclasses.replace(config, batch_size=1), data(100)) == 1
