"""Simulates an NRI dataset and writes it to disk: `generate_dataset`.

Defaults are the paper's (appendix B; the reference generate_dataset.py): 50000 / 10000 /
10000 systems, train and valid 49 frames, test 99 frames. Each split draws from its own
random stream derived from ``seed`` (`split_seed`), so the splits are independent and the
bytes depend only on the arguments (not on ``workers``). Bad arguments or an unusable
output directory are rejected (UserError) before any simulation starts; an interrupted
run leaves no output directory behind. ``overwrite`` replaces only a dataset directory
(`data_pipelines.storage.staging.foreign_entries` finds nothing else in it).

The command line is `python -m data_pipelines.generate`; the
training command builds its default dataset with `generate_dataset`.

Building blocks:
  `generate_dataset`   simulate train/valid/test and write them (native or reference layout)
  `split_seed`         the seed of one split's random stream
"""

from __future__ import annotations

import os
import time
from typing import Callable, TextIO

import numpy as np

from data_pipelines.contract import SPLITS, edge_labels_from_matrix
from data_pipelines.errors import UserError
from data_pipelines.normalisation import compute_normalisation
from data_pipelines.progress import progress_bar, progress_stream
from data_pipelines.simulations import EDGE_LIST_SIMULATION_NAMES, LOCAL_SPRINGS_OPTIONS, get_simulation, num_frames
from data_pipelines.simulations.base import check_positive_int
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.reference import (merge_reference_edge_encodings, reference_edge_encoding,
                                              write_reference)
from data_pipelines.storage.staging import check_output_dir
from data_pipelines.storage.writer import DEFAULT_SHARD_SIZE, DatasetWriter
from data_pipelines.tf_startup import import_tensorflow

FORMATS = ("tfrecord", "reference")
SPLIT_INDEX = {split: index for index, split in enumerate(SPLITS)}


def split_seed(seed: int, split: str) -> int:
    """The simulator seed of one split: an independent stream derived from ``seed``."""
    return int(np.random.SeedSequence([seed, SPLIT_INDEX[split]]).generate_state(1)[0])


