"""Matplotlib figures of interaction graphs and of a run's learning curves: plain functions
of numpy arrays, rendered off-screen (a `matplotlib.figure.Figure` on the Agg canvas, no
pyplot and no display), for PNG files and TensorBoard images alike.

Building blocks:
  `graph_figure`         true and inferred graph of one system, over its trajectories
  `skeleton_figure`      learned edges per edge type on a motion-capture frame
  `new_figure`           an empty off-screen figure of a given size
  `history_figure`       edge accuracy (or validation NLL) over the epochs of a run
  `horizon_figure`       prediction MSE over the predicted frames (ours and the paper's)
  `figure_image`         a figure as an [height, width, 3] uint8 array (TensorBoard)
  `save_figure`          a figure as a PNG file

Edges are directed (receiver, sender) pairs in the receiver-major order of `nri_tf.graph`;
each is drawn as an arrow from sender to receiver, bent a little so that the two
directions of a pair stay apart. Edge type k has colour ``EDGE_COLOURS[k]`` everywhere.
On the inferred panel an edge of the right type is solid, a spurious one (or one of the
wrong type) dashed in the inferred type's colour, and a missed true edge dotted in the
true type's colour.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch
from matplotlib.ticker import MaxNLocator

# Colour of edge type k (matplotlib's tab10, grey first for the usual "no edge" type 0).
EDGE_COLOURS = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                "#e377c2", "#bcbd22", "#17becf")
NODE_COLOUR = "#222222"
BONE_COLOUR = "#c8c8c8"
TRAJECTORY_ALPHA = 0.35
DPI = 100
ARROW_BEND = 0.15           # connectionstyle arc3 radius: the two directions of a pair apart
STYLES = {"right": "-", "spurious": "--", "missed": ":"}
PANEL_INCHES = 4.2          # each graph panel
LEGEND_INCHES = 2.0         # the legend column at the right of a graph figure


def edge_colour(edge_type: int) -> str:
    return EDGE_COLOURS[edge_type % len(EDGE_COLOURS)]


def _draw_nodes(ax, node_xy: np.ndarray) -> None:
    """Numbered node markers at [nodes, 2] positions."""
    ax.scatter(node_xy[:, 0], node_xy[:, 1], s=260, c=NODE_COLOUR, zorder=3)
    for index, (x, y) in enumerate(node_xy):
        ax.text(x, y, str(index), color="white", ha="center", va="center", fontsize=9,
                fontweight="bold", zorder=4)


def _draw_edges(ax, node_xy: np.ndarray, pairs: np.ndarray, types: np.ndarray, style: str) -> None:
    """Arrows sender -> receiver for [n, 2] (receiver, sender) ``pairs`` of edge ``types`` [n]."""
    for (receiver, sender), edge_type in zip(pairs, types):
        ax.add_patch(FancyArrowPatch(
            node_xy[sender], node_xy[receiver], arrowstyle="-|>", mutation_scale=12,
            connectionstyle=f"arc3,rad={ARROW_BEND}", color=edge_colour(int(edge_type)),
            linestyle=STYLES[style], linewidth=1.6, shrinkA=9, shrinkB=9, zorder=2,
            gid=f"edge-{style}-{receiver}-{sender}-type{int(edge_type)}"))


def _frame_axes(ax, node_xy: np.ndarray, trajectories_xy: np.ndarray | None) -> None:
    points = node_xy if trajectories_xy is None else np.concatenate(
        [node_xy, trajectories_xy.reshape(-1, 2)])
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.12 * max(float(np.max(high - low)), 1e-6)
    ax.set_xlim(low[0] - pad, high[0] + pad)
    ax.set_ylim(low[1] - pad, high[1] + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_trajectories(ax, trajectories_xy: np.ndarray) -> None:
    """[nodes, frames, 2] paths in light lines, ending where the node is drawn."""
    for path in trajectories_xy:
        ax.plot(path[:, 0], path[:, 1], color=NODE_COLOUR, alpha=TRAJECTORY_ALPHA, linewidth=1, zorder=1)


def circle_layout(num_nodes: int) -> np.ndarray:
    """[nodes, 2] positions on the unit circle, node 0 at the top, clockwise."""
    angles = np.pi / 2 - 2 * np.pi * np.arange(num_nodes) / num_nodes
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def graph_figure(pairs: np.ndarray, inferred: np.ndarray, shown_types, *, true: np.ndarray | None = None,
                 node_xy: np.ndarray | None = None, trajectories_xy: np.ndarray | None = None,
                 series: np.ndarray | None = None, series_name: str = "", title: str = "") -> Figure:
    """The inferred graph of one system, next to its true graph when there is one.

    Args:
      pairs: [edges, 2] (receiver, sender) of every directed edge.
      inferred: [edges] inferred edge types (relabelled to the true ones' names, if any).
      shown_types: the edge types drawn as edges (the others mean "no edge").
      true: [edges] true edge types, or None for data without a true graph.
      node_xy: [nodes, 2] where the nodes are drawn (default: on a circle).
      trajectories_xy: [nodes, frames, 2] paths drawn under the graph (node_xy their ends).
      series: [nodes, frames] one feature over time, drawn in a row under the graph(s)
        for data without positions (e.g. Kuramoto's sin(phase)), named ``series_name``.
      title: the figure's title.
    Returns:
      A `Figure`: panel "true graph" (if ``true``), panel "inferred graph" (its title
      gives the share of edges right when ``true`` is given), a legend of the edge types
      and the edge styles.
    """
    if node_xy is None:
        num_nodes = int(series.shape[0]) if series is not None else int(pairs.max()) + 1
        node_xy = circle_layout(num_nodes)
    node_xy = np.asarray(node_xy, np.float64)
    num_nodes = len(node_xy)
    shown = set(int(k) for k in shown_types)
    panels = 1 if true is None else 2
    rows = 2 if series is not None else 1
    figure = new_figure((PANEL_INCHES * panels + LEGEND_INCHES, PANEL_INCHES + 2.4 * (rows - 1)))
    grid = figure.add_gridspec(rows, panels, height_ratios=[PANEL_INCHES, 2.4][:rows])
    axes = [figure.add_subplot(grid[0, column]) for column in range(panels)]

    drawn_types = set()
    if true is not None:
        is_true = np.isin(true, list(shown))
        _draw_edges(axes[0], node_xy, pairs[is_true], true[is_true], "right")
        drawn_types |= set(true[is_true].tolist())
        axes[0].set_title(f"true graph ({int(is_true.sum())} directed edges)")
    is_inferred = np.isin(inferred, list(shown))
    inferred_panel = axes[-1]
    if true is None:
        _draw_edges(inferred_panel, node_xy, pairs[is_inferred], inferred[is_inferred], "right")
        inferred_panel.set_title(f"inferred graph ({int(is_inferred.sum())} directed edges)")
    else:
        right = inferred == true
        spurious = is_inferred & ~right
        missed = is_true & ~right
        for mask, style in ((is_inferred & right, "right"), (spurious, "spurious")):
            _draw_edges(inferred_panel, node_xy, pairs[mask], inferred[mask], style)
        _draw_edges(inferred_panel, node_xy, pairs[missed], true[missed], "missed")
        inferred_panel.set_title(f"inferred graph: {int(right.sum())} of {len(true)} edges right "
                                 f"({100 * right.mean():.0f}%)")
    drawn_types |= set(inferred[is_inferred].tolist())
    for ax in axes:
        if trajectories_xy is not None:
            _draw_trajectories(ax, trajectories_xy)
        _draw_nodes(ax, node_xy)
        _frame_axes(ax, node_xy, trajectories_xy)

    handles = [Line2D([], [], color=edge_colour(k), label=f"edge type {k}") for k in sorted(drawn_types)]
    if true is not None:
        handles += [Line2D([], [], color="black", linestyle=STYLES["spurious"],
                           label="spurious or wrong type"),
                    Line2D([], [], color="black", linestyle=STYLES["missed"], label="missed true edge")]
    if trajectories_xy is not None:
        handles.append(Line2D([], [], color=NODE_COLOUR, alpha=TRAJECTORY_ALPHA, label="trajectory"))
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)

    if series is not None:
        ax = figure.add_subplot(grid[1, :])
        for node, values in enumerate(np.asarray(series)):
            ax.plot(values, linewidth=1, label=str(node))
        ax.set_xlabel("frame")
        ax.set_ylabel(series_name)
        ax.legend(title="node", fontsize=7, ncol=min(num_nodes, 10), loc="upper right")
    figure.suptitle(title)
    figure.subplots_adjust(right=1 - (LEGEND_INCHES - 0.1) / figure.get_figwidth(),
                           top=0.86 if rows == 1 else 0.9)
    return figure


def skeleton_figure(positions_xy: np.ndarray, bones, pairs: np.ndarray, inferred: np.ndarray,
                    shown_types, title: str = "") -> Figure:
    """Learned edges of each shown edge type on one motion-capture frame, one panel per type.

    Args:
      positions_xy: [joints, 2] the frame's joints seen from the front (x, y up).
      bones: [bones, 2] (parent, child) joints, drawn in light grey under the edges.
      pairs, inferred: [edges, 2] (receiver, sender) and [edges] their inferred types.
      shown_types: the edge types that get a panel.
    """
    shown_types = list(shown_types)
    figure = new_figure((3.2 * len(shown_types), 4.2))
    positions_xy = np.asarray(positions_xy, np.float64)
    for column, edge_type in enumerate(shown_types):
        ax = figure.add_subplot(1, len(shown_types), column + 1)
        for parent, child in bones:
            ax.plot(*positions_xy[[parent, child]].T, color=BONE_COLOUR, linewidth=3, zorder=1)
        chosen = inferred == edge_type
        for receiver, sender in pairs[chosen]:
            ax.plot(*positions_xy[[sender, receiver]].T, color=edge_colour(edge_type), linewidth=1,
                    zorder=2, gid=f"edge-{receiver}-{sender}-type{edge_type}")
        ax.scatter(positions_xy[:, 0], positions_xy[:, 1], s=8, c=NODE_COLOUR, zorder=3)
        ax.set_title(f"edge type {edge_type}: {int(chosen.sum())} edges", color=edge_colour(edge_type))
        _frame_axes(ax, positions_xy, None)
    figure.suptitle(title)
    figure.subplots_adjust(top=0.84)
    return figure


def new_figure(inches: tuple = (6, 4)) -> Figure:
    """An empty off-screen figure (Agg canvas) of ``inches`` (width, height)."""
    figure = Figure(figsize=inches, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def history_figure(history: list, title: str = "") -> Figure:
    """Edge accuracy per epoch (train and validation) from a run's history.jsonl records,
    or the validation NLL where the data has no true graph."""
    epochs = [record["epoch"] for record in history]
    figure = new_figure()
    ax = figure.add_subplot()
    if history and "val_edge_accuracy" in history[0]:
        for key, label in (("edge_accuracy", "training"), ("val_edge_accuracy", "validation")):
            ax.plot(epochs, [100 * record[key] for record in history], marker="o", markersize=3,
                    label=label)
        ax.set_ylabel("edge accuracy (%)")
    else:
        ax.plot(epochs, [record["val_nll"] for record in history], marker="o", markersize=3,
                label="validation")
        ax.set_ylabel("validation nll (per node)")
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    figure.tight_layout()
    return figure


def horizon_figure(curves: dict, title: str = "", errors: dict | None = None,
                   reference: dict | None = None, reference_label: str = "",
                   legend_beside: bool = False, colours: dict | None = None) -> Figure:
    """Prediction MSE against the predicted frame, one colour per curve.

    Args:
      curves: label -> the MSE of frames 1, 2, ... (a list), or of some frames ({frame: MSE}).
      errors: label -> {frame: standard error}, drawn as error bars.
      reference: label -> {frame: MSE} of another source (the paper's), drawn dashed with
        open markers in the label's colour; ``reference_label`` names it in the legend.
      legend_beside: a wider figure with the legend right of the axes (many curves).
      colours: label -> colour (a model keeps its colour across figures); by default the
        curves take `EDGE_COLOURS` in turn from type 1's.
    """
    figure = new_figure((10, 4.5) if legend_beside else (6, 4))
    ax = figure.add_subplot()
    drawn = set()
    for index, (label, mse) in enumerate(curves.items()):
        points = mse if isinstance(mse, dict) else dict(enumerate(mse, 1))
        frames = sorted(points)
        drawn.update(frames)
        colour = (colours or {}).get(label, edge_colour(index + 1))
        ax.errorbar(frames, [points[f] for f in frames], marker="o", markersize=3, color=colour, label=label,
                    yerr=[(errors or {}).get(label, {}).get(f, 0.0) for f in frames] if errors else None)
        if reference and reference.get(label):
            theirs = sorted(reference[label])
            ax.plot(theirs, [reference[label][f] for f in theirs], linestyle="--", marker="o", markersize=4,
                    markerfacecolor="none", color=colour, linewidth=1)
    if reference and reference_label:
        ax.plot([], [], linestyle="--", marker="o", markerfacecolor="none", color="black", linewidth=1,
                label=reference_label)
    ax.set_yscale("log")
    ax.set_xlabel("frames predicted after the encoder's frames")
    if len(drawn) <= 10:
        ax.set_xticks(sorted(drawn))          # a few horizons (a table's): tick each
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("MSE (normalised units)")
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()       # the reference's entry last
    order = sorted(range(len(labels)), key=lambda i: bool(reference_label) and labels[i] == reference_label)
    placement = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if legend_beside else {}
    ax.legend([handles[i] for i in order], [labels[i] for i in order], **placement)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def figure_image(figure: Figure) -> np.ndarray:
    """[height, width, 3] uint8 pixels of the rendered figure."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(figure: Figure, path: str) -> str:
    """Writes ``figure`` as a PNG (parent directories created); returns the path.

    Raises OSError naming the path when it cannot be written.
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        figure.savefig(path, format="png")
    except OSError as error:
        raise OSError(f"cannot write image {path}: {error.strerror or error}") from None
    return path
