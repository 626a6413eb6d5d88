"""Graph rasteriser: lines land on the edge, nothing is drawn without edges, skeleton
projection, side-by-side layout and PNG round trip."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines import graph_image

WHITE = np.array([255, 255, 255], dtype=np.uint8)


def painted(image: np.ndarray) -> np.ndarray:
    """[pixels, 2] (row, column) of every non-background pixel."""
    return np.argwhere(np.any(image != WHITE, axis=-1))


def test_edge_pixels_lie_along_the_segment():
    # Two nodes on a diagonal; no node dots so that only the edge is drawn.
    node_xy = np.array([[0.0, 0.0], [3.0, 1.0]])
    image = graph_image.draw_graph(node_xy, [[1, 0]], size=(41, 101), node_radius=0, margin=0.0)
    assert image.shape == (41, 101, 3) and image.dtype == np.uint8
    pixels = painted(image)
    # Scale 100 / 3 pixels per unit (the width binds), centred vertically, y up:
    # data (0, 0) -> pixel (20 + 50 / 3, 0) = (36.7, 0); (3, 1) -> (20 - 50 / 3, 100) = (3.3, 100).
    start, end = np.array([20 + 50 / 3, 0]), np.array([20 - 50 / 3, 100])
    direction = (end - start) / np.linalg.norm(end - start)
    offsets = pixels - start
    across = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    assert across.max() <= 0.75                                  # every pixel is on the line
    assert len(pixels) == 101                                    # one per column, no gaps
    assert {tuple(p) for p in pixels} >= {(37, 0), (3, 100)}     # both ends drawn
    np.testing.assert_array_equal(image[37, 0], graph_image.PALETTE[1])


def test_no_edges_draw_nothing_but_nodes():
    layout = graph_image.circle_layout(5)
    blank = graph_image.draw_graph(layout, np.zeros((0, 2), int), edge_colors=np.zeros(0, int),
                                   node_radius=0)
    assert len(painted(blank)) == 0
    dots = graph_image.draw_graph(layout, [], node_radius=2)
    assert len(painted(dots)) > 0
    assert np.all(dots[np.any(dots != WHITE, axis=-1)] == 0)     # only black node dots


def test_edge_colours_follow_edge_types():
    layout = graph_image.circle_layout(4)
    image = graph_image.draw_graph(layout, [[0, 2], [1, 3]], edge_colors=[2, 3], node_radius=0,
                                   size=64)
    colours = {tuple(c) for c in image.reshape(-1, 3)} - {tuple(WHITE)}
    assert colours == {tuple(graph_image.PALETTE[2]), tuple(graph_image.PALETTE[3])}
    with pytest.raises(ValueError, match="outside 0..3"):
        graph_image.draw_graph(layout, [[0, 4]])
    with pytest.raises(ValueError, match="2 entries for 1 edges"):
        graph_image.draw_graph(layout, [[0, 1]], edge_colors=[1, 2])


def test_circle_layout_starts_at_the_top():
    layout = graph_image.circle_layout(4)
    np.testing.assert_allclose(layout, [[0, 1], [1, 0], [0, -1], [-1, 0]], atol=1e-12)


def test_skeleton_drawing_draws_bones_under_edges():
    positions = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 5.0]])   # [joints, 3]
    np.testing.assert_allclose(graph_image.skeleton_layout(positions, "side"), [[0, 1], [0, 2], [5, 1]])
    bones_only = graph_image.draw_skeleton(positions, [], bones=[[0, 1], [0, 2]], node_radius=0)
    colours = {tuple(c) for c in bones_only.reshape(-1, 3)} - {tuple(WHITE)}
    assert colours == {graph_image.REFERENCE_COLOUR}
    with_edge = graph_image.draw_skeleton(positions, [[2, 1]], bones=[[0, 1], [0, 2]],
                                          node_radius=0, edge_colors=[1])
    assert np.any(np.all(with_edge == graph_image.PALETTE[1], axis=-1))


def test_side_by_side_and_png_round_trip(tmp_path):
    import tensorflow as tf

    left = graph_image.draw_graph(graph_image.circle_layout(3), [[0, 1]], size=(20, 30))
    right = graph_image.draw_graph(graph_image.circle_layout(3), [], size=(16, 10))
    both = graph_image.side_by_side([left, right], gap=4)
    assert both.shape == (20, 44, 3)
    np.testing.assert_array_equal(both[:, :30], left)
    np.testing.assert_array_equal(both[:16, 34:], right)
    path = graph_image.write_png(tmp_path / "sub" / "graph.png", both)
    decoded = tf.io.decode_png(tf.io.read_file(path)).numpy()
    np.testing.assert_array_equal(decoded, both)
    with pytest.raises(ValueError, match="uint8"):
        graph_image.encode_png(both.astype(np.float32))
