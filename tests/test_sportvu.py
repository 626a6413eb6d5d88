"""SportVU reader: the hand-made game log in tests/data (real schema), malformed moments,
segments with velocities, and the native dataset it builds.

Fixture `tests/data/sportvu_game.json`, game 0021500999, 25 Hz (40 ms apart):
  event 1: moments k = 0..11, all well-formed.
  event 2: moments k = 20..29; k = 22 repeated (duplicated timestamp), k = 25 lacks
           player 103, and one extra moment after k = 27 is malformed (3 fields).
  event 3: moments k = 40..47, player 106 instead of 105.
Entity j of a moment (j = 0 ball, 1..5 home, 6..10 visitor, in file order) is at
x = 10 + 5 j + 0.5 k, y = 5 + 3 j - 0.25 k feet, so every velocity is (12.5, -6.25) ft/s.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from data_pipelines.errors import DatasetError
from data_pipelines.sportvu import games, nba
from data_pipelines.sportvu.tracks import entity_tracks, event_segments, track_segments
from data_pipelines.storage.reader import read_metadata, read_split

GAME = Path(__file__).resolve().parent / "data" / "sportvu_game.json"
ENTITIES = [games.BALL, 101, 103, 201, 203]
SLOTS = np.array([0, 1, 3, 6, 8])          # where those entities sit in each moment's list


def expected_positions(ks) -> np.ndarray:
    """[frames, 5, 2] positions of ENTITIES at moments ``ks`` (see module docstring)."""
    ks = np.asarray(ks, dtype=np.float64)[:, None]
    return np.stack([10 + 5 * SLOTS + 0.5 * ks, 5 + 3 * SLOTS - 0.25 * ks], axis=-1)


def read_quietly(path=GAME):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return games.read_game(path)


def test_game_log_parses_to_expected_moments():
    with pytest.warns(UserWarning, match=r"event 2: skipped 1 malformed moments \(1 not a list of 6"):
        game = games.read_game(GAME)
    assert game.game_id == "0021500999" and game.game_date == "2016-01-01"
    assert [(e.event_id, len(e.moments)) for e in game.events] == [("1", 12), ("2", 11), ("3", 8)]
    first = game.event("1").moments[0]
    assert (first.quarter, first.timestamp_ms, first.game_clock, first.shot_clock) == \
        (1, 1451606400000, 720.0, 24.0)
    assert first.entity_ids.tolist() == [-1, 101, 102, 103, 104, 105, 201, 202, 203, 204, 205]
    assert first.team_ids[0] == -1 and first.team_ids[1] == 1610612737
    np.testing.assert_allclose(first.xyz[0], [10.0, 5.0, 4.0])
    assert game.event(1).players[203] == "Test Player203 (BOS)"


def test_tracks_hold_the_chosen_entities_in_order():
    tracks = entity_tracks(read_quietly().event("1"), ENTITIES)
    assert len(tracks) == 1
    track = tracks[0]
    assert track.positions.shape == (12, 5, 2)
    np.testing.assert_allclose(track.positions, expected_positions(range(12)))
    np.testing.assert_array_equal(np.diff(track.timestamps_ms), 40)
    np.testing.assert_allclose(track.game_clock[:2], [720.0, 719.96])


def test_malformed_moments_warn_and_are_skipped():
    event = read_quietly().event("2")
    with pytest.warns(UserWarning, match=r"skipped 2 moments \(1 missing entities, 1 duplicated timestamp\)"):
        tracks = entity_tracks(event, ENTITIES)
    # k = 25 is missing player 103: the 80 ms gap splits the event into two runs.
    assert [t.num_frames for t in tracks] == [5, 4]
    np.testing.assert_allclose(tracks[0].positions, expected_positions(range(20, 25)))
    np.testing.assert_allclose(tracks[1].positions, expected_positions(range(26, 30)))
    # Without player 103 among the entities, k = 25 is usable and only the duplicate goes.
    with pytest.warns(UserWarning, match=r"skipped 1 moments \(1 duplicated timestamp\)"):
        tracks = entity_tracks(event, [games.BALL, 101, 102, 201, 202])
    assert [t.num_frames for t in tracks] == [10]


def test_segments_have_positions_and_velocities():
    track = entity_tracks(read_quietly().event("1"), ENTITIES)[0]
    segments = track_segments(track, frames=4)
    assert segments.shape == (3, 5, 4, 4) and segments.dtype == np.float32
    positions = expected_positions(range(12)).reshape(3, 4, 5, 2).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(segments[..., :2], positions, rtol=1e-6)
    np.testing.assert_allclose(segments[..., 2], 12.5, rtol=1e-6)     # 0.5 ft / 0.04 s
    np.testing.assert_allclose(segments[..., 3], -6.25, rtol=1e-6)
    # Every 2nd moment: 6 frames, 0.08 s apart; velocities unchanged.
    strided = track_segments(track, frames=3, frame_step=2)
    assert strided.shape == (2, 5, 3, 4)
    np.testing.assert_allclose(strided[0, 0, :, 0], [10.0, 11.0, 12.0])
    np.testing.assert_allclose(strided[..., 2], 12.5, rtol=1e-6)


def test_gzip_logs_read_like_plain_json(tmp_path):
    packed = tmp_path / "game.json.gz"
    with gzip.open(packed, "wb") as stream:
        stream.write(GAME.read_bytes())
    plain, zipped = read_quietly(), read_quietly(packed)
    assert [len(e.moments) for e in plain.events] == [len(e.moments) for e in zipped.events]


def test_read_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError, match="SportVU file not found"):
        games.read_game(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a JSON game log"):
        games.read_game(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"gameid": "1"}))
    with pytest.raises(DatasetError, match="no 'events' list"):
        games.read_game(tmp_path / "other.json")


def test_build_dataset_with_fixed_entities(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metadata = nba.build_sportvu_dataset(GAME, tmp_path / "nba", entities=ENTITIES, frames=4)
    # Segments: event 1 -> 3, event 2 -> 2 (runs of 5 and 4), event 3 -> 2; split by event.
    assert sum(metadata.splits.values()) == 7 and all(n > 0 for n in metadata.splits.values())
    assert metadata.nodes == 5 and metadata.dims == 4
    assert read_metadata(str(tmp_path / "nba")).parameters["edge_labels"] == "none"
    layout = metadata.parameters["split_layout"]
    assert sorted(sum(layout.values(), [])) == ["0021500999/1", "0021500999/2", "0021500999/3"]
    x, y = read_split(str(tmp_path / "nba"), "train")
    assert x.shape[1:] == (5, 4, 4) and y.shape == (x.shape[0], 20) and not y.any()
    np.testing.assert_allclose(x[..., 2], 12.5, rtol=1e-6)


def test_build_dataset_from_event_list(tmp_path):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([
        {"game_id": "0021500999", "event_id": "1", "entities": ENTITIES, "game_clock": 719.9},
        {"game_id": "0021500999", "event_id": "1", "entities": [-1, 102, 104, 202, 204]},
        {"game_id": "0021500999", "event_id": "3", "entities": [-1, 106, 101, 205, 204]},
    ]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metadata = nba.build_sportvu_dataset(GAME, tmp_path / "nba", events=events, frames=4)
    # One segment from game clock 719.9 (k = 3..6), 3 from the whole of event 1, 2 from event 3.
    assert sum(metadata.splits.values()) == 6
    assert metadata.parameters["entities"] == "per event"


def test_event_segment_at_a_game_clock():
    event = read_quietly().event("1")
    one = event_segments(event, ENTITIES, frames=4, game_clock=719.9)
    assert one.shape == (1, 5, 4, 4)
    positions = expected_positions(range(3, 7)).transpose(1, 0, 2)          # [5, 4, 2]
    velocities = np.broadcast_to([12.5, -6.25], (5, 4, 2))
    np.testing.assert_allclose(one[0], np.concatenate([positions, velocities], -1), rtol=1e-6)
    # Game clock 719.7 is k = 8: only 4 frames are left (k = 8..11), so 5 do not fit.
    with pytest.warns(UserWarning, match="no 5 consecutive usable frames from game clock 719.7"):
        late = event_segments(event, ENTITIES, frames=5, game_clock=719.7)
    assert late.shape == (0, 5, 5, 4)


def test_build_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="exactly one of entities="):
        nba.build_sportvu_dataset(GAME, tmp_path / "a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match="not among the files given"):
            nba.build_sportvu_dataset(GAME, tmp_path / "b", events=[
                {"game_id": "123", "event_id": "1", "entities": ENTITIES}])
        with pytest.raises(DatasetError, match="need at least 3"):
            nba.build_sportvu_dataset(GAME, tmp_path / "c", entities=ENTITIES, frames=25)
