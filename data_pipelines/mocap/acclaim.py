"""The Acclaim file parsers: `read_asf` (skeleton) and `read_amc` (motion).

Only rotational bone DOFs (rx ry rz) are supported, as in every CMU file; a translational
or length DOF (tx ty tz l) on a bone is rejected with a clear error (DatasetError naming
the file and line).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Optional

import numpy as np

from data_pipelines.errors import DatasetError
from data_pipelines.mocap.skeleton import (ROTATION_TOKENS, TRANSLATION_TOKENS, Bone, Motion, PathLike,
                                           Skeleton)


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
                unknown = [t for t in order if t not in ROTATION_TOKENS + TRANSLATION_TOKENS]
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
                    if token in TRANSLATION_TOKENS + ("l",):
                        raise DatasetError(f"{path}:{number}: translational/length DOF {token!r} is not "
                                           f"supported (bones may only rotate: rx ry rz)")
                    if token not in ROTATION_TOKENS:
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

