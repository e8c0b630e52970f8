"""report stage: all metrics in one table, one comparison table per paper, a plot and a summary.

Reads the per-method jsons results/<method>/<metric>.json of ``study.methods`` x ``evaluate.metrics``
(and probe.json, the encoder_probe stage's, of methods with an encoder) and writes, under ``--results``:

- metrics.parquet and metrics.csv: one row per method and seed. Column ``<metric>`` is the metric's
  value, ``<metric>.<field>`` its other measurements and its protocol (name, backbone or net,
  input size, sample counts).
- comparisons/<paper>.md and .csv for every paper under ``comparisons:`` (with the ``real`` run of
  held-out real images as the floor row when it is in ``study.methods``): the settings in which its
  method and baseline runs differ (computed from params.yaml; a difference that ``differs_in`` does
  not declare marks the verdicts of the run that differs "unfair pair"), mean +- std over seeds
  (sample std) of the columns the paper's claims name, and per claim its difference, 95% interval
  (paired over seeds or Welch, as the comparison declares), power and verdict (pipeline/verdicts.py):
  the pre-registered primary claims of the whole study share one family-wise error rate (Holm),
  the others are descriptive.
  The paper's own numbers are quoted, labelled as the paper's, only for columns whose dataset and
  feature space (backbone or net, where the metric has one) match this run.
  A claim with ``against: <column>`` compares two columns of the method's own rows instead (e.g.
  its encoder's probe accuracy against the same encoder at random initialisation).
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
import math
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import catalogue, config, figures, machine, pairs, verdicts
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.io import all_or_nothing, atomic_path, is_number, load_json_object, load_npy, save_json, unreadable
from pipeline.nearest import nearest_grids

NOT_COLUMNS = {"metric", "method", "dataset", "value", "std", "n_seeds", "mean", "stdev", "per_seed"}


def load_results(params: dict, results: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for method in params["study"]["methods"]:
        for name in catalogue.results(params, method):
            path = results / method / f"{name}.json"
            if not path.exists():
                raise PipelineError(f"report: missing {path}; run `snakemake {path}`")
            out[method, name] = load_json_object(path, ())
    check_results(params, results, out)
    return out


# fields of one metric that every run's file must share: its feature space and sample counts
SHARED_PROTOCOL = ("name", "backbone", "net", "weights", "input_size", "resize", "n_real", "n_fake", "space", "whiten",
                   "n_bins", "k", "subsets", "n_subset", "splits", "calibrated", "n_train", "n_test")


def finite(v: object) -> bool:
    return is_number(v) and math.isfinite(v)


def check_results(params: dict, root: Path, results: dict[tuple[str, str], dict]) -> None:
    """Every aggregated file is of this study's dataset, holds finite numbers (None only where the
    metric does not apply, e.g. per-condition LPIPS of an unconditional run) per seed, and shares its
    metric's protocol with every other run's; PipelineError naming the file otherwise."""
    dataset, first = params["dataset"]["name"], {}
    for (method, name), r in results.items():
        path = root / method / f"{name}.json"
        rerun = f"; rerun `snakemake {path}`"
        if r.get("dataset") != dataset:
            raise PipelineError(f"report: {path} is of dataset {r.get('dataset')!r}, this study's is {dataset!r}{rerun}")
        if not finite(r.get("value")):
            raise PipelineError(f"report: {path}: value {r.get('value')!r} is not a finite number{rerun}")
        seeds = r.get("per_seed")
        if not isinstance(seeds, dict) or not seeds or not all(isinstance(v, dict) for v in seeds.values()):
            raise PipelineError(f"report: {path} has no per-seed values (per_seed: {{seed: {{field: number}}}}){rerun}")
        for seed, values in seeds.items():
            if not str(seed).isdigit():
                raise PipelineError(f"report: {path}: per_seed key {seed!r} is not a seed{rerun}")
            if bad := [f"{k}={v!r}" for k, v in values.items() if not (finite(v) or v is None and k != "value")]:
                raise PipelineError(f"report: {path}: seed {seed} has {', '.join(bad)}, not finite numbers{rerun}")
        for key in SHARED_PROTOCOL:
            if key in r:
                seen = first.setdefault((name, key), (r[key], path))
                if seen[0] != r[key]:
                    raise PipelineError(f"report: {path} has {key} {r[key]!r} but {seen[1]} has {seen[0]!r}: runs "
                                        f"scored under different settings cannot be compared{rerun} and the other")


def column(metric: str, field: str) -> str:
    return metric if field == "value" else f"{metric}.{field}"


def metrics_table(results: dict[tuple[str, str], dict]) -> tuple[pd.DataFrame, list[str]]:
    """One row per method and seed; and the measured (not protocol) columns."""
    rows: dict[tuple[str, int], dict] = {}
    measured: list[str] = []
    for (method, metric), r in results.items():
        for seed, values in r["per_seed"].items():
            row = rows.setdefault((method, int(seed)), {"method": method, "seed": int(seed), "dataset": r["dataset"]})
            for field, v in values.items():
                row[column(metric, field)] = v
                if column(metric, field) not in measured:
                    measured.append(column(metric, field))
            row.update({f"{metric}.{k}": v for k, v in r.items() if k not in NOT_COLUMNS})
    return pd.DataFrame(list(rows.values())), measured


def protocol_name(df: pd.DataFrame, col: str) -> str:
    """A column by its metric's protocol name: ``fid`` -> ``FD_efficientnet_lite0``, ``ndb.jsd`` -> ``NDB.jsd``."""
    metric, _, field = col.partition(".")
    names = df[f"{metric}.name"].dropna() if f"{metric}.name" in df else []
    name = str(names.iloc[0]) if len(names) else metric
    return f"{name}.{field}" if field else name


