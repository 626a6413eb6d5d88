"""`python -m data_pipelines.generate --source {simulation,cmu,sportvu}`: the real-data
sources build the same datasets as their readers' functions, forward every flag, and
refuse flags of other sources and missing files with one line and exit code 2.

CMU: the real trial ../shared/data/cmu/35_01 (skipped when absent) and the hand-made
tests/data/tiny.asf for argument errors. SportVU: the hand-made tests/data/sportvu_game.json
(see tests/test_sportvu.py; 4-frame segments, as its events are short).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from data_pipelines import generation
from data_pipelines.mocap.cmu import build_cmu_dataset
from data_pipelines.sportvu.nba import build_sportvu_dataset
from data_pipelines.storage.reader import read_metadata, read_split
from data_pipelines import generate

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED_CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu"
REAL_ASF, REAL_AMC = SHARED_CMU / "35.asf", SHARED_CMU / "35_01.amc"
TINY_ASF, TINY_AMC = DATA / "tiny.asf", DATA / "tiny.amc"
GAME = DATA / "sportvu_game.json"
ENTITIES = ["-1", "101", "103", "201", "203"]


def real_trial() -> tuple[str, str]:
    if not (REAL_ASF.is_file() and REAL_AMC.is_file()):
        pytest.skip(f"../shared/data/cmu not found: expected {REAL_ASF} and {REAL_AMC}")
    return str(REAL_ASF), str(REAL_AMC)


def run_main(argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `generate.main` in this process."""
    try:
        code = generate.main([str(a) for a in argv])
    except SystemExit as exit_:          # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_splits(a: str, b: str) -> None:
    for split in ("train", "valid", "test"):
        for left, right in zip(read_split(a, split), read_split(b, split)):
            np.testing.assert_array_equal(left, right)


# --------------------------------------------------------------------------- cmu

