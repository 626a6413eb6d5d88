"""The chosen entities' tracks of one event and their segments: positions and velocities
[segments, nodes, frames, 4] in feet and feet per second."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Optional

import numpy as np

from data_pipelines.errors import DatasetError
from data_pipelines.sportvu.games import Event

FPS = 25.0                # SportVU sampling rate
FRAME_MS = 40             # milliseconds between consecutive moments
GAP_TOLERANCE = 1.5       # a step longer than this many frame periods starts a new run
SEGMENT_FRAMES = 25       # paper appendix D.3


@dataclasses.dataclass(frozen=True)
class Track:
    """Consecutive moments of the chosen entities.

    Attributes:
      positions: [frames, nodes, 2] float64 (x, y) in feet, nodes in the chosen order.
      timestamps_ms: [frames] int.
      quarter: [frames] int.
      game_clock: [frames] float, seconds left in the period.
    """

    positions: np.ndarray
    timestamps_ms: np.ndarray
    quarter: np.ndarray
    game_clock: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.timestamps_ms.shape[0])


def entity_tracks(event: Event, entities: Sequence[int]) -> list:
    """The chosen entities' court positions, as runs of consecutive moments.

    A moment is skipped (one `warnings.warn` per event, with counts) when it lacks one
    of the entities, or its timestamp repeats or goes back from the last kept moment
    (the logs repeat moments, e.g. where consecutive events overlap). A step of more than
    `GAP_TOLERANCE` frame periods, or a change of quarter, ends a run.

    Args:
      event: from `read_game`.
      entities: entity ids in node order (`BALL` = -1 for the ball).
    Returns:
      [Track], each with positions [frames, nodes, 2].
    """
    entities = [int(e) for e in entities]
    if len(set(entities)) != len(entities):
        raise DatasetError(f"entities must be distinct, got {entities}")
    skipped = {"missing entities": 0, "duplicated timestamp": 0, "timestamp going back": 0}
    runs, current, last = [], [], None
    for moment in event.moments:
        index = {entity: row for row, entity in enumerate(moment.entity_ids.tolist())}
        if any(entity not in index for entity in entities):
            skipped["missing entities"] += 1
            continue
        if last is not None and moment.timestamp_ms == last.timestamp_ms:
            skipped["duplicated timestamp"] += 1
            continue
        if last is not None and moment.timestamp_ms < last.timestamp_ms:
            skipped["timestamp going back"] += 1
            continue
        if last is not None and (moment.timestamp_ms - last.timestamp_ms > GAP_TOLERANCE * FRAME_MS
                                 or moment.quarter != last.quarter):
            runs.append(current)
            current = []
        current.append((moment, [index[entity] for entity in entities]))
        last = moment
    if current:
        runs.append(current)
    if any(skipped.values()):
        detail = ", ".join(f"{n} {why}" for why, n in skipped.items() if n)
        warnings.warn(f"game {event.game_id} event {event.event_id}: skipped "
                      f"{sum(skipped.values())} moments ({detail})", stacklevel=2)
    tracks = []
    for run in runs:
        tracks.append(Track(
            positions=np.stack([m.xyz[rows, :2] for m, rows in run]),
            timestamps_ms=np.array([m.timestamp_ms for m, _ in run], dtype=np.int64),
            quarter=np.array([m.quarter for m, _ in run], dtype=np.int64),
            game_clock=np.array([m.game_clock for m, _ in run], dtype=np.float64)))
    return tracks


def track_features(track: Track, frame_step: int = 1) -> np.ndarray:
    """Positions and velocities of a run, subsampled by ``frame_step``.

    Velocities are central finite differences (one-sided at the ends) of the subsampled
    positions, in feet per second.

    Returns:
      [nodes, frames, 4] float32 (x, y, vx, vy), frames = ceil(track frames / frame_step);
      an empty frame axis when fewer than 2 frames remain.
    """
    positions = track.positions[::frame_step]                       # [frames, nodes, 2]
    nodes = positions.shape[1]
    if positions.shape[0] < 2:
        return np.zeros((nodes, 0, 4), dtype=np.float32)
    velocities = np.gradient(positions, frame_step / FPS, axis=0)
    features = np.concatenate([positions, velocities], axis=-1)
    return np.transpose(features, (1, 0, 2)).astype(np.float32)


def track_segments(track: Track, frames: int = SEGMENT_FRAMES, frame_step: int = 1,
                   start: int = 0, count: Optional[int] = None) -> np.ndarray:
    """Non-overlapping segments of a run, from its (subsampled) frame ``start`` on.

    Args:
      track: from `entity_tracks`.
      frames: frames per segment.
      frame_step: keep every ``frame_step``-th moment (25 Hz / frame_step).
      start: first subsampled frame.
      count: at most this many segments (default: all that fit).
    Returns:
      [segments, nodes, frames, 4] float32.
    """
    features = track_features(track, frame_step)[:, start:]
    nodes, available, dims = features.shape
    total = available // frames if count is None else min(count, available // frames)
    cut = features[:, :total * frames].reshape(nodes, total, frames, dims)
    return np.transpose(cut, (1, 0, 2, 3))


def event_segments(event: Event, entities: Sequence[int], frames: int = SEGMENT_FRAMES,
                   frame_step: int = 1, *, game_clock: Optional[float] = None,
                   quarter: Optional[int] = None) -> np.ndarray:
    """Segments of one event for the chosen entities.

    Args:
      event: from `read_game`.
      entities: entity ids in node order (`BALL` = -1 for the ball).
      frames: frames per segment.
      frame_step: keep every ``frame_step``-th moment.
      game_clock: if set, exactly one segment, starting at the first usable (subsampled)
        moment whose game clock is <= this many seconds (and in ``quarter``, if given);
        a warning and no segment when fewer than ``frames`` consecutive frames follow.
        If None, every non-overlapping segment of every run (`entity_tracks`).
    Returns:
      [segments, nodes, frames, 4] float32 (x, y, vx, vy).
    """
    empty = np.zeros((0, len(entities), frames, 4), dtype=np.float32)
    tracks = entity_tracks(event, entities)
    if game_clock is None:
        parts = [track_segments(t, frames, frame_step) for t in tracks]
        return np.concatenate(parts, axis=0) if parts else empty
    for track in tracks:
        hits = track.game_clock[::frame_step] <= game_clock
        if quarter is not None:
            hits &= track.quarter[::frame_step] == quarter
        if hits.any():
            segment = track_segments(track, frames, frame_step, start=int(np.argmax(hits)), count=1)
            if segment.shape[0]:
                return segment
            break
    warnings.warn(f"game {event.game_id} event {event.event_id}: no {frames} consecutive usable "
                  f"frames from game clock {game_clock} s; skipped", stacklevel=2)
    return empty

