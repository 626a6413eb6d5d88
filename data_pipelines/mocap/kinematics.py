"""Forward kinematics of an Acclaim skeleton: `joint_positions` [frames, joints, 3], and
the Euler rotations it composes (conventions: the package docstring, `data_pipelines.mocap`)."""

from __future__ import annotations

import numpy as np

from data_pipelines.errors import DatasetError
from data_pipelines.mocap.skeleton import TRANSLATION_TOKENS, Motion, Skeleton

_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}


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
        if token in TRANSLATION_TOKENS:
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

