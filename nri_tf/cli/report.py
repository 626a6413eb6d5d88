"""`python -m nri_tf.experiments report`: the results page, written from the experiments'
own output files, never typed by hand.

    python -m nri_tf.experiments report experiments/springs5-cpu experiments/charged5-cpu \\
        --curve "charged5, CNN encoder=runs/charged5" --output docs

Every argument is an output directory of `python -m nri_tf.experiments table1|table2`
(its table1.json and/or table2.json, and the NRI (learned) runs under runs/). Writes

  <output>/results.md                        Table 1 (one column per setting), Table 2 per
                                             setting, the wall time of every model, the
                                             paper's and NRI-MPM's numbers beside ours
  <output>/results/<setting>/table*.json|md  copies of the tables the page was built from, and
  <output>/results/<setting>/runs/*/history.jsonl  of its NRI (learned) runs: the page can be
                                             rebuilt from these copies once the runs are gone
  <output>/results/table2-<setting>.png      each Table 2 as a picture: MSE after 1, 10, 20
                                             frames per model, the paper's dashed
  <output>/results/accuracy_over_time.png    NRI (learned): validation edge accuracy against
                                             training time, one colour per setting
  <output>/results/recipes-<group>.png       the ``--curve`` runs (recipe comparisons) against
                                             epochs, one figure per group: a label's text
                                             before its first comma ("charged5, CNN" -> charged5)
  <output>/results/curves/<label>/history.jsonl  copies of the ``--curve`` runs' histories (the
                                             page names them: ``--curve LABEL=<copy>`` redraws
                                             a comparison once its run is gone)

A recipes-*.png already in <output>/results that this report does not draw (its runs and
their copies gone) stays, listed on the page as an earlier comparison.

Building blocks:
  `training_curve`      a run's history.jsonl as cumulative training seconds per epoch
  `without_stalls`      the same with paused or starved epochs counted at the run's median
  `read_tables`         the table JSON files of one experiments directory
  `table1_markdown`     Table 1 of several settings side by side
  `wall_time_markdown`  training minutes per model and seed of several settings
  `table2_figure`       one setting's Table 2 as a picture
  `write_report`        all of the above into an output directory
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import textwrap

from data_pipelines.errors import report_known_errors
from data_pipelines.files import read_json
from nri_tf import figures
from nri_tf.config import NRIConfig
from nri_tf.cli.paper_results import NRI_MPM_TABLE1, PAPER_PLOTS, ROW_NAMES, TABLE_ROWS
from nri_tf.cli.tables import format_summary, markdown_table, nri_setting, row_seeds
from nri_tf.cli.train import default_data_name
from trainers.run_directory import HISTORY_FILE, read_history

NRI_FIELDS = {field.name: field for field in dataclasses.fields(NRIConfig)}

TABLE_FILES = ("table1.json", "table1.md", "table2.json", "table2.md")
FIGURES_DIR = "results"
# An epoch over this many times its run's median is a stall (`without_stalls`).
STALL_FACTOR = 2.0


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One epoch of a run: cumulative seconds of training (validation included) so far."""
    epoch: int
    seconds: float
    record: dict


def training_curve(run_dir: str) -> list:
    """[CurvePoint] of every epoch in ``run_dir``'s history.jsonl, in order.

    Raises:
      FileNotFoundError: naming the run directory when it has no history yet.
    """
    if not os.path.exists(os.path.join(run_dir, HISTORY_FILE)):
        raise FileNotFoundError(f"{run_dir} has no {HISTORY_FILE}: not a started training run")
    elapsed, curve = 0.0, []
    for record in read_history(run_dir):
        elapsed += record["seconds"]
        curve.append(CurvePoint(record["epoch"], elapsed, record))
    return curve


