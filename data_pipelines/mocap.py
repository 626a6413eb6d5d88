"""CMU motion capture (Acclaim ASF/AMC) reader and the NRI motion-capture dataset.

Building blocks, in the order data flows through them:

- `read_asf(path) -> Skeleton`: the Acclaim skeleton file (units, root, bones, hierarchy).
- `read_amc(path, skeleton=None) -> Motion`: the Acclaim motion file (per-frame DOF values).
- `joint_positions(skeleton, motion) -> [frames, joints, 3]`: forward kinematics.
- `joint_features(positions, fps) -> [joints, frames, 6]`: positions and velocities.
- `segments(features, length) -> [segments, joints, length, 6]`: non-overlapping cuts.
- `build_cmu_dataset(asf_path, amc_paths, output_dir, ...)`: all of the above, written in
  the native dataset format (`data_pipelines.storage`) with the skeleton's bone graph.

Joints. Joint 0 is the root; joint i >= 1 is the *end* of the i-th bone of the ASF
``:bonedata`` section (file order), so a CMU skeleton has 31 joints. `Skeleton.bones`
lists the natural graph as [parent joint, child joint] pairs (30 for CMU).

Forward kinematics, as the Acclaim format defines it (Schafer, "Acclaim Skeleton File
Definition V1.10"; the CMU viewer and the widely used amc_parser agree):

- Euler angles. A rotation order such as ``XYZ`` (a bone's ``axis`` order, the root's
  ``axis``) or a token list such as ``rx ry rz`` (a bone's ``dof``, the root's ``order``)
  lists rotations about fixed axes in the order they are applied: ``XYZ`` with angles
  (a, b, c) is the matrix ``Rz(c) @ Ry(b) @ Rx(a)`` acting on column vectors.
- Each bone's ``axis`` gives C, the rotation from the bone's local frame to the global
  frame of the rest pose. A frame's DOF values give M in that local frame, so the bone's
  rotation relative to its parent, in rest-pose global coordinates, is ``L = C M C^-1``.
- Rotations compose down the hierarchy, ``G_bone = G_parent @ L_bone``, and the bone's
  end is ``end_parent + G_bone @ (direction * length)``: ``direction`` is the bone's
  unit direction in the global frame of the rest pose.
- The root: ``G_root = C_root M_root C_root^-1`` with C_root from ``orientation`` (rotation
  order ``axis``) and M_root from the AMC root line's rotation channels (in ``order``);
  its position is the ASF ``position`` plus the AMC root translation.

Units. ASF lengths and AMC root translations are in file units; ``:units length u``
means file units times 1/u are inches (CMU's convention, u = 0.45). Positions come out in
metres by default (file units * 0.0254 / u); ``unit="in"`` gives inches and
``unit="file"`` the raw file units. Bone lengths between consecutive joints are the ASF
bone lengths times that one scale, in every frame. Axes are the CMU capture axes:
y is up; the subject walks in the x-z plane.

Angles. ASF values use the ASF ``:units angle`` (``deg`` or ``rad``); AMC values use the
AMC's ``:DEGREES`` / ``:RADIANS`` header, and the ASF's angle unit when it has neither.

Only rotational bone DOFs (rx ry rz) are supported, as in every CMU file; a translational
or length DOF (tx ty tz l) on a bone is rejected with a clear error.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np

from data_pipelines.errors import DatasetError
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.writer import write_dataset

PathLike = Union[str, os.PathLike]

INCHES_TO_METRES = 0.0254
CMU_FPS = 120.0
TRAIN_FRAMES = 49     # paper appendix D.2: training and validation segments
TEST_FRAMES = 99      # paper appendix D.2: test segments
UNITS = ("m", "in", "file")
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
SPLITS = ("train", "valid", "test")

_ROTATION_TOKENS = ("rx", "ry", "rz")
_TRANSLATION_TOKENS = ("tx", "ty", "tz")
_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}


# --------------------------------------------------------------------------- data types

@dataclasses.dataclass(frozen=True)
class Bone:
    """One ASF bone.

    Attributes:
      id: the ``id`` field (informational).
      name: bone name, as written in the AMC file.
      parent: name of the parent bone, ``"root"`` for the root's children.
      direction: [3] unit direction in the global frame of the rest pose.
      length: bone length in file units.
      axis: [3] Euler angles of the local frame, in the skeleton's angle unit.
      axis_order: rotation order of ``axis``, e.g. ``"XYZ"``.
      dofs: DOF tokens in file order, e.g. ``("rx", "ry", "rz")``; the AMC values follow it.
      limits: one (low, high) pair per DOF (informational; not enforced).
    """

    id: int
    name: str
    parent: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dofs: tuple
    limits: tuple


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A parsed ASF file.

    Attributes:
      name: the ``:name`` field.
      length_unit: ``:units length`` (file units * 1/length_unit = inches, CMU convention).
      mass_unit: ``:units mass``.
      angle_unit: ``"deg"`` or ``"rad"`` (``:units angle``).
      root_order: channel tokens of the AMC root line, e.g. ("tx","ty","tz","rx","ry","rz").
      root_axis_order: rotation order of ``root_orientation``.
      root_position: [3] pre-set root position in file units.
      root_orientation: [3] pre-set root orientation in ``angle_unit``.
      bones: the bones in ASF file order; joint i >= 1 is the end of ``bones[i - 1]``.
      path: the file it was read from ("" when built in memory).
    """

    name: str
    length_unit: float
    mass_unit: float
    angle_unit: str
    root_order: tuple
    root_axis_order: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    bones: tuple
    path: str = ""

    @property
    def joint_names(self) -> list:
        """[joints] names: ``"root"`` then the bone names (a joint is its bone's end)."""
        return ["root"] + [bone.name for bone in self.bones]

    @property
    def num_joints(self) -> int:
        return len(self.bones) + 1

    @property
    def bone_pairs(self) -> list:
        """[bones, 2] lists of [parent joint, child joint]: the skeleton's natural graph."""
        index = {name: i for i, name in enumerate(self.joint_names)}
        return [[index[bone.parent], index[bone.name]] for bone in self.bones]

    def bone(self, name: str) -> Bone:
        for bone in self.bones:
            if bone.name == name:
                return bone
        raise KeyError(name)

    def scale(self, unit: str = "m") -> float:
        """Factor from file units to ``unit`` ("m", "in" or "file")."""
        if unit == "m":
            return INCHES_TO_METRES / self.length_unit
        if unit == "in":
            return 1.0 / self.length_unit
        if unit == "file":
            return 1.0
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


