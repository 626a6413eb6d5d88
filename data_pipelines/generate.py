"""`python -m data_pipelines.generate`: simulate an NRI dataset, or build one from real
data, and write it to disk.

    python -m data_pipelines.generate --simulation springs --num-nodes 5      # -> data/springs5
    python -m data_pipelines.generate --simulation charged --format reference # loc_/vel_/edges_*.npy
    python -m data_pipelines.generate --source cmu --asf 35.asf --amc 35_01.amc --output data/cmu35
    python -m data_pipelines.generate --source sportvu --games game.json \
        --entities -1 201939 2738 202691 101106 --output data/sportvu
    python -m data_pipelines.generate --source reference --input ~/nri/data --output data/springs5

``--source`` picks where the data comes from: ``simulation`` (the default; the flags of
`data_pipelines.generation.generate_dataset`), ``cmu`` (CMU motion capture,
`data_pipelines.mocap.cmu.build_cmu_dataset`), ``sportvu`` (NBA tracking logs,
`data_pipelines.sportvu.nba.build_sportvu_dataset`) or ``reference`` (the original code's .npy
files, `data_pipelines.storage.reference.import_reference`). Each source has its own flags
(`SOURCE_OPTIONS`); a flag of another source is an error.

Defaults are the paper's (appendix B; the reference generate_dataset.py): 50000 / 10000 /
10000 systems, train and valid 49 frames, test 99 frames. Each split draws from its own
random stream derived from ``--seed``, so the splits are independent and the bytes depend
only on the arguments (not on ``--workers``).

Bad arguments or an unusable output directory are rejected before any simulation starts;
an interrupted run leaves no output directory behind. ``--overwrite`` replaces only a
dataset directory. Both end with exit code 2 and a one-line ``error: ...`` on stderr; so do
missing input files and flags that do not apply to the chosen ``--source``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Callable

from data_pipelines import files
from data_pipelines.errors import UserError, report_known_errors
from data_pipelines.generation import FORMATS, generate_dataset
from data_pipelines.mocap.cmu import CMU_FPS, TEST_FRAMES, TRAIN_FRAMES, build_cmu_dataset
from data_pipelines.mocap.skeleton import UNITS
from data_pipelines.simulations import ALL_SIMULATION_NAMES, LOCAL_SPRINGS_OPTIONS
from data_pipelines.sportvu.nba import build_sportvu_dataset
from data_pipelines.sportvu.tracks import SEGMENT_FRAMES
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.reference import import_reference, reference_simulation
from data_pipelines.storage.writer import DEFAULT_SHARD_SIZE
from data_pipelines.tf_startup import import_tensorflow

SOURCES = ("simulation", "cmu", "sportvu", "reference")
DEFAULT_SEED = {"simulation": 42, "sportvu": 0}
# The command-line options (argparse dests) of each source; --source, --output and
# --overwrite apply to all of them, anything else to the sources that list it.
COMMON_OPTIONS = ("source", "output", "overwrite")
SOURCE_OPTIONS = {
    "simulation": ("simulation", "num_nodes", "num_train", "num_valid", "num_test", "length",
                   "length_test", "sample_freq", "edge_types", "noise", "interacting", "seed",
                   "workers", "format", "shard_size", *LOCAL_SPRINGS_OPTIONS),
    "cmu": ("asf", "amc", "train_frames", "test_frames", "split", "unit", "fps"),
    "sportvu": ("games", "entities", "events", "segment_frames", "frame_step", "seed"),
    "reference": ("input", "simulation", "num_nodes", "edge_types", "shard_size"),
}


HELP_EXAMPLES = """examples:
  python -m data_pipelines.generate --simulation springs --num-nodes 5          # -> data/springs5, the paper's 50k/10k/10k
  python -m data_pipelines.generate --simulation charged --num-train 10000 --num-valid 1000 --num-test 1000
  python -m data_pipelines.generate --simulation springs --edge-types 3 --output data/springs5-3types
  python -m data_pipelines.generate --simulation springs --no-interacting --output data/springs5-empty
  python -m data_pipelines.generate --simulation kuramoto --format reference --output data/ref  # .npy files
  python -m data_pipelines.generate --source cmu --asf ../shared/data/cmu/35.asf \\
      --amc ../shared/data/cmu/35_*.amc --output data/cmu35
  python -m data_pipelines.generate --source sportvu --games GAME.json --events pnr.json --output data/nba
  python -m data_pipelines.generate --source reference --input ~/nri/data --output data/springs5  # the original code's .npy

