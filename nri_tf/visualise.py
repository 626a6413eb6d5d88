"""Pictures of the graphs a model infers: one drawing used by TensorBoard and by the CLI.

`trainers.callbacks.GraphImages` logs them every epoch and ``python -m nri_tf.evaluate
--image PATH [--system N]`` writes one as a PNG; both call `graph_figures`, which picks
the drawing from the dataset's metadata (the figures themselves are `nri_tf.figures`):

- Skeleton data (``metadata.extra["bones"]``, CMU motion capture): the first frame of
  the first system in raw units (dims 0..2, seen from the front) with the bones in light
  grey and the learned edges on top, one panel per edge type, left to right. With
  ``skip_first`` type 0 is "no edge" and gets no panel.
- Data with positions (feature names x, y first: springs, charged particles, basketball):
  each node where it is at the encoder's last frame, its trajectory over the encoder's
  frames drawn under the graph, in raw units.
- Other data (Kuramoto): the nodes on a circle, one feature over time in a row below
  (``sin_phi`` where there is one, else feature 0).

With true edge labels (simulations) the true graph is on the left and the inferred one
on the right, its exchangeable types relabelled by the permutation that best matches this
system's labels (`aligned_edge_types`), with the share of edges right in its title and the
missed and spurious edges marked. Edge type 0 is not drawn where it means "no edge": for
labels, where the simulator's type 0 is "no interaction" (springs, Kuramoto; charged
particles attract or repel, so both types are drawn); without labels, where the model
has ``skip_first``.

Large systems: with candidate edges (``candidates``) only the real candidates are drawn
(and scored), and a system of more than `MAX_DRAWN_NODES` nodes is drawn as a window: the
`MAX_DRAWN_NODES` nodes nearest its centre (at the encoder's last frame) and the edges
among them, so that the picture stays readable at N = 1000.

Building blocks:
  `graph_figures`        model + systems + metadata -> one `Figure` per system
  `drawn_nodes`          the nodes a large system's picture shows
  `inferred_edge_types`  the most likely edge type of every edge
  `aligned_edge_types`   relabel inferred types to best match true labels
  `shown_edge_types`     the edge types a model's drawing shows as edges
"""

from __future__ import annotations

import numpy as np

from data_pipelines.contract import fully_connected_edges, position_dims
from data_pipelines.normalisation import Normaliser
from data_pipelines.simulations import ALL_SIMULATION_NAMES, get_simulation
from nri_tf.metrics import best_permutation

MAX_DRAWN_NODES = 60
"""Systems with more nodes are drawn as a window of this many nodes (module notes)."""


def inferred_edge_types(model, trajectories, candidates=None) -> np.ndarray:
    """The most likely edge type of every edge (the encoder's argmax, evaluation mode).

    Args:
      model: an `nri_tf.model.NRI`.
      trajectories: [systems, nodes, frames, dims] normalised, frames >= the model's
        ``config.frames``; the encoder reads the first ``config.frames``.
      candidates: the systems' candidate edges ({"senders", ["mask"]}), or None for the
        complete graph.
    Returns:
      [systems, edges] int64, receiver-major edge order.
    """
    frames = model.nri_config.frames
    context = np.asarray(trajectories, dtype=np.float32)[:, :, :frames]
    logits = model.encode(context) if candidates is None else model.encode(context, candidates)
    return np.argmax(np.asarray(logits), axis=-1)


def _candidate_pairs(candidates: dict, system: int) -> tuple[np.ndarray, np.ndarray]:
    """([edges, 2] (receiver, sender) of every candidate slot of one system, [edges] bool real)."""
    senders = np.asarray(candidates["senders"][system])                 # [nodes, degree]
    receivers = np.repeat(np.arange(senders.shape[0]), senders.shape[1])
    mask = candidates.get("mask")
    real = np.ones(senders.size, bool) if mask is None else np.asarray(mask[system]).reshape(-1) > 0
    return np.stack([receivers, senders.reshape(-1)], axis=1), real


def drawn_nodes(node_xy: np.ndarray, limit: int = MAX_DRAWN_NODES) -> np.ndarray:
    """The nodes a picture shows: all of them, or for more than ``limit`` the ``limit``
    nearest the node closest to the mean position (a readable window of a large system).

    Args:
      node_xy: [nodes, 2] positions.
    Returns:
      [shown] int node indices, ascending.
    """
    if len(node_xy) <= limit:
        return np.arange(len(node_xy))
    centre = node_xy[np.argmin(np.sum((node_xy - node_xy.mean(axis=0)) ** 2, axis=1))]
    return np.sort(np.argsort(np.sum((node_xy - centre) ** 2, axis=1), kind="stable")[:limit])


def aligned_edge_types(inferred: np.ndarray, edge_labels: np.ndarray, edge_types: int,
                       skip_first: bool) -> np.ndarray:
    """Relabels inferred edge types by the exchangeable-type permutation that best matches
    ``edge_labels`` (the one edge accuracy is scored under).

    Args:
      inferred, edge_labels: [systems, edges] integer edge types.
      edge_types: K of the model.
      skip_first: type 0 is "no edge" and keeps its label.
    Returns:
      [systems, edges] the inferred types, relabelled.
    """
    return best_permutation(inferred, edge_labels, edge_types, skip_first)[inferred]