@dataclasses.dataclass(frozen=True)
class Motion:
    """A parsed AMC file.

    Attributes:
      frame_numbers: [frames] int, the frame numbers written in the file.
      channels: bone name (and ``"root"``) -> [frames, values] float64, values in the
        bone's DOF order (the root's in the ASF ``order``).
      angle_unit: ``"deg"``, ``"rad"``, or None when the file says neither (the ASF's
        angle unit then applies).
      fully_specified: the file declares ``:FULLY-SPECIFIED``.
      path: the file it was read from.
    """

    frame_numbers: np.ndarray
    channels: dict
    angle_unit: Optional[str]
    fully_specified: bool
    path: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frame_numbers.shape[0])


# --------------------------------------------------------------------------- rotations

def axis_rotation(axis: str, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices about a coordinate axis (right-handed, column vectors).

    Args:
      axis: "x", "y" or "z".
      angles: [...] angles in radians.
    Returns:
      [..., 3, 3] float64.
    """
    angles = np.asarray(angles, dtype=np.float64)
    cos, sin = np.cos(angles), np.sin(angles)
    one, zero = np.ones_like(angles), np.zeros_like(angles)
    if axis == "x":
        rows = [[one, zero, zero], [zero, cos, -sin], [zero, sin, cos]]
    elif axis == "y":
        rows = [[cos, zero, sin], [zero, one, zero], [-sin, zero, cos]]
    elif axis == "z":
        rows = [[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]]
    else:
        raise ValueError(f"rotation axis must be x, y or z, got {axis!r}")
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def euler_rotation(order: str, angles: np.ndarray) -> np.ndarray:
    """Composes rotations about fixed axes, applied in ``order`` (first letter first).

    Args:
      order: axis letters, e.g. "XYZ" (any case, any length; letters may repeat).
      angles: [..., len(order)] angles in radians, one per letter.
    Returns:
      [..., 3, 3]: ``R[order[-1]] @ ... @ R[order[0]]``; "XYZ" gives Rz @ Ry @ Rx.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.shape[-1] != len(order):
        raise ValueError(f"{len(order)} angles needed for order {order!r}, got {angles.shape[-1]}")
    result = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3))
    for k, letter in enumerate(order.lower()):
        result = axis_rotation(letter, angles[..., k]) @ result
    return result


