"""CMU motion capture reader: Acclaim ASF/AMC parsing, forward kinematics, native dataset.

Hand-made fixtures in tests/data (tiny.asf: spine, arm with a 90-degree axis, leg) are
checked against positions worked out by hand; the real trial (../shared/data/cmu,
subject 35 walking, 358 frames) is checked for bone lengths, gait and the dataset build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_pipelines.mocap import acclaim, cmu, kinematics
from data_pipelines.errors import DatasetError

DATA = Path(__file__).resolve().parent / "data"
SHARED_CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu"
REAL_ASF, REAL_AMC = SHARED_CMU / "35.asf", SHARED_CMU / "35_01.amc"

# tiny.asf / tiny.amc in file units. Frame 1: the rest pose moved to (1, 2, 3).
# Frame 2: root turned 90 deg about y; spine rz 90; arm rx 90 about its local x axis
# (global y, as its axis is 0 0 90); leg rz 90. Worked out by hand:
#   spine end: Ry90 Rz90 (0, 2, 0) = Ry90 (-2, 0, 0) = (0, 0, 2)
#   arm:       C Rx90 C^-1 (1, 0, 0) = Ry90 (1, 0, 0) = (0, 0, -1), then Ry90 Rz90 -> (-1, 0, 0)
#   leg end:   Ry90 Rz90 (0, -3, 0) = Ry90 (3, 0, 0) = (0, 0, -3)
TINY_EXPECTED = np.array([
    [[1, 2, 3], [1, 4, 3], [2, 4, 3], [1, -1, 3]],      # root, spine, arm, leg
    [[0, 0, 0], [0, 0, 2], [-1, 0, 2], [0, 0, -3]],
], dtype=np.float64)


def _tiny(asf="tiny.asf", amc="tiny.amc", unit="file"):
    skeleton = acclaim.read_asf(DATA / asf)
    return kinematics.joint_positions(skeleton, acclaim.read_amc(DATA / amc, skeleton), unit=unit)


def _real_data():
    if not (REAL_ASF.is_file() and REAL_AMC.is_file()):
        pytest.skip(f"../shared/data/cmu not found: expected {REAL_ASF} and {REAL_AMC}")
    skeleton = acclaim.read_asf(REAL_ASF)
    return skeleton, acclaim.read_amc(REAL_AMC, skeleton)


# --------------------------------------------------------------------------- hand-made files

def test_tiny_skeleton_parses():
    skeleton = acclaim.read_asf(DATA / "tiny.asf")
    assert skeleton.joint_names == ["root", "spine", "arm", "leg"]
    assert skeleton.bone_pairs == [[0, 1], [1, 2], [0, 3]]
    assert skeleton.length_unit == 0.5 and skeleton.angle_unit == "deg"
    arm = skeleton.bone("arm")
    assert arm.parent == "spine" and arm.dofs == ("rx",) and arm.axis_order == "XYZ"
    np.testing.assert_allclose(arm.axis, [0, 0, 90])
    assert skeleton.bone("spine").limits == ((-180.0, 180.0),) * 3


def test_tiny_positions_match_hand_computed():
    np.testing.assert_allclose(_tiny(), TINY_EXPECTED, atol=1e-12)


def test_units_scale_every_position():
    np.testing.assert_allclose(_tiny(unit="in"), TINY_EXPECTED / 0.5, atol=1e-12)
    np.testing.assert_allclose(_tiny(unit="m"), TINY_EXPECTED * 0.0254 / 0.5, atol=1e-12)


def test_radians_and_degrees_agree():
    expected = _tiny()
    np.testing.assert_allclose(_tiny(amc="tiny_radians.amc"), expected, atol=1e-12)
    np.testing.assert_allclose(_tiny(asf="tiny_radians.asf"), expected, atol=1e-12)
    np.testing.assert_allclose(_tiny(asf="tiny_radians.asf", amc="tiny_radians.amc"), expected, atol=1e-12)


def test_amc_without_angle_header_uses_the_skeleton_unit(tmp_path):
    text = (DATA / "tiny_radians.amc").read_text().replace(":RADIANS\n", "")
    (tmp_path / "plain.amc").write_text(text)
    skeleton = acclaim.read_asf(DATA / "tiny_radians.asf")
    motion = acclaim.read_amc(tmp_path / "plain.amc", skeleton)
    assert motion.angle_unit is None
    np.testing.assert_allclose(kinematics.joint_positions(skeleton, motion, unit="file"), TINY_EXPECTED,
                               atol=1e-12)


def test_crlf_and_lf_give_identical_results(tmp_path):
    for name in ("tiny.asf", "tiny.amc"):
        text = (DATA / name).read_text()
        (tmp_path / name).write_bytes(text.replace("\n", "\r\n").encode())
    skeleton = acclaim.read_asf(tmp_path / "tiny.asf")
    crlf = kinematics.joint_positions(skeleton, acclaim.read_amc(tmp_path / "tiny.amc", skeleton), unit="file")
    np.testing.assert_array_equal(crlf, _tiny())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="ASF file not found: .*nowhere.asf"):
        acclaim.read_asf(tmp_path / "nowhere.asf")
    skeleton = acclaim.read_asf(DATA / "tiny.asf")
    with pytest.raises(DatasetError, match="AMC file not found"):
        acclaim.read_amc(tmp_path / "nowhere.amc", skeleton)


def test_malformed_asf_line_names_file_and_line(tmp_path):
    lines = (DATA / "tiny.asf").read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "length 2" in line)
    lines[number - 1] = "     length two"
    (tmp_path / "bad.asf").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"bad\.asf:{number}: length: not a number") as error:
        acclaim.read_asf(tmp_path / "bad.asf")
    assert "\n" not in str(error.value)


def test_malformed_amc_line_names_file_and_line(tmp_path):
    lines = (DATA / "tiny.amc").read_text().splitlines()
    number = lines.index("arm 90") + 1
    lines[number - 1] = "arm 90 45"
    (tmp_path / "bad.amc").write_text("\n".join(lines) + "\n")
    skeleton = acclaim.read_asf(DATA / "tiny.asf")
    with pytest.raises(DatasetError, match=rf"bad\.amc:{number}: bone 'arm' needs 1 values"):
        acclaim.read_amc(tmp_path / "bad.amc", skeleton)


def test_unknown_bone_in_amc(tmp_path):
    text = (DATA / "tiny.amc").read_text()
    text = text.replace("leg 0\n", "leg 0\ntail 0\n").replace("leg 90\n", "leg 90\ntail 90\n")
    (tmp_path / "tail.amc").write_text(text)
    skeleton = acclaim.read_asf(DATA / "tiny.asf")
    with pytest.raises(DatasetError, match=r"tail\.amc:\d+: unknown bone 'tail'"):
        acclaim.read_amc(tmp_path / "tail.amc", skeleton)
    motion = acclaim.read_amc(tmp_path / "tail.amc")          # without a skeleton: caught at FK
    with pytest.raises(DatasetError, match="unknown bone 'tail'"):
        kinematics.joint_positions(skeleton, motion)


def test_bone_line_without_values_and_bad_frame_number(tmp_path):
    asf = (DATA / "tiny.asf").read_text().replace("    dof rz\n    limits (-180.0 180.0)\n", "")
    (tmp_path / "stiff.asf").write_text(asf)                       # the leg has no DOFs now
    amc = (DATA / "tiny.amc").read_text().replace("leg 0\n", "leg\n").replace("leg 90\n", "")
    (tmp_path / "stiff.amc").write_text(amc)
    skeleton = acclaim.read_asf(tmp_path / "stiff.asf")
    assert skeleton.bone("leg").dofs == ()
    positions = kinematics.joint_positions(skeleton, acclaim.read_amc(tmp_path / "stiff.amc", skeleton),
                                      unit="file")
    np.testing.assert_allclose(positions[1, 3], [0, -3, 0], atol=1e-12)   # turned with the root only
    (tmp_path / "frame.amc").write_text(amc.replace("\n2\n", "\n2.5\n"))
    with pytest.raises(DatasetError, match=r"frame\.amc:9: expected an integer frame number"):
        acclaim.read_amc(tmp_path / "frame.amc", skeleton)


def test_fully_specified_frame_missing_a_bone(tmp_path):
    text = (DATA / "tiny.amc").read_text().replace("spine 0 0 90\n", "")
    (tmp_path / "gap.amc").write_text(text)
    with pytest.raises(DatasetError, match="frame 2 has no values for bone 'spine'"):
        acclaim.read_amc(tmp_path / "gap.amc", acclaim.read_asf(DATA / "tiny.asf"))


def test_errors_are_value_errors():
    assert issubclass(DatasetError, ValueError)


def test_euler_rotation_order():
    angles = np.deg2rad([30.0, 45.0, 60.0])
    expected = (kinematics.axis_rotation("z", angles[2]) @ kinematics.axis_rotation("y", angles[1])
                @ kinematics.axis_rotation("x", angles[0]))
    np.testing.assert_allclose(kinematics.euler_rotation("XYZ", angles), expected)
    np.testing.assert_allclose(kinematics.axis_rotation("z", np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-15)


def test_features_and_segments():
    positions = np.cumsum(np.ones((10, 2, 3)), axis=0)           # every coordinate grows 1 a frame
    features = cmu.joint_features(positions, fps=4.0)
    assert features.shape == (2, 10, 6) and features.dtype == np.float32
    np.testing.assert_allclose(features[..., 3:], 4.0)           # 1 per frame * 4 frames/s
    cut = cmu.segments(features, 3)
    assert cut.shape == (3, 2, 3, 6)
    np.testing.assert_array_equal(cut[1], features[:, 3:6])


def test_frame_split_of_a_single_trial():
    assert cmu.frame_split(358) == {"train": (0, 210), "valid": (210, 259), "test": (259, 358)}
    with pytest.raises(DatasetError, match="too short"):
        cmu.frame_split(150)


# --------------------------------------------------------------------------- the real trial

def test_real_trial_shapes():
    skeleton, motion = _real_data()
    assert motion.num_frames == 358 and motion.fully_specified and motion.angle_unit == "deg"
    assert skeleton.num_joints == 31 and len(skeleton.bone_pairs) == 30
    positions = kinematics.joint_positions(skeleton, motion)
    assert positions.shape == (358, 31, 3) and np.isfinite(positions).all()


def test_real_bone_lengths_hold_in_every_frame():
    skeleton, motion = _real_data()
    positions = kinematics.joint_positions(skeleton, motion, unit="m")
    scale = 0.0254 / 0.45
    for (parent, child), bone in zip(skeleton.bone_pairs, skeleton.bones):
        distance = np.linalg.norm(positions[:, child] - positions[:, parent], axis=-1)
        np.testing.assert_allclose(distance, bone.length * scale, rtol=1e-9, atol=1e-12,
                                   err_msg=bone.name)


def test_real_walk_is_plausible_and_feet_alternate():
    skeleton, motion = _real_data()
    positions = kinematics.joint_positions(skeleton, motion, unit="m")
    names = skeleton.joint_names
    head, left, right = (names.index(n) for n in ("head", "lfoot", "rfoot"))
    assert (positions[:, head, 1] > positions[:, left, 1] + 1.0).all()       # upright, y up
    heading = positions[-1, 0] - positions[0, 0]
    heading[1] = 0.0
    assert np.linalg.norm(heading) > 2.0                                       # metres walked
    heading /= np.linalg.norm(heading)
    ahead = np.sign((positions[:, left] - positions[:, right]) @ heading)
    assert np.count_nonzero(np.diff(ahead[ahead != 0])) >= 4                 # steps alternate


def test_build_cmu_dataset_from_the_real_trial(tmp_path):
    _real_data()
    out = tmp_path / "cmu"
    metadata = cmu.build_cmu_dataset(REAL_ASF, [REAL_AMC], out)
    from data_pipelines.storage.reader import read_metadata, read_split

    assert read_metadata(out).to_dict() == metadata.to_dict()
    assert metadata.source == "cmu" and metadata.nodes == 31 and metadata.dims == 6
    assert metadata.frames == {"train": 49, "valid": 49, "test": 99}
    assert metadata.splits == {"train": 4, "valid": 1, "test": 1}
    assert metadata.parameters["edge_labels"] == "none"
    assert metadata.extra["bones"][:3] == [[0, 1], [1, 2], [2, 3]]
    assert metadata.extra["joint_names"][0] == "root" and len(metadata.extra["joint_names"]) == 31
    shapes = {"train": (4, 31, 49, 6), "valid": (1, 31, 49, 6), "test": (1, 31, 99, 6)}
    for split, shape in shapes.items():
        trajectories, edges = read_split(out, split)
        assert trajectories.shape == shape
        assert edges.shape == (shape[0], 31 * 30) and not edges.any()
    train, _ = read_split(out, "train")
    low = np.asarray(metadata.normalisation.min, dtype=np.float32)
    high = np.asarray(metadata.normalisation.max, dtype=np.float32)
    scaled = (train - low) * 2 / (high - low) - 1
    assert np.abs(scaled).max() <= 1.0 + 1e-6
    assert np.isclose(np.abs(scaled[..., :3]).max(), 1.0) and np.isclose(np.abs(scaled[..., 3:]).max(), 1.0)
    # raw positions: the first training segment is the trial's first 49 frames
    skeleton, motion = _real_data()
    positions = kinematics.joint_positions(skeleton, motion)
    np.testing.assert_allclose(train[0, :, :, :3], positions[:49].transpose(1, 0, 2), rtol=1e-6, atol=1e-6)
    with pytest.raises(DatasetError):
        cmu.build_cmu_dataset(REAL_ASF, [REAL_AMC], out)                      # no overwrite


def test_build_by_trial_with_explicit_split(tmp_path):
    _real_data()
    metadata = cmu.build_cmu_dataset(REAL_ASF, [REAL_AMC] * 3, tmp_path / "cmu",
                                       split={"train": [0], "valid": [1], "test": [2]})
    assert metadata.splits == {"train": 7, "valid": 7, "test": 3}
    with pytest.raises(DatasetError, match="both"):
        cmu.build_cmu_dataset(REAL_ASF, [REAL_AMC] * 3, tmp_path / "other",
                                split={"train": [0, 1], "valid": [1], "test": [2]})


def _frames_file(tmp_path, numbers) -> Path:
    """tiny.amc with its two frame blocks numbered ``numbers`` (repeating the blocks as needed)."""
    lines = (DATA / "tiny.amc").read_text().splitlines()   # 3 header lines, "1", 4 bones, "2", 4 bones
    blocks = [lines[4:8], lines[9:13]]
    text = lines[:3] + [line for i, n in enumerate(numbers) for line in [str(n)] + blocks[i % 2]]
    path = tmp_path / "frames.amc"
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.parametrize("numbers, message", [
    ([1, 3], r"frames\.amc:9: frame 3 follows frame 1 \(frame 2 missing\)"),
    ([1, 2, 5], r"frame 5 follows frame 2 \(frames 3\.\.4 missing\)"),
    ([1, 2, 2], r"frame 2 follows frame 2 \(repeated\)"),
    ([2, 1], r"frame 1 follows frame 2 \(out of order\)"),
])
def test_frame_numbers_must_count_up_by_one(tmp_path, numbers, message):
    skeleton = acclaim.read_asf(DATA / "tiny.asf")
    assert list(acclaim.read_amc(_frames_file(tmp_path, [7, 8, 9]), skeleton).frame_numbers) == [7, 8, 9]
    with pytest.raises(DatasetError, match=message):
        acclaim.read_amc(_frames_file(tmp_path, numbers), skeleton)


def test_trial_split_follows_the_papers_proportions():
    assert {k: len(v) for k, v in cmu.trial_split(22).items()} == {"train": 11, "valid": 4, "test": 7}
    split = cmu.trial_split(23)                       # subject 35's 23 walks: one more for training
    assert split == {"train": list(range(12)), "valid": list(range(12, 16)), "test": list(range(16, 23))}


def test_a_single_trial_warns_that_its_splits_are_too_small(tmp_path):
    _real_data()
    with pytest.warns(UserWarning, match=r"split 'train' has only 4 segments of 49 frames \(from 1 trial\)"):
        cmu.build_cmu_dataset(REAL_ASF, [REAL_AMC], tmp_path / "cmu")


def test_all_23_walks_build_the_papers_split_by_trial(tmp_path):
    trials = sorted(SHARED_CMU.glob("35_*.amc"))
    if len(trials) != 23:
        pytest.skip(f"expected the 23 walks of subject 35 in {SHARED_CMU}, found {len(trials)}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no split is too small
        metadata = cmu.build_cmu_dataset(REAL_ASF, trials, tmp_path / "cmu35")
    layout = metadata.parameters["split_layout"]
    assert [name for name, split in layout.items() if split == "valid"] == [f"35_{n}.amc" for n in (13, 14, 15, 16)]
    assert [name for name, split in layout.items() if split == "test"] == [f"35_{n}.amc" for n in range(28, 35)]
    assert sum(split == "train" for split in layout.values()) == 12
    assert all(size >= cmu.MIN_SEGMENTS for size in metadata.splits.values())
