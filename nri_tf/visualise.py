"""Pictures of the graphs a model infers: one drawing used by TensorBoard and by the CLI.

`trainers.callbacks.GraphImages` logs them every epoch and ``python -m nri_tf.evaluate
--image PATH`` writes one as a PNG; both call `graph_panels`, which picks the drawing from
the dataset's metadata:

- Skeleton data (``metadata.extra["bones"]``, CMU motion capture): the first frame of
  the first system in raw units (the denormalised dims 0..2, metres by default) with the
  bones in light grey and the learned edges on top, one panel per edge type, left to
  right. With ``skip_first`` type 0 is "no edge" and gets no panel.
- Any other data: the nodes on a circle, one picture per system. With true edge labels
  (simulations) the true graph is on the left and the inferred one on the right, its
  exchangeable types relabelled by the permutation that best matches the labels
  (`aligned_edge_types`); without labels (``edge_labels == "none"``) only the inferred
  graph. Edge type k is drawn in colour k of `data_pipelines.graph_image.PALETTE`; type 0
  is not drawn where it means "no edge" (simulation labels, ``skip_first``).

Building blocks:
  `GraphPanels`          the images and a one-line description of what they show
  `graph_panels`         model + systems + metadata -> `GraphPanels`
  `inferred_edge_types`  the most likely edge type of every edge
  `aligned_edge_types`   relabel inferred types to best match true labels
  `shown_edge_types`     the edge types that are drawn
"""

from __future__ import annotations

import dataclasses

import numpy as np

SKELETON_PANEL_SIZE = 160   # pixels per skeleton panel (31 CMU joints stay legible)
CIRCLE_PANEL_SIZE = 128     # pixels per circle-layout graph


@dataclasses.dataclass
class GraphPanels:
    """images: [pictures, height, width, 3] uint8; description: what they show (one line)."""
    images: np.ndarray
    description: str


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


def aligned_edge_types(inferred: np.ndarray, labels: np.ndarray, edge_types: int,
                       skip_first: bool) -> np.ndarray:
    """Relabels inferred edge types by the exchangeable-type permutation that best matches
    ``labels`` (the one edge accuracy is scored under).

    Args:
      inferred, labels: [systems, edges] integer edge types.
      edge_types: K of the model.
      skip_first: type 0 is "no edge" and keeps its label.
    Returns:
      [systems, edges] the inferred types, relabelled.
    """
    from nri_tf.metrics import type_permutations

    permutations = type_permutations(edge_types, skip_first)  # [P, K]: inferred k -> label
    hits = [(permutation[inferred] == labels).sum() for permutation in permutations]
    return permutations[int(np.argmax(hits))][inferred]


def shown_edge_types(edge_types: int, skip_first: bool) -> list:
    """The edge types drawn as edges: all K, or 1..K-1 when type 0 is "no edge"."""
    return list(range(1 if skip_first else 0, edge_types))


def graph_panels(model, trajectories, labels, metadata) -> GraphPanels:
    """Draws the graph ``model`` infers for ``trajectories`` (see the module docstring).

    Args:
      model: an `nri_tf.model.NRI`.
      trajectories: [systems, nodes, frames, dims] normalised as the dataset's
        `data_pipelines.datasets.Normaliser` does, frames >= ``config.frames``.
      labels: [systems, edges] true edge types, or None for data without a true graph.
      metadata: the dataset's `data_pipelines.storage.DatasetMetadata` (its ``extra``
        bones pick the skeleton drawing, its normalisation gives raw positions).
    Returns:
      `GraphPanels`: skeleton data, one picture of the first system, one panel per shown
      edge type; other data, one picture per system.
    """
    from data_pipelines import graph_image
    from nri_tf.graph import fully_connected_edges

    trajectories = np.asarray(trajectories, dtype=np.float32)
    if trajectories.ndim != 4:
        raise ValueError(f"trajectories must be [systems, nodes, frames, dims], got shape {trajectories.shape}")
    config = model.nri_config
    nodes = trajectories.shape[1]
    pairs = np.stack(fully_connected_edges(nodes), axis=-1)      # [edges, 2] (receiver, sender)
    types = shown_edge_types(config.edge_types, config.skip_first)

    bones = (metadata.extra or {}).get("bones")
    if bones is not None:
        inferred = inferred_edge_types(model, trajectories[:1])[0]
        positions = _raw_positions(trajectories[0, :, 0], metadata)
        panels = [graph_image.draw_skeleton(positions, pairs[inferred == k], bones=bones,
                                            edge_colors=np.full(int(np.sum(inferred == k)), k),
                                            size=SKELETON_PANEL_SIZE)
                  for k in types]
        names = ", ".join(str(k) for k in types)
        return GraphPanels(graph_image.side_by_side(panels)[None],
                           f"first frame of the first system, bones in grey; learned edges of "
                           f"type {names}, one panel per type from left to right")

    inferred = inferred_edge_types(model, trajectories)
    layout = graph_image.circle_layout(nodes)

    def draw(edge_types: np.ndarray, first_type: int) -> np.ndarray:
        shown = edge_types >= first_type
        return graph_image.draw_graph(layout, pairs[shown], edge_colors=edge_types[shown],
                                      size=CIRCLE_PANEL_SIZE)

    if labels is None:
        images = [draw(guess, types[0]) for guess in inferred]
        return GraphPanels(np.stack(images), f"inferred graph, edge type k in colour k "
                                             f"(types {', '.join(map(str, types))} drawn)")
    # Simulation labels: type 0 is "no edge", whatever the model's skip_first.
    inferred = aligned_edge_types(inferred, np.asarray(labels), config.edge_types, config.skip_first)
    images = [graph_image.side_by_side([draw(true, 1), draw(guess, 1)])
              for true, guess in zip(np.asarray(labels), inferred)]
    return GraphPanels(np.stack(images), "left: true graph, right: inferred graph")


def _raw_positions(frame: np.ndarray, metadata) -> np.ndarray:
    """[nodes, dims] normalised features of one frame -> [nodes, 3] raw positions (dims 0..2)."""
    from data_pipelines.datasets import Normaliser

    if frame.shape[-1] < 3:
        raise ValueError(f"a skeleton drawing needs 3-D positions in dims 0..2, got {frame.shape[-1]} dims")
    return Normaliser.from_metadata(metadata).denormalise(frame)[:, :3]
