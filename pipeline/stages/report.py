"""report stage: all metrics in one table, one comparison table per paper, a plot and a summary.

Reads the per-method jsons results/<method>/<metric>.json of ``study.methods`` x ``evaluate.metrics``
(and probe.json, the encoder_probe stage's, of methods with an encoder) and writes, under ``--results``:

- metrics.parquet and metrics.csv: one row per method and seed (pipeline/results_table.py). Column
  ``<metric>`` is the metric's value, ``<metric>.<field>`` its other measurements and its protocol
  (name, backbone or net, input size, sample counts).
- comparisons/<paper>.md and .csv for every paper under ``comparisons:`` (pipeline/claims.py; with the
  ``real`` run of held-out real images as the floor row when it is in ``study.methods``): the settings
  in which its method and baseline runs differ, mean +- std over seeds (sample std) of the columns the
  paper's claims name, and per claim its difference, 95% interval, power and verdict: the
  pre-registered primary claims of the whole study share one family-wise error rate (Holm), the
  others are descriptive. The paper's own numbers are quoted, labelled as the paper's, only for
  columns whose dataset and feature space (backbone or net, where the metric has one) match this run.
- plots/metrics.png: a bar chart per headline column (values, claimed columns, feature spaces; no
  diagnostics) that differs between methods (error bars: std over seeds); plots/<paper>.png: the
  comparison on one screen (pipeline/figures.py: sample grids side by side, every seed's value,
  means with 95% intervals, and the difference each verdict rests on); plots/curves_<run>.png: each
  trained run's training log, one line per seed; with ``--data``, plots/nearest_<run>.png: eight
  samples of each trained run's first seed, each above its five nearest training images in pixels
  (and their mirrors, for a run with ``hflip``; pipeline/nearest.py), the check that a generator does
  not copy its data. The figures read the seeds the results hold for each run (``run_seeds``), the
  seeds the tables score, whatever ``train.seeds`` says.
- summary.txt: the lines printed at the end: method means and every claim's difference, interval
  and verdict.
- verdicts.rst: the primary claims' verdicts, the first screen of Snakemake's HTML report (the
  Snakefile's ``report:``).
- metrics.json: what DVC reads as the study's metrics (``dvc metrics show / diff``, ``dvc exp show``):
  per run, the mean over seeds of each metric's value, of the columns claims name and of each feature space's FD.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd

from pipeline import catalogue, config, figures, machine, pairs, verdicts
from pipeline.claims import comparison, decide, difference_text, feature_spaces, page
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.io import all_or_nothing, atomic_path, load_json_object, load_npy, save_json, unreadable
from pipeline.nearest import nearest_grids
from pipeline.results_table import fmt, load_results, metrics_table, protocol_name, run_seeds, seed_values


def plotted_columns(df: pd.DataFrame, measured: list[str]) -> list[str]:
    """The measured columns whose method means differ (not, e.g., the classifier's accuracy)."""
    by_method = df.groupby("method", sort=False)
    cols = [c for c in measured if df[c].notna().any() and by_method[c].mean().round(12).nunique() > 1]
    return cols or [c for c in measured if df[c].notna().any()][:1]


def headline_columns(df: pd.DataFrame, params: dict) -> list[str]:
    """Each metric's value, the columns that claims name (e.g. lpips.per_condition, ndb.jsd,
    probe.random_init) and each feature space's FD: the headline columns, without diagnostics."""
    claimed = [c for spec in params["comparisons"].values() for claim in spec["claims"]
               for c in (claim["metric"], claim.get("against")) if c]
    spaces = [f"fd_spaces.{s}" for s in feature_spaces(df)]
    return [c for c in dict.fromkeys([*params["evaluate"]["metrics"], "probe", *claimed, *spaces]) if c in df]


def dvc_metrics(df: pd.DataFrame, params: dict) -> dict[str, dict[str, float]]:
    """Run -> headline column -> mean over seeds: a compact table for DVC."""
    means = df.groupby("method", sort=False)[headline_columns(df, params)].mean()
    return {run: {c: round(float(v), 6) for c, v in row.items() if pd.notna(v)} for run, row in means.iterrows()}


def report(params: dict, results: Path, data: Path | None = None) -> list[str]:
    """Write every output (all of them, or none: a failure keeps the previous set); return the summary lines.
    With ``data`` (the data stage's folder), also the nearest-training-images figures."""
    with all_or_nothing():
        return _report(params, results, data)


def _report(params: dict, results: Path, data: Path | None) -> list[str]:
    df, measured = metrics_table(load_results(params, results))
    for suffix, write in ((".parquet", lambda t: df.to_parquet(t, index=False)),
                          (".csv", lambda t: df.to_csv(t, index=False))):
        with atomic_path(results / f"metrics{suffix}") as tmp:
            write(tmp)
    headline = headline_columns(df, params)  # values and claimed columns, not diagnostics
    figures.bars_figure(df, plotted_columns(df, headline), lambda c: protocol_name(df, c),
                        results / "plots" / "metrics.png")
    means = df.groupby("method", sort=False)[[c for c in measured if "." not in c]].mean()
    means.columns = [protocol_name(df, c) for c in means.columns]
    save_json(results / "metrics.json", dvc_metrics(df, params))
    summary = [f"report: {len(df)} rows ({df['method'].nunique()} methods) -> {results}/metrics.parquet",
               means.to_string(float_format=lambda x: f"{x:.4g}")]
    tables, unfair = {}, {}
    for name, spec in params["comparisons"].items():
        tables[name], unfair[name] = comparison(name, spec, df, params)
    n_primary = decide(tables, unfair)
    for name, spec in params["comparisons"].items():
        table = tables[name]
        with atomic_path(results / "comparisons" / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(results / "comparisons" / f"{name}.md") as tmp:
            tmp.write_text(page(name, spec, df, params, table, n_primary, results))
        summary += [summary_line(name, spec, df, r) for r in table.itertuples()]
        comparison_plot(name, spec, df, table, results)
    for run in catalogue.trained_runs(params):
        logs = {s: load_log(results / run / f"seed{s}" / "train_log.csv") for s in run_seeds(df, run)
                if (results / run / f"seed{s}" / "train_log.csv").exists()}
        figures.curves_figure(run, logs, results / "plots" / f"curves_{run}.png")
    if data is not None:
        targets = {run: results / "plots" / f"nearest_{run}.png" for run in catalogue.trained_runs(params)}
        nearest_grids({target: load_npy(results / run / f"seed{run_seeds(df, run)[0]}" / "samples.npy")
                       for run, target in targets.items()}, load_npy(data / "images.npy", mmap=True),
                      mirrored={target for run, target in targets.items() if params["methods"][run]["hflip"]})
    trained_seeds = {run: run_seeds(df, run) for run in catalogue.trained_runs(params)}
    summary.append(f"{provenance(params)}; {trained_on(params, results, trained_seeds)}")
    with atomic_path(results / "summary.txt") as tmp:
        tmp.write_text("\n".join(summary) + "\n")
    with atomic_path(results / "verdicts.rst") as tmp:
        tmp.write_text(verdicts_page(tables, n_primary, df, summary[-1]))
    return summary


def load_log(path: Path) -> pd.DataFrame:
    """A training log (pipeline/trainer.py): a CSV with a step column."""
    try:
        log = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise unreadable(path, err, "CSV") from None
    if "step" not in log:
        raise PipelineError(f"report: {path}: no step column, not a training log; rerun `snakemake -f {path}`")
    return log


def verdicts_page(tables: dict[str, pd.DataFrame], n_primary: int, df: pd.DataFrame, provenance_line: str) -> str:
    """reStructuredText for the report's first screen: the primary claims' verdicts and the provenance.
    Short on purpose: Snakemake centres its landing page vertically, so a taller one loses its top."""
    rows = pd.concat(tables.values(), ignore_index=True)
    lines = ["**Verdicts of this study**: the pre-registered primary claims (``comparisons.<paper>.primary``). "
             f"Holm's step-down over these {n_primary} holds the chance of any false verdict to "
             f"{verdicts.ALPHA:.0%}. Difference: method minus baseline, paired over seeds where the design pairs "
             "them. Secondary claims and every number: Comparisons (each paper's claims table) and Overview "
             "(summary.txt).", "", ".. list-table::", "   :header-rows: 1", ""]
    header = ["paper", "claim", "difference [95% interval]", "detectable (80% power)", "verdict"]
    for cells in [header] + [[
            r["paper"], f"{r['method']}: {protocol_name(df, r['metric'])} {r['direction']} than "
            f"{protocol_name(df, r['baseline']) if r['baseline'] in df else r['baseline']}",
            difference_text(r),
            fmt(r["detectable"]), str(r["verdict"])] for r in rows[rows["role"] == "primary"].to_dict("records")]:
        lines += [f"   * - {cells[0]}"] + [f"     - {c}" for c in cells[1:]]
    return "\n".join([*lines, "", provenance_line, ""])


def summary_line(name: str, spec: dict, df: pd.DataFrame, r) -> str:
    """One claim: its run (when not the comparison's method), columns, role, difference with its
    interval, and verdict."""
    against = protocol_name(df, r.baseline) if r.baseline in df else r.baseline
    test = ""
    if pd.notna(r.difference):
        test = f"difference {fmt(r.difference)}" + (f" {r.design} 95% [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"
                                                    if pd.notna(r.ci_low) else "") + ": "
    run = f"{r.method} " if r.method != spec["method"] else ""
    return f"{name}: {run}{protocol_name(df, r.metric)} {r.direction} than {against} ({r.role}): {test}{r.verdict}"


def provenance(params: dict, data_meta: Path = Path("data/meta.json")) -> str:
    """One line: the commit, the hash of the configuration the numbers come from, the data's checksums."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit, dirty = "unknown", ""
    config_hash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    checksums = load_json_object(data_meta, ()).get("checksums_sha256", {}) if data_meta.exists() else {}
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise PipelineError(f"report: {data_meta}: checksums_sha256 {checksums!r} is not a mapping of file to "
                            f"checksum; rerun `snakemake -f {data_meta}`")
    data = ", ".join(f"{k} {v[:12]}" for k, v in checksums.items()) or "no checksums recorded"
    return (f"provenance: commit {commit}{' (uncommitted changes)' if dirty else ''}; configuration sha256 "
            f"{config_hash}; data {data}")


def trained_on(params: dict, results: Path, seeds: dict[str, list[int]]) -> str:
    """The kinds of machine that trained the study's runs at their ``seeds`` (samples.json's ``trained_on``,
    pipeline/machine.py), each with its count of trainings; a training resumed on another kind counts under
    both, joined by +; a run that shares another's training (catalogue.trained_as) adds none."""
    counts: Counter[str] = Counter()
    for run in catalogue.own_trainings(params, catalogue.trained_runs(params)):
        for seed in seeds[run]:
            path = results / run / f"seed{seed}" / "samples.json"
            kinds = (load_json_object(path, ()) if path.exists() else {}).get("trained_on", [machine.UNRECORDED])
            if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
                raise PipelineError(f"report: {path}: trained_on {kinds!r} is not a list of machine kinds; rerun "
                                    f"`snakemake -f {path}`")
            counts[" + ".join(kinds)] += 1
    listed = "; ".join(f"{kind} ({n} training{'s' if n != 1 else ''})" for kind, n in counts.items())
    if len(counts) <= 1:
        return f"trained on {listed or 'nothing'}"
    return (f"trained on {len(counts)} kinds of machine, so a seed is bitwise repeatable only on its own kind "
            f"(docs/results.md): {listed}")


def comparison_plot(name: str, spec: dict, df: pd.DataFrame, table: pd.DataFrame, results: Path) -> None:
    """plots/<paper>.png: sample grids of each run's first seed side by side, and one panel per claim."""
    ran = set(df["method"])
    roles = {**dict.fromkeys(pairs.claim_runs(spec), "method"), spec["baseline"]: "baseline"}
    if catalogue.REAL in ran:
        roles[catalogue.REAL] = "real"
    grids = {run: path for run in roles if (seeds := run_seeds(df, run))
             and (path := results / run / f"seed{seeds[0]}" / "samples.png").exists()}
    panels = []
    rows = [r for r in table.to_dict("records") if r["role"] != "robustness"]  # one per claim, in order
    for claim, row in zip(spec["claims"], rows):
        col, against, run = claim["metric"], claim.get("against"), claim.get("run", spec["method"])
        if against:
            values = {run: seed_values(df, run, col),
                      f"{run} {against.partition('.')[2] or against}": seed_values(df, run, against)}
            roles.setdefault(list(values)[1], "baseline")
        else:
            shown = [run, spec["baseline"], *([catalogue.REAL] if catalogue.REAL in ran else [])]
            values = {r: seed_values(df, r, col) for r in shown}
        panels.append({"column": col, "title": row["verdict"].split(" (")[0][:60], "values": values,
                       "direction": claim["direction"],
                       "difference": tuple(float(row[k]) if pd.notna(row.get(k)) else None
                                           for k in ("difference", "ci_low", "ci_high"))})
    figures.comparison_figure(roles, grids, panels, lambda c: protocol_name(df, c) if c in df else c,
                              results / "plots" / f"{name}.png")


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.report", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results root: reads <method>/<metric>.json, writes the tables there (default: %(default)s)")
    parser.add_argument("--data", type=Path, help="data stage folder: also draw each trained run's samples beside "
                        "their nearest training images (plots/nearest_<run>.png)")
    args = parser.parse_args(argv)
    print("\n".join(report(config.load(args.params), args.results, args.data)))


if __name__ == "__main__":
    run_cli(main)
