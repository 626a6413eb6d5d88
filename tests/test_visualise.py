"""`nri_tf.visualise.graph_panels`, the one drawing behind the TensorBoard graph images and
``python -m nri_tf.evaluate --image``: which picture each kind of data gets, and that the
skeleton panels hold exactly the learned edges of their type on the raw first frame.

The encoder is replaced by fixed logits so that the inferred graph is known."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines import graph_image
from data_pipelines.storage import DatasetMetadata, Normalisation
from nri_tf import visualise
from nri_tf.config import NRIConfig
from nri_tf.graph import fully_connected_edges
from nri_tf.model import NRI

NODES, FRAMES = 4, 6
EDGES = NODES * (NODES - 1)
PAIRS = np.stack(fully_connected_edges(NODES), axis=-1)


def model_inferring(types: np.ndarray, edge_types: int, skip_first: bool, dims: int = 6) -> NRI:
    """An NRI whose encoder always infers ``types`` [edges] (one-hot logits)."""
    model = NRI(NRIConfig(dims=dims, frames=FRAMES, edge_types=edge_types, skip_first=skip_first,
                          encoder_hidden=8, decoder_hidden=8))
    logits = np.eye(edge_types, dtype=np.float32)[types] * 10.0
    model.encode = lambda trajectories: np.broadcast_to(logits, (len(trajectories),) + logits.shape)
    return model


def metadata(dims: int = 6, extra=None, edge_labels="none") -> DatasetMetadata:
    span = np.arange(1, dims + 1, dtype=float)
    return DatasetMetadata(
        source="test", parameters={"edge_labels": edge_labels}, nodes=NODES, dims=dims,
        feature_names=[f"f{i}" for i in range(dims)], edge_types=1,
        frames={"train": FRAMES, "valid": FRAMES, "test": FRAMES}, splits={"train": 1, "valid": 1, "test": 1},
        normalisation=Normalisation("maxabs", [list(range(dims))], list(-span), list(span)),
        shards={}, extra=extra or {})


def systems(count: int, dims: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, NODES, FRAMES + 3, dims)).astype(np.float32)


def test_skeleton_data_get_one_panel_per_learned_edge_type_on_the_raw_first_frame():
    types = np.array([0, 1, 1, 2, 0, 0, 1, 0, 2, 0, 0, 0])           # 3 edges of type 1, 2 of type 2
    bones = [[0, 1], [1, 2], [1, 3]]
    x = systems(2)
    panels = visualise.graph_panels(model_inferring(types, 3, skip_first=True), x, None,
                                    metadata(extra={"bones": bones}))
    size = visualise.SKELETON_PANEL_SIZE
    assert panels.images.shape == (1, size, 2 * size + 4, 3) and panels.images.dtype == np.uint8
    assert "type 1, 2" in panels.description
    # Raw positions: denormalised (x + 1) * span / 2 - span with span = 1, 2, 3 for dims 0..2.
    raw = (x[0, :, 0, :3] + 1) * np.array([1.0, 2.0, 3.0]) - np.array([1.0, 2.0, 3.0])
    for k, panel in zip((1, 2), (slice(0, size), slice(size + 4, 2 * size + 4))):
        expected = graph_image.draw_skeleton(raw, PAIRS[types == k], bones=bones,
                                             edge_colors=np.full(int((types == k).sum()), k), size=size)
        np.testing.assert_array_equal(panels.images[0][:, panel], expected)
        assert np.all(panels.images[0][:, panel] == graph_image.PALETTE[k], axis=-1).any()


def test_skeleton_panels_cover_every_type_without_skip_first():
    types = np.zeros(EDGES, dtype=int)
    panels = visualise.graph_panels(model_inferring(types, 2, skip_first=False), systems(1), None,
                                    metadata(extra={"bones": [[0, 1]]}))
    size = visualise.SKELETON_PANEL_SIZE
    assert panels.images.shape == (1, size, 2 * size + 4, 3)


def test_unlabelled_data_get_the_inferred_graph_alone_per_system():
    types = np.array([1] * 6 + [0] * 6)
    panels = visualise.graph_panels(model_inferring(types, 2, skip_first=True, dims=4), systems(3, dims=4),
                                    None, metadata(dims=4))
    size = visualise.CIRCLE_PANEL_SIZE
    assert panels.images.shape == (3, size, size, 3)
    expected = graph_image.draw_graph(graph_image.circle_layout(NODES), PAIRS[:6], edge_colors=types[:6],
                                      size=size)
    np.testing.assert_array_equal(panels.images[0], expected)
    assert panels.description.startswith("inferred graph")


def test_labelled_data_get_true_and_aligned_inferred_graphs():
    labels = np.array([[1] * 6 + [0] * 6])
    # The model calls the true edges type 0 and the rest type 1: with exchangeable types
    # (no skip_first) that is the same graph, relabelled before drawing.
    panels = visualise.graph_panels(model_inferring(1 - labels[0], 2, skip_first=False, dims=4),
                                    systems(1, dims=4), labels, metadata(dims=4, edge_labels="simulated"))
    size = visualise.CIRCLE_PANEL_SIZE
    assert panels.images.shape == (1, size, 2 * size + 4, 3)
    true, inferred = panels.images[0][:, :size], panels.images[0][:, size + 4:]
    np.testing.assert_array_equal(true, inferred)
    assert panels.description == "left: true graph, right: inferred graph"


def test_bad_input_is_refused():
    model = model_inferring(np.zeros(EDGES, dtype=int), 2, skip_first=True, dims=2)
    with pytest.raises(ValueError, match="systems, nodes, frames, dims"):
        visualise.graph_panels(model, np.zeros((NODES, FRAMES, 2)), None, metadata(dims=2))
    with pytest.raises(ValueError, match="3-D positions"):
        visualise.graph_panels(model, np.zeros((1, NODES, FRAMES, 2), np.float32), None,
                               metadata(dims=2, extra={"bones": [[0, 1]]}))


def test_has_edge_labels_reads_the_metadata():
    from nri_tf.evaluation import has_edge_labels

    assert not has_edge_labels(metadata())
    assert has_edge_labels(metadata(edge_labels="simulated"))
    assert has_edge_labels(DatasetMetadata(**{**metadata().__dict__, "parameters": {}}))