def shown_edge_types(edge_types: int, skip_first: bool) -> list:
    """The edge types drawn as edges: all K, or 1..K-1 when type 0 is "no edge"."""
    return list(range(1 if skip_first else 0, edge_types))


def _label_type_zero_is_no_edge(metadata) -> bool:
    """Whether label 0 of this (labelled) data means no interaction (its simulator says so;
    True for labelled data of other sources)."""
    if metadata.source in ALL_SIMULATION_NAMES:
        return get_simulation(metadata.source).type_zero_is_no_interaction
    return True


def graph_figures(model, trajectories, edge_labels, metadata, normaliser=None, *, first_system: int = 0,
                  split: str = "test", candidates=None) -> list:
    """Draws the graph ``model`` infers for ``trajectories`` (see the module docstring).

    Args:
      model: an `nri_tf.model.NRI`.
      trajectories: [systems, nodes, frames, dims] normalised by ``normaliser``, frames
        >= ``config.frames``.
      edge_labels: [systems, edges] true edge types, or None for data without a true graph.
      metadata: the dataset's `data_pipelines.storage.metadata.DatasetMetadata` (bones, feature names).
      normaliser: the `data_pipelines.normalisation.Normaliser` that scaled ``trajectories``
        (default: the dataset's own), to draw raw units.
      first_system, split: the systems' index in their split and its name, for the titles.
      candidates: the systems' candidate edges ({"senders": [systems, nodes, degree],
        ["mask"]}, numpy or tensors), with ``edge_labels`` [systems, nodes * degree]; None for
        the complete graph.
    Returns:
      [`matplotlib.figure.Figure`]: skeleton data, one figure of the first system; other
      data, one figure per system.
    """
    from nri_tf import figures   # matplotlib: loaded only when a picture is drawn

    trajectories = np.asarray(trajectories, dtype=np.float32)
    if trajectories.ndim != 4:
        raise ValueError(f"trajectories must be [systems, nodes, frames, dims], got shape {trajectories.shape}")
    config = model.nri_config
    num_nodes, frames = trajectories.shape[1], config.frames
    complete_pairs = np.stack(fully_connected_edges(num_nodes), axis=-1)   # [edges, 2] (receiver, sender)
    if candidates is not None:
        candidates = {name: np.asarray(value) for name, value in candidates.items()}
    raw = (normaliser or Normaliser.from_metadata(metadata)).denormalise(trajectories)
    inferred = inferred_edge_types(model, trajectories, candidates)
    names = list(metadata.feature_names)

    bones = (metadata.extra or {}).get("bones")
    if bones is not None:
        if trajectories.shape[-1] < 3:
            raise ValueError(f"a skeleton drawing needs 3-D positions in dims 0..2, got {trajectories.shape[-1]} dims")
        pairs, real = (complete_pairs, slice(None)) if candidates is None else _candidate_pairs(candidates, 0)
        return [figures.skeleton_figure(
            raw[0, :, 0, :2], bones, pairs[real], inferred[0][real],
            shown_edge_types(config.edge_types, config.skip_first),
            title=f"{split} system {first_system}: learned edges on its first frame (bones in grey)")]

    if edge_labels is not None:
        no_edge = _label_type_zero_is_no_edge(metadata)
        shown = [k for k in range(max(config.edge_types, metadata.edge_types)) if k > 0 or not no_edge]
    else:
        shown = shown_edge_types(config.edge_types, config.skip_first)
    spatial = position_dims(metadata) >= 2
    series_dim = names.index("sin_phi") if "sin_phi" in names else 0
    result = []
    for index in range(len(trajectories)):
        true = None if edge_labels is None else np.asarray(edge_labels[index])
        guess = inferred[index] if true is None else aligned_edge_types(
            inferred[index:index + 1], true[None], config.edge_types, config.skip_first)[0]
        pairs, real = ((complete_pairs, np.ones(len(complete_pairs), bool)) if candidates is None
                       else _candidate_pairs(candidates, index))
        title = f"{split} system {first_system + index} ({metadata.source}, {num_nodes} nodes)"
        node_xy = raw[index, :, frames - 1, :2] if spatial else None
        shown_nodes = drawn_nodes(node_xy) if spatial else np.arange(num_nodes)
        if len(shown_nodes) < num_nodes:
            # A window of a large system: its nodes and the candidate edges among them.
            keep = np.full(num_nodes, -1)
            keep[shown_nodes] = np.arange(len(shown_nodes))
            real &= (keep[pairs[:, 0]] >= 0) & (keep[pairs[:, 1]] >= 0)
            pairs = keep[pairs]
            title += f": the {len(shown_nodes)} nodes around the centre and the edges among them"
        pairs, guess = pairs[real], guess[real]
        true = None if true is None else true[real]
        if spatial:
            result.append(figures.graph_figure(
                pairs, guess, shown, true=true, node_xy=node_xy[shown_nodes],
                trajectories_xy=raw[index, shown_nodes, :frames, :2], title=title))
        else:
            result.append(figures.graph_figure(
                pairs, guess, shown, true=true, series=raw[index, :, :frames, series_dim],
                series_name=names[series_dim], title=title))
    return result