def header(df: pd.DataFrame, col: str) -> str:
    """A value column with the metric's name, e.g. ``fid (FD_efficientnet_lite0)``."""
    name = protocol_name(df, col)
    return col if name == col else f"{col} ({name})"


def feature_space(df: pd.DataFrame, col: str) -> str | None:
    metric = col.split(".")[0]
    for key in (f"{metric}.backbone", f"{metric}.net"):
        if key in df and df[key].notna().any():
            return str(df[key].dropna().iloc[0])
    return None


def paper_numbers(paper: dict | None, df: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, float]]:
    """The paper's numbers per column and method, for columns whose dataset and feature space match."""
    if paper is None or paper["dataset"] != df["dataset"].iloc[0]:
        return {}
    keep = [c for c in columns if c in df and feature_space(df, c) in (None, paper["backbone"])]
    return {c: {m: v[c] for m, v in paper["numbers"].items() if c in v} for c in keep}


def fmt(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def mean_std(values: np.ndarray) -> str:
    if len(values) == 0:
        return "n/a"
    if len(values) == 1:
        return f"{fmt(values[0])} (1 seed)"
    return f"{fmt(values.mean())} ± {fmt(values.std(ddof=1))}"


def difference_text(r) -> str:
    """A claim row's difference with its 95% interval and design, e.g. ``-1.6 [-3.3, 0.02] paired``."""
    interval = f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] {r['design']}" if pd.notna(r["ci_low"]) else ""
    return fmt(r["difference"]) + interval


def seed_series(df: pd.DataFrame, method: str, col: str) -> pd.Series:
    """The method's per-seed values of ``col``, indexed by seed."""
    if col not in df:
        return pd.Series(dtype=float)
    rows = df.loc[df["method"] == method]
    return rows.set_index("seed")[col].dropna().astype(float)


def seed_values(df: pd.DataFrame, method: str, col: str) -> np.ndarray:
    return seed_series(df, method, col).to_numpy(float)


def run_seeds(df: pd.DataFrame, run: str) -> list[int]:
    """The seeds the results hold for ``run``, in their order (none for a run not in them): the seeds of
    its figures, as of its tables."""
    return df.loc[df["method"] == run, "seed"].tolist()