def test_cmu_source_on_the_real_trial_from_the_command_line(tmp_path):
    asf, amc = real_trial()
    output = tmp_path / "cmu35"
    result = subprocess.run(
        [sys.executable, "-m", "data_pipelines.generate", "--source", "cmu", "--asf", asf,
         "--amc", amc, "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {output} (tfrecord): cmu, 31 nodes, 6 dims; "
                                    "train 4 x 49 frames, valid 1 x 49 frames, test 1 x 99 frames")
    # One trial: every split too small to mean much, said in one line each.
    assert "warning: split 'train' has only 4 segments of 49 frames (from 1 trial)" in result.stderr
    metadata = read_metadata(str(output))
    assert metadata.parameters["edge_labels"] == "none" and metadata.parameters["split"] == "frames"
    assert (metadata.parameters["unit"], metadata.parameters["fps"]) == ("m", 120.0)
    assert len(metadata.extra["bones"]) == 30 and metadata.extra["joint_names"][0] == "root"
    direct = tmp_path / "direct"
    build_cmu_dataset(asf, [amc], str(direct))
    assert_same_splits(str(output), str(direct))


def test_cmu_flags_are_forwarded(tmp_path, capsys):
    asf, amc = real_trial()
    output = tmp_path / "cmu"
    code, out, err = run_main(["--source", "cmu", "--asf", asf, "--amc", amc, "--output", output,
                               "--train-frames", 40, "--test-frames", 80, "--split", "frames",
                               "--unit", "in", "--fps", 60], capsys)
    assert code == 0, err
    metadata = read_metadata(str(output))
    assert metadata.frames == {"train": 40, "valid": 40, "test": 80}
    p = metadata.parameters
    assert (p["unit"], p["fps"], p["split"], p["train_frames"], p["test_frames"]) == ("in", 60.0, "frames", 40, 80)
    # --overwrite replaces the dataset; without it the directory is refused.
    code, _, err = run_main(["--source", "cmu", "--asf", asf, "--amc", amc, "--output", output], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    code, _, err = run_main(["--source", "cmu", "--asf", asf, "--amc", amc, "--output", output,
                             "--overwrite"], capsys)
    assert code == 0, err
    assert read_metadata(str(output)).frames == {"train": 49, "valid": 49, "test": 99}


# --------------------------------------------------------------------------- sportvu

def test_sportvu_source_with_fixed_entities(tmp_path, capsys):
    output = tmp_path / "nba"
    code, out, err = run_main(["--source", "sportvu", "--games", GAME, "--entities", *ENTITIES,
                               "--segment-frames", 4, "--seed", 3, "--output", output], capsys)
    assert code == 0, err
    assert out.startswith(f"wrote {output} (tfrecord): sportvu, 5 nodes, 4 dims; ")
    # The reader's per-event warnings come out as one line each.
    assert err.splitlines() and all(line.startswith("warning: ") for line in err.splitlines())
    metadata = read_metadata(str(output))
    assert sum(metadata.splits.values()) == 7
    assert metadata.parameters["split_seed"] == 3 and metadata.parameters["edge_labels"] == "none"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_sportvu_dataset(GAME, tmp_path / "direct", entities=[int(e) for e in ENTITIES],
                                      frames=4, seed=3)
    assert_same_splits(str(output), str(tmp_path / "direct"))


def test_sportvu_source_with_an_event_list_and_frame_step(tmp_path, capsys):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([
        {"game_id": "0021500999", "event_id": "1", "entities": [-1, 101, 103, 201, 203]},
        {"game_id": "0021500999", "event_id": "1", "entities": [-1, 102, 104, 202, 204]},
        {"game_id": "0021500999", "event_id": "3", "entities": [-1, 106, 101, 205, 204]},
    ]))
    code, _, err = run_main(["--source", "sportvu", "--games", GAME, "--events", events,
                             "--segment-frames", 3, "--frame-step", 2, "--output", tmp_path / "nba"], capsys)
    assert code == 0, err
    metadata = read_metadata(str(tmp_path / "nba"))
    assert metadata.parameters["entities"] == "per event"
    assert (metadata.parameters["frame_step"], metadata.parameters["fps"]) == (2, 12.5)
    assert metadata.parameters["split_seed"] == 0           # sportvu's default, not the simulations' 42


# --------------------------------------------------------------------------- errors

CMU_TINY = ["--source", "cmu", "--asf", TINY_ASF, "--amc", TINY_AMC]
SPORTVU = ["--source", "sportvu", "--games", GAME, "--entities", *ENTITIES]


@pytest.mark.parametrize("argv, message", [
    (CMU_TINY + ["--num-nodes", 3], "--num-nodes does not apply to --source cmu (it is a --source simulation / reference flag)"),
    (CMU_TINY + ["--seed", 1], "--seed does not apply to --source cmu (it is a --source simulation / sportvu flag)"),
    (CMU_TINY + ["--segment-frames", 25], "--segment-frames does not apply to --source cmu (it is a --source sportvu flag)"),
    (["--asf", TINY_ASF], "--asf does not apply to --source simulation (it is a --source cmu flag)"),
    (["--simulation", "charged", "--entities", -1, 5], "--entities does not apply to --source simulation"),
    (SPORTVU + ["--train-frames", 10], "--train-frames does not apply to --source sportvu (it is a --source cmu flag)"),
    (SPORTVU + ["--format", "reference"], "--format does not apply to --source sportvu"),
    (CMU_TINY, "--source cmu needs --output DIR"),
    (["--source", "cmu", "--amc", TINY_AMC], "--source cmu needs --asf FILE and --amc FILE"),
    (["--source", "cmu", "--asf", "missing.asf", "--amc", TINY_AMC], "--asf: file not found: missing.asf"),
    (["--source", "cmu", "--asf", TINY_ASF, "--amc", TINY_AMC, "gone.amc"], "--amc: file not found: gone.amc"),
    (["--source", "sportvu", "--entities", -1, 101], "--source sportvu needs --games FILE"),
    (["--source", "sportvu", "--games", "nope.json", "--entities", -1, 101], "--games: file not found: nope.json"),
    (["--source", "sportvu", "--games", GAME], "needs exactly one of --entities"),
    (SPORTVU + ["--events", "events.json"], "needs exactly one of --entities"),
    (["--source", "sportvu", "--games", GAME, "--events", "nope.json"], "--events: file not found: nope.json"),
    (SPORTVU + ["--segment-frames", 25], "found 0 segments of 25 frames"),            # the reader's own error
    (["--source", "kinect"], "argument --source: invalid choice: 'kinect'"),
])
def test_bad_source_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    output = tmp_path / "out"
    needs_output = "--output" not in message and "needs --output" not in message
    code, out, err = run_main(argv + (["--output", output] if needs_output else []), capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert out == "" and not output.exists()


def test_source_flag_errors_come_before_tensorflow_is_imported():
    # A refused command answers at once: no TensorFlow import (seconds, and log lines).
    code = ("import sys; from data_pipelines import generate; "
            "status = generate.main(['--source', 'cmu', '--num-nodes', '3']); "
            "sys.exit(10 + status if 'tensorflow' in sys.modules else status)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("error: --num-nodes does not apply to --source cmu (it is a --source simulation / "
                             "reference flag)\n")


# --------------------------------------------------------------------------- reference .npy

def test_reference_npy_files_convert_with_one_command(tmp_path, capsys):
    from data_pipelines.storage.reference import import_reference

    reference = tmp_path / "ref"
    generation.generate_dataset(str(reference), simulation="springs", num_nodes=4, num_train=6, num_valid=3,
                              num_test=3, length=1000, length_test=2000, edge_types=3, format="reference",
                              progress=False)
    code, out, err = run_main(["--source", "reference", "--input", reference, "--output", tmp_path / "native"],
                              capsys)
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'native'} (tfrecord): springs, 4 nodes, 4 dims; train 6 x 9 frames")
    metadata = read_metadata(str(tmp_path / "native"))
    assert metadata.edge_types == 3                      # read off the edges_*.npy values
    import_reference(str(reference), str(tmp_path / "direct"), simulation="springs")
    assert_same_splits(str(tmp_path / "native"), str(tmp_path / "direct"))
    # train --data on the .npy directory names the command.
    from data_pipelines.errors import DatasetError

    with pytest.raises(DatasetError, match=f"--source reference --input {reference} --output NEW_DIR"):
        read_metadata(str(reference))


@pytest.mark.parametrize("argv, message", [
    (["--source", "reference", "--output", "x"], "--source reference needs --input DIR"),
    (["--source", "reference", "--input", DATA, "--output", "x"], "no loc_train_\\* or feat_train_\\* file; pass --simulation"),
    (["--source", "reference", "--input", DATA, "--noise", 1, "--output", "x"], "--noise does not apply to --source reference"),
])
def test_bad_reference_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    code, _, err = run_main(argv, capsys)
    assert code == 2 and err.count("\n") == 1
    assert re.search(message, err), err
