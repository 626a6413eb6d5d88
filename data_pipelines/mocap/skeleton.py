"""The data types of an Acclaim skeleton and motion: `Bone`, `Skeleton`, `Motion`
(joints, units and conventions: the package docstring, `data_pipelines.mocap`)."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]
INCHES_TO_METRES = 0.0254
UNITS = ("m", "in", "file")
ROTATION_TOKENS = ("rx", "ry", "rz")
TRANSLATION_TOKENS = ("tx", "ty", "tz")


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

