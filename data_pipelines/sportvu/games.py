"""Reading SportVU game logs: `read_game(path) -> Game` of `Event`s of `Moment`s
(the JSON layout: the package docstring, `data_pipelines.sportvu`)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import warnings
from collections.abc import Mapping
from typing import Optional, Union

import numpy as np

from data_pipelines.errors import DatasetError

PathLike = Union[str, os.PathLike]
BALL = -1                 # the ball's team id and player id in the game logs


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


def load_json(path: str):
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
    data = load_json(path)
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

