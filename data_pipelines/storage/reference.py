"""The reference implementation's .npy layout: import, export and direct writing.

Layout (the original PyTorch code's ``data/`` directory), ``{suffix}`` being
``_{source}{nodes}``, e.g. ``_springs5``::

    springs, charged:  loc_{split}{suffix}.npy, vel_{split}{suffix}.npy  [systems, frames, 2, nodes]
                       edges_{split}{suffix}.npy                         [systems, nodes, nodes]
    kuramoto:          feat_{split}{suffix}.npy                          [systems, nodes, frames, 3]
                       edges_{split}{suffix}.npy                         [systems, nodes, nodes]

``edges_*`` hold the simulators' interaction values (springs 0/1 or 0/0.5/1, charged
q_i q_j, Kuramoto k_ij), not labels; `DatasetMetadata.reference_edges` records how labels
map back to them so that an export reproduces the reference files.

Building blocks:
  `write_reference`, `export_reference`, `import_reference`, `reference_simulation`
  `reference_edge_encoding`, `merge_reference_edge_encodings`   labels -> reference values
"""

from __future__ import annotations

import glob
import os
from typing import Mapping, Sequence

import numpy as np

from data_pipelines.contract import SPLITS, edge_labels_from_matrix, edge_matrix_from_labels
from data_pipelines.errors import DatasetError
from data_pipelines.simulations import get_simulation
from data_pipelines.storage.metadata import DatasetMetadata
from data_pipelines.storage.reader import read_metadata, read_split
from data_pipelines.storage.staging import StagingDirectory
from data_pipelines.storage.writer import DEFAULT_SHARD_SIZE, write_dataset

REFERENCE_LAYOUTS = {"springs": "loc_vel", "charged": "loc_vel", "kuramoto": "feat"}


def reference_edge_encoding(labels: np.ndarray, interactions: np.ndarray) -> dict | None:
    """How edge labels map to the reference's ``edges_*.npy`` values, read off paired examples.

    Args:
      labels: [systems, nodes, nodes] int edge-type labels.
      interactions: [systems, nodes, nodes] the matching reference matrices.
    Returns:
      {"label_values": [value of label k, None if label k never occurs], "diagonal": value}
      or None when a label maps to several values (or the diagonal varies), so that no
      export could reproduce the matrices from labels alone.
    """
    labels, interactions = np.asarray(labels), np.asarray(interactions)
    nodes = labels.shape[-1]
    off_diagonal = ~np.eye(nodes, dtype=bool)
    diagonal = np.unique(interactions[..., ~off_diagonal])
    if len(diagonal) != 1:
        return None
    flat_labels, flat_values = labels[..., off_diagonal].ravel(), interactions[..., off_diagonal].ravel()
    values = []
    for label in range(int(flat_labels.max()) + 1 if flat_labels.size else 0):
        seen = np.unique(flat_values[flat_labels == label])
        if len(seen) > 1:
            return None
        values.append(float(seen[0]) if len(seen) else None)
    return {"label_values": values, "diagonal": float(diagonal[0])}


def merge_reference_edge_encodings(encodings: Sequence[dict | None]) -> dict | None:
    """One encoding consistent with every split's `reference_edge_encoding`, or None."""
    if not encodings or any(e is None for e in encodings):
        return None
    if len({e["diagonal"] for e in encodings}) != 1:
        return None
    values: list = []
    for encoding in encodings:
        for label, value in enumerate(encoding["label_values"]):
            if label == len(values):
                values.append(value)
            elif value is not None and values[label] is not None and values[label] != value:
                return None
            elif values[label] is None:
                values[label] = value
    return {"label_values": values, "diagonal": encodings[0]["diagonal"]}


def reference_suffix(source: str, nodes: int) -> str:
    """The reference file-name suffix, e.g. "_springs5" in loc_train_springs5.npy."""
    return f"_{source}{nodes}"


def _reference_layout(source: str) -> str:
    if source not in REFERENCE_LAYOUTS:
        raise DatasetError(f"the reference layout exists for {', '.join(REFERENCE_LAYOUTS)}, "
                           f"not {source!r}")
    return REFERENCE_LAYOUTS[source]


