"""Real data end to end: build, train (`python -m nri_tf.train`), evaluate (`python -m
nri_tf.evaluate --image`), with the paper's model choices at tiny sizes.

Motion capture: the CMU trial ../shared/data/cmu/35_01 (skipped when absent): 4 train,
1 valid and 1 test segment; MLP encoder, RNN decoder, 4 edge types with type 0 = no edge
and the sparsity prior; 2 epochs of hidden 16. Real data has no true graph, so nothing
may report an edge accuracy, and the pictures are the skeleton with the learned edges.

Basketball: a synthetic game log in the public SportVU schema (written here: the hand-made
fixture's events are too short for the CNN encoder's >= 14 frames); the paper's setting:
CNN encoder on the first 17 of 25 frames (``--frames 17``), RNN decoder reconstructing all
25, test predictions of the last 8; see docs/real_data.md.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import event_tags, last_line, main_here
from data_pipelines import generate
from nri_tf import evaluate as evaluate_cli
from nri_tf import train as train_cli

pytestmark = pytest.mark.slow

SHARED_CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu"
REAL_ASF, REAL_AMC = SHARED_CMU / "35.asf", SHARED_CMU / "35_01.amc"
# The paper's model (RNN decoder, 4 types, type 0 = no edge, prior) comes from the data.
MOCAP_TRAIN = ["--batch-size", "2", "--epochs", "2", "--encoder-hidden", "16", "--decoder-hidden", "16",
               "--prediction-steps", "10", "--verbose", "0"]
SPORTVU_TRAIN = ["--encoder", "cnn", "--frames", "17", "--decoder", "rnn", "--edge-types", "2", "--batch-size", "2",
                 "--epochs", "2", "--encoder-hidden", "8", "--decoder-hidden", "8",
                 "--prediction-steps", "10", "--verbose", "0"]
# Pixel sizes of nri_tf.figures at 100 dpi: skeleton 3.2 x 4.2 inches per edge-type panel;
# the inferred graph alone 6.2 x 4.2 (one panel and the legend).
SKELETON_PICTURE = (420, 3 * 320, 3)         # edge types 1, 2, 3 (type 0 is "no edge")
INFERRED_PICTURE = (420, 620, 3)


def decode_png(data: bytes) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_png(data).numpy()


def assert_no_edge_accuracy(run_dir) -> None:
    for line in Path(run_dir, "history.jsonl").read_text().splitlines():
        assert not [key for key in json.loads(line) if "edge_accuracy" in key], line
    for split in ("train", "validation"):
        assert "epoch_edge_accuracy" not in event_tags(Path(run_dir, "logs", split))


def assert_finite_results(results: dict, steps: int) -> None:
    assert "edge_accuracy" not in results
    assert len(results["mse_per_step"]) == steps
    assert all(math.isfinite(results[key]) for key in ("loss", "nll", "kl", "mse"))
    assert all(math.isfinite(value) for value in results["mse_per_step"])


# --------------------------------------------------------------------------- motion capture

@pytest.fixture(scope="module")
def mocap_run(tmp_path_factory):
    if not (REAL_ASF.is_file() and REAL_AMC.is_file()):
        pytest.skip(f"../shared/data/cmu not found: expected {REAL_ASF} and {REAL_AMC}")
    root = tmp_path_factory.mktemp("mocap")
    data, run_dir = root / "cmu35", root / "run"
    built = main_here(generate.main, "--source", "cmu", "--asf", REAL_ASF, "--amc", REAL_AMC,
                      "--output", data)
    assert built.returncode == 0, built.stderr
    trained = main_here(train_cli.main, "--data", data, "--logdir", run_dir, *MOCAP_TRAIN)
    assert trained.returncode == 0, trained.stderr
    return data, run_dir, trained.stdout


def test_mocap_trains_without_edge_accuracy(mocap_run):
    data, run_dir, stdout = mocap_run
    results = json.loads(Path(run_dir, "results.json").read_text())
    assert_finite_results(results, steps=20)           # test: 99 frames, 49 seen, 20 predicted
    assert results["systems"] == 1 and results["epochs"] == 2
    assert "edge accuracy" not in stdout
    assert_no_edge_accuracy(run_dir)
    # The metadata's edge_types (1: placeholder labels) does not limit the model's.
    assert json.loads(Path(data, "metadata.json").read_text())["edge_types"] == 1
    config = json.loads(Path(run_dir, "config.json").read_text())
    assert (config["decoder"], config["edge_types"], config["skip_first"], config["hard"]) == ("rnn", 4, True, True)
    assert config["prior"] == pytest.approx([0.91, 0.03, 0.03, 0.03]) and config["dynamic_graph"]


def test_mocap_tensorboard_images_are_the_skeleton_with_learned_edges(mocap_run):
    _, run_dir, _ = mocap_run
    images = event_tags(Path(run_dir, "logs", "images"))["graphs"]
    assert [step for step, _ in images] == [0, 1]         # Keras' epoch scalars' steps
    width, height, encoded = images[-1][1][:3]           # one picture: [width, height, png]
    image = decode_png(encoded)
    # Edge types 1, 2, 3 (type 0 is "no edge"): three skeleton panels side by side.
    assert image.shape == SKELETON_PICTURE
    assert (int(width), int(height)) == (image.shape[1], image.shape[0])


def test_mocap_evaluate_dynamic_graph_writes_the_image(mocap_run, tmp_path):
    _, run_dir, _ = mocap_run
    png, output = tmp_path / "pictures" / "mocap.png", tmp_path / "dynamic.json"
    evaluated = main_here(evaluate_cli.main, "--run", run_dir, "--dynamic-graph", "--image", png,
                          "--output", output)
    assert evaluated.returncode == 0, evaluated.stderr
    assert last_line(evaluated.stdout) == f"image: {png}"
    results = json.loads(output.read_text())
    assert_finite_results(results, steps=20)
    assert results["dynamic_graph"] is True and results["graph_window"] == "predictions"
    # The reference's window over the recorded frames: the first graph (the context's) is
    # the same, so is the first frame's error.
    recorded_output = tmp_path / "recorded.json"
    evaluated = main_here(evaluate_cli.main, "--run", run_dir, "--dynamic-graph", "--graph-window",
                          "recorded", "--output", recorded_output)
    assert evaluated.returncode == 0, evaluated.stderr
    recorded = json.loads(recorded_output.read_text())
    assert recorded["graph_window"] == "recorded" and "from the recorded frames" in evaluated.stdout
    assert recorded["mse_per_step"][0] == pytest.approx(results["mse_per_step"][0], rel=1e-5)
    refused = main_here(evaluate_cli.main, "--run", run_dir, "--no-dynamic-graph", "--graph-window",
                        "recorded", "--output", tmp_path / "refused.json")
    assert refused.returncode == 2 and "add --dynamic-graph" in last_line(refused.stderr)
    assert not (tmp_path / "refused.json").exists()
    image = decode_png(png.read_bytes())
    assert image.shape == SKELETON_PICTURE[:2] + (4,)     # savefig writes RGBA
    # Something (bones, joints, titles) is drawn in every panel.
    for panel in range(3):
        assert (image[:, panel * 320:(panel + 1) * 320, :3] < 255).any()


def test_mocap_evaluate_image_to_an_unwritable_path_is_one_line(mocap_run, tmp_path):
    _, run_dir, _ = mocap_run
    blocker = tmp_path / "file"
    blocker.write_text("")
    evaluated = main_here(evaluate_cli.main, "--run", run_dir, "--image", blocker / "x.png",
                          "--output", tmp_path / "r.json")
    assert evaluated.returncode == 2
    assert last_line(evaluated.stderr) == (f"error: --image {blocker / 'x.png'} cannot be written: "
                                           f"{blocker} is not a writable directory")
    assert not Path(tmp_path, "r.json").exists()


# --------------------------------------------------------------------------- basketball

def write_game(path: Path, events: int = 6, moments: int = 75, seed: int = 0) -> None:
    """A SportVU game log (public schema, 11 entities, 25 Hz) with smooth, coupled motion.

    Player 101 dribbles on a wandering path with the ball at his side, 102 screens near
    him, 201 and 202 guard them; the other six players drift. Positions in feet.
    """
    rng = np.random.default_rng(seed)
    home = [101, 102, 103, 104, 105]
    visitor = [201, 202, 203, 204, 205]

    def roster(ids, team, abbreviation):
        return {"teamid": team, "abbreviation": abbreviation, "name": abbreviation,
                "players": [{"playerid": p, "firstname": "Synthetic", "lastname": str(p),
                             "jersey": str(p % 100), "position": "G"} for p in ids]}

    game_events = []
    for event in range(events):
        t = np.arange(moments) / 25.0
        phase = rng.uniform(0, 2 * np.pi, size=4)
        handler = np.stack([47 + 15 * np.sin(0.8 * t + phase[0]), 25 + 10 * np.sin(1.1 * t + phase[1])], -1)
        screener = handler + np.stack([4 * np.cos(0.5 * t + phase[2]), 4 * np.sin(0.5 * t + phase[2])], -1)
        ball = handler + np.stack([1.5 * np.cos(6 * t), 1.5 * np.sin(6 * t)], -1)
        defender1 = 0.8 * handler + 0.2 * np.array([88.0, 25.0])
        defender2 = 0.8 * screener + 0.2 * np.array([88.0, 25.0])
        others = [np.stack([10 + 12 * k + np.sin(0.3 * t + k), 5 + 6 * k + np.cos(0.2 * t + k)], -1)
                  for k in range(6)]
        tracks = {101: handler, 102: screener, 201: defender1, 202: defender2,
                  **dict(zip([103, 104, 105, 203, 204, 205], others))}
        rows = []
        for i in range(moments):
            entities = [[-1, -1, *map(float, ball[i]), 5.0]]
            entities += [[1610612737, p, *map(float, tracks[p][i]), 0.0] for p in home]
            entities += [[1610612738, p, *map(float, tracks[p][i]), 0.0] for p in visitor]
            clock = 720.0 - 30 * event - i * 0.04
            rows.append([1, 1451606400000 + 100000 * event + 40 * i, round(clock, 2), 24.0, None, entities])
        game_events.append({"eventId": str(event + 1), "home": roster(home, 1610612737, "ATL"),
                            "visitor": roster(visitor, 1610612738, "BOS"), "moments": rows})
    path.write_text(json.dumps({"gameid": "0029900001", "gamedate": "2016-01-01", "events": game_events}))


@pytest.fixture(scope="module")
def sportvu_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sportvu")
    game = root / "game.json"
    write_game(game)
    datasets = {}
    for frames in (25, 33):
        datasets[frames] = root / f"nba{frames}"
        built = main_here(generate.main, "--source", "sportvu", "--games", game,
                          "--entities", -1, 101, 102, 201, 202, "--segment-frames", frames,
                          "--output", datasets[frames])
        assert built.returncode == 0, built.stderr
    run_dir = root / "run"
    trained = main_here(train_cli.main, "--data", datasets[25], "--logdir", run_dir, *SPORTVU_TRAIN)
    return datasets, run_dir, trained


def test_sportvu_encoder_sees_17_frames_and_the_test_predicts_the_last_8(sportvu_run):
    datasets, run_dir, trained = sportvu_run
    assert trained.returncode == 0, trained.stderr
    metadata = json.loads(Path(datasets[25], "metadata.json").read_text())
    assert metadata["frames"] == {"train": 25, "valid": 25, "test": 25} and metadata["nodes"] == 5
    assert json.loads(Path(run_dir, "config.json").read_text())["frames"] == 17
    # Both epochs train and validate (CNN encoder on 17 frames, RNN decoder on all 25) ...
    history = [json.loads(line) for line in Path(run_dir, "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(math.isfinite(h["val_nll"]) and math.isfinite(h["loss"]) for h in history)
    assert Path(run_dir, "best.weights.h5").is_file()
    assert_no_edge_accuracy(run_dir)
    # ... the test rollout predicts the 8 frames after the encoder's 17 ...
    assert_finite_results(json.loads(Path(run_dir, "results.json").read_text()), steps=8)
    # ... and the TensorBoard pictures show the inferred graph alone (no true graph).
    step, value = event_tags(Path(run_dir, "logs", "images"))["graphs"][-1]
    assert step == 1 and len(value) == 2 + 3      # [width, height, 3 validation systems]
    assert decode_png(value[2]).shape == INFERRED_PICTURE


def test_sportvu_run_evaluates_on_longer_segments_with_an_image(sportvu_run, tmp_path):
    datasets, run_dir, _ = sportvu_run
    png, output = tmp_path / "nba.png", tmp_path / "nba.json"
    evaluated = main_here(evaluate_cli.main, "--run", run_dir, "--data", datasets[33], "--image", png,
                          "--output", output)
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads(output.read_text())
    assert_finite_results(results, steps=16)           # 33 frames: 17 seen, 16 predicted
    assert decode_png(png.read_bytes()).shape == INFERRED_PICTURE[:2] + (4,)


def test_sportvu_encoder_frames_beyond_the_training_systems_are_one_line(sportvu_run, tmp_path):
    datasets, _, _ = sportvu_run
    trained = main_here(train_cli.main, "--data", datasets[25], "--logdir", tmp_path / "run",
                        *SPORTVU_TRAIN, "--frames", "30")
    assert trained.returncode == 2
    assert last_line(trained.stderr) == "error: frames 30 is more than the 25 frames of the training systems"
    assert not (tmp_path / "run").exists()
