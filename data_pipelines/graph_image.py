"""Small numpy rasteriser for graph pictures: TensorBoard image summaries and PNG files.

No plotting library: images are drawn pixel by pixel (lines by a DDA walk, one pixel per
step along the longer axis, no antialiasing) and encoded with `tf.io.encode_png`.

Building blocks:

- `circle_layout(nodes) -> [nodes, 2]`: node positions on the unit circle (simulations).
- `skeleton_layout(positions, view) -> [joints, 2]`: a 2-D projection of 3-D joints.
- `draw_graph(node_xy, edges, ...) -> [H, W, 3] uint8`: nodes as dots, edges as lines,
  optionally over grey reference edges (e.g. a skeleton's bones under learned edges).
- `draw_skeleton(positions, edges, bones=...) -> [H, W, 3] uint8`: one motion-capture
  frame with its bones in grey and the given edges in colour.
- `side_by_side(images) -> [H, W_total, 3]`: images next to each other.
- `write_png(path, image)`, `encode_png(image)`: PNG output via TensorFlow.

Edges are [receiver, sender] node pairs, as produced from the receiver-major edge order
(`nri_tf.graph.fully_connected_edges`); direction is not drawn, so (i, j) and (j, i)
give the same line. Colours: an int edge colour k picks ``PALETTE[k % len(PALETTE)]``
(k = edge type; 0 is grey, the usual "no edge" type), or an RGB triple is used as given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

import numpy as np

# Colour k for edge type k: grey, then the ColorBrewer "Set1" qualitative colours.
PALETTE = np.array([
    [150, 150, 150], [228, 26, 28], [55, 126, 184], [77, 175, 74], [152, 78, 163],
    [255, 127, 0], [166, 86, 40], [247, 129, 191], [200, 200, 0],
], dtype=np.uint8)
BACKGROUND = (255, 255, 255)
NODE_COLOUR = (0, 0, 0)
REFERENCE_COLOUR = (205, 205, 205)
DEFAULT_SIZE = 128
VIEWS = {"front": (0, 1), "side": (2, 1), "top": (0, 2)}   # CMU axes: y up, walking in x-z

Size = Union[int, Sequence[int]]


def circle_layout(nodes: int) -> np.ndarray:
    """Positions of ``nodes`` nodes evenly on the unit circle, node 0 at the top, clockwise.

    Returns:
      [nodes, 2] float64 (x, y), y pointing up.
    """
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    angles = np.pi / 2 - 2 * np.pi * np.arange(nodes) / nodes
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def skeleton_layout(positions: np.ndarray, view: str = "front") -> np.ndarray:
    """Projects 3-D joint positions to 2-D drawing coordinates.

    Args:
      positions: [joints, 3] (CMU axes: y up, the subject walks in the x-z plane).
      view: "front" (x, y), "side" (z, y) or "top" (x, z).
    Returns:
      [joints, 2] float64, second coordinate pointing up in the picture.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [joints, 3], got shape {positions.shape}")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
    return positions[:, list(VIEWS[view])]


def _image_size(size: Size) -> tuple[int, int]:
    height, width = (size, size) if np.isscalar(size) else tuple(size)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"image size must be positive, got {size!r}")
    return int(height), int(width)


def to_pixels(node_xy: np.ndarray, size: Size = DEFAULT_SIZE, margin: float = 0.1) -> np.ndarray:
    """Maps drawing coordinates into the image, keeping the aspect ratio, y up.

    The nodes' bounding box is scaled uniformly to fit inside the image less ``margin``
    (a fraction of each side) and centred.

    Args:
      node_xy: [nodes, 2] (x, y) in any unit.
      size: image side or (height, width) in pixels.
      margin: blank fraction kept on every side, in [0, 0.5).
    Returns:
      [nodes, 2] int64 (row, column) pixel coordinates.
    """
    node_xy = np.asarray(node_xy, dtype=np.float64)
    if node_xy.ndim != 2 or node_xy.shape[-1] != 2:
        raise ValueError(f"node_xy must be [nodes, 2], got shape {node_xy.shape}")
    if not np.all(np.isfinite(node_xy)):
        raise ValueError("node_xy has non-finite coordinates")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    height, width = _image_size(size)
    if node_xy.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    low, high = node_xy.min(axis=0), node_xy.max(axis=0)
    span = np.maximum(high - low, 1e-12)
    usable = np.array([(width - 1) * (1 - 2 * margin), (height - 1) * (1 - 2 * margin)])
    scale = float(np.min(usable / span)) if np.any(high > low) else 0.0
    centre = (low + high) / 2
    columns = (width - 1) / 2 + (node_xy[:, 0] - centre[0]) * scale
    rows = (height - 1) / 2 - (node_xy[:, 1] - centre[1]) * scale
    return np.stack([np.rint(rows), np.rint(columns)], axis=-1).astype(np.int64)


