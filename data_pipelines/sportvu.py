"""NBA SportVU tracking (public game-log JSON) reader and the NRI basketball dataset.

The public game logs (one JSON file per game, optionally gzip-compressed) look like::

    {"gameid": "0021500001", "gamedate": "2015-10-27",
     "events": [{"eventId": "1",
                 "home":    {"teamid": ..., "abbreviation": ..., "players": [{"playerid": ...,
                             "firstname": ..., "lastname": ..., "jersey": ..., "position": ...}]},
                 "visitor": {...},
                 "moments": [[quarter, timestamp_ms, game_clock_s, shot_clock_s, null,
                              [[team_id, player_id, x, y, z], ...]], ...]}]}

Each moment has 11 entities: the ball (team id and player id -1, ``z`` its height) and
ten players; ``x`` in [0, 94] and ``y`` in [0, 50] are court coordinates in feet,
sampled at 25 Hz (``timestamp_ms`` is wall-clock milliseconds, 40 apart).

Building blocks:

- `read_game(path) -> Game`: events and their moments; structurally malformed moments
  are skipped with one warning per event.
- `entity_tracks(event, entities) -> [Track]`: the chosen entities' (x, y) over time, as
  runs of consecutive moments; moments without every chosen entity, with a repeated or
  backwards timestamp, are skipped (one warning per event), and a gap in time starts a
  new run.
- `track_segments(track, frames, frame_step) -> [segments, nodes, frames, 4]`: positions
  and velocities (ft, ft/s), non-overlapping segments.
- `event_segments(event, entities, frames, ...)`: the segments of one event (all of them,
  or the one starting at a given game clock).
- `build_sportvu_dataset(json_paths, output_dir, ...)`: all of the above, written in the
  native dataset format (`data_pipelines.storage`).

Entities are named by id: `BALL` (-1) for the ball, NBA player ids for players. The
paper's pick-and-roll data uses 5 nodes: ball, ball handler, screener and their two
defenders (appendix D.3); which players those are comes from the user, either one fixed
list for every event (``entities=``) or per event (``events=``, see `EventSelection`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np

from data_pipelines.errors import DatasetError
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.writer import write_dataset

PathLike = Union[str, os.PathLike]

BALL = -1                 # the ball's team id and player id in the game logs
FPS = 25.0                # SportVU sampling rate
FRAME_MS = 40             # milliseconds between consecutive moments
GAP_TOLERANCE = 1.5       # a step longer than this many frame periods starts a new run
SEGMENT_FRAMES = 25       # paper appendix D.3
ENTITIES_PER_MOMENT = 11
FEATURE_NAMES = ("x", "y", "vx", "vy")
NORMALISATION_GROUPS = ((0, 1), (2, 3))
SPLIT_SHARES = (0.8, 0.1, 0.1)
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Moment:
    """One tracking sample.

    Attributes:
      quarter: period number (1-4, 5+ for overtime).
      timestamp_ms: wall-clock time in milliseconds.
      game_clock: seconds left in the period.
      shot_clock: seconds left on the shot clock, None when off.
      team_ids: [entities] int (-1 for the ball).
      entity_ids: [entities] int player ids (-1 for the ball).
      xyz: [entities, 3] float64 positions in feet (z: ball height; players' radius field).
    """

    quarter: int
    timestamp_ms: int
    game_clock: float
    shot_clock: Optional[float]
    team_ids: np.ndarray
    entity_ids: np.ndarray
    xyz: np.ndarray


@dataclasses.dataclass(frozen=True)
class Event:
    """One event (possession fragment) of a game.

    Attributes:
      game_id: the game's id.
      event_id: the event's id (a string, as in the file).
      moments: the well-formed moments, in file order.
      players: player id -> "First Last (TEAM)" for both rosters of the event.
    """

    game_id: str
    event_id: str
    moments: tuple
    players: dict


@dataclasses.dataclass(frozen=True)
class Game:
    """A parsed game log: ``game_id``, ``game_date``, ``events`` (tuple of `Event`), ``path``."""

    game_id: str
    game_date: str
    events: tuple
    path: str = ""

    def event(self, event_id: Union[str, int]) -> Event:
        for event in self.events:
            if event.event_id == str(event_id):
                return event
        raise KeyError(f"game {self.game_id} has no event {event_id!r}")


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


@dataclasses.dataclass(frozen=True)
class EventSelection:
    """Which entities of which event to use (one item of a user's event list).

    Attributes:
      game_id: the game's id (as in the file's ``gameid``).
      event_id: the event's id.
      entities: entity ids in node order, e.g. [BALL, handler, screener, d1, d2].
      game_clock: if set, exactly one segment is taken, starting at the first usable
        moment whose game clock is <= this many seconds; otherwise every non-overlapping
        segment of the event is.
      quarter: with ``game_clock``, the period it refers to (default: any).
    """

    game_id: str
    event_id: str
    entities: tuple
    game_clock: Optional[float] = None
    quarter: Optional[int] = None

    @classmethod
    def from_mapping(cls, item: Mapping) -> "EventSelection":
        """From ``{"game_id", "event_id", "entities", optional "game_clock", "quarter"}``."""
        missing = [k for k in ("game_id", "event_id", "entities") if k not in item]
        if missing:
            raise DatasetError(f"event list item {dict(item)!r} lacks {', '.join(missing)}")
        unknown = sorted(set(item) - {"game_id", "event_id", "entities", "game_clock", "quarter"})
        if unknown:
            raise DatasetError(f"event list item has unknown fields {unknown}")
        try:
            return cls(game_id=str(item["game_id"]), event_id=str(item["event_id"]),
                       entities=tuple(int(e) for e in item["entities"]),
                       game_clock=None if item.get("game_clock") is None else float(item["game_clock"]),
                       quarter=None if item.get("quarter") is None else int(item["quarter"]))
        except (TypeError, ValueError) as error:
            raise DatasetError(f"event list item {dict(item)!r}: {error}") from None


# --------------------------------------------------------------------------- reading

def _load_json(path: str):
    if not os.path.isfile(path):
        raise DatasetError(f"SportVU file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise DatasetError(f"{path}: not a JSON game log: {error}") from None


def _parse_moment(raw) -> Moment:
    """One moment, or ValueError/TypeError naming what is wrong with it."""
    if not isinstance(raw, list) or len(raw) != 6:
        raise ValueError("not a list of 6 fields")
    quarter, timestamp, game_clock, shot_clock, _, entities = raw
    if not isinstance(entities, list) or not entities:
        raise ValueError("no entity list")
    rows = []
    for entity in entities:
        if not isinstance(entity, list) or len(entity) != 5:
            raise ValueError("an entity is not [team_id, player_id, x, y, z]")
        rows.append([float(value) for value in entity])
    rows = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(rows)):
        raise ValueError("non-finite coordinates")
    ids = rows[:, 1].astype(np.int64)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("an entity appears twice")
    return Moment(quarter=int(quarter), timestamp_ms=int(timestamp), game_clock=float(game_clock),
                  shot_clock=None if shot_clock is None else float(shot_clock),
                  team_ids=rows[:, 0].astype(np.int64), entity_ids=ids, xyz=rows[:, 2:5])


def _roster(event: Mapping) -> dict:
    players = {}
    for side in ("home", "visitor"):
        team = event.get(side) or {}
        for player in team.get("players", []) or []:
            try:
                name = f"{player.get('firstname', '')} {player.get('lastname', '')}".strip()
                players[int(player["playerid"])] = f"{name} ({team.get('abbreviation', '?')})"
            except (KeyError, TypeError, ValueError):
                continue
    return players


def read_game(path: PathLike) -> Game:
    """Reads one SportVU game log (``.json`` or ``.json.gz``).

    Moments that are not ``[quarter, timestamp, game_clock, shot_clock, null, entities]``
    with numeric ``[team_id, player_id, x, y, z]`` entities are skipped, with one
    `warnings.warn` per event counting them.

    Returns:
      The `Game`.
    Raises:
      DatasetError: missing file, not JSON, or no ``events`` list.
    """
    path = os.fspath(path)
    data = _load_json(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("events"), list):
        raise DatasetError(f"{path}: not a SportVU game log (no 'events' list)")
    game_id = str(data.get("gameid", os.path.basename(path)))
    events = []
    for position, raw_event in enumerate(data["events"]):
        if not isinstance(raw_event, Mapping):
            warnings.warn(f"{path}: event #{position} is not an object; skipped", stacklevel=2)
            continue
        event_id = str(raw_event.get("eventId", position))
        moments, problems = [], {}
        for raw in raw_event.get("moments", []) or []:
            try:
                moments.append(_parse_moment(raw))
            except (TypeError, ValueError) as error:
                problems[str(error)] = problems.get(str(error), 0) + 1
        if problems:
            detail = ", ".join(f"{n} {why}" for why, n in problems.items())
            warnings.warn(f"{path}: game {game_id} event {event_id}: skipped {sum(problems.values())} "
                          f"malformed moments ({detail})", stacklevel=2)
        events.append(Event(game_id=game_id, event_id=event_id, moments=tuple(moments),
                            players=_roster(raw_event)))
    return Game(game_id=game_id, game_date=str(data.get("gamedate", "")), events=tuple(events), path=path)


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


def load_event_list(path: PathLike) -> list:
    """Reads a JSON event list: ``[{"game_id", "event_id", "entities", ...}, ...]``.

    Returns:
      [EventSelection].
    """
    data = _load_json(os.fspath(path))
    if not isinstance(data, list):
        raise DatasetError(f"{path}: an event list is a JSON array of objects")
    return [EventSelection.from_mapping(item) for item in data]


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


def _split_groups(sizes: list, shares: Sequence[float], seed: int) -> dict:
    """Assigns groups (events) to splits: seeded shuffle, then cut by segment shares.

    Returns:
      {split: [group indices]}; every split non-empty.
    """
    order = np.random.default_rng(seed).permutation(len(sizes)).tolist()
    total = sum(sizes)
    result = {name: [] for name in SPLITS}
    # The last groups go to test, then valid, until each reaches its share; train keeps the rest.
    remaining = list(order)
    for name, share, reserved in (("test", shares[2], 2), ("valid", shares[1], 1)):
        target = max(1, math.floor(share * total + 0.5))
        taken = 0
        while len(remaining) > reserved and (taken < target or not result[name]):
            group = remaining.pop()
            result[name].append(group)
            taken += sizes[group]
    result["train"] = remaining
    return result


def build_sportvu_dataset(json_paths: Union[PathLike, Sequence[PathLike]], output_dir: PathLike, *,
                          entities: Optional[Sequence[int]] = None,
                          events: Optional[Union[PathLike, Sequence]] = None,
                          frames: int = SEGMENT_FRAMES, frame_step: int = 1,
                          split_shares: Sequence[float] = SPLIT_SHARES, seed: int = 0,
                          overwrite: bool = False) -> DatasetMetadata:
    """Builds an NRI basketball dataset (paper appendix D.3) in the native format.

    Segments are ``frames`` consecutive usable moments (after keeping every
    ``frame_step``-th) of the chosen entities, with positions and velocities (4 features
    per node, feet and feet per second). Values are stored raw; the dataset's
    normalisation is max |value| -> 1 for positions and velocities as two groups.

    Exactly one of:
      entities: the same entity ids (e.g. [BALL, p1, p2, p3, p4]) for every event of
        every game; events where one of them is absent contribute nothing.
      events: the user's event list: a JSON file (`load_event_list`) or a sequence of
        `EventSelection` / mappings, with per-event entities.

    Splits are by event, so no event contributes to two splits: events are shuffled
    with ``seed`` and taken for test and valid until those reach their share of the
    segments (``split_shares`` = train, valid, test); train keeps the rest. With fewer
    than 3 contributing events, the segments themselves are split in time order.

    Edge labels: unknown for real data; every label is 0 and the metadata says
    ``"edge_labels": "none"``.

    Returns:
      The written dataset's metadata.
    Raises:
      DatasetError: bad arguments, unreadable files, an event that is not found, or fewer
        than 3 segments in all.
    """
    if isinstance(json_paths, (str, os.PathLike)):
        json_paths = [json_paths]
    json_paths = [os.fspath(p) for p in json_paths]
    if not json_paths:
        raise DatasetError("no SportVU JSON files given")
    if (entities is None) == (events is None):
        raise DatasetError("give exactly one of entities= (the same ids for every event) or "
                           "events= (an event list with per-event entities)")
    if frames < 2 or frame_step < 1:
        raise DatasetError(f"frames must be >= 2 and frame_step >= 1, got {frames} and {frame_step}")
    if len(split_shares) != 3 or min(split_shares) < 0 or sum(split_shares) <= 0:
        raise DatasetError(f"split_shares must be 3 non-negative numbers (train, valid, test), "
                           f"got {split_shares}")
    shares = [s / sum(split_shares) for s in split_shares]

    games = [read_game(p) for p in json_paths]
    groups: list = []            # (label, [segments, nodes, frames, 4])
    if entities is not None:
        entities = [int(e) for e in entities]
        if len(entities) < 2:
            raise DatasetError(f"need at least 2 entities, got {entities}")
        for game in games:
            for event in game.events:
                if not any(set(entities) <= set(m.entity_ids.tolist()) for m in event.moments):
                    continue
                groups.append((f"{game.game_id}/{event.event_id}",
                               event_segments(event, entities, frames, frame_step)))
        node_count = len(entities)
    else:
        if isinstance(events, (str, os.PathLike)):
            selections = load_event_list(events)
        else:
            selections = [s if isinstance(s, EventSelection) else EventSelection.from_mapping(s)
                          for s in events]
        if not selections:
            raise DatasetError("the event list is empty")
        counts = {len(s.entities) for s in selections}
        if len(counts) != 1 or min(counts) < 2:
            raise DatasetError(f"every event must name the same number (>= 2) of entities, got {sorted(counts)}")
        node_count = counts.pop()
        by_id = {game.game_id: game for game in games}
        for selection in selections:
            if selection.game_id not in by_id:
                raise DatasetError(f"event list names game {selection.game_id}, which is not among the "
                                   f"files given ({', '.join(sorted(by_id))})")
            try:
                event = by_id[selection.game_id].event(selection.event_id)
            except KeyError as error:
                raise DatasetError(str(error.args[0])) from None
            groups.append((f"{selection.game_id}/{selection.event_id}",
                           event_segments(event, selection.entities, frames, frame_step,
                                          game_clock=selection.game_clock, quarter=selection.quarter)))

    groups = [(label, data) for label, data in groups if data.shape[0]]
    total = sum(data.shape[0] for _, data in groups)
    if total < 3:
        raise DatasetError(f"found {total} segments of {frames} frames; need at least 3 for train, valid "
                           f"and test (choose other entities/events, or shorter segments)")
    if len(groups) >= 3:
        assignment = _split_groups([data.shape[0] for _, data in groups], shares, seed)
        per_split = {s: [groups[g][1] for g in sorted(assignment[s])] for s in SPLITS}
        layout = {s: [groups[g][0] for g in sorted(assignment[s])] for s in SPLITS}
        mode = "events"
    else:
        data = np.concatenate([d for _, d in groups], axis=0)
        valid = max(1, round(shares[1] * total))
        test = max(1, round(shares[2] * total))
        train = total - valid - test
        if train < 1:
            train, valid, test = total - 2, 1, 1
        per_split = {"train": [data[:train]], "valid": [data[train:train + valid]],
                     "test": [data[train + valid:]]}
        layout = {s: [label for label, _ in groups] for s in SPLITS}
        mode = "segments in time order"

    edges = node_count * (node_count - 1)
    splits = {}
    for s in SPLITS:
        data = np.concatenate(per_split[s], axis=0).astype(np.float32)
        splits[s] = (data, np.zeros((data.shape[0], edges), dtype=np.int32))
    parameters = {
        "games": [g.game_id for g in games], "frames": frames, "frame_step": frame_step,
        "fps": FPS / frame_step, "unit": "ft",
        "entities": list(entities) if entities is not None else "per event",
        "split": mode, "split_shares": shares, "split_seed": seed, "split_layout": layout,
        "velocity": "central finite differences (numpy.gradient), feet per second",
        "edge_labels": "none",
    }
    extra = {"entity_ids": list(entities) if entities is not None else None, "ball_id": BALL}
    return write_dataset(output_dir, splits=splits, source="sportvu", parameters=parameters,
                         edge_types=1, feature_names=FEATURE_NAMES,
                         normalisation_groups=NORMALISATION_GROUPS, normalisation_method="maxabs",
                         seed=seed, extra=extra, overwrite=overwrite)