def claims_table(name: str, spec: dict, df: pd.DataFrame, quoted: dict, label: str) -> pd.DataFrame:
    """One row per claim: both sides' mean and std, the claim's role and test (no verdict yet: see
    ``decide``), and the paper's numbers if quoted."""
    rows = []
    for claim in spec["claims"]:
        col, against, run = claim["metric"], claim.get("against"), claim.get("run", spec["method"])
        a = seed_series(df, run, col)
        b = seed_series(df, run, against) if against else seed_series(df, spec["baseline"], col)
        primary = col in spec["primary"]["metrics"] and run == spec["method"]
        row = {"paper": name, "method": run, "baseline": against or spec["baseline"], "metric": col,
               "direction": claim["direction"], "against": bool(against), "role": "primary" if primary else "secondary",
               "method_mean": a.mean() if len(a) else None,
               "method_std": a.std(ddof=1) if len(a) > 1 else None, "baseline_mean": b.mean() if len(b) else None,
               "baseline_std": b.std(ddof=1) if len(b) > 1 else None, "n_seeds_method": len(a),
               "n_seeds_baseline": len(b), "n_paired": None, "design": None, "difference": None, "ci_low": None,
               "ci_high": None, "sd_difference": None, "p": None, "p_holm": None, "detectable": None,
               "seeds_needed": None, "verdict": None}
        if col not in df:
            row.update(verdict=f"not measured: add {col.split('.')[0]} to evaluate.metrics")
        elif against and against not in df:
            row.update(verdict=f"not measured: {against} is not a column of metrics.parquet")
        elif not len(a) or not len(b):
            row.update(verdict=f"not run: add {run if not len(a) else spec['baseline']} to study.methods")
        else:
            est = verdicts.estimate(a, b, paired=bool(against) or spec["paired"]["seeds"])
            row.update(design=est.design, n_paired=paired_seeds(est), difference=est.difference, ci_low=est.low,
                       ci_high=est.high, p=est.p, sd_difference=est.sd[0] if est.design == "paired" and est.sd else None,
                       estimate=est)
        row.update(paper_method=quoted.get(col, {}).get(spec["method"]),
                   paper_baseline=quoted.get(col, {}).get(spec["baseline"]), paper_label=label if col in quoted else None)
        rows.append(row)
        if primary and col == "fid" and "estimate" in row:
            rows += robustness_rows(row, spec, df)
    return pd.DataFrame(rows)


def paired_seeds(est: verdicts.Estimate) -> int | None:
    """The seeds a paired test used (those both runs ran); None for Welch's."""
    return est.n if est.design == "paired" else None


def feature_spaces(df: pd.DataFrame) -> list[str]:
    """The spaces fd_spaces measured (its ``spaces`` protocol field), in their order."""
    listed = df["fd_spaces.spaces"].dropna() if "fd_spaces.spaces" in df else []
    return str(listed.iloc[0]).split(",") if len(listed) else []


def robustness_rows(claim: dict, spec: dict, df: pd.DataFrame) -> list[dict]:
    """A primary FD claim in every other feature space (fd_spaces), with the same design: descriptive
    rows (role ``robustness``, unadjusted 95% intervals) that show whether the verdict depends on the space."""
    rows = []
    for space in feature_spaces(df):
        col = f"fd_spaces.{space}"
        a, b = seed_series(df, claim["method"], col), seed_series(df, spec["baseline"], col)
        if not len(a) or not len(b):
            continue
        est = verdicts.estimate(a, b, paired=spec["paired"]["seeds"])
        rows.append({**claim, "metric": col, "role": "robustness", "method_mean": a.mean(), "baseline_mean": b.mean(),
                     "method_std": a.std(ddof=1) if len(a) > 1 else None,
                     "baseline_std": b.std(ddof=1) if len(b) > 1 else None, "n_seeds_method": len(a),
                     "n_seeds_baseline": len(b), "n_paired": paired_seeds(est), "design": est.design,
                     "difference": est.difference, "ci_low": est.low,
                     "ci_high": est.high, "p": est.p, "sd_difference": est.sd[0] if est.design == "paired" and est.sd
                     else None, "estimate": est, "paper_method": None, "paper_baseline": None, "paper_label": None})
    return rows