def line_pixels(start: Sequence[int], end: Sequence[int]) -> np.ndarray:
    """Pixels of the straight line from ``start`` to ``end`` (both included).

    One pixel per step along the longer axis (a DDA walk: the same pixels as Bresenham's
    algorithm up to rounding of exact ties).

    Returns:
      [pixels, 2] int64 (row, column).
    """
    (r0, c0), (r1, c1) = start, end
    steps = int(max(abs(r1 - r0), abs(c1 - c0)))
    t = np.linspace(0.0, 1.0, steps + 1)
    rows = np.rint(r0 + (r1 - r0) * t)
    columns = np.rint(c0 + (c1 - c0) * t)
    return np.stack([rows, columns], axis=-1).astype(np.int64)


def _paint(image: np.ndarray, pixels: np.ndarray, colour, width: int = 1) -> None:
    """Sets ``pixels`` [n, 2] (grown to ``width`` x ``width`` squares) to ``colour``; clips."""
    if width > 1:
        offsets = np.arange(width) - (width - 1) // 2
        grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
        pixels = (pixels[:, None, :] + grid[None]).reshape(-1, 2)
    height, width_px = image.shape[:2]
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < height) & (pixels[:, 1] >= 0) & (pixels[:, 1] < width_px)
    pixels = pixels[inside]
    image[pixels[:, 0], pixels[:, 1]] = colour


def _disc(centre: np.ndarray, radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
    grid = grid[(grid ** 2).sum(-1) <= radius * radius + radius]
    return centre[None, :] + grid


def _edge_array(edges, nodes: int, what: str) -> np.ndarray:
    """[n, 2] int64 node pairs, checked against the node count."""
    edges = np.asarray([] if edges is None else edges, dtype=np.int64)
    if edges.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"{what} must be [n, 2] node pairs, got shape {edges.shape}")
    if edges.min() < 0 or edges.max() >= nodes:
        raise ValueError(f"{what} name nodes outside 0..{nodes - 1}")
    return edges


def _colours(edge_colors, count: int) -> np.ndarray:
    """[count, 3] uint8 from None (palette colour 1), ints (palette indices) or RGB rows."""
    if edge_colors is None:
        return np.repeat(PALETTE[1:2], count, axis=0)
    colours = np.asarray(edge_colors)
    if colours.ndim == 1:
        if colours.shape[0] != count:
            raise ValueError(f"edge_colors has {colours.shape[0]} entries for {count} edges")
        if count and not np.issubdtype(colours.dtype, np.integer):
            raise ValueError("edge_colors must be int palette indices or [edges, 3] RGB rows")
        return PALETTE[colours.astype(np.int64) % len(PALETTE)]
    if colours.shape != (count, 3):
        raise ValueError(f"edge_colors must be [{count}] palette indices or [{count}, 3] RGB, "
                         f"got shape {colours.shape}")
    return np.clip(colours, 0, 255).astype(np.uint8)