def without_stalls(curve: list) -> list:
    """``curve`` (a `training_curve`) with every epoch that took over `STALL_FACTOR` times
    the run's median epoch counted at that median: an epoch the run spent paused, or starved
    by other runs on the machine, would draw a flat stretch that is no training."""
    if not curve:
        return curve
    typical = statistics.median(point.record["seconds"] for point in curve)
    elapsed, paced = 0.0, []
    for point in curve:
        took = point.record["seconds"]
        elapsed += typical if took > STALL_FACTOR * typical else took
        paced.append(dataclasses.replace(point, seconds=elapsed))
    return paced


@dataclasses.dataclass(frozen=True)
class Setting:
    """The tables of one experiments directory.

    tables: "table1" / "table2" -> the JSON `nri_tf.cli.tables.run_table` wrote.
    """
    directory: str
    tables: dict

    @property
    def first(self) -> dict:
        return next(iter(self.tables.values()))

    @property
    def source(self) -> str:
        return self.first["source"]

    @property
    def nodes(self) -> int:
        return self.first["nodes"]

    @property
    def name(self) -> str:
        """e.g. "springs5"."""
        return f"{self.source}{self.nodes}"

    def learned_runs(self) -> list:
        """Run directories of the NRI (learned) model, one per seed that has started."""
        table = next((t for t in self.tables.values() if _row(t, "nri_learned")), self.first)
        row = _row(table, "nri_learned") or {}
        runs = [os.path.join(self.directory, "runs", f"nri_learned-seed{seed}")
                for seed in row_seeds(table, row)]
        return [run for run in runs if os.path.exists(os.path.join(run, HISTORY_FILE))]


def read_tables(directory: str) -> Setting:
    """The table1.json / table2.json of an experiments output directory.

    Raises:
      FileNotFoundError: when it holds neither (naming the command that writes them).
    """
    tables = {}
    for table in TABLE_ROWS:
        path = os.path.join(directory, f"{table}.json")
        if os.path.exists(path):
            tables[table] = read_json(path)
    if not tables:
        raise FileNotFoundError(f"{directory} holds no table1.json or table2.json; write them with "
                                "`python -m nri_tf.experiments table1|table2 --output DIR`")
    return Setting(directory, tables)


def _row(table: dict, key: str) -> dict | None:
    return next((row for row in table["rows"] if row["key"] == key), None)


def _accuracy_cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    if "not_applicable" in row:
        return "n/a"
    ours = format_summary(row["ours"], ".1f")
    return ours + ("" if row["paper"] is None else f" ({row['paper']:.1f})")


def _published_row(name: str, numbers: dict, settings: list) -> str:
    cells = []
    for setting in settings:
        pair = numbers.get(setting.source)
        cells.append(f"{pair[(5, 10).index(setting.nodes)]:.1f}" if pair and setting.nodes in (5, 10) else "–")
    return f"| {name} | " + " | ".join(cells) + " |"


def _header(settings: list) -> list:
    return ["| model | " + " | ".join(s.name for s in settings) + " |",
            "|---|" + "---|" * len(settings)]


def table1_markdown(settings: list) -> str:
    """Table 1 of ``settings`` (those with a table1.json) as one Markdown table: ours as
    mean ± standard error over seeds with the paper's number in brackets, and NRI-MPM's
    published NRI-type row under it."""
    settings = [s for s in settings if "table1" in s.tables]
    lines = _header(settings)
    for key in TABLE_ROWS["table1"]:
        cells = [_accuracy_cell(_row(s.tables["table1"], key)) for s in settings]
        lines.append(f"| {ROW_NAMES[key]} | " + " | ".join(cells) + " |")
    lines.append(_published_row("NRI-MPM (Chen et al. 2021, published)", NRI_MPM_TABLE1, settings))
    return "\n".join(lines) + "\n"