def decide(tables: dict[str, pd.DataFrame], unfair: dict[str, list[str]]) -> int:
    """Every claim's verdict, in place: Holm's step-down over the primary claims of all papers that
    this study ran and measured (one with too few seeds for a test counts with p = 1), descriptive
    labels for the others, and the power of each primary at level ALPHA / (number of primaries).
    Returns that number: the size of the family Holm adjusts for."""
    primaries = [(name, i) for name, t in tables.items() for i in t.index
                 if t.at[i, "role"] == "primary" and pd.isna(t.at[i, "verdict"])]
    adjusted = verdicts.holm([tables[n].at[i, "p"] if pd.notna(tables[n].at[i, "p"]) else 1.0 for n, i in primaries])
    alpha = verdicts.ALPHA / max(1, len(primaries))
    for (name, i), (p_holm, rejected) in zip(primaries, adjusted):
        t, est = tables[name], tables[name].at[i, "estimate"]
        if est.p is None:
            t.at[i, "verdict"] = f"not testable: {est.why_untested()}"
            continue
        t.at[i, "p_holm"] = p_holm
        t.at[i, "detectable"] = verdicts.detectable(est, alpha)
        t.at[i, "verdict"] = verdicts.primary_verdict(est, t.at[i, "direction"], p_holm, rejected)
        if not rejected and verdicts.agrees(est.difference, t.at[i, "direction"]):  # more seeds could support it
            t.at[i, "seeds_needed"] = verdicts.seeds_needed(est, alpha)
    for name, t in tables.items():
        for i in t.index:
            if pd.isna(t.at[i, "verdict"]):
                t.at[i, "verdict"] = verdicts.secondary_verdict(t.at[i, "estimate"], t.at[i, "direction"])
            if (keys := unfair[name].get(t.at[i, "method"])) and not t.at[i, "against"]:
                t.at[i, "verdict"] = f"unfair pair (also differs in {', '.join(keys)}): {t.at[i, 'verdict']}"
        if "estimate" in t:
            tables[name] = t.drop(columns="estimate")
    return len(primaries)


def pair_section(params: dict, spec: dict) -> list[str]:
    """The markdown lines stating how the pair differs, flagging the differences no paper declares."""
    runs, claiming, baseline = params["methods"], pairs.claim_runs(spec), spec["baseline"]
    keys = list(dict.fromkeys(k for run in claiming for k in pairs.differences(runs[run], runs[baseline])))
    unfair = unfair_runs(params, spec)
    flagged = {k for ks in unfair.values() for k in ks}
    lines = ["Method and baseline differ only in these settings (params.yaml `methods:`; the `train:` section, "
             "data and metrics are shared):", "", f"| setting | {' | '.join(claiming)} | {baseline} |",
             "| --- |" + " --- |" * (len(claiming) + 1)]
    lines += [f"| {k}{' (undeclared)' if k in flagged else ''} | "
              + " | ".join(str(runs[r].get(k, pairs.ABSENT)) for r in [*claiming, baseline]) + " |" for k in keys]
    for run, ks in unfair.items():
        lines += ["", f"**Unfair pair**: {run} also differs from {baseline} in {', '.join(ks)}, which `differs_in` "
                      f"does not declare as the paper's contribution; {run}'s verdicts below mix that change with the "
                      "paper's."]
    return lines + [""]


def unfair_runs(params: dict, spec: dict) -> dict[str, list[str]]:
    """Each claiming run with settings it alone differs in from the baseline undeclared: run -> those keys."""
    return {run: keys for run in pairs.claim_runs(spec) if (keys := pairs.undeclared(params, spec, [run]))}


def claimed_columns(spec: dict, df: pd.DataFrame) -> tuple[list[str], dict, str]:
    """The columns a paper's claims read, the paper's numbers quoted for them, and their label."""
    columns = list(dict.fromkeys(c for claim in spec["claims"] for c in (claim["metric"], claim.get("against")) if c))
    paper = spec["paper"]
    label = "paper's" + ("" if paper is None or paper["verified"] else ", unverified")
    return columns, paper_numbers(paper, df, columns), label


