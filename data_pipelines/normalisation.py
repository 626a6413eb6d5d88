"""Normalisation: the training split's statistics and the scaling to [-1, 1] they define.

One formula (`FORMULA`), applied per dim as the reference does:

    x_norm = (x - min) * 2 / (max - min) - 1,    x = (x_norm + 1) * (max - min) / 2 + min

Building blocks:
  `Normalisation`          the statistics a dataset's metadata stores (method, groups, min, max)
  `compute_normalisation`  [systems, nodes, frames, dims] training values -> `Normalisation`
  `Normaliser`             the scaling (and back) for numpy arrays and TensorFlow tensors of
                           shape [..., dims], without importing TensorFlow itself
  `change_rms`             the RMS one-frame change of each scaled feature (the decoders'
                           `--change-scale`)

Used by the dataset writer, the tf.data pipeline, the simulation decoder, the serving
module and the export.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from data_pipelines.errors import DatasetError

NORMALISATION_METHODS = ("minmax", "maxabs")
FORMULA = "x_norm = (x - min) * 2 / (max - min) - 1 per dim (a dim with max == min maps to -1)"


@dataclasses.dataclass
class Normalisation:
    """Training-split statistics that scale each dim to [-1, 1] (`FORMULA`).

    method: "minmax" (min/max over the training split, as the reference does) or "maxabs"
      (min = -m, max = +m with m the largest |value|: real data scaled to max |value| 1).
    groups: dims sharing one scalar min/max, e.g. ((0, 1), (2, 3)) for position and velocity.
    min, max: [dims] per-dim statistics, equal within a group.
    """
    method: str
    groups: list
    min: list
    max: list

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def checked_groups(groups: Sequence[Sequence[int]] | None, dims: int) -> list[list[int]]:
    """Validated normalisation groups; None means every dim on its own."""
    if groups is None:
        return [[d] for d in range(dims)]
    groups = [[int(d) for d in group] for group in groups]
    covered = sorted(d for group in groups for d in group)
    if covered != list(range(dims)):
        raise DatasetError(f"normalisation groups {groups} must cover dims 0..{dims - 1} exactly once")
    return groups


def check_method(method: str) -> None:
    """DatasetError unless ``method`` is one of `NORMALISATION_METHODS`."""
    if method not in NORMALISATION_METHODS:
        raise DatasetError(f"unknown normalisation method {method!r}; choose one of "
                           f"{', '.join(NORMALISATION_METHODS)}")


def compute_normalisation(trajectories: np.ndarray, groups: Sequence[Sequence[int]] | None = None,
                          method: str = "minmax") -> Normalisation:
    """Normalisation statistics of ``trajectories`` (the training split).

    Args:
      trajectories: [systems, nodes, frames, dims] raw values.
      groups: dims sharing one scalar min/max (default: each dim alone).
      method: "minmax" or "maxabs" (see `Normalisation`).
    Returns:
      A `Normalisation` with [dims] min and max lists.
    """
    check_method(method)
    dims = trajectories.shape[-1]
    groups = checked_groups(groups, dims)
    flat = trajectories.reshape(-1, dims)
    low, high = flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
    minimum, maximum = np.empty(dims), np.empty(dims)
    for group in groups:
        if method == "minmax":
            minimum[group], maximum[group] = low[group].min(), high[group].max()
        else:
            bound = max(np.abs(low[group]).max(), np.abs(high[group]).max())
            minimum[group], maximum[group] = -bound, bound
    return Normalisation(method=method, groups=groups, min=[float(v) for v in minimum],
                         max=[float(v) for v in maximum])


class Normaliser:
    """The scaling of `FORMULA` with given per-dim statistics, for numpy arrays and tensors.

    A dim with max == min (a constant feature) maps to -1 and back to min. Tensors are
    scaled with TensorFlow's own operators (the statistics become constants of the
    tensor's dtype), so this module never imports TensorFlow.

    Attributes:
      min, max: [dims] float32.
    """

    def __init__(self, minimum, maximum):
        self.min = np.asarray(minimum, dtype=np.float32)
        self.max = np.asarray(maximum, dtype=np.float32)
        if self.min.ndim != 1 or self.min.shape != self.max.shape:
            raise ValueError(f"min and max must both be [dims], got shapes {self.min.shape} and {self.max.shape}")
        if np.any(self.max < self.min):
            raise ValueError("normalisation max is below min for some dims")
        span = self.max - self.min
        self._span = np.where(span > 0, span, np.float32(1)).astype(np.float32)

    @classmethod
    def from_metadata(cls, metadata) -> "Normaliser":
        """The normaliser of a dataset (``metadata.normalisation``, its training split's statistics)."""
        return cls(metadata.normalisation.min, metadata.normalisation.max)

    @property
    def dims(self) -> int:
        return len(self.min)

    def _constants(self, x):
        """(min, span) as numpy arrays of x's floating dtype (float32 for other arrays)."""
        # A tf.DType names its numpy type; numpy arrays carry theirs directly.
        dtype = np.dtype(getattr(x.dtype, "as_numpy_dtype", x.dtype))
        if not np.issubdtype(dtype, np.floating):
            dtype = np.dtype(np.float32)
        return self.min.astype(dtype), self._span.astype(dtype)

    def _checked(self, x):
        if not hasattr(x, "dtype"):
            x = np.asarray(x)
        if x.shape[-1] != self.dims:
            raise ValueError(f"expected [..., {self.dims}] values, got shape {tuple(x.shape)}")
        return x

    def normalise(self, x):
        """[..., dims] raw values (numpy or tensor) -> the same shape and kind, scaled."""
        x = self._checked(x)
        minimum, span = self._constants(x)
        return (x - minimum) * 2 / span - 1

    def denormalise(self, x):
        """Inverse of `normalise`: [..., dims] scaled values -> raw units."""
        x = self._checked(x)
        minimum, span = self._constants(x)
        return (x + 1) * span / 2 + minimum


def change_rms(batches: Iterable[np.ndarray], normaliser: Normaliser, max_systems: int) -> list[float]:
    """Each feature's root-mean-square change from one frame to the next, in scaled units.

    Args:
      batches: [batch, nodes, frames, dims] raw trajectories (e.g. a training split's, in
        stored order); read until ``max_systems`` systems are seen.
      normaliser: the dataset's scaling (`Normaliser`); a change of x scales by 2 / span.
      max_systems: the most systems read (the statistic settles long before a large split ends).
    Returns:
      [dims] floats >= 0; 0 for a feature that never changes.
    Raises:
      DatasetError if no batch has two frames.
    """
    squares, count, systems = np.zeros(normaliser.dims), 0, 0
    for trajectories in batches:
        trajectories = np.asarray(trajectories[:max_systems - systems], dtype=np.float64)
        changes = np.diff(normaliser.normalise(trajectories), axis=2).reshape(-1, normaliser.dims)
        squares += (changes ** 2).sum(axis=0)
        count += len(changes)
        systems += len(trajectories)
        if systems >= max_systems:
            break
    if count == 0:
        raise DatasetError("no system with two frames to measure the one-frame change on")
    return [float(v) for v in np.sqrt(squares / count)]
