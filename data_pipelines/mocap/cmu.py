"""The NRI motion-capture dataset: joint features, segments, the frame and trial splits,
and `build_cmu_dataset`, which writes it in the native format with the bone graph."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np

from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.mocap.acclaim import read_amc, read_asf
from data_pipelines.mocap.kinematics import joint_positions
from data_pipelines.mocap.skeleton import UNITS, PathLike
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.writer import write_dataset

CMU_FPS = 120.0
TRAIN_FRAMES = 49     # paper appendix D.2: training and validation segments
TEST_FRAMES = 99      # paper appendix D.2: test segments
FEATURE_NAMES = ("x", "y", "z", "vx", "vy", "vz")
NORMALISATION_GROUPS = ((0, 1, 2), (3, 4, 5))

# Within-trial split (a single trial, or split="frames"): the share of each trial's frames
# given to the validation and test parts, rounded to whole segments, at least one each.
FRAME_SPLIT_SHARES = {"valid": 0.15, "test": 0.25}

# Split by trials (split="trials"): the share of trials for validation and test, the
# paper's 11 / 4 / 7 of 22 walking trials (section 5.2). CMU subject 35 has 23 walks: the
# shares give 12 / 4 / 7, the one walk more going to training.
TRIAL_SPLIT_SHARES = {"valid": 4 / 22, "test": 7 / 22}

# Fewer segments than this in a split get a warning: numbers from it mean little.
MIN_SEGMENTS = 10


def joint_features(positions: np.ndarray, fps: float = CMU_FPS) -> np.ndarray:
    """Positions and finite-difference velocities per joint.

    Velocities are central differences (one-sided at the two ends; ``numpy.gradient``)
    in position units per second.

    Args:
      positions: [frames, joints, 3], frames >= 2.
      fps: frames per second of the capture.
    Returns:
      [joints, frames, 6] float32: x, y, z, vx, vy, vz.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3 or positions.shape[0] < 2:
        raise ValueError(f"positions must be [frames >= 2, joints, 3], got {positions.shape}")
    velocities = np.gradient(positions, 1.0 / fps, axis=0)
    features = np.concatenate([positions, velocities], axis=-1)
    return np.transpose(features, (1, 0, 2)).astype(np.float32)


def segments(features: np.ndarray, length: int) -> np.ndarray:
    """Cuts non-overlapping segments from the start; the remainder is dropped.

    Args:
      features: [nodes, frames, dims].
      length: frames per segment.
    Returns:
      [frames // length, nodes, length, dims].
    """
    nodes, frames, dims = features.shape
    count = frames // length
    cut = features[:, :count * length].reshape(nodes, count, length, dims)
    return np.transpose(cut, (1, 0, 2, 3))


def frame_split(num_frames: int, train_frames: int = TRAIN_FRAMES,
                test_frames: int = TEST_FRAMES) -> dict:
    """Contiguous, non-overlapping train/valid/test frame ranges of one trial.

    In time order: train first, then valid, then test. Valid and test get about
    `FRAME_SPLIT_SHARES` of the frames, rounded to whole segments (valid segments have
    ``train_frames`` frames, test segments ``test_frames``), at least one segment each;
    train gets the rest.

    Returns:
      {"train": (start, end), "valid": (start, end), "test": (start, end)} frame ranges.
    Raises:
      DatasetError: the trial is shorter than one segment of each split.
    """
    valid_count = max(1, round(FRAME_SPLIT_SHARES["valid"] * num_frames / train_frames))
    test_count = max(1, round(FRAME_SPLIT_SHARES["test"] * num_frames / test_frames))
    test_start = num_frames - test_count * test_frames
    valid_start = test_start - valid_count * train_frames
    if valid_start < train_frames:
        needed = 2 * train_frames + test_frames
        raise DatasetError(f"a trial of {num_frames} frames is too short to split into train, valid "
                           f"and test segments ({train_frames}, {train_frames} and {test_frames} frames: "
                           f"at least {needed} frames)")
    return {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, num_frames)}


