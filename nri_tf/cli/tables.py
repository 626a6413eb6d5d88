"""The experiment tables: every model for every seed (cached per model), statistics over
the seeds, and the Markdown and JSON next to the paper's numbers.

Building blocks:
  `ModelRecords`    one model and seed: from its cache file, or trained now
  `check_cached_models`   refuses cached models made with other settings
  `summarise`       mean and standard error over seeds
  `table_rows`, `markdown_table`, `format_summary`   ours next to the paper's
  `machine_description`   the CPU a table ran on (recorded in its JSON)
  `run_table`       all of it for one table; writes TABLE.md and TABLE.json
  `merge_rerun`     a table with some rows re-run (``--rows``) in place of the old ones
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time

from data_pipelines.errors import UserError
from data_pipelines.files import read_json, write_json_atomic
from nri_tf.cli.budgets import baseline_settings
from nri_tf.cli.experiment_models import BUILDS_ON, RUNNERS, Experiment, NotApplicable
from nri_tf.cli.paper_results import PAPER_ROWS, PAPER_TABLE1, PAPER_TABLE2, ROW_NAMES, TABLE2_STEPS, TABLE_ROWS
from nri_tf.config import NRIConfig
from nri_tf.presets import source_rule


class ModelRecords:
    """The test records of one table's models, by row and seed: from a model's cache file, or
    trained now (`RUNNERS`) and cached with what it was made with (`model_setting`;
    `check_cached_models` compares it). A runner that builds on another row's model
    (`BUILDS_ON`: the refined and refit rows on NRI (learned)'s run) gets that row's record
    from here too, so it is cached under its own name and a row's seconds are its own work
    only: this process's, plus the epochs that earlier processes trained of a model it
    resumed."""

    def __init__(self, experiment: Experiment, setting: dict):
        self.experiment = dataclasses.replace(experiment, row_record=self,
                                              count_earlier_seconds=self._count_earlier_seconds)
        self.setting = setting
        self._made_inside = 0.0      # seconds of the records made inside the one being made
        self._earlier = 0.0          # seconds of its models' epochs trained by earlier processes

    def _count_earlier_seconds(self, seconds: float) -> None:
        self._earlier += seconds

    def __call__(self, row: str, seed: int) -> dict:
        cache = _cache_path(self.experiment, row, seed)
        if os.path.exists(cache):
            return _read_model_file(cache)
        outer_made_inside, outer_earlier = self._made_inside, self._earlier
        self._made_inside, self._earlier = 0.0, 0.0
        started = time.perf_counter()
        try:
            metrics = RUNNERS[row](self.experiment, seed)
        except NotApplicable as reason:
            metrics = {"not_applicable": str(reason)}
        finally:
            elapsed = time.perf_counter() - started
            own = elapsed - self._made_inside + self._earlier
            self._made_inside, self._earlier = outer_made_inside + elapsed, outer_earlier
        record = {"model": row, "seed": seed, "seconds": own, **metrics,
                  "made_with": model_setting(self.setting, row)}
        write_json_atomic(cache, record)
        return record


def _cache_path(experiment: Experiment, row: str, seed: int) -> str:
    return experiment.path("models", f"{row}-seed{seed}.json")


def _read_model_file(cache: str) -> dict:
    """A finished model's record (`ModelRecords`); a damaged one is a UserError that says
    how to make the model again."""
    try:
        return read_json(cache)
    except UserError as error:
        raise UserError(f"{error}: delete it to make that model again with the same command") from None


def model_setting(setting: dict, row: str) -> dict:
    """What a model of ``row`` is made with under a table's ``setting`` (`_row_setting`, less
    the table's name: NRI (learned) serves both tables), as it reads back from JSON."""
    made_with = {key: value for key, value in _row_setting(setting, row).items() if key != "table"}
    return json.loads(json.dumps(made_with))


def check_cached_models(experiment: Experiment, setting: dict, rows: list, seeds: list) -> None:
    """UserError, before anything is trained, if a model file the table would reuse was made
    with other settings than ``setting`` gives its row: a default changed since (a data
    rule of the preset), or other flags. Files from before models recorded their settings
    are judged by the table JSON of this directory that lists them."""
    tables_here = [read_json(path) for path in (os.path.join(experiment.root, f"{name}.json") for name in TABLE_ROWS)
                   if os.path.exists(path)]
    for row in _with_the_rows_built_on(rows):
        wanted = model_setting(setting, row)
        for seed in seeds:
            cache = _cache_path(experiment, row, seed)
            if not os.path.exists(cache):
                continue
            made_with = _read_model_file(cache).get("made_with")
            if made_with is None:
                made_with = next((model_setting(table, row) for table in tables_here
                                  for entry in table["rows"]
                                  if entry["key"] == row and seed in row_seeds(table, entry)), wanted)
            changed = _differences(made_with, wanted)
            if changed:
                raise UserError(f"{cache} was made with other settings than this command gives "
                                f"{ROW_NAMES[row]} ({'; '.join(changed)}): delete it (and runs/{row}-seed{seed}/ "
                                f"where there is one) to train it again, or choose another --output")


def _with_the_rows_built_on(rows: list) -> list:
    """``rows`` and every row their models build on (`BUILDS_ON`), each once."""
    return list(dict.fromkeys(r for row in rows for r in (row, *BUILDS_ON.get(row, ()))))


def _differences(made_with: dict, wanted: dict) -> list:
    """"key: old -> new" for every setting that differs, one level into dicts (``nri``)."""
    changed = []
    for key in sorted(set(made_with) | set(wanted)):
        old, new = made_with.get(key), wanted.get(key)
        if key == "nri" and isinstance(old, dict):
            old = _without_defaults(old)                # a model file made before the above
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [f"{key}.{name}: {old.get(name)!r} -> {new.get(name)!r}"
                        for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        elif old != new:
            changed.append(f"{key}: {old!r} -> {new!r}")
    return changed


def summarise(values: list) -> dict:
    """{"mean", "stderr" (None for one value), "values"} of finite floats."""
    n = len(values)
    mean = sum(values) / n
    stderr = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)) if n > 1 else None
    return {"mean": mean, "stderr": stderr, "values": values}