def comparison(name: str, spec: dict, df: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The claims table (verdicts to be decided) and the undeclared differences of each claiming run."""
    _, quoted, label = claimed_columns(spec, df)
    return claims_table(name, spec, df, quoted, label), unfair_runs(params, spec)


def page(name: str, spec: dict, df: pd.DataFrame, params: dict, table: pd.DataFrame, n_primary: int,
         results: Path) -> str:
    """The markdown page of one paper: the pair, the table of runs, the claims and their verdicts, and for
    an instance-conditioned method the quality of the features its neighbourhoods come from."""
    columns, quoted, label = claimed_columns(spec, df)
    paper = spec["paper"]
    differ = pair_section(params, spec)
    shown = [c for c in columns if quoted.get(c)]
    lines = [f"# {name}: {spec['title']}", "",
             "Claims: " + ", ".join(
                 f"{c.get('run', spec['method'])} gives {c['direction']} {c['metric']} than "
                 + (f"its own {c['against']}" if "against" in c else spec["baseline"]) for c in spec["claims"]) + ".",
             "", *differ,
             f"This run: dataset {df['dataset'].iloc[0]}; mean ± sample std over seeds.", "",
             "| method | " + " | ".join([header(df, c) for c in columns] + [f"{c} ({label})" for c in shown]) + " |",
             "| --- |" + " --- |" * (len(columns) + len(shown))]
    for method in spec["methods"]:
        role = " (baseline)" if method == spec["baseline"] else " (claimed better)" if method == spec["method"] else ""
        ran = method in set(df["method"])
        cells = [mean_std(seed_values(df, method, c)) if ran else "not run" for c in columns] + [fmt(quoted[c].get(method)) for c in shown]
        lines.append(f"| {method}{role} | " + " | ".join(cells) + " |")
    if catalogue.REAL in set(df["method"]):  # the floor: held-out real images scored as a method's samples
        cells = [mean_std(seed_values(df, catalogue.REAL, c)) for c in columns] + [""] * len(shown)
        lines.append(f"| {catalogue.REAL} (held-out real images: the floor) | " + " | ".join(cells) + " |")
    design = "paired" if spec["paired"]["seeds"] else "unpaired (Welch)"
    lines += ["", f"Primary claim{'s' * (len(spec['primary']['metrics']) > 1)} (pre-registered in params.yaml): "
              f"{', '.join(spec['primary']['metrics'])}. {spec['primary']['reason']}",
              f"Holm's step-down over the study's {n_primary} primary claims holds the chance of any false "
              f"verdict to {verdicts.ALPHA:.0%}; the other claims are secondary and only described.", "",
              f"Seeds: {design}. {spec['paired']['reason']}", "",
              "| claim | role | difference | 95% interval | design | Holm p | detectable (80% power) | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table.to_dict("records"):
        interval = f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if pd.notna(r.get("ci_low")) else "none"
        vs = f" than {r['baseline']}" if r["baseline"] != spec["baseline"] else ""
        vs = (f" ({r['method']})" if r["method"] != spec["method"] else "") + vs
        power = fmt(r.get("detectable"))
        if pd.notna(r.get("seeds_needed")):
            power += f"; the observed difference needs {int(r['seeds_needed'])} seeds"
        elif r["role"] == "primary" and pd.notna(r.get("p_holm")) and str(r["verdict"]).startswith("inconclusive"):
            power += (f"; the observed difference needs over {verdicts.MAX_SEEDS} seeds"
                      if verdicts.agrees(r["difference"], r["direction"]) else "; the observed difference goes against the claim")
        lines.append(f"| {r['metric']} {r['direction']}{vs} | {r['role']} | {fmt(r.get('difference'))} | {interval} | "
                     f"{r.get('design') or ''} | {fmt(r.get('p_holm'))} | {power} | {r['verdict']} |")
    dropped = [r for r in table.to_dict("records")
               if pd.notna(r.get("n_paired")) and r["n_paired"] < max(r["n_seeds_method"], r["n_seeds_baseline"])]
    if dropped:
        lines += ["", "Paired over the seeds both runs ran, so these rows leave seeds out: " + "; ".join(
            f"{r['metric']} ({r['method']} vs {r['baseline']}): {int(r['n_paired'])} of {int(r['n_seeds_method'])} "
            f"and {int(r['n_seeds_baseline'])}" for r in dropped) + "."]
    if (table["role"] == "robustness").any():
        lines += ["", "Robustness rows (`fd_spaces.<space>`): the primary FD claim measured in other feature spaces "
                      "(`evaluate.spaces`), with the same design and unadjusted 95% intervals: descriptive, never a "
                      "verdict, they show whether the primary verdict depends on the feature space (dgm-eval, Stein "
                      "et al. 2023, found that the space can change model rankings)."]
    lines += ["", "Difference: method minus baseline; paired: the t interval of the per-seed differences, Welch: "
                  "of the difference of means. Detectable: the true difference this many seeds find with 80% "
                  f"power at level {verdicts.ALPHA:.0%} / {n_primary} (pipeline/verdicts.py).",
              "", paper_note(paper, shown, df, columns), ""]
    if "neighbours" in catalogue.run_needs(params, spec["method"]):
        lines += [instance_features(results), ""]
    return "\n".join(lines)


def instance_features(results: Path) -> str:
    """How semantic the instance features are (the features and knn stages' probe.json and knn.json):
    IC-GAN's premise is that an instance's neighbours in them share its content."""
    probe_path, knn_path = results / "features" / "probe.json", results / "knn" / "knn.json"
    if not probe_path.is_file() or not knn_path.is_file():
        return f"Instance features: {probe_path} or {knn_path} is missing (run the features and knn stages)."
    probe = load_json_object(probe_path, ("extractor", "dim", "linear_probe_accuracy", "knn_accuracy"))
    knn = load_json_object(knn_path, ("k", "purity", "purity_chance"))
    pixels = probe.get("baselines", {}).get("pixels")
    text = (f"Instance features: `{probe['extractor']}` ({probe['dim']}-d) score {probe['linear_probe_accuracy']:.3f} "
            f"by linear probe and {probe['knn_accuracy']:.3f} by kNN classification of held-out images")
    if pixels:
        text += f" (raw pixels: {pixels['linear_probe_accuracy']:.3f} and {pixels['knn_accuracy']:.3f})"
    text += (f"; an instance's {knn['k']} neighbours share its class {knn['purity']:.1%} of the time (chance "
             f"{knn['purity_chance']:.0%})")
    raw = knn.get("pixels")
    if raw:
        text += (f", raw pixels' neighbours {raw['purity']:.1%} on {raw['queries']:,} random instances where the "
                 f"features' share it {raw['features_purity']:.1%}")
    text += "."
    if pixels and probe["linear_probe_accuracy"] <= pixels["linear_probe_accuracy"]:
        text += (" The features probe no better than pixels, so the neighbourhoods are hardly more semantic than "
                 "pixel ones: a weak test of the paper's premise (self-supervised SwAV features on ImageNet).")
    elif raw and raw["features_purity"] <= raw["purity"]:
        text += (" The features probe better than pixels, but their neighbourhoods share labels less often than "
                 "pixel ones: a weak test of the paper's premise (semantic neighbourhoods from self-supervised "
                 "SwAV features on ImageNet).")
    return text


def paper_note(paper: dict | None, shown: list[str], df: pd.DataFrame, columns: list[str]) -> str:
    if paper is None:
        return "The paper's own numbers are not available here."
    where = (f"{'' if paper['verified'] else 'unverified transcription; '}{paper['dataset']}, {paper['backbone']}"
             + (f"; {paper['note']}" if paper.get("note") else ""))
    if shown:
        return f"The paper's own numbers ({where}) are in the columns marked paper's."
    spaces = ", ".join(sorted({s for c in columns if c in df and (s := feature_space(df, c))}))
    return (f"The paper's own numbers ({where}) are not shown: this run is {df['dataset'].iloc[0]}"
            + (f" with {spaces}" if spaces else "") + ".")


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