then: python -m nri_tf.train --data data/springs5
"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line ``error: ...`` (exit code 2) instead of usage + message."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``--source`` and one group of flags per source (`SOURCE_OPTIONS`)."""
    parser = _ArgumentParser(
        prog="python -m data_pipelines.generate",
        description="Simulate an NRI dataset (springs, charged particles or Kuramoto oscillators),\n"
                    "or build one from CMU motion capture or NBA SportVU tracking files.",
        epilog=HELP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="simulation", choices=SOURCES,
                        help="where the data comes from (default: %(default)s); the flags of the "
                             "other sources are refused")
    parser.add_argument("--output", default=None,
                        help="output directory (simulations: default data/<simulation><N>; "
                             "required for cmu and sportvu)")
    parser.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False,
                        help="replace an existing dataset directory (refused for a folder holding "
                             "anything but a dataset)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed of simulations (default: 42) and of sportvu's split by "
                             "event (default: 0)")

    sim = parser.add_argument_group("--source simulation (the default)")
    sim.add_argument("--simulation", default="springs", choices=ALL_SIMULATION_NAMES,
                     help="which physics (default: %(default)s)")
    sim.add_argument("--num-nodes", type=int, default=5, help="nodes per system (default: %(default)s)")
    sim.add_argument("--num-train", type=int, default=50000,
                     help="training systems (default: %(default)s, the paper's; the train command's "
                          "built-in data has 10000, see 'python -m nri_tf.train --help')")
    sim.add_argument("--num-valid", type=int, default=10000, help="validation systems (default: %(default)s)")
    sim.add_argument("--num-test", type=int, default=10000, help="test systems (default: %(default)s)")
    sim.add_argument("--length", type=int, default=None,
                     help="integration steps of train/valid systems (default: the simulation's, "
                          "5000 for springs/charged = 49 frames)")
    sim.add_argument("--length-test", type=int, default=None,
                     help="integration steps of test systems (default: the simulation's, "
                          "10000 for springs/charged = 99 frames)")
    sim.add_argument("--sample-freq", type=int, default=None,
                     help="keep every this many steps (default: the simulation's, 100 for springs/charged)")
    sim.add_argument("--edge-types", type=int, default=2,
                     help="edge types (springs: 2, or 3 for k in {0, 0.5, 1}; default: %(default)s)")
    sim.add_argument("--noise", type=float, default=0.0,
                     help="std of Gaussian observation noise (default: %(default)s)")
    sim.add_argument("--interacting", action=argparse.BooleanOptionalAction, default=True,
                     help="--no-interacting: systems without interactions (the empty-graph test "
                          "of appendix A.2)")
    sim.add_argument("--workers", type=int, default=2, help="simulator threads (default: %(default)s)")
    sim.add_argument("--format", default="tfrecord", choices=FORMATS,
                     help="tfrecord: native shards + metadata.json; reference: the original code's "
                          ".npy files (default: %(default)s)")
    sim.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                     help="most systems per TFRecord file (default: %(default)s)")
    local = parser.add_argument_group("--simulation local-springs (large systems, README \"Large systems\")")
    local.add_argument("--density", type=float, default=None,
                       help="nodes per unit area; the box the nodes start in grows with N to keep "
                            "it (default: 1.0: 100 nodes fill the springs box, +-5)")
    local.add_argument("--cutoff", type=float, default=None,
                       help="pairs closer than this at the start may get a spring; the stored "
                            "edge lists hold every such pair (default: 1.5)")
    local.add_argument("--spring-probability", type=float, default=None,
                       help="chance that a pair within the cutoff gets a spring (default: 0.5)")
    local.add_argument("--walls", action=argparse.BooleanOptionalAction, default=None,
                       help="elastic walls at the edges of the box the nodes start in (default: "
                            "--no-walls, open space: the translation-invariant physics a model "
                            "trained on small systems can carry to larger ones)")

    cmu = parser.add_argument_group("--source cmu (CMU motion capture, paper appendix D.2)")
    cmu.add_argument("--asf", metavar="FILE", help="the subject's skeleton file (.asf)")
    cmu.add_argument("--amc", metavar="FILE", nargs="+", help="one or more motion files (.amc) of that subject")
    cmu.add_argument("--train-frames", type=int, default=TRAIN_FRAMES,
                     help="frames per train/valid segment (default: %(default)s)")
    cmu.add_argument("--test-frames", type=int, default=TEST_FRAMES,
                     help="frames per test segment (default: %(default)s)")
    cmu.add_argument("--split", default="auto", choices=("auto", "trials", "frames"),
                     help="frames: cut each trial in time into train/valid/test parts; trials: whole "
                          "trials per split; auto: trials with 3 or more trials, else frames "
                          "(default: %(default)s)")
    cmu.add_argument("--unit", default="m", choices=UNITS,
                     help="position unit: metres, inches or the file's units (default: %(default)s)")
    cmu.add_argument("--fps", type=float, default=CMU_FPS,
                     help="capture rate, for the velocities (default: %(default)s)")

    ref = parser.add_argument_group(
        "--source reference (the original code's loc_/vel_/edges_ or feat_/edges_ .npy files; "
        "also takes --simulation, --num-nodes, --edge-types, --shard-size)")
    ref.add_argument("--input", metavar="DIR",
                     help="the directory of .npy files; --simulation and --num-nodes default to "
                          "what its file names say, --edge-types to what its edges_*.npy values say")

    nba = parser.add_argument_group("--source sportvu (NBA SportVU tracking, paper appendix D.3)")
    nba.add_argument("--games", metavar="FILE", nargs="+", help="game logs (.json or .json.gz)")
    nba.add_argument("--entities", metavar="ID", type=int, nargs="+",
                     help="the same entity ids for every event: -1 for the ball, then NBA player ids")
    nba.add_argument("--events", metavar="FILE",
                     help="JSON list of {game_id, event_id, entities[, game_clock, quarter]}: "
                          "per-event entities (give --entities or --events)")
    nba.add_argument("--segment-frames", type=int, default=SEGMENT_FRAMES,
                     help="frames per segment (default: %(default)s; train's --frames then picks "
                          "how many of them the encoder reads)")
    nba.add_argument("--frame-step", type=int, default=1,
                     help="keep every this many moments (25 Hz / step; default: %(default)s)")
    return parser


def given_options(argv: list[str] | None) -> set:
    """The option dests present on the command line ``argv`` (not filled in by defaults)."""
    # argparse fills in a default only where the namespace has no value yet: a sentinel
    # that survives parsing marks a flag that was not given.
    unset = object()
    dests = set(COMMON_OPTIONS).union(*SOURCE_OPTIONS.values())
    parsed = build_parser().parse_args(argv, argparse.Namespace(**{dest: unset for dest in dests}))
    return {dest for dest, value in vars(parsed).items() if value is not unset}


def check_source_options(source: str, given: set) -> None:
    """UserError naming the first given flag that does not apply to ``source``."""
    allowed = set(COMMON_OPTIONS) | set(SOURCE_OPTIONS[source])
    for dest in sorted(given - allowed):
        owners = " / ".join(other for other in SOURCES if dest in SOURCE_OPTIONS[other])
        raise UserError(f"--{dest.replace('_', '-')} does not apply to --source {source} "
                        f"(it is a --source {owners} flag)")


def _check_files(flag: str, paths) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"{flag}: file not found: {path}")


def build_real_dataset(args: argparse.Namespace, given: set) -> DatasetMetadata:
    """Builds the ``cmu``, ``sportvu`` or ``reference`` dataset the parsed command line asks for.

    Raises:
      UserError (DatasetError from the readers) naming a missing flag or file, a bad
      value, or unreadable data, in one line.
    """
    if not args.output:
        raise UserError(f"--source {args.source} needs --output DIR")
    if args.source == "reference":
        if not args.input or not os.path.isdir(args.input):
            raise UserError(f"--source reference needs --input DIR, a directory of .npy files "
                            f"(got {args.input!r})")
        simulation = args.simulation if "simulation" in given else reference_simulation(args.input)
        import_tensorflow()
        return import_reference(
            args.input, args.output, simulation=simulation,
            num_nodes=args.num_nodes if "num_nodes" in given else None,
            edge_types=args.edge_types if "edge_types" in given else None,
            overwrite=args.overwrite, shard_size=args.shard_size)
    if args.source == "cmu":
        if not args.asf or not args.amc:
            raise UserError("--source cmu needs --asf FILE and --amc FILE [FILE ...]")
        _check_files("--asf", [args.asf])
        _check_files("--amc", args.amc)
        import_tensorflow()
        return _warnings_as_lines(lambda: build_cmu_dataset(
            args.asf, args.amc, args.output, train_frames=args.train_frames,
            test_frames=args.test_frames, split=args.split, fps=args.fps, unit=args.unit,
            overwrite=args.overwrite))

    if not args.games:
        raise UserError("--source sportvu needs --games FILE [FILE ...]")
    if (args.entities is None) == (args.events is None):
        raise UserError("--source sportvu needs exactly one of --entities ID [ID ...] (the same for "
                        "every event) or --events FILE (per-event entities)")
    _check_files("--games", args.games)
    if args.events is not None:
        _check_files("--events", [args.events])
    import_tensorflow()
    seed = DEFAULT_SEED["sportvu"] if args.seed is None else args.seed
    return _warnings_as_lines(lambda: build_sportvu_dataset(
        args.games, args.output, entities=args.entities, events=args.events,
        frames=args.segment_frames, frame_step=args.frame_step, seed=seed, overwrite=args.overwrite))


def _warnings_as_lines(build: Callable[[], DatasetMetadata]) -> DatasetMetadata:
    """Runs a reader's ``build()``; its warnings (sportvu: skipped moments per event; cmu:
    splits too small to mean much) come out as one ``warning: ...`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metadata = build()
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return metadata


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files.interrupt_on_sigterm()
    return report_known_errors(lambda: _generate(args, argv), "nothing was written")


def _generate(args: argparse.Namespace, argv: list[str] | None) -> int:
    start = time.perf_counter()
    given = given_options(argv)
    check_source_options(args.source, given)
    if args.source == "simulation":
        seed = DEFAULT_SEED["simulation"] if args.seed is None else args.seed
        metadata = generate_dataset(
            args.output, simulation=args.simulation, num_nodes=args.num_nodes,
            num_train=args.num_train, num_valid=args.num_valid, num_test=args.num_test,
            length=args.length, length_test=args.length_test, sample_freq=args.sample_freq,
            edge_types=args.edge_types, noise=args.noise, interacting=args.interacting,
            seed=seed, workers=args.workers, format=args.format, overwrite=args.overwrite,
            shard_size=args.shard_size, log=lambda message: print(message, file=sys.stderr),
            simulation_options={name: getattr(args, name) for name in LOCAL_SPRINGS_OPTIONS
                                if name in given})
        output = args.output or os.path.join("data", f"{args.simulation}{args.num_nodes}")
        written = args.format
    else:
        metadata = build_real_dataset(args, given)
        output, written = args.output, "tfrecord"
    splits = ", ".join(f"{split} {size} x {metadata.frames[split]} frames"
                       for split, size in metadata.splits.items())
    print(f"wrote {output} ({written}): {metadata.source}, {metadata.nodes} nodes, "
          f"{metadata.dims} dims; {splits}; {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