def trial_split(num_trials: int) -> dict:
    """Assigns trials to splits in their given order: train first, then valid, then test.

    Valid and test get about `TRIAL_SPLIT_SHARES` of the trials, at least one each.

    Returns:
      {"train": [trial indices], "valid": [...], "test": [...]}.
    """
    if num_trials < 3:
        raise DatasetError(f"splitting by trial needs at least 3 trials, got {num_trials} "
                           f"(use split='frames' to split within trials)")
    test = max(1, round(TRIAL_SPLIT_SHARES["test"] * num_trials))
    valid = max(1, round(TRIAL_SPLIT_SHARES["valid"] * num_trials))
    train = num_trials - valid - test
    if train < 1:
        train, valid, test = 1, 1, num_trials - 2
    indices = list(range(num_trials))
    return {"train": indices[:train], "valid": indices[train:train + valid], "test": indices[train + valid:]}


def _explicit_split(split: Mapping, amc_paths: list) -> dict:
    """{split: [trial indices]} from a mapping of split name to trial indices or AMC paths."""
    unknown = sorted(set(split) - set(SPLITS))
    if unknown or set(split) != set(SPLITS):
        raise DatasetError(f"split mapping needs exactly the keys {SPLITS}, got {sorted(split)}")
    resolved = [os.path.abspath(p) for p in amc_paths]
    result, used = {}, {}
    for name in SPLITS:
        result[name] = []
        for item in split[name]:
            if isinstance(item, (int, np.integer)):
                index = int(item)
                if not 0 <= index < len(amc_paths):
                    raise DatasetError(f"split {name!r}: trial index {index} out of range "
                                       f"(0..{len(amc_paths) - 1})")
            else:
                target = os.path.abspath(os.fspath(item))
                if target not in resolved:
                    raise DatasetError(f"split {name!r}: {item} is not one of the AMC files given")
                index = resolved.index(target)
            if index in used:
                raise DatasetError(f"trial {amc_paths[index]} is in both {used[index]!r} and {name!r}")
            used[index] = name
            result[name].append(index)
        if not result[name]:
            raise DatasetError(f"split {name!r} has no trials")
    return result


