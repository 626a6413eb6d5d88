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

Building blocks:
  `graph_figures`        model + systems + metadata -> one `Figure` per system
  `inferred_edge_types`  the most likely edge type of every edge
  `aligned_edge_types`   relabel inferred types to best match true labels
  `shown_edge_types`     the edge types a model's drawing shows as edges
"""

from __future__ import annotations

import numpy as np

from data_pipelines.contract import fully_connected_edges
from data_pipelines.normalisation import Normaliser
from data_pipelines.simulations import SIMULATION_NAMES, get_simulation
from nri_tf.metrics import best_permutation


def inferred_edge_types(model, trajectories) -> np.ndarray:
    """The most likely edge type of every edge (the encoder's argmax, evaluation mode).

    Args:
      model: an `nri_tf.model.NRI`.
      trajectories: [systems, nodes, frames, dims] normalised, frames >= the model's
        ``config.frames``; the encoder reads the first ``config.frames``.
    Returns:
      [systems, edges] int64, receiver-major edge order.
    """
    frames = model.nri_config.frames
    logits = model.encode(np.asarray(trajectories, dtype=np.float32)[:, :, :frames])
    return np.argmax(np.asarray(logits), axis=-1)


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
    if metadata.source in SIMULATION_NAMES:
        return get_simulation(metadata.source).type_zero_is_no_interaction
    return True


def graph_figures(model, trajectories, edge_labels, metadata, normaliser=None, *, first_system: int = 0,
                  split: str = "test") -> list:
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
    pairs = np.stack(fully_connected_edges(num_nodes), axis=-1)      # [edges, 2] (receiver, sender)
    raw = (normaliser or Normaliser.from_metadata(metadata)).denormalise(trajectories)
    inferred = inferred_edge_types(model, trajectories)
    names = list(metadata.feature_names)

    bones = (metadata.extra or {}).get("bones")
    if bones is not None:
        if trajectories.shape[-1] < 3:
            raise ValueError(f"a skeleton drawing needs 3-D positions in dims 0..2, got {trajectories.shape[-1]} dims")
        return [figures.skeleton_figure(
            raw[0, :, 0, :2], bones, pairs, inferred[0], shown_edge_types(config.edge_types, config.skip_first),
            title=f"{split} system {first_system}: learned edges on its first frame (bones in grey)")]

    if edge_labels is not None:
        no_edge = _label_type_zero_is_no_edge(metadata)
        shown = [k for k in range(max(config.edge_types, metadata.edge_types)) if k > 0 or not no_edge]
    else:
        shown = shown_edge_types(config.edge_types, config.skip_first)
    spatial = names[:2] == ["x", "y"]
    series_dim = names.index("sin_phi") if "sin_phi" in names else 0
    result = []
    for index in range(len(trajectories)):
        true = None if edge_labels is None else np.asarray(edge_labels[index])
        guess = inferred[index] if true is None else aligned_edge_types(
            inferred[index:index + 1], true[None], config.edge_types, config.skip_first)[0]
        title = f"{split} system {first_system + index} ({metadata.source}, {num_nodes} nodes)"
        if spatial:
            result.append(figures.graph_figure(
                pairs, guess, shown, true=true, node_xy=raw[index, :, frames - 1, :2],
                trajectories_xy=raw[index, :, :frames, :2], title=title))
        else:
            result.append(figures.graph_figure(
                pairs, guess, shown, true=true, series=raw[index, :, :frames, series_dim],
                series_name=names[series_dim], title=title))
    return result