def wall_time_markdown(settings: list) -> str:
    """Training minutes per seed of every model of every setting (both tables' rows)."""
    lines = _header(settings)
    keys = [k for table in TABLE_ROWS.values() for k in table]
    for key in dict.fromkeys(keys):
        cells = []
        for setting in settings:
            found = next(((t, r) for t in setting.tables.values() if (r := _row(t, key))), None)
            if found is None or "not_applicable" in found[1]:
                cells.append("–")
            else:
                table, row = found
                cells.append(f"{row['seconds'] / 60 / len(row_seeds(table, row)):.1f}")
        lines.append(f"| {ROW_NAMES[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _setting_value(name: str, value) -> str:
    """A setting as the page shows it; an empty list as what its flag given alone means
    ("the reference's" prior, a "measured" change scale)."""
    field = NRI_FIELDS.get(name)
    if value == [] and field is not None and "empty_short" in field.metadata:
        return field.metadata["empty_short"]
    return str(value)


def _settings_line(setting: Setting) -> str:
    table = setting.first
    budget = table["budget_settings"]
    data = budget["data"]
    # The budget's simulation is named by its sizes; other data (real, or a simulation the
    # command was given with --data) by its folder.
    budget_data = default_data_name({"simulation": table["source"], "num_nodes": table["nodes"],
                                     **data, "seed": 42})
    systems = (f"{data['num_train']} / {data['num_valid']} / {data['num_test']} systems"
               if os.path.basename(table["data"]) == budget_data else f"data {os.path.basename(table['data'])}")
    return (f"- **{setting.name}**: budget `{table['budget']}` ({systems}; {_nri_settings(setting)}"
            + (f"; Supervised dropout {budget['supervised_dropout']}" if "supervised_dropout" in budget else "")
            + f"), seeds {', '.join(map(str, table['seeds']))}; machine: {table.get('machine', 'not recorded')}"
            + "".join(dict.fromkeys(f"; re-run later: {', '.join(ROW_NAMES[row] for row in rerun['rows'])} "
                                    f"({rerun['machine']})" for rerun in table.get("reruns", []))))


def _nri_settings(setting: Setting) -> str:
    """"NRI: k v, ..." of the setting's tables; each table's own where they differ (one table
    re-run under a newer rule, the other not yet)."""
    described = {name: ", ".join(f"{k} {_setting_value(k, v)}" for k, v in sorted(nri_setting(table).items()))
                 for name, table in setting.tables.items()}
    if len(set(described.values())) == 1:
        return "NRI: " + next(iter(described.values()))
    return "; ".join(f"NRI (Table {name.removeprefix('table')}): {text}" for name, text in described.items())


def accuracy_over_time_figure(curves: dict, paper: dict | None = None, title: str = "",
                              by_epoch: bool = False):
    """Validation edge accuracy (%) against training minutes (or epochs).

    Args:
      curves: label -> list of runs, each a `training_curve` list; the runs of one label
        share a colour (one line per seed).
      paper: label -> the paper's accuracy (%), drawn as a dashed line in that colour.
      by_epoch: epochs on the x axis (runs that shared the machine with different loads).
    """
    figure = figures.new_figure()
    ax = figure.add_subplot()
    for index, (label, runs) in enumerate(curves.items()):
        colour = figures.edge_colour(index + 1)
        for run_index, curve in enumerate(runs):
            ax.plot([p.epoch if by_epoch else p.seconds / 60 for p in curve],
                    [100 * p.record["val_edge_accuracy"] for p in curve],
                    color=colour, alpha=1.0 if run_index == 0 else 0.5,
                    label=label if run_index == 0 else None)
        if paper and paper.get(label) is not None:
            ax.axhline(paper[label], color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("epoch" if by_epoch else "training time (minutes, validation included; stalls at the median)")
    ax.set_ylabel("validation edge accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def table2_figure(table: dict, title: str = ""):
    """A Table 2 (``table``, its JSON) as a picture: each measured row's MSE after 1, 10 and
    20 frames (mean, standard error bars), the paper's numbers dashed in the row's colour;
    a row has the same colour in every setting's figure."""
    ours, errors, paper, colours = {}, {}, {}, {}
    for row in (row for row in table["rows"] if "ours" in row):
        label = textwrap.fill(row["model"], 40)
        colours[label] = figures.edge_colour(TABLE_ROWS["table2"].index(row["key"]) + 1)   # the same in every setting
        ours[label] = {int(step): summary["mean"] for step, summary in row["ours"].items()}
        errors[label] = {int(step): summary["stderr"] or 0.0 for step, summary in row["ours"].items()}  # 1 seed: None
        if row.get("paper"):
            paper[label] = {int(step): value for step, value in row["paper"].items()}
    return figures.horizon_figure(ours, title, errors=errors, reference=paper, reference_label="the paper's",
                                  legend_beside=True, colours=colours)


def _has_accuracy(curve: list) -> bool:
    return bool(curve) and "val_edge_accuracy" in curve[0].record


def _copy_results(setting: Setting, copy_dir: str) -> None:
    """Copies a setting's table files and its NRI (learned) histories into ``copy_dir`` in
    the experiments directory's layout, so that the page can be rebuilt from the copies
    alone (`report docs/results/<setting> ...`) once the runs are gone."""
    files = [name for name in TABLE_FILES if os.path.exists(os.path.join(setting.directory, name))]
    files += [os.path.join("runs", os.path.basename(run), HISTORY_FILE) for run in setting.learned_runs()]
    for name in files:
        _copy_file(os.path.join(setting.directory, name), os.path.join(copy_dir, name))


def _copy_file(source: str, target: str) -> None:
    """Copies ``source`` to ``target`` (making its folder) unless they are the same file:
    a report rebuilt from its own copies leaves them as they are."""
    if os.path.exists(target) and os.path.samefile(source, target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)


def _copy_curve(label: str, run: str, figures_dir: str) -> str:
    """Copies the ``--curve`` run's history to ``figures_dir``/curves/<label>/ (unless
    ``run`` is that copy); returns the copy's directory."""
    copy = os.path.join(figures_dir, "curves", _file_name(label))
    if not os.path.exists(os.path.join(run, HISTORY_FILE)):
        raise FileNotFoundError(f"{run} has no {HISTORY_FILE}: not a started training run")
    _copy_file(os.path.join(run, HISTORY_FILE), os.path.join(copy, HISTORY_FILE))
    return copy


def _file_name(text: str) -> str:
    """``text`` as a file name: letters, digits, '-' and '.' kept, anything else '-'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "runs"


def write_report(directories: list, output: str, extra_curves: dict | None = None) -> str:
    """Writes results.md, the copied tables and the figures into ``output``; returns the
    page's path.

    Args:
      directories: experiments output directories (`read_tables`).
      extra_curves: label -> run directory, drawn in recipes-<group>.png (recipe comparisons).
    """
    settings = [read_tables(d) for d in directories]
    figures_dir = os.path.join(output, FIGURES_DIR)
    os.makedirs(figures_dir, exist_ok=True)
    for setting in settings:
        _copy_results(setting, os.path.join(figures_dir, setting.name))

    lines = ["# Results", "",
             "Written by `python -m nri_tf.experiments report " + " ".join(directories)
             + "` from the files the experiments commands wrote; nothing on this page is typed by hand.",
             "Ours: mean ± standard error over seeds (a single seed has no error); the paper's number in brackets.",
             "", "## Settings", ""]
    lines += [_settings_line(s) for s in settings]
    if any("table1" in s.tables for s in settings):
        lines += ["", "## Table 1: edge accuracy (%) on the test systems", "", table1_markdown(settings)]
    for setting in settings:
        if "table2" in setting.tables:
            table = setting.tables["table2"]
            lines += ["", f"## Table 2: {setting.name}", "",
                      markdown_table(table, "MSE of the predicted frames (normalised units)")]
            if setting.source in PAPER_PLOTS:
                lines += [PAPER_PLOTS[setting.source]]
            path = figures.save_figure(table2_figure(table, f"Table 2: {setting.name}"),
                                       os.path.join(figures_dir, f"table2-{_file_name(setting.name)}.png"))
            lines += ["", f"![Table 2: {setting.name}]({os.path.relpath(path, output)})"]
    lines += ["", "## Training time per model (minutes per seed)", "", wall_time_markdown(settings)]

    curves = {s.name: [without_stalls(training_curve(run)) for run in s.learned_runs()] for s in settings}
    curves = {name: [c for c in runs if _has_accuracy(c)] for name, runs in curves.items()}
    curves = {name: runs for name, runs in curves.items() if runs}
    if curves:
        paper = {s.name: _row(s.tables["table1"], "nri_learned")["paper"] for s in settings
                 if "table1" in s.tables and _row(s.tables["table1"], "nri_learned")}
        path = figures.save_figure(accuracy_over_time_figure(curves, paper, "NRI (learned)"),
                                   os.path.join(figures_dir, "accuracy_over_time.png"))
        lines += ["", "## Accuracy over training time", "",
                  "NRI (learned), one line per seed; dashed: the paper's test accuracy. The runs "
                  "shared the machine with others and stood paused at times: an epoch that took over "
                  f"{STALL_FACTOR:g} times its run's median is drawn at that median (`without_stalls`), "
                  "so the minutes are those of a run with steady company, not alone.", "",
                  f"![accuracy over time]({os.path.relpath(path, output)})"]
    drawn = set()
    if extra_curves:
        lines += ["", "## Recipe comparisons", "",
                  "Validation edge accuracy against epochs (the runs shared the machine with different "
                  "loads, so their minutes compare poorly); each run's history is copied beside the "
                  "figure (the path given), from which `--curve LABEL=PATH` redraws it."]
        groups = {}
        for label, run in extra_curves.items():
            groups.setdefault(label.split(",")[0].strip(), {})[label] = _copy_curve(label, run, figures_dir)
        for group, runs in groups.items():
            curves = {label: [training_curve(run)] for label, run in runs.items()}
            path = figures.save_figure(accuracy_over_time_figure(curves, title=f"recipes: {group}", by_epoch=True),
                                       os.path.join(figures_dir, f"recipes-{_file_name(group)}.png"))
            drawn.add(os.path.basename(path))
            lines += ["", f"### {group}", ""]
            for label, run in runs.items():
                last = curves[label][0][-1]
                lines.append(f"- {label} (`{os.path.relpath(run, output)}`): {last.epoch} epochs, "
                             f"{last.seconds / 60:.0f} min, validation edge accuracy "
                             f"{100 * last.record['val_edge_accuracy']:.1f}%")
            lines += ["", f"![recipes: {group}]({os.path.relpath(path, output)})"]
    kept = sorted(name for name in os.listdir(figures_dir)
                  if name.startswith("recipes-") and name.endswith(".png") and name not in drawn)
    if kept:
        lines += ["", "## Earlier recipe comparisons", "",
                  "Figures of an earlier report whose runs this one did not have (their numbers are in "
                  "the git history of this page)."]
        lines += [f"\n![{name[:-4]}]({FIGURES_DIR}/{name})" for name in kept]

    page = os.path.join(output, "results.md")
    with open(page, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return page


def _label_and_run(text: str) -> tuple:
    label, separator, run = text.rpartition("=")
    if not separator or not label or not run:
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_DIR, got {text!r}")
    return label, run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nri_tf.experiments report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="output directories of `python -m nri_tf.experiments table1|table2`")
    parser.add_argument("--curve", type=_label_and_run, action="append", default=[], metavar="LABEL=RUN_DIR",
                        help="also draw this training run's validation accuracy in a recipe comparison "
                             "(repeatable; the label's text before its first comma names the figure, "
                             "e.g. \"charged5, CNN encoder=runs/x\" goes into recipes-charged5.png)")
    parser.add_argument("--output", default="docs", help="where results.md and results/ go (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def write() -> int:
        print(f"wrote {write_report(args.directories, args.output, dict(args.curve))}")
        return 0

    return report_known_errors(write, "run the same command again")
