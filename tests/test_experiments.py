"""`python -m nri_tf.experiments`: both tables at the smoke budget, end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import main_here
from data_pipelines import generate
from data_pipelines.errors import UserError
from nri_tf.cli import budgets, experiment_models, experiments, paper_results, tables
from trainers import run_directory

REPO = Path(__file__).resolve().parents[1]


def run_experiments(*args, env_extra=None) -> subprocess.CompletedProcess:
    """``python -m nri_tf.experiments ARGS`` in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "nri_tf.experiments", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def smoke_tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    env = {"NRI_TF_DATA": str(root / "data")}
    output = root / "springs5-smoke"
    with pytest.MonkeyPatch.context() as patch:          # a progress line after every epoch
        patch.setattr(experiment_models, "PROGRESS_EVERY_SECONDS", 0.0)
        done = {table: main_here(experiments.main, table, "--budget", "smoke", "--output", output,
                                 env_extra=env)
                for table in ("table1", "table2")}
    return output, done, env


@pytest.mark.slow
@pytest.mark.parametrize("table", ["table1", "table2"])
def test_smoke_tables_are_complete(smoke_tables, table):
    output, done, _ = smoke_tables
    assert done[table].returncode == 0, done[table].stderr[-3000:]
    result = json.loads((output / f"{table}.json").read_text())
    rows = {row["key"]: row for row in result["rows"]}
    assert list(rows) == list(paper_results.TABLE_ROWS[table])
    markdown = (output / f"{table}.md").read_text()
    assert markdown in done[table].stdout
    for key, row in rows.items():
        assert paper_results.ROW_NAMES[key] in markdown
        ours = row.get("ours")
        if table == "table1":
            assert 0 <= ours["mean"] <= 100 and ours["values"] == [ours["mean"]]
            assert row["paper"] == paper_results.PAPER_TABLE1["springs"].get(key, (None,))[0]
        elif key == "nri_recorded_window":     # the springs rule's graph is static
            assert row["not_applicable"] == "the recorded window is the dynamic graph's; this setting's graph is static"
        else:
            assert list(ours) == ["1", "10", "20"]
            assert all(math.isfinite(s["mean"]) and s["mean"] >= 0 for s in ours.values())
            paper = paper_results.PAPER_TABLE2["springs"].get(key)
            assert row["paper"] == (dict(zip(["1", "10", "20"], paper)) if paper else None)
    assert result["budget"] == "smoke" and result["seeds"] == [42] and result["source"] == "springs"
    if table == "table1":   # every trained model reports its epochs: a run's, a baseline's
        epochs = budgets.budgets()["smoke"].nri["epochs"]
        assert re.search(rf"\n    nri_learned-seed42: epoch {epochs}/{epochs}: val_nll ", done[table].stderr)
        assert re.search(r"\n    corr_lstm-seed42: epoch 1/\d+: loss ", done[table].stderr)
    assert result["machine"].endswith(f"{len(os.sched_getaffinity(0))} CPU cores")
    if table == "table1":   # the refined row scores NRI (learned)'s model, not one of its own
        refined, learned = (json.loads((output / "models" / f"{row}-seed42.json").read_text())
                            for row in ("nri_refined", "nri_learned"))
        assert refined["run"] == learned["run"] and refined["refined"]["sweeps"] == 10
        # The refit row scores the refit run as it is: its results.json, its encoder's graphs.
        refit = json.loads((output / "models" / "nri_refit_plain-seed42.json").read_text())
        written = json.loads((output / "runs" / "nri_refit-seed42" / "results.json").read_text())
        assert refit["run"] == str(output / "runs" / "nri_refit-seed42")
        assert rows["nri_refit_plain"]["ours"]["mean"] == pytest.approx(100 * written["edge_accuracy"], abs=0.06)
        # The likeliest graphs under NRI (true graph)'s decoder (Table 2's model, trained
        # here for Table 1) cost no more than the true ones: the search covers every graph.
        likeliest = json.loads((output / "models" / "nri_true_graph_likeliest-seed42.json").read_text())
        assert likeliest["nll_likeliest_graph"] <= likeliest["nll_true_graph"] * (1 + 1e-5)
        assert (output / "weights" / "nri_true_graph-seed42" / "best.weights.h5").exists()