def table_rows(table: str, records: dict, source: str, num_nodes: int) -> list:
    """One dict per row: the model's name, our summary over seeds and the paper's number(s).

    Args:
      records: row -> list of `ModelRecords` records (one per seed); rows without records
        (`run_table`'s ``rows``) are left out.
    """
    rows = []
    for row in (row for row in TABLE_ROWS[table] if row in records):
        runs = records[row]
        entry = {"model": ROW_NAMES[row], "key": row, "seconds": sum(r["seconds"] for r in runs),
                 "seeds": [r["seed"] for r in runs]}
        if "not_applicable" in runs[0]:
            entry["not_applicable"] = runs[0]["not_applicable"]
        elif table == "table1" and runs[0].get("edge_accuracy") is None:
            entry["not_applicable"] = "no true graph to score"
        elif table == "table1":
            entry["ours"] = summarise([100 * r["edge_accuracy"] for r in runs])
        else:
            entry["ours"] = {str(step): summarise([r["mse_per_step"][step - 1] for r in runs])
                             for step in TABLE2_STEPS if step <= len(runs[0]["mse_per_step"])}
        entry["paper"] = _paper_value(table, row, source, num_nodes)
        rows.append(entry)
    return rows


def _paper_value(table: str, row: str, source: str, num_nodes: int):
    if table == "table1":
        pair = PAPER_TABLE1.get(source, {}).get(row)
        return pair[(5, 10).index(num_nodes)] if pair and num_nodes in (5, 10) else None
    values = PAPER_TABLE2.get(source, {}).get(row)
    return dict(zip(map(str, TABLE2_STEPS), values)) if values and num_nodes == 5 else None


def row_seeds(table_json: dict, row: dict) -> list:
    """The seeds a row of a table JSON was measured with (tables written before rows kept
    their own: the table's)."""
    return row.get("seeds", table_json["seeds"])


def format_summary(summary: dict | None, number: str) -> str:
    """"mean ± stderr" of a `summarise` dict in ``number`` format ("–" for None)."""
    if summary is None:
        return "–"
    text = format(summary["mean"], number)
    return text + (f" ± {format(summary['stderr'], number)}" if summary["stderr"] is not None else "")


