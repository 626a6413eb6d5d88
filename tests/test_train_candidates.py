"""`python -m nri_tf.train` and `python -m nri_tf.evaluate` on candidate edges (knn, the data's
own edge lists) and under tf.distribute strategies (mirrored on two logical CPUs, two
workers on loopback), each strategy test in processes of its own.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import TINY_MODEL, event_tags, free_port, last_line
from nri_tf.cli import evaluate as evaluate_cli, train as train_cli
from trainers import run_directory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("candidates", ["complete", "knn"])
def test_mirrored_strategy_matches_one_device(tiny_data, local_springs_data, candidates):
    data, nodes, frames = (tiny_data, 5, 9) if candidates == "complete" else (local_springs_data, 40, 9)
    script = f"""
import numpy as np, tensorflow as tf
from trainers.strategy import make_strategy
from trainers.loop import build_model
from data_pipelines.candidate_selection import CandidateSpec
from data_pipelines.datasets import make_dataset
from nri_tf.config import NRIConfig
mirrored = make_strategy("mirrored", logical_cpus=2)
assert mirrored.num_replicas_in_sync == 2
batch = next(iter(make_dataset({data!r}, "train", 16, shuffle=False,
                               candidates=CandidateSpec({candidates!r}, k=4))))
# One edge type: the relaxed sample is exactly 1 whatever the Gumbel noise, so the
# replicas' different noise draws cannot change the loss; batch norm is synchronised.
config = NRIConfig(dims=4, frames={frames}, encoder_hidden=8, decoder_hidden=8, batch_size=16, edge_types=1,
                   candidate_edges={candidates!r}, candidate_k=4)
losses = []
for strategy in (tf.distribute.get_strategy(), mirrored):
    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(config, {nodes}, steps_per_epoch=1, jit_compile=False)
    data = tf.data.Dataset.from_tensors(batch)
    history = model.fit(data, epochs=2, verbose=0)
    losses.append(history.history["loss"])
print("LOSSES", losses)
np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_worker_multi_worker_run_completes_and_resumes(local_springs_data, tmp_path):
    # On the candidate edges stored with the data (its default, "given"): they are sharded
    # and split with the trajectories (knn and the complete graph: `test_mirrored_...`).
    run_dir = str(tmp_path / "multi")

    def cluster_trains(epochs):
        """Both workers' stderr once `nri_tf.train --epochs EPOCHS` has ended on each."""
        ports = [free_port(), free_port()]
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        workers = []
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "nri_tf.train", "--data", local_springs_data, "--logdir", run_dir,
                 "--strategy", "multi-worker", "--epochs", str(epochs), *TINY_MODEL],
                cwd=REPO, env={**os.environ, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        outputs = [worker.communicate(timeout=300) for worker in workers]
        for worker, (_, stderr) in zip(workers, outputs):
            assert worker.returncode == 0, stderr[-3000:]
        return [stderr for _, stderr in outputs]

    for stderr in cluster_trains(1):
        assert "candidate_edges='given' [data]" in stderr and "resuming" not in stderr
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["epochs"] == 1 and len(results["mse_per_step"]) == 20
    assert results["systems"] == 8 and results["candidate_recall"] == 1.0
    assert not glob.glob(os.path.join(run_dir, ".worker-scratch-*"))
    # Every worker resumes the chief's checkpoint: one more epoch, trained once.
    for stderr in cluster_trains(2):
        assert f"resuming {run_dir} after epoch 1 of 2" in stderr
    assert [record["epoch"] for record in run_directory.read_history(run_dir)] == [1, 2]
    assert json.load(open(os.path.join(run_dir, "results.json")))["epochs"] == 2


def test_knn_candidates_train_evaluate_and_draw_end_to_end(local_springs_data, tmp_path, capsys):
    run_dir = str(tmp_path / "knn")
    flags = ["--data", local_springs_data, "--logdir", run_dir, "--candidate-edges", "knn",
             "--candidate-k", "4", "--epochs", "2", "--encoder-hidden", "8", "--decoder-hidden", "8",
             "--batch-size", "8", "--verbose", "0"]
    assert train_cli.main(flags) == 0
    summary = capsys.readouterr().out
    assert "over the knn candidate edges" in summary and "candidate recall: " in summary
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert 0.0 < results["candidate_recall"] < 1.0     # 4 of ~7 pairs per node within the cutoff
    assert 0.0 <= results["edge_accuracy"] <= 1.0 and results["systems"] == 8
    history = [json.loads(line) for line in open(os.path.join(run_dir, "history.jsonl"))]
    assert "val_candidate_recall" in history[-1]
    images = event_tags(os.path.join(run_dir, "logs", "images"))
    assert [step for step, _ in images["graphs"]] == [0, 1]
    # Resume: the same command finds the finished run; evaluate reproduces its numbers.
    assert train_cli.main(flags) == 0
    output = str(tmp_path / "eval.json")
    assert evaluate_cli.main(["--run", run_dir, "--output", output, "--image",
                              str(tmp_path / "graph.png")]) == 0
    again = json.load(open(output))
    for key in ("edge_accuracy", "candidate_recall", "nll"):
        assert again[key] == pytest.approx(results[key], rel=1e-5)
    assert os.path.getsize(tmp_path / "graph.png") > 0


def test_given_candidates_are_refused_on_dense_data(tiny_data, tmp_path, capsys):
    # Data stored with edge lists trains on them by default: test_two_worker_multi_worker_run_completes.
    assert train_cli.main(["--data", tiny_data, "--logdir", str(tmp_path / "bad"), "--candidate-edges",
                           "given", *TINY_MODEL]) == 2
    error = last_line(capsys.readouterr().err)
    assert error.startswith("error: --candidate-edges given needs data stored with edge lists")
    assert not os.path.exists(tmp_path / "bad")