def write_reference(output_dir: str, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                    source: str, overwrite: bool = False) -> list[str]:
    """Writes splits in the reference .npy layout, atomically (see the module docstring).

    Args:
      splits: split -> (trajectories [systems, nodes, frames, dims] raw,
        interactions [systems, nodes, nodes] the reference's edges_*.npy values).
      source: "springs", "charged" (dims = 2D position, 2D velocity) or "kuramoto".
    Returns:
      The written file names, inside ``output_dir``.
    """
    layout = _reference_layout(source)
    arrays = {}
    for split, (trajectories, interactions) in splits.items():
        trajectories = np.asarray(trajectories)
        if split not in SPLITS or trajectories.ndim != 4:
            raise DatasetError(f"{output_dir}: split {split!r} must be one of {', '.join(SPLITS)} "
                               f"with [systems, nodes, frames, dims] trajectories")
        suffix = reference_suffix(source, trajectories.shape[1])
        if layout == "loc_vel":
            if trajectories.shape[-1] != 4:
                raise DatasetError(f"{output_dir}: {source} needs 4 dims (position, velocity), "
                                   f"got {trajectories.shape[-1]}")
            # [systems, nodes, frames, 2] -> [systems, frames, 2, nodes]
            arrays[f"loc_{split}{suffix}.npy"] = trajectories[..., :2].transpose(0, 2, 3, 1)
            arrays[f"vel_{split}{suffix}.npy"] = trajectories[..., 2:].transpose(0, 2, 3, 1)
        else:
            arrays[f"feat_{split}{suffix}.npy"] = trajectories
        arrays[f"edges_{split}{suffix}.npy"] = np.asarray(interactions)
    staging = StagingDirectory(output_dir, overwrite)
    try:
        for name, array in arrays.items():
            np.save(os.path.join(staging.path, name), np.ascontiguousarray(array))
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    return sorted(arrays)


def export_reference(data_dir: str, output_dir: str, *, overwrite: bool = False) -> list[str]:
    """Writes a native simulation dataset in the reference .npy layout.

    The edges_*.npy matrices are rebuilt from the labels with the dataset's
    ``reference_edges`` encoding, so importing them again gives identical arrays.
    Returns the written file names.
    """
    metadata = read_metadata(data_dir)
    _reference_layout(metadata.source)
    encoding = metadata.reference_edges
    if encoding is None:
        raise DatasetError(f"{data_dir}: metadata has no reference_edges encoding, so the "
                           "reference edges_*.npy values cannot be rebuilt from labels")
    splits = {}
    for split in metadata.splits:
        trajectories, labels = read_split(data_dir, split)
        known = [v is not None for v in encoding["label_values"]]
        if labels.max() >= len(known) or not all(known[k] for k in np.unique(labels)):
            raise DatasetError(f"{data_dir}: split {split!r} has edge labels without a "
                               "reference value in metadata reference_edges")
        values = np.array([np.nan if v is None else v for v in encoding["label_values"]], np.float32)
        interactions = edge_matrix_from_labels(values[labels], metadata.nodes,
                                               diagonal=np.float32(encoding["diagonal"]))
        splits[split] = (trajectories, interactions)
    return write_reference(output_dir, splits, source=metadata.source, overwrite=overwrite)


def reference_simulation(reference_dir: str) -> str:
    """The simulation whose reference training files ``reference_dir`` holds, read off the
    file names (loc_train_springs5.npy -> "springs"); DatasetError unless exactly one."""
    found = sorted(source for source, layout in REFERENCE_LAYOUTS.items()
                   if glob.glob(os.path.join(reference_dir, f"{'loc' if layout == 'loc_vel' else 'feat'}"
                                                            f"_train_{source}*.npy")))
    if len(found) != 1:
        what = f"files of several simulations ({', '.join(found)})" if found else "no loc_train_* or feat_train_* file"
        raise DatasetError(f"{reference_dir}: {what}; pass --simulation")
    return found[0]


def _find_reference_suffix(reference_dir: str, source: str, nodes: int | None) -> str:
    first = "loc" if _reference_layout(source) == "loc_vel" else "feat"
    if nodes is not None:
        return reference_suffix(source, nodes)
    found = sorted(glob.glob(os.path.join(reference_dir, f"{first}_train_{source}*.npy")))
    if not found:
        raise DatasetError(f"{reference_dir}: no {first}_train_{source}<N>.npy file")
    if len(found) > 1:
        names = ", ".join(os.path.basename(path) for path in found)
        raise DatasetError(f"{reference_dir}: several training files ({names}); pass the number of nodes")
    name = os.path.basename(found[0])
    return name[len(f"{first}_train"):-len(".npy")]


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file missing") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable .npy array ({error})") from None


def _reference_names(split: str, suffix: str, layout: str) -> list[str]:
    """The .npy file names of one split in the reference layout."""
    arrays = ("loc", "vel", "edges") if layout == "loc_vel" else ("feat", "edges")
    return [f"{array}_{split}{suffix}.npy" for array in arrays]


def _reference_files_present(reference_dir: str, split: str, suffix: str, layout: str) -> bool:
    """Whether ``split`` is there: all its files (True), none (False); DatasetError naming
    the missing file when only some are, rather than silently dropping the split."""
    paths = [os.path.join(reference_dir, name) for name in _reference_names(split, suffix, layout)]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing and len(missing) < len(paths):
        raise DatasetError(f"{missing[0]}: file missing, but other {split} files are there; "
                           f"restore it or remove the {split} split's files")
    return not missing