@pytest.mark.slow
def test_tables_share_nri_learned_and_a_rerun_reuses_every_model(smoke_tables):
    output, done, env = smoke_tables
    table1 = json.loads((output / "table1.json").read_text())
    table2 = json.loads((output / "table2.json").read_text())
    learned = [next(r for r in t["rows"] if r["key"] == "nri_learned") for t in (table1, table2)]
    assert learned[0]["seconds"] == learned[1]["seconds"]          # trained once, reused
    assert sorted(p.name for p in (output / "runs").iterdir()) == ["nri_learned-seed42", "nri_refit-seed42",
                                                                    "nri_sim-seed42"]
    refit = json.loads((output / "runs" / "nri_refit-seed42" / "refit.json").read_text())
    assert refit["source"] == str(output / "runs" / "nri_learned-seed42") and refit["epochs"] == 2
    again = main_here(experiments.main, "table2", "--budget", "smoke", "--output", output, env_extra=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((output / "table2.json").read_text())["rows"] == table2["rows"]


@pytest.mark.slow
def test_a_cached_model_made_with_other_settings_is_refused(smoke_tables, tmp_path):
    """A table reuses its model files only where they were made as this command would make
    them (a data rule of the preset changed since, or other flags)."""
    output = tmp_path / "copy"
    shutil.copytree(smoke_tables[0], output)
    env = smoke_tables[2]
    models = sorted(p.name for p in (output / "models").iterdir())
    wider = main_here(experiments.main, "table1", "--budget", "smoke", "--output", output,
                      "--encoder-hidden", "8", env_extra=env)
    assert wider.returncode == 2
    assert "nri_sim-seed42.json was made with other settings" in wider.stderr
    assert "nri.encoder_hidden: 16 -> 8" in wider.stderr
    assert sorted(p.name for p in (output / "models").iterdir()) == models       # nothing trained
    # A file from before models recorded their settings: judged by the table that lists it.
    cached = output / "models" / "nri_sim-seed42.json"
    cached.write_text(json.dumps({k: v for k, v in json.loads(cached.read_text()).items() if k != "made_with"}))
    assert main_here(experiments.main, "table1", "--budget", "smoke", "--output", output,
                     "--encoder-hidden", "8", env_extra=env).returncode == 2
    same = main_here(experiments.main, "table1", "--budget", "smoke", "--output", output, env_extra=env)
    assert same.returncode == 0, same.stderr[-2000:]
    # A damaged model file is named, with what to do.
    cached.write_text('{"model": "nri_sim", "se')
    damaged = main_here(experiments.main, "table1", "--budget", "smoke", "--output", output, env_extra=env)
    assert damaged.returncode == 2 and re.search(r"nri_sim-seed42.json is unreadable \(Unterminated string.*\): "
                                                 "delete it to make that model again with the same command$",
                                                 damaged.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_rows_trains_and_tabulates_only_those_rows(smoke_tables, tmp_path):
    _, _, env = smoke_tables
    done = main_here(experiments.main, "table1", "--budget", "smoke", "--output", tmp_path,
                     "--rows", "supervised", "corr_path", env_extra=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "table1.json").read_text())
    assert [row["key"] for row in result["rows"]] == ["corr_path", "supervised"]   # the table's order
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["corr_path-seed42.json",
                                                                       "supervised-seed42.json"]
    # Re-running a row after a fix: the model's cache is gone, the table keeps the others.
    (tmp_path / "models" / "corr_path-seed42.json").unlink()
    rerun = main_here(experiments.main, "table1", "--budget", "smoke", "--output", tmp_path,
                      "--rows", "corr_path", "corr_lstm", env_extra=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    merged = json.loads((tmp_path / "table1.json").read_text())
    assert [row["key"] for row in merged["rows"]] == ["corr_path", "corr_lstm", "supervised"]
    assert merged["rows"][2] == result["rows"][1]                       # Supervised kept as it was
    assert merged["rows"][0]["seconds"] != result["rows"][0]["seconds"]   # Corr. (path) trained again
    assert [r["rows"] for r in merged["reruns"]] == [["corr_path", "corr_lstm"]]
    # A second seed for one row: the others keep theirs, and the table says so.
    second_seed = main_here(experiments.main, "table1", "--budget", "smoke", "--output", tmp_path,
                            "--rows", "corr_path", "--seeds", "2", env_extra=env)
    assert second_seed.returncode == 0, second_seed.stderr[-2000:]
    # The wall time it prints is its own, not the merged table's first run's.
    rerun_seconds = json.loads((tmp_path / "table1.json").read_text())["reruns"][-1]["seconds"]
    assert f"wall time {rerun_seconds:.0f} s;" in second_seed.stdout
    seeded = json.loads((tmp_path / "table1.json").read_text())
    assert seeded["seeds"] == [42, 43]
    assert [row["seeds"] for row in seeded["rows"]] == [[42, 43], [42], [42]]
    assert seeded["rows"][1:] == [{**row, "seeds": [42]} for row in merged["rows"][1:]]
    markdown = (tmp_path / "table1.md").read_text()
    assert "2 seeds" in markdown and markdown.count("(seed 42)") == 2
    # A third seed whose row's other models are gone (another machine made them): added.
    for seed in (42, 43):
        (tmp_path / "models" / f"corr_path-seed{seed}.json").unlink()
    for _ in range(2):                                   # the second time every model is cached
        third = main_here(experiments.main, "table1", "--budget", "smoke", "--output", tmp_path,
                          "--rows", "corr_path", "--first-seed", "44", env_extra=env)
        assert third.returncode == 0, third.stderr[-2000:]
        added = json.loads((tmp_path / "table1.json").read_text())
        corr_path = added["rows"][0]
        assert corr_path["seeds"] == [42, 43, 44] and added["seeds"] == [42, 43, 44]
        assert corr_path["ours"]["values"][:2] == seeded["rows"][0]["ours"]["values"]
        assert corr_path["seconds"] > seeded["rows"][0]["seconds"]
        assert [r["rows"] for r in added["reruns"]][-1] == ["corr_path"] and len(added["reruns"]) == 3
    (tmp_path / "table1.json").write_text(json.dumps(seeded))
    # Another run on the same directory that writes its row while this one trains: both
    # rows stay (the table is merged with the file as it is when this run ends).
    without = {**seeded, "rows": [row for row in seeded["rows"] if row["key"] != "corr_lstm"]}
    (tmp_path / "table1.json").write_text(json.dumps(without))
    tabulate = tables.table_rows

    def another_run_finishes_meanwhile(*args):
        (tmp_path / "table1.json").write_text(json.dumps(seeded))
        return tabulate(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tables, "table_rows", another_run_finishes_meanwhile)
        concurrent = main_here(experiments.main, "table1", "--budget", "smoke", "--output", tmp_path,
                               "--rows", "supervised", env_extra=env)
    assert concurrent.returncode == 0, concurrent.stderr[-2000:]
    assert json.loads((tmp_path / "table1.json").read_text())["rows"] == seeded["rows"]


def test_a_rerun_may_differ_only_where_the_kept_rows_do_not_depend():
    budget = dataclasses.asdict(budgets.budgets()["cpu"])
    setting = {"table": "table1", "source": "springs", "nodes": 5, "budget": "cpu", "seeds": [42],
               "budget_settings": budget, "nri_flags": {}}
    older_budget = {key: value for key, value in budget.items() if key != "supervised_dropout"}
    older = {**setting, "budget_settings": {**older_budget, "help": "older words"}, "nri_flags": None,
             "rows": [{"key": row} for row in paper_results.TABLE_ROWS["table1"]]}
    tables._check_same_setting(older, setting, ["supervised"])     # only Supervised depends on it
    with pytest.raises(UserError, match="supervised_dropout None for Supervised, these rows 0.0"):
        tables._check_same_setting(older, setting, ["nri_learned"])
    wider = {**setting, "budget_settings": {**budget, "nri": {**budget["nri"], "encoder_hidden": 128}}}
    with pytest.raises(UserError, match="nri .* for NRI \\(sim.\\)"):
        tables._check_same_setting(older, wider, ["supervised", "nri_learned"])
    # A row that had no model (NRI (sim.) on Kuramoto, say) depends on no setting.
    nri_rows = ["nri_learned", "nri_refined", "nri_refit_plain", "supervised", "nri_true_graph_likeliest"]
    simless = {**older, "rows": [{"key": "nri_sim", "not_applicable": "no simulator"} if row["key"] == "nri_sim"
                                 else row for row in older["rows"]]}
    tables._check_same_setting(simless, wider, nri_rows)
    # Every row to re-run is named at once, those made alike together.
    with pytest.raises(UserError, match="for NRI \\(sim.\\)"):
        tables._check_same_setting(older, wider, nri_rows)
    with pytest.raises(UserError, match="for NRI \\(sim.\\), NRI \\(learned\\), .*Supervised, .*: re-run nri_sim "
                                        "nri_learned nri_refined nri_refit_plain supervised nri_true_graph_likeliest too"):
        tables._check_same_setting(older, wider, ["corr_path"])
    # A flag that a newer budget's rule for the source makes the default: the same models.
    flagged = {**older, "nri_flags": {"encoder": "cnn"}}
    springs_rule = budget["by_source"]["springs"]
    ruled = {**setting, "budget_settings": {**budget, "by_source": {"springs": {**springs_rule, "encoder": "cnn"}}}}
    tables._check_same_setting(flagged, ruled, ["supervised"])
    with pytest.raises(UserError, match="for NRI \\(sim.\\)"):
        tables._check_same_setting(older, ruled, ["supervised"])
    # A flag at the paper's default makes what leaving it out made (tables before a data rule).
    unruled = {**older, "budget_settings": {**budget, "by_source": {}}}
    tables._check_same_setting(unruled, {**unruled, "nri_flags": {"symmetric": False}}, ["supervised"])
    with pytest.raises(UserError, match="symmetric"):
        tables._check_same_setting(unruled, {**unruled, "nri_flags": {"symmetric": True}}, ["supervised"])
    rerun = {**setting, "rows": [{"key": "supervised", "seconds": 1.0, "seeds": [42]}], "machine": "m", "seconds": 1.0}
    merged = tables.merge_rerun({**older, "rows": [{"key": r, "seconds": 2.0} for r in
                                                   paper_results.TABLE_ROWS["table1"]]}, rerun)
    kept = len(paper_results.TABLE_ROWS["table1"]) - 1
    assert merged["budget_settings"] == budget and merged["training_seconds"] == 2.0 * kept + 1.0
    assert [r["rows"] for r in merged["reruns"]] == [["supervised"]]
    # The same command again finds every model cached: nothing changed, no re-run is listed.
    supervised = next(row for row in merged["rows"] if row["key"] == "supervised")
    again = tables.merge_rerun(merged, {**rerun, "rows": [supervised], "seconds": 0.001})
    assert again["reruns"] == merged["reruns"] and again["rows"] == merged["rows"]


def test_a_rerun_of_new_seeds_adds_them_and_one_of_a_measured_seed_replaces_the_row():
    def table2_row(seeds, *per_step):
        return {"key": "nri_learned", "seeds": seeds, "seconds": 10.0 * len(seeds),
                "ours": {step: tables.summarise(list(values)) for step, values in zip(("1", "10", "20"), per_step)}}

    table = {"table": "table2", "seeds": [42], "rows": [table2_row([42], [1.0], [2.0], [3.0])]}
    rerun = {"table": "table2", "rows": [table2_row([43], [3.0], [4.0], [5.0])], "machine": "m", "seconds": 1.0,
             "budget_settings": {}, "nri_flags": {}}
    merged = tables.merge_rerun(table, rerun)
    row = merged["rows"][0]
    assert merged["seeds"] == row["seeds"] == [42, 43] and row["seconds"] == 20.0
    assert row["ours"]["1"] == {"mean": 2.0, "stderr": 1.0, "values": [1.0, 3.0]}
    assert row["ours"]["20"]["values"] == [3.0, 5.0]
    # Seed 41 comes first: each number stays with its seed.
    earlier = tables.merge_rerun(merged, {**rerun, "rows": [table2_row([41], [7.0], [8.0], [9.0])]})
    assert earlier["rows"][0]["ours"]["10"]["values"] == [8.0, 2.0, 4.0]
    # The same run again (its models cached): the row is as it was, no re-run is listed.
    assert tables.merge_rerun(merged, rerun)["rows"] == merged["rows"]
    # Seed 43 measured anew (after a fix): the row is the re-run's.
    fixed = tables.merge_rerun(merged, {**rerun, "rows": [table2_row([43], [6.0], [6.0], [6.0])]})
    assert fixed["rows"][0]["seeds"] == [43] and fixed["rows"][0]["ours"]["1"]["values"] == [6.0]


def test_baselines_train_as_long_as_the_sources_rule_says():
    class Metadata:
        source = "cmu"
        nodes = 31

    cpu, smoke = (budgets.budgets()[name] for name in ("cpu", "smoke"))
    motion = experiment_models.Experiment("unused", Metadata(), cpu, "unused")
    assert motion.baseline == {"hidden": 64, "epochs": 200, "batch_size": 8, "lr": 1e-3}   # as the paper's NRI
    flagged = experiment_models.Experiment("unused", Metadata(), cpu, "unused", nri_overrides={"batch_size": 4})
    assert flagged.baseline["batch_size"] == 4
    assert experiment_models.Experiment("unused", Metadata(), smoke, "unused").baseline == smoke.baseline
    # CI's tables keep the smoke budget's 2 epochs: no rule brings its schedule.
    assert smoke.by_source["springs"] == {"skip_first": True, "symmetric": True}
    assert cpu.by_source["springs"]["epochs"] == 120 and "lr" in cpu.by_source["cmu"]
    assert not any(set(rule) & set(budgets.SCHEDULE_FIELDS) for rule in smoke.by_source.values())
    Metadata.source = "springs"
    assert experiment_models.Experiment("unused", Metadata(), cpu, "unused").baseline == cpu.baseline
    Metadata.nodes = 10                         # the NRI models' 120 epochs are theirs alone
    assert experiment_models.Experiment("unused", Metadata(), cpu, "unused").baseline == cpu.baseline


def test_nri_sim_leaves_out_the_flags_of_the_learned_decoders(tiny_data):
    """`experiments --inverse-square` (or the charged rule's) is meant for the mlp decoder's
    models; NRI (sim.) trains the same encoder through the simulator, which has no messages."""
    from data_pipelines.storage.reader import read_metadata

    flags = {"inverse_square": True, "change_scale": [1.0, 1.0, 1.0, 1.0], "symmetric": True}
    experiment = experiment_models.Experiment(tiny_data, read_metadata(tiny_data), budgets.budgets()["smoke"],
                                              "unused", nri_overrides=flags)
    learned, sim = experiment.nri_config(42), experiment.nri_config(42, decoder="sim", skip_first=False)
    assert (learned.decoder, learned.inverse_square, learned.change_scale) == ("mlp", True, [1.0] * 4)
    assert (sim.decoder, sim.inverse_square, sim.change_scale, sim.symmetric) == ("sim", False, [], True)
    assert sim.simulator["simulation"] == "springs" and experiment.nri_overrides == flags


def test_summary_and_markdown_of_hand_made_records():
    summary = tables.summarise([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0 and summary["stderr"] == pytest.approx(1 / math.sqrt(3))
    assert tables.summarise([0.5])["stderr"] is None
    records = {row: [{"seed": 42, "seconds": 1.0, "edge_accuracy": 0.5},
                     {"seed": 43, "seconds": 2.0, "edge_accuracy": 0.7}]
               for row in paper_results.TABLE_ROWS["table1"]}
    records["nri_sim"] = [{"seed": 42, "seconds": 0.0, "not_applicable": "no differentiable simulator for kuramoto"}]
    rows = tables.table_rows("table1", records, "kuramoto", 10)
    markdown = tables.markdown_table({"table": "table1", "rows": rows, "seeds": [42, 43], "source": "kuramoto",
                                      "nodes": 10, "budget": "cpu"})
    assert markdown.startswith("Table 1: edge accuracy (%), kuramoto with 10 nodes, budget 'cpu', 2 seeds")
    assert "| Corr. (path) | 60.0 ± 10.0 | 59.3 |" in markdown
    assert "| NRI (sim.) | no differentiable simulator for kuramoto | – |" in markdown
    # A table of some rows (--rows) names the paper's rows it lacks; rows beyond the paper it skips.
    for missing in ("supervised", "nri_refined"):
        del records[missing]
    partial = tables.markdown_table({"table": "table1", "rows": tables.table_rows("table1", records, "kuramoto", 10),
                                     "seeds": [42, 43], "source": "kuramoto", "nodes": 10, "budget": "cpu"})
    assert partial.splitlines()[-2] == "| Supervised | not measured yet (`--rows supervised`) | 97.1 |"
    assert "refined" not in partial and len(partial.splitlines()) == len(markdown.splitlines()) - 1


def test_a_row_built_on_another_times_only_its_own_work(tmp_path, monkeypatch):
    """The refit rows build on NRI (learned)'s run: asked for alone, they make that row's
    model as a record of its own (cached, timed apart), so no row's seconds hold another's;
    a model resumed here counts the epochs an earlier process trained (40 s here)."""
    clock = [0.0]

    def runner(seconds, builds_on=(), earlier=0.0):
        def run(experiment, seed):
            for row in builds_on:
                experiment.record(row, seed)
            experiment.count_earlier_seconds(earlier)
            clock[0] += seconds
            return {"run": f"runs/{seed}"}
        return run

    monkeypatch.setattr(tables.time, "perf_counter", lambda: clock[0])
    monkeypatch.setitem(experiment_models.RUNNERS, "nri_learned", runner(100.0, earlier=40.0))
    monkeypatch.setitem(experiment_models.RUNNERS, "nri_refit_plain", runner(10.0, ["nri_learned"]))
    monkeypatch.setitem(experiment_models.RUNNERS, "nri_refit", runner(1.0, ["nri_refit_plain"]))
    records = tables.ModelRecords(experiment_models.Experiment("unused", None, None, str(tmp_path)), {})
    assert records("nri_refit", 42)["seconds"] == 1.0
    cached = {path.name: json.loads(path.read_text())["seconds"] for path in (tmp_path / "models").iterdir()}
    assert cached == {"nri_learned-seed42.json": 140.0, "nri_refit_plain-seed42.json": 10.0,
                      "nri_refit-seed42.json": 1.0}
    assert records("nri_refit_plain", 42)["seconds"] == 10.0 and clock[0] == 111.0    # from its cache
    assert set(tables._with_the_rows_built_on(["nri_refit"])) == {"nri_refit", "nri_refit_plain", "nri_learned"}


def test_nri_sim_is_not_applicable_without_a_simulator():
    class Metadata:
        source = "kuramoto"

    experiment = experiment_models.Experiment("unused", Metadata(), None, "unused")
    with pytest.raises(experiment_models.NotApplicable, match="kuramoto"):
        experiment_models.run_nri_sim(experiment, 42)


def test_bad_arguments_are_one_line_errors(tmp_path):
    bad_nodes = main_here(experiments.main, "table1", "--num-nodes", "1")
    assert bad_nodes.returncode == 2 and "--num-nodes must be >= 2" in bad_nodes.stderr
    unknown = main_here(experiments.main, "table3")
    assert unknown.returncode == 2 and "invalid choice: 'table3'" in unknown.stderr
    wrong_row = main_here(experiments.main, "table1", "--rows", "nri_learned", "static")
    assert wrong_row.returncode == 2 and "--rows: static not in table1" in wrong_row.stderr
    negative_seed = main_here(experiments.main, "table1", "--first-seed", "-1")
    assert negative_seed.returncode == 2 and "--first-seed must be in [0, 4294967295] (the last seed at most 4294967295), got -1" in negative_seed.stderr
    # One true process: the exit status and the last stderr line are what a shell sees.
    missing = run_experiments("table1", "--data", tmp_path / "nothing", "--output", tmp_path / "out")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ")


SHARED_CMU = REPO.parent / "shared" / "data" / "cmu"


@pytest.mark.slow
def test_table2_on_motion_capture_with_nri_flags(tmp_path):
    """Real data: no true graph, NRI flags from the command line (the paper's mocap models)."""
    if not (SHARED_CMU / "35.asf").is_file():
        pytest.skip(f"../shared/data/cmu not found: expected {SHARED_CMU / '35.asf'}")
    data = tmp_path / "cmu35"
    built = main_here(generate.main, "--source", "cmu", "--asf", SHARED_CMU / "35.asf",
                      "--amc", SHARED_CMU / "35_01.amc", "--output", data)
    assert built.returncode == 0, built.stderr
    done = main_here(experiments.main, "table2", "--data", data, "--budget", "smoke",
                     "--output", tmp_path / "out", "--decoder", "rnn", "--edge-types", "4",
                     "--skip-first", "--batch-size", "2", "--epochs", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "table2.json").read_text())
    rows = {row["key"]: row for row in result["rows"]}
    assert rows["nri_true_graph"]["not_applicable"] == "no true graph in cmu data"
    for key in ("static", "lstm_single", "lstm_joint", "nri_full_graph", "nri_learned", "nri_recorded_window"):
        assert all(math.isfinite(s["mean"]) for s in rows[key]["ours"].values()), key
        assert rows[key]["paper"] is None
    # The reference's test of NRI (learned)'s model: the first graph is the context's either way.
    assert rows["nri_recorded_window"]["ours"]["1"]["mean"] == pytest.approx(rows["nri_learned"]["ours"]["1"]["mean"],
                                                                          rel=1e-4)
    config = json.loads((tmp_path / "out" / "runs" / "nri_learned-seed42" / "config.json").read_text())
    assert (config["decoder"], config["edge_types"], config["skip_first"], config["batch_size"]) == ("rnn", 4, True, 2)
    assert result["nri_flags"] == {"decoder": "rnn", "edge_types": 4, "skip_first": True, "batch_size": 2,
                                   "epochs": 1}
    assert "| NRI (true graph) | no true graph in cmu data | – | – | – |" in done.stdout


def test_table1_on_candidate_edges_runs_supervised_on_them(local_springs_data, tmp_path):
    """Data stored with edge lists: Supervised trains on its given candidates (NRI (learned)
    on candidates: test_train), the complete-graph rows are not applicable."""
    done = main_here(experiments.main, "table1", "--data", local_springs_data, "--budget", "smoke",
                     "--output", tmp_path / "out", "--rows", "corr_path", "nri_sim", "supervised",
                     "--batch-size", "8", "--epochs", "1", "--encoder-hidden", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "table1.json").read_text())
    rows = {row["key"]: row for row in result["rows"]}
    for key in ("corr_path", "nri_sim"):
        assert rows[key]["not_applicable"] == "complete graph only; this table reasons over given candidate edges"
    assert 0.0 < rows["supervised"]["ours"]["mean"] <= 100.0


def test_a_killed_baseline_resumes_after_its_last_completed_epoch(tiny_data, tmp_path, monkeypatch):
    """Every trained baseline checkpoints each epoch (`experiment_models._fit`): a table
    killed in a long row (motion capture's LSTM (joint): 200 epochs) resumes that model, and
    its time counts the epochs trained before (history.jsonl, as a run's). Its progress
    lines (here after every epoch) name it and its monitored metric."""
    from data_pipelines.storage.reader import read_metadata
    from nri_tf.baselines.supervised import ACCURACY_METRIC, supervised_encoder

    logged, earlier = [], []
    experiment = experiment_models.Experiment(tiny_data, read_metadata(tiny_data), budgets.budgets()["smoke"],
                                              str(tmp_path), log=logged.append,
                                              count_earlier_seconds=earlier.append)
    config = experiment.nri_config(42, encoder_hidden=8)
    steps = experiment.metadata.splits["train"] // 64

    def fit(epochs):
        model = supervised_encoder(config, 5, 1e-3, 0.0)
        experiment_models._fit(experiment, model, "supervised-seed42", epochs=epochs, batch_size=64, seed=42,
                               monitor="val_" + ACCURACY_METRIC, mode="max")
        return model

    monkeypatch.setattr(experiment_models, "PROGRESS_EVERY_SECONDS", 0.0)
    first = fit(1)                      # "killed" after epoch 1
    assert int(first.optimizer.iterations.numpy()) == steps and earlier == [0.0]
    assert len(logged) == 1 and re.fullmatch(r"    supervised-seed42: epoch 1/1: val_accuracy 0\.\d+, \d+ s an epoch",
                                             logged.pop()), logged
    epoch_1 = run_directory.read_history(str(tmp_path / "weights" / "supervised-seed42"))
    assert [record["epoch"] for record in epoch_1] == [1] and epoch_1[0]["seconds"] > 0
    resumed = fit(2)
    assert logged[0] == "resuming supervised-seed42 after epoch 1 of 2"
    assert [line.split(": ")[1] for line in logged[1:]] == ["epoch 2/2"]
    assert earlier == [0.0, epoch_1[0]["seconds"]]
    assert int(resumed.optimizer.iterations.numpy()) == 2 * steps      # one more epoch, not two
    finished = fit(2)                   # nothing left to train: the best epoch's weights
    assert int(finished.optimizer.iterations.numpy()) == 2 * steps
    for restored, best in zip(finished.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(restored, best)


def test_a_baseline_whose_loss_turns_nan_stops_with_an_error(tiny_data, tmp_path, monkeypatch):
    """Supervised picks its best epoch by validation accuracy, which stays a number when the
    weights are NaN: the training loss itself must stop the table (no table of a NaN model
    exits 0)."""
    from data_pipelines.storage.reader import read_metadata
    from nri_tf.baselines.supervised import ACCURACY_METRIC, supervised_encoder

    experiment = experiment_models.Experiment(tiny_data, read_metadata(tiny_data), budgets.budgets()["smoke"],
                                              str(tmp_path))
    split = experiment.split

    def poisoned(name, *args, **kwargs):          # NaN trajectories in training only
        data = split(name, *args, **kwargs)
        return data.map(lambda trajectories, *rest: (trajectories * np.nan, *rest)) if name == "train" else data

    monkeypatch.setattr(experiment, "split", poisoned)
    model = supervised_encoder(experiment.nri_config(42, encoder_hidden=8), 5, 1e-3, 0.0)
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        experiment_models._fit(experiment, model, "supervised-seed42", epochs=1, batch_size=64, seed=42,
                               monitor="val_" + ACCURACY_METRIC, mode="max")
    assert not os.path.exists(tmp_path / "weights" / "supervised-seed42" / run_directory.BEST_WEIGHTS_FILE)
