"""Local-springs systems at scale: simulation throughput, graph sizes, and how many true
springs each candidate-edge method recovers (issue 15).

    .venv/bin/python benchmarks/local_springs.py                  # N = 100, 300, 1000
    .venv/bin/python benchmarks/local_springs.py --num-nodes 3000 --systems 4

For each N, prints one simulation line: systems simulated per second at the train length
(5000 steps, 49 frames) with ``--workers`` threads, and node-steps per second; the mean
number of directed pairs within the cutoff per node (the candidate edges that contain every
spring) and of springs per node. Then one line per candidate method: candidate edges per
node, the recall of the true springs (`candidate_recall`, pooled over systems) and the
seconds per system to build them. knn and radius run on the first observed frame or on the
union over the encoder's window (all 49 frames), the comparison issue 15 asks for; complete
is N - 1 per node with recall 1.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from data_pipelines.candidates import candidate_recall, select_candidates
from data_pipelines.simulations import LocalSpringsSimulation

CANDIDATE_SETTINGS = (("knn", {"k": 8}), ("knn", {"k": 16}), ("radius", {"radius": 1.5}))
"""(method, parameters) compared, each on the first frame and on the window."""


def benchmark(num_nodes: int, num_sims: int, workers: int, seed: int = 0) -> None:
    """Prints the simulation and candidate lines of one system size (see the module notes)."""
    simulation = LocalSpringsSimulation()
    start = time.perf_counter()
    result = simulation.sample(num_sims, num_nodes, seed=seed, workers=workers)
    seconds = time.perf_counter() - start
    springs = result.interacting_edges()
    print(f"N={num_nodes:5d}  {num_sims} systems in {seconds:6.2f} s: {num_sims / seconds:8.2f} "
          f"systems/s, {num_sims * num_nodes * simulation.default_num_steps / seconds:.3g} "
          f"node-steps/s; per node {len(result.edges.edges) / (num_sims * num_nodes):.2f} pairs "
          f"within the cutoff, {len(springs.edges) / (num_sims * num_nodes):.2f} springs "
          f"({len(springs.edges) / num_sims:.0f} directed springs per system)")
    positions = result.trajectories[..., :2]
    for method, parameters in CANDIDATE_SETTINGS:
        for window in (False, True):
            start = time.perf_counter()
            found = select_candidates(method, positions, window=window, **parameters)
            seconds = time.perf_counter() - start
            recalled = sum(candidate_recall(found[s], springs[s]) * len(springs[s])
                           for s in range(num_sims))
            name = f"{method} {next(iter(parameters.values()))} {'window' if window else 'first frame'}"
            print(f"    {name:24s} {len(found.edges) / (num_sims * num_nodes):7.2f} edges/node  "
                  f"recall {recalled / max(len(springs.edges), 1):.4f}  "
                  f"{seconds / num_sims:.3f} s/system")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-nodes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--systems", type=int, default=8, help="systems per size")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for num_nodes in args.num_nodes:
        benchmark(num_nodes, args.systems, args.workers)


if __name__ == "__main__":
    main()
