"""`python -m nri_tf.experiments report` (`nri_tf.cli.report`): the results page from finished tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nri_tf.cli import experiments, paper_results, report, tables


def _table(source: str, nodes: int, table: str, rows: dict, seeds=(42, 43), data=None) -> dict:
    """A table JSON as `experiments.run_table` writes it, from key -> per-seed records; its
    data the budget's simulation (or real data) unless ``data`` names a folder."""
    simulated = source in ("springs", "charged", "kuramoto")
    budget_data = f"/cache/{source}{nodes}-10-2-2-seed42" if simulated else f"/data/{source}{nodes}"
    return {"table": table, "source": source, "nodes": nodes, "budget": "cpu", "seeds": list(seeds),
            "data": data or budget_data,
            "budget_settings": {"data": {"num_train": 10, "num_valid": 2, "num_test": 2},
                                "nri": {"epochs": 3}, "by_source": {"cmu": {"epochs": 200, "decoder": "rnn", "prior": []}}},
            "rows": tables.table_rows(table, rows, source, nodes)}


def _write_setting(root, source: str, nodes: int, accuracy: tuple, history=None, nri_flags=None):
    records = {key: [{"seed": 42 + i, "seconds": 60.0 * (i + 1), "edge_accuracy": a} for i, a in enumerate(accuracy)]
               for key in paper_results.TABLE_ROWS["table1"]}
    directory = root / f"{source}{nodes}"
    directory.mkdir()
    table = _table(source, nodes, "table1", records)
    if nri_flags is not None:
        table["nri_flags"] = nri_flags
    (directory / "table1.json").write_text(json.dumps(table))
    if history is not None:
        run = directory / "runs" / "nri_learned-seed42"
        run.mkdir(parents=True)
        (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    return directory


def test_table1_puts_settings_side_by_side_with_paper_and_nri_mpm(tmp_path):
    springs = _write_setting(tmp_path, "springs", 5, (0.9, 0.8))
    charged = _write_setting(tmp_path, "charged", 10, (0.5, 0.7), nri_flags={"encoder": "cnn", "epochs": 5})
    settings = [report.read_tables(d) for d in (springs, charged)]
    # The experiments command's NRI flags win over the budget's settings on the page.
    assert "NRI: encoder cnn, epochs 5), seeds 42, 43" in report._settings_line(settings[1])
    assert "NRI: epochs 3), seeds 42, 43" in report._settings_line(settings[0])
    # Tables of one setting made under different NRI settings: each table's own.
    springs.joinpath("table2.json").write_text(json.dumps({**_table("springs", 5, "table2", {}),
                                                           "nri_flags": {"symmetric": True}}))
    assert ("(10 / 2 / 2 systems; NRI (Table 1): epochs 3; NRI (Table 2): epochs 3, symmetric True)"
            in report._settings_line(report.read_tables(springs)))
    markdown = report.table1_markdown(settings)
    lines = markdown.splitlines()
    assert lines[0] == "| model | springs5 | charged10 |"
    assert "| NRI (learned) | 85.0 ± 5.0 (99.9) | 60.0 ± 10.0 (70.8) |" in lines
    assert "| NRI-MPM (Chen et al. 2021, published) | – | 81.6 |" in lines
    # Minutes per seed: (60 + 120) s over 2 seeds = 1.5 min.
    assert "| Corr. (path) | 1.5 | 1.5 |" in report.wall_time_markdown(settings).splitlines()


def test_report_writes_page_copies_and_curves(tmp_path):
    history = [{"epoch": e, "seconds": 30.0, "val_edge_accuracy": 0.5 + 0.1 * e} for e in (1, 2, 3)]
    springs = _write_setting(tmp_path, "springs", 5, (0.9, 0.8), history)
    output = tmp_path / "docs"
    run = springs / "runs" / "nri_learned-seed42"
    assert experiments.main(["report", str(springs), "--curve", f"springs5, directed={run}",
                             "--curve", f"springs5 / wide: sym={run}", "--output", str(output)]) == 0
    page = (output / "results.md").read_text()
    assert "| NRI (learned) | 85.0 ± 5.0 (99.9) |" in page
    assert "![accuracy over time](results/accuracy_over_time.png)" in page
    assert ("- springs5, directed (`results/curves/springs5-directed`): 3 epochs, 2 min, validation edge "
            "accuracy 80.0%") in page
    assert "Earlier recipe comparisons" not in page
    # one figure per group (the label's text before its first comma)
    assert "### springs5\n" in page and "![recipes: springs5](results/recipes-springs5.png)" in page
    assert "![recipes: springs5 / wide: sym](results/recipes-springs5-wide-sym.png)" in page
    for png in ("accuracy_over_time.png", "recipes-springs5.png", "recipes-springs5-wide-sym.png"):
        assert (output / "results" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((output / "results" / "springs5" / "table1.json").read_text())["source"] == "springs"
    curve = report.training_curve(run)
    assert [(p.epoch, p.seconds) for p in curve] == [(1, 30.0), (2, 60.0), (3, 90.0)]
    assert report.without_stalls(curve) == curve
    # The copies hold the run's history too: the page is rebuilt from them in place.
    copies = output / "results" / "springs5"
    assert (copies / "runs" / "nri_learned-seed42" / "history.jsonl").read_text() == (run / "history.jsonl").read_text()
    curve_copy = output / "results" / "curves" / "springs5-directed"
    assert (curve_copy / "history.jsonl").read_text() == (run / "history.jsonl").read_text()
    (output / "results" / "accuracy_over_time.png").unlink()
    assert experiments.main(["report", str(copies), "--curve", f"springs5, directed={curve_copy}",
                             "--output", str(output)]) == 0
    assert (output / "results" / "accuracy_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (output / "results.md").read_text()
    assert "| NRI (learned) | 85.0 ± 5.0 (99.9) |" in page and "(`results/curves/springs5-directed`)" in page
    # The figure this report did not draw (its run was not passed again) stays on the page.
    assert "## Earlier recipe comparisons" in page
    assert "![recipes-springs5-wide-sym](results/recipes-springs5-wide-sym.png)" in page
    assert "![recipes-springs5](results/recipes-springs5.png)" not in page.split("Earlier recipe")[1]


def test_table2_of_motion_capture_says_what_the_papers_plot_shows(tmp_path):
    mse = [1e-4 * (step + 1) for step in range(20)]
    records = {key: [{"seed": 42, "seconds": 1.0, "mse_per_step": mse}] for key in paper_results.TABLE_ROWS["table2"]}
    records["nri_true_graph"] = [{"seed": 42, "seconds": 0.0, "not_applicable": "no true graph in cmu data"}]
    for source, nodes, data in (("cmu", 31, None), ("springs", 5, None), ("charged", 5, "/mine/charged-big")):
        (tmp_path / source).mkdir()
        (tmp_path / source / "table2.json").write_text(json.dumps(_table(source, nodes, "table2", records, (42,), data)))
    assert experiments.main(["report", str(tmp_path / "cmu"), str(tmp_path / "springs"), str(tmp_path / "charged"),
                             "--output", str(tmp_path / "docs")]) == 0
    page = (tmp_path / "docs" / "results.md").read_text()
    motion, springs = page.split("## Table 2: cmu31")[1].split("## Table 2: springs5")
    assert "| NRI (learned) | 0.0001 | 0.001 | 0.002 | – |" in motion
    assert paper_results.PAPER_PLOTS["cmu"] in motion and "Figure 6" not in springs
    assert "| NRI (learned) | 0.0001 | 0.001 | 0.002 | 3.12e-08 / 3.29e-06 / 2.13e-05 |" in springs
    # Each Table 2 as a picture beside it: our MSE after 1 / 10 / 20 frames, the paper's dashed.
    assert "![Table 2: springs5](results/table2-springs5.png)" in springs
    assert (tmp_path / "docs" / "results" / "table2-cmu31.png").read_bytes()[:4] == b"\x89PNG"
    table = json.loads((tmp_path / "springs" / "table2.json").read_text())
    ax, = report.table2_figure(table).axes
    learned = [bars.lines[0] for bars in ax.containers if bars.get_label() == "NRI (learned)"][0]
    np.testing.assert_allclose(np.asarray(learned.get_xdata(), float), [1, 10, 20])
    np.testing.assert_allclose(np.asarray(learned.get_ydata(), float), [1e-4, 1e-3, 2e-3])
    without_static = {**table, "rows": [row for row in table["rows"] if row["key"] != "static"]}
    ax_without, = report.table2_figure(without_static).axes     # a row keeps its colour when others are gone
    assert [bars.lines[0].get_color() for bars in ax_without.containers
            if bars.get_label() == "NRI (learned)"] == [learned.get_color()]
    papers = [line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_xdata())]
    # One dashed line per measured row the paper has a number for (NRI (true graph) is not measured here).
    assert len(papers) == sum(1 for row in table["rows"] if "ours" in row and row["paper"]) == 5
    assert any(np.allclose(line.get_ydata(), [3.12e-08, 3.29e-06, 2.13e-05]) for line in papers)
    # The settings say what each setting's models were trained with: real data is given,
    # not simulated at the budget's sizes, and its source's rule wins over the budget.
    assert "**cmu31**: budget `cpu` (data cmu31; NRI: decoder rnn, epochs 200, prior the reference's)" in page
    assert "**springs5**: budget `cpu` (10 / 2 / 2 systems; NRI: epochs 3)" in page
    # A simulation given with --data is not the budget's: the page names its folder.
    assert "**charged5**: budget `cpu` (data charged-big; NRI: epochs 3)" in page


def test_report_of_a_directory_without_tables_is_a_one_line_error(tmp_path, capsys):
    assert experiments.main(["report", str(tmp_path), "--output", str(tmp_path / "docs")]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {tmp_path} holds no table1.json")
    with pytest.raises(SystemExit):
        experiments.main(["report", str(tmp_path), "--curve", "no-equals-sign"])


def test_settings_name_each_rerun_once(tmp_path):
    records = {key: [{"seed": 42, "seconds": 1.0, "edge_accuracy": 0.9}] for key in paper_results.TABLE_ROWS["table1"]}
    table = _table("springs", 5, "table1", records, (42,))
    rerun = {"rows": ["nri_learned"], "machine": "the Xeon", "seconds": 5.0}
    table["reruns"] = [rerun, {**rerun, "seconds": 0.002}]     # an older no-op re-run, listed twice
    (tmp_path / "springs").mkdir()
    (tmp_path / "springs" / "table1.json").write_text(json.dumps(table))
    assert experiments.main(["report", str(tmp_path / "springs"), "--output", str(tmp_path / "docs")]) == 0
    assert (tmp_path / "docs" / "results.md").read_text().count("re-run later: NRI (learned) (the Xeon)") == 1


def test_a_stalled_epoch_counts_at_its_runs_median():
    """A run paused for 20 minutes in epoch 2 (or starved by others) draws no flat stretch:
    that epoch counts the run's median, 30 s; an epoch under twice the median keeps its own."""
    seconds = [30.0, 1230.0, 50.0, 30.0, 20.0]
    curve = [report.CurvePoint(epoch, sum(seconds[:epoch]), {"seconds": took})
             for epoch, took in enumerate(seconds, 1)]
    assert [p.seconds for p in report.without_stalls(curve)] == [30.0, 60.0, 110.0, 140.0, 160.0]
    assert [p.record for p in report.without_stalls(curve)] == [p.record for p in curve]
    assert report.without_stalls([]) == []
