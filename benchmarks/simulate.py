"""Throughput of the simulators in data_pipelines.simulations.

    .venv/bin/python benchmarks/simulate.py            # sims/s per simulator, N=5 and 10
    .venv/bin/python benchmarks/simulate.py --full     # + the paper-size springs5 data set
    .venv/bin/python benchmarks/simulate.py --write    # + generating it end to end (TFRecords)

Prints, for each simulator at N=5 and N=10 and its default train length (49 frames), the
systems simulated per second with ``--workers`` threads; then the parallel speed-up of
threads versus processes and the float32 versus float64 integration rate on one chunk;
with ``--full`` the wall time to simulate the paper-size springs5 set (50k train + 10k valid
at 5000 steps, 10k test at 10000 steps). For scale: the reference code integrates one
springs5 system at a time in a Python loop, about 0.2 s each, i.e. hours for that set.

With ``--write``, the wall time of `generate_paper_springs5`: the same set generated end to
end as ``python -m data_pipelines.generate`` does it (simulation, validation, normalisation
statistics, TFRecord shards, metadata, atomic move into place), per split and in total,
with its size on disk and the time of one tf.data epoch over its training split.

`simulate_splits` is the piece to extend with the writing time of a data set. Run it on a
quiet machine (check ``uptime``): the figures are wall times.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import tempfile
import time

import numpy as np

from data_pipelines.simulations import (CHUNK_SIMS, SIMULATION_NAMES, SimulationResult, get_simulation,
                                        integrate_springs)

PAPER_SPLITS = {"train": (50_000, False), "valid": (10_000, False), "test": (10_000, True)}
"""split -> (systems, uses the test length)."""


def simulate_splits(name: str, num_nodes: int, splits: dict[str, tuple[int, bool]],
                    workers: int = 2, seed: int = 0) -> dict[str, tuple[SimulationResult, float]]:
    """Simulates every split of a data set, one seed per split.

    Args:
      name: simulation name.
      num_nodes: nodes per system.
      splits: split name -> (systems, True for the test length), e.g. `PAPER_SPLITS`.
      workers: threads per `Simulation.sample` call.
      seed: seed of the first split; split i uses seed + i.
    Returns:
      split -> (result, wall seconds of its simulation).
    """
    simulation = get_simulation(name)
    timed = {}
    for index, (split, (num_sims, is_test)) in enumerate(splits.items()):
        num_steps = simulation.default_num_steps_test if is_test else simulation.default_num_steps
        start = time.perf_counter()
        result = simulation.sample(num_sims, num_nodes, num_steps=num_steps, seed=seed + index,
                                   workers=workers)
        timed[split] = (result, time.perf_counter() - start)
    return timed


def sims_per_second(name: str, num_nodes: int, num_sims: int, workers: int) -> float:
    """Systems per second of `Simulation.sample` at the default train length."""
    start = time.perf_counter()
    get_simulation(name).sample(num_sims, num_nodes, seed=0, workers=workers)
    return num_sims / (time.perf_counter() - start)


def _sample_in_process(arguments: tuple[str, int, int, int]) -> SimulationResult:
    name, num_sims, num_nodes, seed = arguments
    return get_simulation(name).sample(num_sims, num_nodes, seed=seed, workers=1)


def threads_versus_processes(name: str, num_nodes: int, num_sims: int) -> dict[str, float]:
    """Wall seconds for ``num_sims`` systems: 1 thread, 2 threads, and 2 worker processes
    each simulating half and sending its result back (pool start-up included)."""
    simulation = get_simulation(name)
    seconds = {}
    for workers in (1, 2):
        start = time.perf_counter()
        simulation.sample(num_sims, num_nodes, seed=0, workers=workers)
        seconds[f"{workers} thread{'s' * (workers > 1)}"] = time.perf_counter() - start
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        halves = [(name, num_sims // 2, num_nodes, seed) for seed in (0, 1)]
        list(pool.map(_sample_in_process, halves))
    seconds["2 processes"] = time.perf_counter() - start
    return seconds


def springs_steps_per_second(dtype: type, num_nodes: int = 5, num_steps: int = 5000) -> float:
    """System-steps per second of `integrate_springs` on one chunk computed in ``dtype``."""
    rng = np.random.default_rng(0)
    positions = rng.normal(0, 0.5, (CHUNK_SIMS, num_nodes, 2)).astype(dtype)
    velocities = rng.normal(0, 0.35, (CHUNK_SIMS, num_nodes, 2)).astype(dtype)
    constants = (0.1 * (rng.random((CHUNK_SIMS, num_nodes, num_nodes)) < 0.5)).astype(dtype)
    constants = np.triu(constants, 1) + np.swapaxes(np.triu(constants, 1), 1, 2)
    start = time.perf_counter()
    integrate_springs(positions, velocities, constants, num_steps)
    return CHUNK_SIMS * num_steps / (time.perf_counter() - start)


def generate_paper_springs5(output_dir: str, workers: int = 2) -> tuple[list[str], float]:
    """Generates the paper-size springs5 set into ``output_dir`` with `generate_dataset`.

    Sizes come from `PAPER_SPLITS` (test at the simulation's test length); default seed.
    Returns:
      (one "split: simulated in .. s, written in .. s" line per split, total wall seconds).
    """
    from data_pipelines.generation import generate_dataset

    lines = []
    start = time.perf_counter()
    generate_dataset(output_dir, simulation="springs", num_nodes=5,
                     num_train=PAPER_SPLITS["train"][0], num_valid=PAPER_SPLITS["valid"][0],
                     num_test=PAPER_SPLITS["test"][0], workers=workers, progress=False,
                     log=lines.append)
    return lines, time.perf_counter() - start


def epoch_seconds(data_dir: str, split: str = "train", batch_size: int = 128) -> float:
    """Wall seconds of one pass of `make_dataset` (shuffled, normalised) over ``split``."""
    from data_pipelines.datasets import make_dataset

    dataset = make_dataset(data_dir, split, batch_size)
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2 * CHUNK_SIMS,
                        help="systems per throughput measurement (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="threads (default %(default)s)")
    parser.add_argument("--full", action="store_true",
                        help="also simulate the paper-size springs5 set (70k systems)")
    parser.add_argument("--write", action="store_true",
                        help="also generate the paper-size springs5 set end to end, TFRecords "
                             "included, into a temporary directory")
    args = parser.parse_args()

    print("load average before: {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(),
                                                                        os.cpu_count()))
    print(f"systems per second, {args.sims} systems, {args.workers} threads, 49 frames:")
    for name in SIMULATION_NAMES:
        rates = {nodes: sims_per_second(name, nodes, args.sims, args.workers) for nodes in (5, 10)}
        print(f"  {name:9s} N=5: {rates[5]:8.0f}   N=10: {rates[10]:8.0f}")

    print(f"springs N=5, {args.sims} systems, wall seconds:")
    for how, seconds in threads_versus_processes("springs", 5, args.sims).items():
        print(f"  {how:12s} {seconds:6.2f}")

    print("integrate_springs on one chunk, N=5, million system-steps per second:")
    for dtype in (np.float64, np.float32):
        print(f"  {dtype.__name__}: {springs_steps_per_second(dtype) / 1e6:6.1f}")

    if args.full:
        print(f"paper-size springs5 set, {args.workers} threads:")
        timed = simulate_splits("springs", 5, PAPER_SPLITS, workers=args.workers)
        for split, (result, seconds) in timed.items():
            print(f"  {split:6s} {list(result.trajectories.shape)}  {seconds:6.1f} s")
        print(f"  total  {sum(seconds for _, seconds in timed.values()):6.1f} s")

    if args.write:
        print(f"paper-size springs5 set generated and written as TFRecords, {args.workers} threads:")
        with tempfile.TemporaryDirectory() as root:
            output_dir = os.path.join(root, "springs5")
            lines, seconds = generate_paper_springs5(output_dir, args.workers)
            for line in lines:
                print(f"  {line}")
            size = sum(os.path.getsize(os.path.join(output_dir, name)) for name in os.listdir(output_dir))
            print(f"  total  {seconds:6.1f} s   ({size / 2**20:.0f} MiB on disk)")
            print(f"  one tf.data epoch over train (batch 128, shuffled): {epoch_seconds(output_dir):.2f} s")


if __name__ == "__main__":
    main()