def generate_dataset(output: str | None = None, *, simulation: str = "springs", num_nodes: int = 5,
                     num_train: int = 50000, num_valid: int = 10000, num_test: int = 10000,
                     length: int | None = None, length_test: int | None = None,
                     sample_freq: int | None = None, edge_types: int = 2, noise: float = 0.0,
                     interacting: bool = True, seed: int = 42, workers: int = 2,
                     format: str = "tfrecord", overwrite: bool = False,
                     simulation_options: dict | None = None,
                     shard_size: int = DEFAULT_SHARD_SIZE,
                     progress: bool | TextIO = True,
                     log: Callable[[str], None] | None = None) -> DatasetMetadata:
    """Simulates train/valid/test splits and writes them atomically.

    Args:
      output: dataset directory (default ``data/<simulation><num_nodes>``); refused if it
        exists and is not empty, unless ``overwrite``.
      simulation: one of `ALL_SIMULATION_NAMES`; "local-springs" (large systems) writes
        edge lists (each system's pairs within the cutoff and their labels) instead of
        N*(N-1) labels, and only in the native format.
      num_nodes: nodes per system, >= 2.
      num_train, num_valid, num_test: systems per split, >= 1.
      length, length_test: integration steps of train/valid and of test systems (default:
        the simulation's, 5000 and 10000 for springs and charged -> 49 and 99 frames).
      sample_freq: keep every this many steps (default: the simulation's, 100 for particles).
      edge_types: edge types of the simulation (springs: 2 or 3).
      noise: standard deviation of Gaussian observation noise.
      interacting: False gives systems without interactions (the empty graph).
      seed: the dataset seed; each split uses `split_seed(seed, split)`.
      workers: simulator threads (the output does not depend on it).
      format: "tfrecord" (native: shards + metadata.json) or "reference" (the original
        code's .npy files only).
      shard_size: most records per TFRecord file.
      simulation_options: settings of the simulation other than the sizes (local-springs:
        density, cutoff, spring_probability, walls; `get_simulation`); default: its own.
      progress: True for progress bars on stderr, False for none, or a text stream.
      log: receives a one-line timing message per written split (default: none).
    Returns:
      The dataset's `DatasetMetadata`. For ``format="reference"`` only the .npy files are
      written; the returned metadata describes them and lists no shards.
    Raises:
      UserError (DatasetError for the output directory) naming the bad argument, before
      anything is simulated.
    """
    sim = get_simulation(simulation, **(simulation_options or {}))
    sim.check_arguments(num_nodes=num_nodes, edge_types=edge_types, noise=noise, seed=seed,
                        workers=workers)
    sizes = {"train": num_train, "valid": num_valid, "test": num_test}
    for split, size in sizes.items():
        check_positive_int(f"num_{split}", size)
    length = sim.default_num_steps if length is None else length
    length_test = sim.default_num_steps_test if length_test is None else length_test
    sample_freq = sim.default_sample_every if sample_freq is None else sample_freq
    steps = {"train": length, "valid": length, "test": length_test}
    for name, value in (("length", length), ("length_test", length_test), ("sample_freq", sample_freq)):
        check_positive_int(name, value)
    frames = {split: num_frames(steps[split], sample_freq) for split in sizes}
    check_positive_int("shard_size", shard_size)
    if format not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    edge_lists = simulation in EDGE_LIST_SIMULATION_NAMES
    if edge_lists and format == "reference":
        raise UserError(f"--format reference stores N x N edge matrices; {simulation} data is "
                        "stored as edge lists in the native format only (leave out --format)")
    output = output or os.path.join("data", f"{simulation}{num_nodes}")
    log = log or (lambda message: None)
    stream = progress_stream(progress)

    check_output_dir(output, overwrite)
    seeds = {split: split_seed(seed, split) for split in sizes}
    parameters = {"num_steps": steps, "sample_every": sample_freq, "edge_types": edge_types,
                  "noise": float(noise), "interacting": bool(interacting), "split_seeds": seeds}
    if edge_lists:
        parameters.update({name: sim.parameters[name]
                           for name in LOCAL_SPRINGS_OPTIONS})

    def simulate(split):
        with progress_bar(split, sizes[split], stream) as progress_callback:
            return sim.sample(sizes[split], num_nodes, num_steps=steps[split], sample_every=sample_freq,
                              edge_types=edge_types, noise=noise, interacting=interacting,
                              seed=seeds[split], workers=workers, progress=progress_callback)

    if format == "reference":
        results = {split: simulate(split) for split in sizes}
        write_reference(output, {split: (r.trajectories, r.interactions) for split, r in results.items()},
                        source=simulation, overwrite=overwrite)
        normalisation = compute_normalisation(results["train"].trajectories, sim.normalisation_groups)
        return DatasetMetadata(
            source=simulation, parameters={**parameters, "format": "reference"}, nodes=num_nodes,
            dims=sim.dims, feature_names=list(sim.feature_names), edge_types=edge_types,
            frames=frames, splits=dict(sizes), normalisation=normalisation, shards={}, seed=seed,
            reference_edges=reference_edge_encoding(results["train"].edges, results["train"].interactions))

    import_tensorflow()                               # after the checks, without its start-up noise
    with DatasetWriter(output, source=simulation, parameters=parameters,
                       edge_types=edge_types, feature_names=sim.feature_names,
                       normalisation_groups=sim.normalisation_groups, seed=seed,
                       shard_size=shard_size, overwrite=overwrite,
                       edge_lists=sim.edge_list_description() if edge_lists else None) as writer:
        encodings = []
        for split in sizes:
            start = time.perf_counter()
            result = simulate(split)
            simulated = time.perf_counter()
            if edge_lists:
                shards = writer.write_split(split, result.trajectories, result.edge_labels,
                                            edge_index=result.edges)
            else:
                encodings.append(reference_edge_encoding(result.edges, result.interactions))
                shards = writer.write_split(split, result.trajectories,
                                            edge_labels_from_matrix(result.edges).astype(np.int32))
            del result
            log(f"{split}: {sizes[split]} systems simulated in {simulated - start:.1f} s, "
                f"{len(shards)} shards written in {time.perf_counter() - simulated:.1f} s")
        writer.reference_edges = merge_reference_edge_encodings(encodings) if encodings else None
    return writer.metadata

