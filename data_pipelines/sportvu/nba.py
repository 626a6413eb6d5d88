"""The NRI basketball dataset: `build_sportvu_dataset` over game logs, with the entities
of every event fixed (``entities=``) or chosen per event (`EventSelection`, ``events=``)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np

from data_pipelines.contract import SPLITS
from data_pipelines.errors import DatasetError
from data_pipelines.sportvu.games import BALL, PathLike, load_json, read_game
from data_pipelines.sportvu.tracks import FPS, SEGMENT_FRAMES, event_segments
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.writer import write_dataset

FEATURE_NAMES = ("x", "y", "vx", "vy")
NORMALISATION_GROUPS = ((0, 1), (2, 3))
SPLIT_SHARES = (0.8, 0.1, 0.1)


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


def load_event_list(path: PathLike) -> list:
    """Reads a JSON event list: ``[{"game_id", "event_id", "entities", ...}, ...]``.

    Returns:
      [EventSelection].
    """
    data = load_json(os.fspath(path))
    if not isinstance(data, list):
        raise DatasetError(f"{path}: an event list is a JSON array of objects")
    return [EventSelection.from_mapping(item) for item in data]


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

