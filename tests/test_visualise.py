"""`nri_tf.visualise.graph_figures` (the one drawing behind the TensorBoard graph images and
``python -m nri_tf.evaluate --image``) and the run plots of `nri_tf.figures`, checked
through the figures' elements: titles, legend entries, node numbers, which edges are drawn
in which style and colour, trajectories.

The encoder is replaced by fixed logits so that the inferred graph is known."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.contract import fully_connected_edges
from data_pipelines.normalisation import Normalisation, Normaliser
from data_pipelines.storage.metadata import DatasetMetadata
from nri_tf import figures, visualise
from nri_tf.config import NRIConfig
from nri_tf.model import NRI

NODES, FRAMES = 4, 6
EDGES = NODES * (NODES - 1)
PAIRS = np.stack(fully_connected_edges(NODES), axis=-1)
PARTICLES = ["x", "y", "vx", "vy"]


def model_inferring(types: np.ndarray, edge_types: int, skip_first: bool, dims: int = 4) -> NRI:
    """An NRI whose encoder always infers ``types`` [edges] (one-hot logits)."""
    model = NRI(NRIConfig(dims=dims, frames=FRAMES, edge_types=edge_types, skip_first=skip_first,
                          encoder_hidden=8, decoder_hidden=8))
    logits = np.eye(edge_types, dtype=np.float32)[types] * 10.0
    model.encode = lambda trajectories: np.broadcast_to(logits, (len(trajectories),) + logits.shape)
    return model


def metadata(source="springs", names=PARTICLES, extra=None, labelled=True, edge_types=2) -> DatasetMetadata:
    dims = len(names)
    span = np.arange(1, dims + 1, dtype=float)
    return DatasetMetadata(
        source=source, parameters={} if labelled else {"edge_labels": "none"}, nodes=NODES, dims=dims,
        feature_names=list(names), edge_types=edge_types,
        frames={"train": FRAMES, "valid": FRAMES, "test": FRAMES}, splits={"train": 1, "valid": 1, "test": 1},
        normalisation=Normalisation("maxabs", [list(range(dims))], list(-span), list(span)),
        shards={}, extra=extra or {})


def systems(count: int, dims: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, NODES, FRAMES + 3, dims)).astype(np.float32)


def edge_gids(ax) -> list:
    return [patch.get_gid() for patch in ax.patches if (patch.get_gid() or "").startswith("edge-")]


def legend_texts(figure) -> list:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def node_numbers(ax) -> list:
    return [text.get_text() for text in ax.texts]


def test_labelled_particles_get_titled_true_and_inferred_panels_with_errors_marked():
    labels = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0])         # 5 true edges
    inferred = labels.copy()
    inferred[2] = 1                                                   # spurious: 0 -> 3
    inferred[3] = 0                                                   # missed: 1 <- 0
    x = systems(1)
    figure, = visualise.graph_figures(model_inferring(inferred, 2, skip_first=True), x, labels[None],
                                      metadata(), first_system=7)
    true_panel, inferred_panel = figure.axes
    assert figure.get_suptitle() == "test system 7 (springs, 4 nodes)"
    assert true_panel.get_title() == "true graph (5 directed edges)"
    assert inferred_panel.get_title() == "inferred graph: 10 of 12 edges right (83%)"
    assert node_numbers(true_panel) == node_numbers(inferred_panel) == ["0", "1", "2", "3"]
    assert len(edge_gids(true_panel)) == 5 and all(g.startswith("edge-right") for g in edge_gids(true_panel))
    receiver, sender = PAIRS[2]
    assert f"edge-spurious-{receiver}-{sender}-type1" in edge_gids(inferred_panel)
    receiver, sender = PAIRS[3]
    assert f"edge-missed-{receiver}-{sender}-type1" in edge_gids(inferred_panel)
    assert sum(g.startswith("edge-right") for g in edge_gids(inferred_panel)) == 4
    assert {tuple(p.get_edgecolor()[:3]) for p in true_panel.patches} == {
        tuple(int(figures.EDGE_COLOURS[1][i:i + 2], 16) / 255 for i in (1, 3, 5))}
    assert legend_texts(figure) == ["edge type 1", "spurious or wrong type", "missed true edge", "trajectory"]
    # Trajectories in raw units under the graph, ending where the nodes are drawn.
    raw = Normaliser.from_metadata(metadata()).denormalise(x[0])
    paths = [line.get_xydata() for line in true_panel.lines]
    np.testing.assert_allclose(np.stack(paths), raw[:, :FRAMES, :2], rtol=1e-5)
    np.testing.assert_allclose(true_panel.collections[0].get_offsets(), raw[:, FRAMES - 1, :2], rtol=1e-5)


def test_exchangeable_types_are_relabelled_before_drawing():
    labels = np.array([[1] * 6 + [0] * 6])
    # The model calls the true edges type 0 and the rest type 1: the same graph without skip_first.
    figure, = visualise.graph_figures(model_inferring(1 - labels[0], 2, skip_first=False), systems(1),
                                      labels, metadata())
    assert figure.axes[1].get_title() == "inferred graph: 12 of 12 edges right (100%)"


def test_charged_particles_draw_both_types_every_pair_interacts():
    labels = np.array([[0, 1] * 6])
    figure, = visualise.graph_figures(model_inferring(labels[0], 2, skip_first=False), systems(1), labels,
                                      metadata("charged"))
    assert figure.axes[0].get_title() == "true graph (12 directed edges)"
    assert legend_texts(figure)[:2] == ["edge type 0", "edge type 1"]


def test_data_without_positions_get_a_circle_and_their_series_below():
    names = ["dphi_dt", "sin_phi", "omega"]
    labels = np.array([[1] * 6 + [0] * 6])
    x = systems(2, dims=3)
    drawn = visualise.graph_figures(model_inferring(labels[0], 2, skip_first=True, dims=3), x,
                                    np.repeat(labels, 2, axis=0), metadata("kuramoto", names))
    assert len(drawn) == 2 and drawn[1].get_suptitle().startswith("test system 1 (kuramoto")
    true_panel, inferred_panel, series = drawn[0].axes
    np.testing.assert_allclose(true_panel.collections[0].get_offsets(), figures.circle_layout(NODES), atol=1e-12)
    assert series.get_ylabel() == "sin_phi" and series.get_xlabel() == "frame"
    raw = Normaliser.from_metadata(metadata("kuramoto", names)).denormalise(x[0])
    np.testing.assert_allclose([line.get_ydata() for line in series.lines], raw[:, :FRAMES, 1], rtol=1e-5)
    assert "trajectory" not in legend_texts(drawn[0])


def test_unlabelled_data_get_the_inferred_graph_alone():
    types = np.array([1] * 5 + [0] * 7)
    figure, = visualise.graph_figures(model_inferring(types, 2, skip_first=True), systems(1), None,
                                      metadata(labelled=False), split="validation")
    assert len(figure.axes) == 1 and figure.axes[0].get_title() == "inferred graph (5 directed edges)"
    assert figure.get_suptitle() == "validation system 0 (springs, 4 nodes)"
    assert legend_texts(figure) == ["edge type 1", "trajectory"]


def test_skeleton_data_get_one_panel_per_learned_edge_type_on_the_first_frame():
    types = np.array([0, 1, 1, 2, 0, 0, 1, 0, 2, 0, 0, 0])           # 3 edges of type 1, 2 of type 2
    bones = [[0, 1], [1, 2], [1, 3]]
    names = ["x", "y", "z", "vx", "vy", "vz"]
    x = systems(2, dims=6)
    drawn = visualise.graph_figures(model_inferring(types, 3, skip_first=True, dims=6), x, None,
                                    metadata("cmu", names, extra={"bones": bones}, labelled=False))
    assert len(drawn) == 1
    figure = drawn[0]
    assert [ax.get_title() for ax in figure.axes] == ["edge type 1: 3 edges", "edge type 2: 2 edges"]
    assert "first frame" in figure.get_suptitle()
    raw = Normaliser.from_metadata(metadata("cmu", names)).denormalise(x[0, :, 0])
    for ax, edge_type in zip(figure.axes, (1, 2)):
        learned = [line for line in ax.lines if (line.get_gid() or "").startswith("edge-")]
        assert len(learned) == int((types == edge_type).sum())
        bone_lines = [line for line in ax.lines if line.get_gid() is None]
        np.testing.assert_allclose(bone_lines[0].get_xydata(), raw[[0, 1], :2], rtol=1e-5)


def test_run_plots_name_their_axes_and_curves():
    history = [{"epoch": e, "edge_accuracy": 0.5 + e / 10, "val_edge_accuracy": 0.6, "val_nll": 3.0}
               for e in (1, 2, 3)]
    accuracy = figures.history_figure(history, title="run r")
    ax, = accuracy.axes
    assert ax.get_ylabel() == "edge accuracy (%)" and ax.get_xlabel() == "epoch" and ax.get_title() == "run r"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "validation"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [60, 70, 80])
    unlabelled = figures.history_figure([{"epoch": 1, "val_nll": 3.0}])
    assert unlabelled.axes[0].get_ylabel() == "validation nll (per node)"
    horizon = figures.horizon_figure({"springs5": [1e-6, 2e-6, 4e-6]})
    ax, = horizon.axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "MSE (normalised units)"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    # Some frames only, with error bars and another source's numbers dashed in the same colour.
    table = figures.horizon_figure({"ours": {1: 1e-6, 10: 1e-5}}, errors={"ours": {1: 1e-7, 10: 2e-6}},
                                   reference={"ours": {1: 2e-6, 10: 3e-5}}, reference_label="paper")
    ax, = table.axes
    ours, theirs = ax.lines[0], ax.lines[1]
    np.testing.assert_array_equal(ours.get_xdata(), [1, 10])
    np.testing.assert_allclose(theirs.get_ydata(), [2e-6, 3e-5])
    assert theirs.get_linestyle() == "--" and theirs.get_color() == ours.get_color()
    assert list(ax.get_xticks()) == [1, 10]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours", "paper"]
    bars, = ax.containers
    np.testing.assert_allclose(bars.lines[2][0].get_segments()[1][:, 1], [1e-5 - 2e-6, 1e-5 + 2e-6])


def test_figures_render_to_pixels_and_png(tmp_path):
    figure = figures.horizon_figure({"a": [1.0, 2.0]})
    pixels = figures.figure_image(figure)
    assert pixels.shape == (400, 600, 3) and pixels.dtype == np.uint8 and (pixels < 255).any()
    path = figures.save_figure(figure, str(tmp_path / "sub" / "mse.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OSError, match="cannot write image"):
        figures.save_figure(figure, str(tmp_path / "sub" / "mse.png" / "x.png"))


def test_bad_input_is_refused():
    model = model_inferring(np.zeros(EDGES, dtype=int), 2, skip_first=True, dims=2)
    with pytest.raises(ValueError, match="systems, nodes, frames, dims"):
        visualise.graph_figures(model, np.zeros((NODES, FRAMES, 2)), None, metadata(names=["x", "y"]))
    with pytest.raises(ValueError, match="3-D positions"):
        visualise.graph_figures(model, np.zeros((1, NODES, FRAMES, 2), np.float32), None,
                                metadata(names=["x", "y"], extra={"bones": [[0, 1]]}))


def test_has_edge_labels_reads_the_metadata():
    from data_pipelines.contract import has_edge_labels

    assert not has_edge_labels(metadata(labelled=False))
    assert has_edge_labels(metadata())


def test_large_system_on_candidate_edges_is_drawn_as_a_window():
    """N = 100 on 2 candidate edges per node: only the 60 nodes nearest the centre, only the
    real candidates among them (padding slots are not edges), scored on what is drawn."""
    nodes, degree = 100, 3
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(nodes, 2)
    x = np.zeros((1, nodes, FRAMES + 3, 4), np.float32)
    x[..., :2] = (grid / 9.0 * 2 - 1)[:, None]                    # normalised positions, still
    senders = np.stack([[(i + 1) % nodes, (i + 10) % nodes, i] for i in range(nodes)])[None]
    mask = np.ones((1, nodes, degree), np.float32)
    mask[..., 2] = 0                                              # the third slot is padding
    labels = np.tile([1, 0, 0], nodes)[None]
    model = NRI(NRIConfig(dims=4, frames=FRAMES, edge_types=2, skip_first=True, encoder_hidden=8,
                          decoder_hidden=8, candidate_edges="knn"))
    logits = np.eye(2, dtype=np.float32)[np.tile([1, 1, 1], nodes)] * 10.0      # (i, i+10) spurious
    model.encode = lambda trajectories, candidates: logits[None]
    data = metadata()
    data.nodes = nodes
    figure, = visualise.graph_figures(model, x, labels, data,
                                      candidates={"senders": senders, "mask": mask})
    true_panel, inferred_panel = figure.axes
    assert figure.get_suptitle() == ("test system 0 (springs, 100 nodes): the 60 nodes around the "
                                     "centre and the edges among them")
    assert len(node_numbers(true_panel)) == 60
    drawn = edge_gids(inferred_panel)
    assert drawn and not any("-itself" in gid for gid in drawn)
    right = sum(gid.startswith("edge-right") for gid in drawn)
    spurious = sum(gid.startswith("edge-spurious") for gid in drawn)
    assert right == len(edge_gids(true_panel)) and spurious > 0
    assert inferred_panel.get_title().startswith(f"inferred graph: {right} of {right + spurious} edges right")
    np.testing.assert_array_equal(visualise.drawn_nodes(grid[:50]), np.arange(50))