def markdown_table(table_json: dict, heading: str | None = None) -> str:
    """A table JSON as Markdown under ``heading`` (by default what, on which data, with how
    many seeds), ours next to the paper's numbers; a row measured with fewer seeds than the
    table says with which, and a row of the paper's that the table lacks (``--rows`` ran
    others) says that it is not measured yet."""
    table, seeds = table_json["table"], table_json["seeds"]
    measured = {row["key"]: row for row in table_json["rows"]}
    rows = [measured.get(key) or {"model": ROW_NAMES[key], "key": key,
                                  "not_applicable": f"not measured yet (`--rows {key}`)",
                                  "paper": _paper_value(table, key, table_json["source"], table_json["nodes"])}
            for key in TABLE_ROWS[table] if key in measured or key in PAPER_ROWS[table]]
    what = "edge accuracy (%)" if table == "table1" else "MSE of predicted frames (normalised units)"
    heading = heading or (f"{'Table 1' if table == 'table1' else 'Table 2'}: {what}, {table_json['source']} "
                          f"with {table_json['nodes']} nodes, budget '{table_json['budget']}', "
                          f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
    lines = [heading, ""]

    def fewer_seeds(row):
        own = row_seeds(table_json, row)
        return "" if len(own) == len(seeds) else f" (seed{'s' if len(own) > 1 else ''} {', '.join(map(str, own))})"

    if table == "table1":
        lines += ["| model | ours | paper |", "|---|---|---|"]
        for row in rows:
            ours = row.get("not_applicable") or format_summary(row.get("ours"), ".1f") + fewer_seeds(row)
            paper = "–" if row["paper"] is None else f"{row['paper']:.1f}"
            lines.append(f"| {row['model']} | {ours} | {paper} |")
    else:
        steps = [str(s) for s in TABLE2_STEPS]
        lines += ["| model | " + " | ".join(f"ours, {s} step{'s' if s != '1' else ''}" for s in steps)
                  + " | paper: " + " / ".join(steps) + " |",
                  "|---|" + "---|" * (len(steps) + 1)]
        for row in rows:
            if "not_applicable" in row:
                ours = [row["not_applicable"]] + ["–"] * (len(steps) - 1)
            else:
                ours = [format_summary(row["ours"].get(s), ".3g") for s in steps]
                ours[0] += fewer_seeds(row)
            paper = "–" if row["paper"] is None else " / ".join(f"{row['paper'][s]:.3g}" for s in steps)
            lines.append(f"| {row['model']} | " + " | ".join(ours) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the cores this process may use."""
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    return f"{model}, {len(os.sched_getaffinity(0))} CPU cores"


def run_table(table: str, experiment: Experiment, source: str, seeds: list,
              budget_name: str, rows: list | None = None) -> dict:
    """Trains (or reuses) every model of ``table`` (or only ``rows`` of it, in the table's
    order) for every seed; writes the .md and .json.

    With ``rows``, an existing table of the same setting in the output directory keeps its
    other rows (`merge_rerun`): a row re-run after a fix replaces only that row.

    Returns the table as written, with its ``markdown`` and this call's ``wall_seconds`` (a
    merged table's ``seconds`` are its first run's).
    """

    started = time.perf_counter()
    records = {}
    rows = [row for row in TABLE_ROWS[table] if rows is None or row in rows]
    num_nodes = experiment.metadata.nodes
    setting = {"table": table, "source": source, "nodes": num_nodes, "budget": budget_name,
               "budget_settings": dataclasses.asdict(experiment.budget),
               "nri_flags": dict(experiment.nri_overrides), "seeds": seeds}
    json_path = os.path.join(experiment.root, f"{table}.json")
    partial = len(rows) < len(TABLE_ROWS[table])
    if partial and os.path.exists(json_path):
        _check_same_setting(read_json(json_path), setting, rows)       # before anything is trained
    check_cached_models(experiment, setting, rows, seeds)
    model_records = ModelRecords(experiment, setting)
    for index, row in enumerate(rows, 1):
        records[row] = []
        for seed in seeds:
            experiment.log(f"[{index}/{len(rows)}] {ROW_NAMES[row]}, seed {seed}")
            record = model_records(row, seed)
            experiment.log(f"    {_describe(record)} ({record['seconds']:.0f} s)")
            records[row].append(record)
    elapsed = time.perf_counter() - started
    result = {**setting, "data": os.path.abspath(experiment.data_dir),
              "rows": table_rows(table, records, source, num_nodes),
              "machine": machine_description(), "seconds": elapsed,
              "training_seconds": sum(r["seconds"] for runs in records.values() for r in runs)}
    if partial and os.path.exists(json_path):
        # Read now, not at the start: another run on this directory (other rows, hours long)
        # may have written its rows since.
        previous = read_json(json_path)
        _check_same_setting(previous, setting, rows)
        result = merge_rerun(previous, result)
    markdown = markdown_table(result)
    write_json_atomic(json_path, result)
    with open(os.path.join(experiment.root, f"{table}.md"), "w") as handle:
        handle.write(markdown)
    return {**result, "markdown": markdown, "wall_seconds": elapsed}


_NRI_ROWS = ("nri_sim", "nri_learned", "nri_recorded_window", "nri_refined", "nri_refit_plain", "nri_refit",
             "supervised", "nri_full_graph", "nri_true_graph", "nri_true_graph_likeliest")
_LSTM_ROWS = ("corr_lstm", "lstm_single", "lstm_joint")


def nri_setting(setting: dict) -> dict:
    """The NRI-type models' settings of a table's ``setting`` (as in its JSON): the budget's,
    under the data source's rule, under the command-line flags (as `config_for_dataset`),
    less those at the paper's default (`_without_defaults`)."""
    budget = setting.get("budget_settings") or {}
    rule = source_rule(budget.get("by_source"), setting.get("source"), setting.get("nodes"))
    flags = setting.get("nri_flags") or {}                     # older tables: no flags existed
    return _without_defaults({**budget.get("nri", {}), **rule, **flags})


_NRI_DEFAULTS = {field.name: field.default for field in dataclasses.fields(NRIConfig)
                 if field.default is not dataclasses.MISSING}


def _without_defaults(values: dict) -> dict:
    """NRIConfig ``values`` less those equal to the dataclass default: a setting given as a
    flag at its default (``--no-symmetric``) and the same setting left out (a table made
    before a data rule set it) make the same models."""
    return {key: value for key, value in values.items() if _NRI_DEFAULTS.get(key, object()) != value}


def _row_setting(setting: dict, row: str) -> dict:
    """What the models of ``row`` were or will be made with, from a table's ``setting`` (as
    in its JSON): the table, data and seeds, and the settings of its kind of model after the
    data source's rule and the command-line flags. A table written before a budget part
    existed (e.g. ``supervised_dropout``) lacks it, which only the rows using it see."""
    budget = setting.get("budget_settings") or {}
    rule = source_rule(budget.get("by_source"), setting.get("source"), setting.get("nodes"))
    flags = setting.get("nri_flags") or {}                     # older tables: no flags existed
    depends = {key: setting.get(key) for key in ("table", "source", "nodes", "budget")}
    depends["data"] = budget.get("data")
    if row in _NRI_ROWS:
        depends["nri"] = nri_setting(setting)
    if row == "supervised":
        depends["supervised_dropout"] = budget.get("supervised_dropout")
    if row in _LSTM_ROWS:
        depends["baseline"] = baseline_settings(budget.get("baseline", {}), setting.get("source"), rule, flags)
    if row == "corr_lstm":
        depends["corr_lstm_epochs"] = budget.get("corr_lstm_epochs")
    if row in ("nri_refit_plain", "nri_refit"):
        depends["refit_epochs"] = budget.get("refit_epochs")
    return depends


def _check_same_setting(previous: dict, setting: dict, rows: list) -> None:
    """UserError unless every row of the table JSON ``previous`` that ``rows`` do not replace
    was made with what ``setting`` would give it (`_row_setting`); it names every such row at
    once, grouped by their first differing setting. A row without a number (not applicable:
    NRI (sim.) on Kuramoto) depends on no setting."""
    kept = (r["key"] for r in previous["rows"] if r["key"] not in rows and "not_applicable" not in r)
    differing = {}                  # (setting, old, new) -> rows made otherwise
    for row in kept:
        old, new = _row_setting(previous, row), _row_setting(setting, row)
        key = next((key for key in new if old.get(key) != new[key]), None)
        if key is not None:
            differing.setdefault((key, repr(old.get(key)), repr(new[key])), []).append(row)
    if differing:
        found = "; ".join(f"{key} {old} for {', '.join(ROW_NAMES[row] for row in made)}, these rows {new}"
                          for (key, old, new), made in differing.items())
        again = " ".join(row for made in differing.values() for row in made)
        raise UserError(f"the existing {previous.get('table')}.json of this output directory has {found}: "
                        f"re-run {again} too, keep the table's own settings, or choose another --output")


def merge_rerun(previous: dict, rerun: dict) -> dict:
    """The table ``previous`` with the rows of ``rerun`` (a table of some of its rows, of the
    same setting: `run_table` checks that with `_check_same_setting` before it trains) in
    their place; ``reruns`` lists which rows were replaced, on which machine and in how many
    seconds. Rows keep their own seeds (`row_seeds`): ``seeds`` becomes every seed of any row,
    so a second seed can be added to one row. A re-run row whose seeds the table's row does
    not have adds them to it (`_merged_row`: ``--first-seed 43`` where seed 42's models
    are gone); one that measures a seed of the row anew replaces the row."""
    earlier = {row["key"]: {**row, "seeds": row_seeds(previous, row)} for row in previous["rows"]}
    merged = [_merged_row(earlier[row["key"]], row) if row["key"] in earlier else row for row in rerun["rows"]]
    replaced = {row["key"] for row in merged}
    kept = [row for key, row in earlier.items() if key not in replaced]
    order = list(TABLE_ROWS[rerun["table"]])
    rows = sorted(kept + merged, key=lambda row: order.index(row["key"]))
    # A re-run that found every model cached changed nothing: it is no re-run.
    before = {row["key"]: _without_seeds(row) for row in previous["rows"]}
    changed = [row["key"] for row in merged if before.get(row["key"]) != _without_seeds(row)]
    reruns = previous.get("reruns", []) + ([{"rows": changed, "machine": rerun["machine"],
                                             "seconds": rerun["seconds"]}] if changed else [])
    # The kept rows do not depend on where the settings differ (`_check_same_setting`).
    newer = {key: rerun[key] for key in ("budget_settings", "nri_flags")}
    seeds = sorted({seed for row in rows for seed in row["seeds"]})
    return {**previous, **newer, "rows": rows, "reruns": reruns, "seeds": seeds,
            "training_seconds": sum(row["seconds"] for row in rows)}


def _merged_row(earlier: dict, row: dict) -> dict:
    """The table's row ``earlier`` after the re-run's ``row`` of that name: with ``row``'s seeds
    added when the two share none (each seed's number in seed order, the seconds of both);
    as it was when ``row`` repeats the numbers of some of its seeds (the command that added
    them, again: every model cached); otherwise (a seed measured anew, a row without
    numbers) ``row``."""
    if "ours" not in earlier or "ours" not in row:
        return row
    old, new = _numbers_by_seed(earlier), _numbers_by_seed(row)
    if new.items() < old.items():
        return earlier
    if old.keys() & new.keys():
        return row
    numbers = old | new
    seeds = sorted(numbers)
    by_step = [summarise([numbers[seed][index] for seed in seeds]) for index in range(len(numbers[seeds[0]]))]
    ours = by_step[0] if "values" in row["ours"] else dict(zip(row["ours"], by_step))
    return {**row, "ours": ours, "seeds": seeds, "seconds": earlier["seconds"] + row["seconds"]}


def _numbers_by_seed(row: dict) -> dict:
    """seed -> the row's numbers for it: (edge accuracy,) for Table 1, one MSE per step of
    ``row["ours"]`` for Table 2."""
    ours = row["ours"]
    summaries = [ours] if "values" in ours else list(ours.values())
    return {seed: tuple(summary["values"][index] for summary in summaries)
            for index, seed in enumerate(row["seeds"])}


def _without_seeds(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "seeds"}


def _describe(record: dict) -> str:
    if "not_applicable" in record:
        return "not applicable: " + record["not_applicable"]
    parts = []
    if record.get("edge_accuracy") is not None:
        parts.append(f"edge accuracy {100 * record['edge_accuracy']:.1f}%")
    if "mse_per_step" in record:
        mse = record["mse_per_step"]
        parts.append("mse " + " / ".join(f"{mse[s - 1]:.3g}" for s in TABLE2_STEPS if s <= len(mse)))
    return ", ".join(parts)