def build_cmu_dataset(asf_path: PathLike, amc_paths: Union[PathLike, Sequence[PathLike]],
                      output_dir: PathLike, *, train_frames: int = TRAIN_FRAMES,
                      test_frames: int = TEST_FRAMES,
                      split: Union[str, Mapping] = "auto", fps: float = CMU_FPS,
                      unit: str = "m", overwrite: bool = False) -> DatasetMetadata:
    """Builds the NRI motion-capture dataset (paper appendix D.2) in the native format.

    Every trial is turned into joint positions (`joint_positions`) and velocities
    (`joint_features`: 6 features per joint), then cut into non-overlapping segments:
    ``train_frames`` long for train and valid, ``test_frames`` long for test. Values are
    stored raw; the dataset's normalisation is max |value| -> 1, positions and velocities
    as two groups (training-split statistics), as the paper does.

    Splits:
      - ``"frames"``: each trial is cut in time into contiguous train / valid / test parts
        (`frame_split`); velocities are computed within each part so no frame of one
        split informs another.
      - ``"trials"``: whole trials per split, in the given order (`trial_split`).
      - ``"auto"``: ``"trials"`` with 3 or more trials, else ``"frames"`` (a single trial,
        35_01: 358 frames -> 4 train, 1 valid, 1 test segment).

    With subject 35's 23 walks in file order (``../shared/data/cmu/35_*.amc``) ``"trials"``
    is the paper's split by trial, one walk more for training: train 35_01..35_12, valid
    35_13..35_16, test 35_28..35_34. A split with fewer than `MIN_SEGMENTS` segments gets
    a warning (`warnings.warn`): numbers from it mean little.
      - a mapping ``{"train": [...], "valid": [...], "test": [...]}`` of trial indices
        (positions in ``amc_paths``) or AMC paths.

    Edge labels: real data has no ground-truth interaction graph; every label is 0 and
    the metadata says ``"edge_labels": "none"``. The skeleton's bones (the natural graph
    to compare learned edges with) are in the metadata's ``extra["bones"]`` as
    [parent joint, child joint] pairs, with ``extra["joint_names"]``.

    Args:
      asf_path: the subject's skeleton (``.asf``).
      amc_paths: one or more motion files (``.amc``) of that subject.
      output_dir: dataset directory to create.
      train_frames: frames per train/valid segment (49).
      test_frames: frames per test segment (99).
      split: see above.
      fps: capture rate (CMU: 120).
      unit: position unit: "m", "in" or "file".
      overwrite: replace an existing dataset at ``output_dir``.
    Returns:
      The written dataset's metadata.
    Raises:
      DatasetError: unreadable input, a bad split, or a split without segments.
    """
    if isinstance(amc_paths, (str, os.PathLike)):
        amc_paths = [amc_paths]
    amc_paths = [os.fspath(p) for p in amc_paths]
    if not amc_paths:
        raise DatasetError("no AMC files given")
    if train_frames < 2 or test_frames < 2:
        raise DatasetError(f"segments need at least 2 frames, got train_frames={train_frames}, "
                           f"test_frames={test_frames}")
    if unit not in UNITS:
        raise DatasetError(f"unit must be one of {UNITS}, got {unit!r}")
    skeleton = read_asf(asf_path)
    positions = [joint_positions(skeleton, read_amc(p, skeleton), unit=unit) for p in amc_paths]

    if isinstance(split, Mapping):
        mode, by_trial = "explicit", _explicit_split(split, amc_paths)
    elif split == "auto":
        mode = "trials" if len(amc_paths) >= 3 else "frames"
    elif split in ("trials", "frames"):
        mode = split
    else:
        raise DatasetError(f"split must be 'auto', 'trials', 'frames' or a mapping, got {split!r}")
    if mode == "trials":
        by_trial = trial_split(len(amc_paths))

    lengths = {"train": train_frames, "valid": train_frames, "test": test_frames}
    parts: dict = {name: [] for name in SPLITS}
    layout: dict = {}
    for index, (path, trial) in enumerate(zip(amc_paths, positions)):
        name = os.path.basename(path)
        if mode == "frames":
            ranges = frame_split(trial.shape[0], train_frames, test_frames)
            layout[name] = {s: list(r) for s, r in ranges.items()}
            for s, (start, end) in ranges.items():
                parts[s].append(segments(joint_features(trial[start:end], fps), lengths[s]))
        else:
            s = next(s for s in SPLITS if index in by_trial[s])
            layout[name] = s
            if trial.shape[0] < 2:
                continue
            parts[s].append(segments(joint_features(trial, fps), lengths[s]))

    nodes = skeleton.num_joints
    edges = nodes * (nodes - 1)
    splits = {}
    for s in SPLITS:
        data = np.concatenate(parts[s], axis=0) if parts[s] else np.zeros((0, nodes, lengths[s], 6))
        if data.shape[0] == 0:
            raise DatasetError(f"split {s!r} has no segments of {lengths[s]} frames; use shorter "
                               f"segments or longer/more trials")
        if data.shape[0] < MIN_SEGMENTS:
            warnings.warn(f"split {s!r} has only {data.shape[0]} segments of {lengths[s]} frames "
                          f"(from {len(amc_paths)} trial{'s' if len(amc_paths) > 1 else ''}): too few "
                          "to mean much; give more trials (subject 35 has 23 walks)", stacklevel=2)
        splits[s] = (data.astype(np.float32), np.zeros((data.shape[0], edges), dtype=np.int32))

    parameters = {
        "skeleton": os.path.basename(os.fspath(asf_path)),
        "trials": [os.path.basename(p) for p in amc_paths],
        "fps": fps, "unit": unit, "split": mode, "split_layout": layout,
        "train_frames": train_frames, "test_frames": test_frames,
        "velocity": f"central finite differences (numpy.gradient), {unit} per second",
        "edge_labels": "none",
    }
    extra = {"bones": skeleton.bone_pairs, "joint_names": skeleton.joint_names,
             "citation": "CMU Graphics Lab Motion Capture Database, mocap.cs.cmu.edu"}
    return write_dataset(output_dir, splits=splits, source="cmu", parameters=parameters,
                         edge_types=1, feature_names=FEATURE_NAMES,
                         normalisation_groups=NORMALISATION_GROUPS, normalisation_method="maxabs",
                         seed=None, extra=extra, overwrite=overwrite)