def draw_graph(node_xy: np.ndarray, edges=(), *, size: Size = DEFAULT_SIZE,
               edge_colors=None, reference_edges=(), reference_color=REFERENCE_COLOUR,
               node_color=NODE_COLOUR, background=BACKGROUND, node_radius: int = 2,
               line_width: int = 1, margin: float = 0.1) -> np.ndarray:
    """Draws a graph: reference edges (grey), then edges (colour), then nodes (dots).

    Args:
      node_xy: [nodes, 2] node positions (x, y up), e.g. `circle_layout` or
        `skeleton_layout`; scaled to fit the image with the aspect ratio kept.
      edges: [edges, 2] [receiver, sender] pairs to draw; empty draws none.
      size: image side, or (height, width), in pixels.
      edge_colors: None (palette colour 1 for all), [edges] int palette indices (e.g.
        edge types), or [edges, 3] RGB.
      reference_edges: [n, 2] pairs drawn underneath in ``reference_color``.
      node_color, background: RGB triples.
      node_radius: dot radius in pixels; 0 draws no nodes.
      line_width: edge thickness in pixels.
      margin: blank fraction kept on every side.
    Returns:
      [height, width, 3] uint8 image.
    """
    node_xy = np.asarray(node_xy, dtype=np.float64)
    height, width = _image_size(size)
    pixels = to_pixels(node_xy, (height, width), margin)
    nodes = pixels.shape[0]
    edges = _edge_array(edges, nodes, "edges")
    reference_edges = _edge_array(reference_edges, nodes, "reference_edges")
    colours = _colours(edge_colors, edges.shape[0])
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = np.asarray(background, dtype=np.uint8)
    for receiver, sender in reference_edges:
        _paint(image, line_pixels(pixels[sender], pixels[receiver]), reference_color, line_width)
    for (receiver, sender), colour in zip(edges, colours):
        _paint(image, line_pixels(pixels[sender], pixels[receiver]), colour, line_width)
    if node_radius > 0:
        for centre in pixels:
            _paint(image, _disc(centre, node_radius), node_color)
    return image


def draw_skeleton(positions: np.ndarray, edges=(), *, bones=(), view: str = "front",
                  size: Size = DEFAULT_SIZE, edge_colors=None, node_radius: int = 1,
                  line_width: int = 1, margin: float = 0.05) -> np.ndarray:
    """Draws one motion-capture frame: bones in grey, ``edges`` in colour, joints as dots.

    Args:
      positions: [joints, 3] joint positions of one frame (e.g. `mocap.joint_positions`).
      edges: [edges, 2] [receiver, sender] joint pairs, e.g. the learned edges of one type.
      bones: [bones, 2] [parent, child] joint pairs (the dataset's ``extra["bones"]``).
      view: "front", "side" or "top" (`skeleton_layout`).
      size, edge_colors, node_radius, line_width, margin: as in `draw_graph`.
    Returns:
      [height, width, 3] uint8 image.
    """
    return draw_graph(skeleton_layout(positions, view), edges, size=size, edge_colors=edge_colors,
                      reference_edges=bones, node_radius=node_radius, line_width=line_width,
                      margin=margin)


def side_by_side(images: Sequence[np.ndarray], gap: int = 4, background=BACKGROUND) -> np.ndarray:
    """Places images left to right with ``gap`` background columns between them.

    Args:
      images: [H_i, W_i, 3] uint8 images; shorter ones are padded at the bottom.
    Returns:
      [max H_i, sum W_i + gap * (n - 1), 3] uint8.
    """
    if not len(images):
        raise ValueError("side_by_side needs at least one image")
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    column = 0
    for image in images:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"images must be [height, width, 3], got shape {image.shape}")
        canvas[:image.shape[0], column:column + image.shape[1]] = image
        column += image.shape[1] + gap
    return canvas


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an [H, W, 3] (or [H, W, 1], [H, W]) uint8 image (`tf.io.encode_png`)."""
    import tensorflow as tf      # imported here: drawing itself needs only numpy

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or image.dtype != np.uint8:
        raise ValueError(f"a PNG image must be uint8 [height, width, 1|3|4], got {image.dtype} "
                         f"{image.shape}")
    return tf.io.encode_png(image).numpy()


def write_png(path: Union[str, os.PathLike], image: np.ndarray) -> str:
    """Writes ``image`` ([H, W, 3] uint8) as a PNG file, creating parent directories.

    Returns:
      The path written.
    """
    path = os.fspath(path)
    data = encode_png(image)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(data)
    return path
