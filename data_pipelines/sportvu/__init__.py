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

Modules, in the order data flows through them:

- `games`: `read_game(path) -> Game`, events and their moments; structurally malformed
  moments are skipped with one warning per event.
- `tracks`: `entity_tracks(event, entities) -> [Track]`, the chosen entities' (x, y) over
  time as runs of consecutive moments (moments without every chosen entity, with a
  repeated or backwards timestamp, are skipped with one warning per event, and a gap in
  time starts a new run); `track_segments(track, frames, frame_step) -> [segments, nodes,
  frames, 4]`, positions and velocities (ft, ft/s) in non-overlapping segments;
  `event_segments(event, entities, frames, ...)`, the segments of one event (all of them,
  or the one starting at a given game clock).
- `nba`: `build_sportvu_dataset(json_paths, output_dir, ...)`, all of the above, written
  in the native dataset format (`data_pipelines.storage`), and `EventSelection`.

Entities are named by id: `BALL` (-1) for the ball, NBA player ids for players. The
paper's pick-and-roll data uses 5 nodes: ball, ball handler, screener and their two
defenders (appendix D.3); which players those are comes from the user, either one fixed
list for every event (``entities=``) or per event (``events=``, see `EventSelection`).
"""
