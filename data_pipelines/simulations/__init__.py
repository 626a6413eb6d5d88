"""Batched, seeded simulators of interacting systems (paper appendix B).

Three physics, each a `Simulation` found by name with `get_simulation`:

  springs    point masses joined by random springs (2 or 3 edge types)
  charged    charged point masses, every pair attracting or repelling
  kuramoto   phase-coupled oscillators

`Simulation.sample(num_sims, num_nodes, ...)` draws random systems and returns a
`SimulationResult`: trajectories [sims, nodes, frames, dims] float32, edge-type labels and
the raw interaction matrices [sims, nodes, nodes]. Each physics also has a pure integrator
of caller-given initial states (`integrate_springs`, `integrate_charged`,
`integrate_kuramoto`) and its force law as a pure function (`spring_forces`,
`charged_forces`, `kuramoto_phase_velocities`), for custom scenarios and for checking the
physics against other code.

`LocalSpringsSimulation` ("local-springs", issue 15) samples large systems with springs
between nearby nodes only and returns sparse ground truth (`SparseSimulationResult`): edge
lists instead of N x N matrices, stored as such (`EDGE_LIST_SIMULATION_NAMES`; every name,
`ALL_SIMULATION_NAMES`, is found by `get_simulation`).

    from data_pipelines.simulations import get_simulation
    result = get_simulation("springs").sample(1000, 5, seed=0)   # [1000, 5, 49, 4]
"""

from __future__ import annotations

from data_pipelines.errors import UserError
from data_pipelines.simulations.base import CHUNK_SIMS, Simulation, SimulationResult, num_frames
from data_pipelines.simulations.charged import ChargedSimulation, charged_forces, integrate_charged
from data_pipelines.simulations.kuramoto import (KuramotoSimulation, integrate_kuramoto,
                                                 kuramoto_phase_velocities)
from data_pipelines.simulations.local_springs import (LocalSpringsSimulation, SparseSimulationResult,
                                                     integrate_local_springs, local_spring_forces)
from data_pipelines.simulations.springs import SpringsSimulation, integrate_springs, spring_forces

SIMULATION_NAMES = ("springs", "charged", "kuramoto")
"""Simulations with dense ground truth: N x N interaction matrices, N*(N-1) labels."""
EDGE_LIST_SIMULATION_NAMES = ("local-springs",)
"""Simulations of large systems whose ground truth is an edge list (`SparseSimulationResult`)."""
ALL_SIMULATION_NAMES = SIMULATION_NAMES + EDGE_LIST_SIMULATION_NAMES

_SIMULATIONS = {simulation.name: simulation
                for simulation in (SpringsSimulation(), ChargedSimulation(), KuramotoSimulation(),
                                   LocalSpringsSimulation())}
assert tuple(_SIMULATIONS) == ALL_SIMULATION_NAMES


LOCAL_SPRINGS_OPTIONS = ("density", "cutoff", "spring_probability", "walls")
"""Settings of the local-springs systems (`LocalSpringsSimulation`'s arguments)."""


def get_simulation(name: str, **options) -> Simulation | LocalSpringsSimulation:
    """The simulation registered as ``name``, one of `ALL_SIMULATION_NAMES`; with
    ``options`` (local-springs only: `LOCAL_SPRINGS_OPTIONS`) a new one with those settings.

    Raises:
      UserError: for an unknown name, or options the simulation does not take or refuses.
    """
    try:
        simulation = _SIMULATIONS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown simulation {name!r}; choose one of "
                        f"{', '.join(ALL_SIMULATION_NAMES)}") from None
    if not options:
        return simulation
    if name != "local-springs" or not set(options) <= set(LOCAL_SPRINGS_OPTIONS):
        flags = ", ".join(f"--{option.replace('_', '-')}" for option in options)
        raise UserError(f"{flags}: settings of --simulation local-springs only "
                        f"({', '.join(LOCAL_SPRINGS_OPTIONS)}), not of {name}")
    try:
        return LocalSpringsSimulation(**options)
    except ValueError as error:
        raise UserError(f"local-springs: {error}") from None


__all__ = [
    "ALL_SIMULATION_NAMES", "CHUNK_SIMS", "EDGE_LIST_SIMULATION_NAMES", "LOCAL_SPRINGS_OPTIONS", "SIMULATION_NAMES", "Simulation", "SimulationResult", "get_simulation",
    "num_frames", "charged_forces", "integrate_charged", "integrate_kuramoto",
    "integrate_springs", "kuramoto_phase_velocities", "spring_forces",
    "ChargedSimulation", "KuramotoSimulation", "SpringsSimulation",
    "LocalSpringsSimulation", "SparseSimulationResult", "integrate_local_springs",
    "local_spring_forces",
]