def _read_reference_split(reference_dir: str, split: str, suffix: str,
                          layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(trajectories [systems, nodes, frames, dims], interactions [systems, nodes, nodes])."""
    edges_path = os.path.join(reference_dir, f"edges_{split}{suffix}.npy")
    if layout == "loc_vel":
        loc_path = os.path.join(reference_dir, f"loc_{split}{suffix}.npy")
        loc, vel = _load_npy(loc_path), _load_npy(os.path.join(reference_dir, f"vel_{split}{suffix}.npy"))
        if loc.ndim != 4 or loc.shape[2] != 2 or vel.shape != loc.shape:
            raise DatasetError(f"{loc_path}: loc/vel must both be [systems, frames, 2, nodes], "
                               f"got {loc.shape} and {vel.shape}")
        # [systems, frames, 2, nodes] -> [systems, nodes, frames, 2]
        trajectories = np.concatenate([loc.transpose(0, 3, 1, 2), vel.transpose(0, 3, 1, 2)], axis=-1)
    else:
        feat_path = os.path.join(reference_dir, f"feat_{split}{suffix}.npy")
        trajectories = _load_npy(feat_path)
        if trajectories.ndim != 4:
            raise DatasetError(f"{feat_path}: feat must be [systems, nodes, frames, dims], "
                               f"got {trajectories.shape}")
    interactions = _load_npy(edges_path)
    systems, nodes = trajectories.shape[:2]
    if interactions.shape != (systems, nodes, nodes):
        raise DatasetError(f"{edges_path}: expected shape {(systems, nodes, nodes)}, got {interactions.shape}")
    return trajectories.astype(np.float32), interactions


def import_reference(reference_dir: str, output_dir: str, *, simulation: str,
                     num_nodes: int | None = None, edge_types: int | None = None,
                     overwrite: bool = False, shard_size: int = DEFAULT_SHARD_SIZE) -> DatasetMetadata:
    """Converts reference .npy files of ``simulation`` into a native dataset.

    Args:
      reference_dir: holds {loc,vel,edges}_{split}_{simulation}{N}.npy (or feat_/edges_ for
        kuramoto); train is required, valid and test are taken when present.
      simulation: "springs", "charged" or "kuramoto": picks the layout, the feature names,
        the normalisation groups and the interaction -> label mapping
        (`labels_from_interactions`).
      num_nodes: selects among several N in one directory (default: the only one present).
      edge_types: default: the first of the simulation's ``edge_types_choices`` whose
        interaction values match the files (springs: 2 for 0/1, 3 for 0/0.5/1).
    Returns:
      The written `DatasetMetadata`; ``reference_edges`` lets `export_reference` reproduce
      the files.
    """
    try:
        sim = get_simulation(simulation)
    except ValueError as error:
        raise DatasetError(str(error)) from None
    layout = _reference_layout(simulation)
    suffix = _find_reference_suffix(reference_dir, simulation, num_nodes)
    raw = {}
    for split in SPLITS:
        if split == "train" or _reference_files_present(reference_dir, split, suffix, layout):
            raw[split] = _read_reference_split(reference_dir, split, suffix, layout)
    if edge_types is None:
        edge_types = _reference_edge_types(sim, raw, reference_dir, suffix)
    splits, encodings = {}, []
    for split, (trajectories, interactions) in raw.items():
        try:
            label_matrix = np.asarray(sim.labels_from_interactions(interactions, edge_types=edge_types))
        except ValueError as error:
            raise DatasetError(f"{os.path.join(reference_dir, f'edges_{split}{suffix}.npy')}: {error}") from None
        encodings.append(reference_edge_encoding(label_matrix, interactions))
        splits[split] = (trajectories, edge_labels_from_matrix(label_matrix).astype(np.int32))
    return write_dataset(
        output_dir, splits, source=simulation,
        parameters={"imported_from": os.path.abspath(reference_dir), "suffix": suffix},
        edge_types=edge_types, feature_names=sim.feature_names,
        normalisation_groups=sim.normalisation_groups, shard_size=shard_size, overwrite=overwrite,
        reference_edges=merge_reference_edge_encodings(encodings))


def _reference_edge_types(sim, raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
                          reference_dir: str, suffix: str) -> int:
    """The first of the simulation's edge-type counts that reads every split's interactions."""
    problems = []
    for edge_types in sim.edge_types_choices:
        try:
            for _, interactions in raw.values():
                sim.labels_from_interactions(interactions, edge_types=edge_types)
        except ValueError as error:
            problems.append(str(error))
            continue
        return edge_types
    raise DatasetError(f"{os.path.join(reference_dir, f'edges_train{suffix}.npy')}: values are not "
                       f"{sim.name} interactions for edge_types {', '.join(map(str, sim.edge_types_choices))} "
                       f"({problems[-1]})")