def _to_radians(values: np.ndarray, unit: str) -> np.ndarray:
    return np.deg2rad(values) if unit == "deg" else np.asarray(values, dtype=np.float64)


# --------------------------------------------------------------------------- file reading

def _read_lines(path: PathLike, kind: str) -> list:
    """[(line number, text without comment and line end)] of a text file (CRLF or LF)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{kind} file not found: {path}")
    with open(path, "r", encoding="latin-1", newline=None) as stream:
        text = stream.read()
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].rstrip()
        if line.strip():
            lines.append((number, line))
    return lines


def _tokens(line: str) -> list:
    """Whitespace tokens; commas and parentheses count as whitespace (ASF spec)."""
    return line.replace(",", " ").replace("(", " ").replace(")", " ").split()


def _floats(path: str, number: int, values: Sequence, count: Optional[int], what: str) -> np.ndarray:
    if count is not None and len(values) != count:
        raise DatasetError(f"{path}:{number}: {what} needs {count} numbers, got {len(values)}")
    try:
        return np.array([float(value) for value in values], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"{path}:{number}: {what}: not a number in {' '.join(values)!r}") from None


def _rotation_order(path: str, number: int, token: str) -> str:
    order = token.upper()
    if not order or any(letter not in "XYZ" for letter in order):
        raise DatasetError(f"{path}:{number}: rotation order must be letters X, Y, Z (e.g. XYZ), "
                           f"got {token!r}")
    return order


def read_asf(path: PathLike) -> Skeleton:
    """Reads an Acclaim skeleton file.

    Args:
      path: the ``.asf`` file (CRLF or LF line ends, ``#`` comments).
    Returns:
      The `Skeleton`.
    Raises:
      DatasetError: the file is missing, a line is malformed (the message names the file
        and line), or the hierarchy is inconsistent.
    """
    path = os.fspath(path)
    lines = _read_lines(path, "ASF")
    units = {"mass": 1.0, "length": 1.0, "angle": "deg"}
    root = {"order": ("tx", "ty", "tz", "rx", "ry", "rz"), "axis": "XYZ",
            "position": np.zeros(3), "orientation": np.zeros(3)}
    name = ""
    bones: list = []          # field dicts, in file order
    parents: dict = {}
    section = None
    current = None            # the bone being read (dict) inside begin/end
    last_key = None           # for limits continuation lines
    in_hierarchy_block = False

    for number, line in lines:
        stripped = line.strip()
        if stripped.startswith(":"):
            if current is not None:
                raise DatasetError(f"{path}:{number}: bone block without 'end' before {stripped.split()[0]}")
            keyword, *rest = stripped.split()
            section = keyword.lower()
            if section == ":name":
                name = " ".join(rest)
            elif section == ":units" and rest:
                raise DatasetError(f"{path}:{number}: write unit definitions on the lines after :units")
            continue
        words = _tokens(stripped)
        if section == ":units":
            if len(words) != 2:
                raise DatasetError(f"{path}:{number}: expected 'mass|length|angle VALUE', got {stripped!r}")
            key, value = words[0].lower(), words[1]
            if key == "angle":
                if value.lower() not in ("deg", "rad"):
                    raise DatasetError(f"{path}:{number}: angle unit must be deg or rad, got {value!r}")
                units["angle"] = value.lower()
            elif key in ("mass", "length"):
                units[key] = float(_floats(path, number, [value], 1, key)[0])
                if units[key] <= 0:
                    raise DatasetError(f"{path}:{number}: {key} unit must be positive, got {value}")
            else:
                raise DatasetError(f"{path}:{number}: unknown unit {key!r} (expected mass, length, angle)")
        elif section == ":root":
            key, values = words[0].lower(), words[1:]
            if key == "order":
                order = tuple(value.lower() for value in values)
                unknown = [t for t in order if t not in _ROTATION_TOKENS + _TRANSLATION_TOKENS]
                if unknown or len(set(order)) != len(order):
                    raise DatasetError(f"{path}:{number}: root order tokens must be distinct TX TY TZ "
                                       f"RX RY RZ, got {' '.join(values)!r}")
                root["order"] = order
            elif key == "axis":
                if len(values) != 1:
                    raise DatasetError(f"{path}:{number}: root axis needs one order token, e.g. XYZ")
                root["axis"] = _rotation_order(path, number, values[0])
            elif key in ("position", "orientation"):
                root[key] = _floats(path, number, values, 3, f"root {key}")
            else:
                raise DatasetError(f"{path}:{number}: unknown root field {key!r}")
        elif section == ":bonedata":
            key = words[0].lower()
            if key == "begin":
                if current is not None:
                    raise DatasetError(f"{path}:{number}: 'begin' inside a bone block")
                current = {"line": number}
                last_key = None
                continue
            if current is None:
                raise DatasetError(f"{path}:{number}: bone field outside begin/end: {stripped!r}")
            if key == "end":
                bones.append(_finish_bone(path, current))
                current = None
                continue
            if stripped.startswith("(") and last_key == "limits":
                current["limits"].append(tuple(_floats(path, number, words, 2, "limits")))
                continue
            last_key = key
            values = words[1:]
            if key == "id":
                current["id"] = int(_floats(path, number, values, 1, "id")[0])
            elif key == "name":
                if len(values) != 1:
                    raise DatasetError(f"{path}:{number}: bone name must be one word, got {stripped!r}")
                current["name"] = values[0]
            elif key == "direction":
                current["direction"] = _floats(path, number, values, 3, "direction")
            elif key == "length":
                current["length"] = float(_floats(path, number, values, 1, "length")[0])
            elif key == "axis":
                if len(values) != 4:
                    raise DatasetError(f"{path}:{number}: axis needs 3 angles and an order, e.g. "
                                       f"'axis 0 0 20 XYZ', got {stripped!r}")
                current["axis"] = _floats(path, number, values[:3], 3, "axis")
                current["axis_order"] = _rotation_order(path, number, values[3])
            elif key == "dof":
                dofs = tuple(value.lower() for value in values)
                for token in dofs:
                    if token in _TRANSLATION_TOKENS + ("l",):
                        raise DatasetError(f"{path}:{number}: translational/length DOF {token!r} is not "
                                           f"supported (bones may only rotate: rx ry rz)")
                    if token not in _ROTATION_TOKENS:
                        raise DatasetError(f"{path}:{number}: unknown DOF {token!r} (expected rx ry rz)")
                if len(set(dofs)) != len(dofs):
                    raise DatasetError(f"{path}:{number}: repeated DOF in {stripped!r}")
                current["dofs"] = dofs
            elif key == "limits":
                current["limits"] = [tuple(_floats(path, number, values, 2, "limits"))]
            elif key in ("bodymass", "cofmass"):
                _floats(path, number, values, 1, key)
            else:
                raise DatasetError(f"{path}:{number}: unknown bone field {key!r}")
        elif section == ":hierarchy":
            key = words[0].lower()
            if key == "begin":
                in_hierarchy_block = True
            elif key == "end":
                in_hierarchy_block = False
            elif not in_hierarchy_block:
                raise DatasetError(f"{path}:{number}: hierarchy line outside begin/end: {stripped!r}")
            else:
                if len(words) < 2:
                    raise DatasetError(f"{path}:{number}: hierarchy line needs a parent and children")
                for child in words[1:]:
                    if child in parents:
                        raise DatasetError(f"{path}:{number}: bone {child!r} has two parents "
                                           f"({parents[child][0]!r} and {words[0]!r})")
                    parents[child] = (words[0], number)
        elif section is None:
            raise DatasetError(f"{path}:{number}: text before the first :keyword: {stripped!r}")
        # other sections (:version, :documentation, vendor extensions) carry no geometry

    if current is not None:
        raise DatasetError(f"{path}: bone block opened at line {current['line']} has no 'end'")
    if not bones:
        raise DatasetError(f"{path}: no bones (:bonedata section missing or empty)")
    names = [bone["name"] for bone in bones]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DatasetError(f"{path}: bone names defined twice: {', '.join(duplicated)}")
    if "root" in names:
        raise DatasetError(f"{path}: a bone may not be called 'root'")
    for child, (parent, number) in parents.items():
        if child not in names:
            raise DatasetError(f"{path}:{number}: hierarchy names unknown bone {child!r}")
        if parent != "root" and parent not in names:
            raise DatasetError(f"{path}:{number}: hierarchy names unknown bone {parent!r}")
    orphans = [n for n in names if n not in parents]
    if orphans:
        raise DatasetError(f"{path}: bones missing from :hierarchy: {', '.join(orphans)}")
    for n in names:               # every chain must reach the root
        seen, node = set(), n
        while node != "root":
            if node in seen:
                raise DatasetError(f"{path}: :hierarchy has a cycle through bone {n!r}")
            seen.add(node)
            node = parents[node][0]

    return Skeleton(
        name=name, length_unit=units["length"], mass_unit=units["mass"], angle_unit=units["angle"],
        root_order=tuple(root["order"]), root_axis_order=root["axis"],
        root_position=root["position"], root_orientation=root["orientation"],
        bones=tuple(dataclasses.replace(bone["bone"], parent=parents[bone["name"]][0]) for bone in bones),
        path=path)


def _finish_bone(path: str, fields: dict) -> dict:
    """Checks a bone block's fields; returns {"name", "bone"} with the parent left blank."""
    line = fields["line"]
    for required in ("name", "direction", "length"):
        if required not in fields:
            raise DatasetError(f"{path}:{line}: bone block has no {required!r}")
    name = fields["name"]
    direction = fields["direction"]
    norm = float(np.linalg.norm(direction))
    if fields["length"] < 0:
        raise DatasetError(f"{path}:{line}: bone {name!r} has a negative length")
    if norm == 0.0 and fields["length"] > 0:
        raise DatasetError(f"{path}:{line}: bone {name!r} has a zero direction")
    dofs = fields.get("dofs", ())
    limits = tuple(fields.get("limits", ()))
    if limits and len(limits) != len(dofs):
        raise DatasetError(f"{path}:{line}: bone {name!r} has {len(dofs)} DOFs but {len(limits)} limits")
    bone = Bone(id=fields.get("id", 0), name=name, parent="",
                direction=direction / norm if norm > 0 else direction, length=fields["length"],
                axis=fields.get("axis", np.zeros(3)), axis_order=fields.get("axis_order", "XYZ"),
                dofs=dofs, limits=limits)
    return {"name": name, "bone": bone}


def read_amc(path: PathLike, skeleton: Optional[Skeleton] = None) -> Motion:
    """Reads an Acclaim motion file.

    Each frame is a line with its frame number followed by one line per bone:
    ``name v1 v2 ...`` with the values in the bone's DOF order (the root's in the ASF
    ``order``). Files that are not ``:FULLY-SPECIFIED`` may leave a bone out of a frame;
    it then keeps its previous values (zeros before its first appearance). Frame numbers
    must count up by one from the first (CMU: 1, 2, 3, ...): velocities are computed as
    if frames were evenly spaced, so a missing, repeated or out-of-order frame is an error.

    Args:
      path: the ``.amc`` file (CRLF or LF line ends, ``#`` comments).
      skeleton: if given, bone names and value counts are checked against it here, so
        that errors name the line.
    Returns:
      The `Motion`.
    Raises:
      DatasetError: missing file, malformed line, unknown bone, wrong number of values,
        a bone missing from a frame of a fully specified file, or a frame number that does
        not follow the one before (file and line named).
    """
    path = os.fspath(path)
    lines = _read_lines(path, "AMC")
    expected = None
    if skeleton is not None:
        expected = {"root": len(skeleton.root_order)}
        expected.update({bone.name: len(bone.dofs) for bone in skeleton.bones})
    angle_unit, fully_specified = None, False
    frame_numbers: list = []
    frames: list = []             # one {bone: (values, line)} per frame
    widths: dict = {}

    for number, line in lines:
        stripped = line.strip()
        if stripped.startswith(":"):
            keyword = stripped.split()[0].upper()
            if frames:
                raise DatasetError(f"{path}:{number}: header keyword {keyword} after the first frame")
            if keyword == ":FULLY-SPECIFIED":
                fully_specified = True
            elif keyword == ":DEGREES":
                angle_unit = "deg"
            elif keyword == ":RADIANS":
                angle_unit = "rad"
            continue                          # other header keywords carry no data
        words = stripped.split()
        if len(words) == 1 and words[0][0] in "+-.0123456789":     # a frame number
            try:
                frame = int(words[0])
            except ValueError:
                raise DatasetError(f"{path}:{number}: expected an integer frame number or "
                                   f"'bone values...', got {stripped!r}") from None
            if frame_numbers and frame != frame_numbers[-1] + 1:
                last = frame_numbers[-1]
                if frame in frame_numbers:
                    problem = "repeated"
                elif frame < last:
                    problem = "out of order"
                else:
                    problem = f"frame{'s' if frame - last > 2 else ''} {last + 1}" + (
                        f"..{frame - 1}" if frame - last > 2 else "") + " missing"
                raise DatasetError(f"{path}:{number}: frame {frame} follows frame {frame_numbers[-1]} "
                                   f"({problem}); frames must count up by one, the velocities assume "
                                   "evenly spaced frames")
            frame_numbers.append(frame)
            frames.append({})
            continue
        # otherwise a bone line: its name and one value per DOF (none for a bone without DOFs)
        if not frames:
            raise DatasetError(f"{path}:{number}: bone values before the first frame number: {stripped!r}")
        bone, values = words[0], _floats(path, number, words[1:], None, f"bone {words[0]!r}")
        if expected is not None:
            if bone not in expected:
                raise DatasetError(f"{path}:{number}: unknown bone {bone!r} (not in {skeleton.path or 'the skeleton'})")
            if len(values) != expected[bone]:
                raise DatasetError(f"{path}:{number}: bone {bone!r} needs {expected[bone]} values "
                                   f"(its DOFs), got {len(values)}")
        if bone in frames[-1]:
            raise DatasetError(f"{path}:{number}: bone {bone!r} appears twice in frame {frame_numbers[-1]}")
        if widths.setdefault(bone, len(values)) != len(values):
            raise DatasetError(f"{path}:{number}: bone {bone!r} has {len(values)} values here but "
                               f"{widths[bone]} in earlier frames")
        frames[-1][bone] = values

    if not frames:
        raise DatasetError(f"{path}: no frames")
    required = set(widths) if expected is None else {b for b, n in expected.items() if n > 0}
    channels = {}
    for bone in sorted(required | set(widths)):
        width = widths.get(bone, expected[bone] if expected else 0)
        data = np.zeros((len(frames), width), dtype=np.float64)
        previous = np.zeros(width)
        for index, frame in enumerate(frames):
            if bone in frame:
                previous = frame[bone]
            elif fully_specified and width > 0:     # a bone without DOFs has nothing to give
                raise DatasetError(f"{path}: frame {frame_numbers[index]} has no values for bone "
                                   f"{bone!r} (the file is :FULLY-SPECIFIED)")
            data[index] = previous
        channels[bone] = data
    return Motion(frame_numbers=np.asarray(frame_numbers, dtype=np.int64), channels=channels,
                  angle_unit=angle_unit, fully_specified=fully_specified, path=path)


# --------------------------------------------------------------------------- kinematics

def joint_positions(skeleton: Skeleton, motion: Motion, *, unit: str = "m") -> np.ndarray:
    """Forward kinematics: the global position of every joint in every frame.

    Args:
      skeleton: from `read_asf`.
      motion: from `read_amc` (for this skeleton).
      unit: "m" (metres, default), "in" (inches) or "file" (ASF file units).
    Returns:
      [frames, joints, 3] float64; joint 0 is the root, joint i the end of
      ``skeleton.bones[i - 1]``.
    Raises:
      DatasetError: the motion names a bone the skeleton lacks, has the wrong number of
        values for a bone, or lacks a bone that has DOFs.
    """
    scale = skeleton.scale(unit)
    where = motion.path or "motion"
    known = {"root"} | {bone.name for bone in skeleton.bones}
    unknown = sorted(set(motion.channels) - known)
    if unknown:
        raise DatasetError(f"{where}: unknown bone {unknown[0]!r} (not in {skeleton.path or 'the skeleton'})")
    frames = motion.num_frames
    motion_unit = motion.angle_unit or skeleton.angle_unit

    def channel(name: str, width: int) -> np.ndarray:
        if width == 0:
            return np.zeros((frames, 0))
        if name not in motion.channels:
            raise DatasetError(f"{where}: no values for bone {name!r}, which has {width} DOFs")
        values = motion.channels[name]
        if values.shape[1] != width:
            raise DatasetError(f"{where}: bone {name!r} needs {width} values (its DOFs), got {values.shape[1]}")
        return values

    # Root.
    root_values = channel("root", len(skeleton.root_order))
    translation = np.zeros((frames, 3))
    rotation_order, rotation_columns = "", []
    for column, token in enumerate(skeleton.root_order):
        if token in _TRANSLATION_TOKENS:
            translation[:, _AXIS_INDEX[token[1]]] = root_values[:, column]
        else:
            rotation_order += token[1]
            rotation_columns.append(column)
    c_root = euler_rotation(skeleton.root_axis_order,
                            _to_radians(skeleton.root_orientation, skeleton.angle_unit))
    m_root = euler_rotation(rotation_order, _to_radians(root_values[:, rotation_columns], motion_unit))
    global_rotation = {"root": c_root @ m_root @ c_root.T}                   # [frames, 3, 3]
    position = {"root": skeleton.root_position[None, :] + translation}       # [frames, 3]

    # Bones, parents before children.
    pending = list(skeleton.bones)
    while pending:
        ready = [bone for bone in pending if bone.parent in position]
        if not ready:       # only reachable for a Skeleton built in memory, not by read_asf
            raise DatasetError(f"{skeleton.path or 'skeleton'}: bones {[b.name for b in pending]} "
                               f"do not connect to the root")
        for bone in ready:
            c = euler_rotation(bone.axis_order, _to_radians(bone.axis, skeleton.angle_unit))
            values = channel(bone.name, len(bone.dofs))
            m = euler_rotation("".join(token[1] for token in bone.dofs),
                               _to_radians(values, motion_unit))            # [frames, 3, 3]
            rotation = global_rotation[bone.parent] @ (c @ m @ c.T)
            global_rotation[bone.name] = rotation
            offset = bone.direction * bone.length                               # [3]
            position[bone.name] = position[bone.parent] + rotation @ offset
        pending = [bone for bone in pending if bone.name not in position]
    positions = np.stack([position[name] for name in skeleton.joint_names], axis=1)
    return positions * scale


# --------------------------------------------------------------------------- features

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
