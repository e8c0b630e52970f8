"""Each paper's claims against the study's results table: the claims tables, their verdicts, and the
markdown page of each comparison (the report stage writes them; pipeline/verdicts.py holds the statistics).

A claim compares a column of the method's runs with the baseline's (or with another column of the
method's own rows, ``against``), paired over seeds or Welch as the comparison declares. The
pre-registered primary claims of the whole study share one family-wise error rate (Holm's step-down,
``decide``); the others are described. A primary FD claim is also shown in every other feature space of
fd_spaces (robustness rows). A claiming run that differs from its baseline in settings the paper's
``differs_in`` does not declare marks its verdicts "unfair pair".
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import catalogue, pairs, verdicts
from pipeline.io import load_json_object
from pipeline.results_table import fmt, header, mean_std, seed_series, seed_values


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


def difference_text(r) -> str:
    """A claim row's difference with its 95% interval and design, e.g. ``-1.6 [-3.3, 0.02] paired``."""
    interval = f" [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] {r['design']}" if pd.notna(r["ci_low"]) else ""
    return fmt(r["difference"]) + interval


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
               **side_fields(a, b), "n_paired": None, "design": None, "difference": None, "ci_low": None,
               "ci_high": None, "sd_difference": None, "p": None, "p_holm": None, "detectable": None,
               "seeds_needed": None, "verdict": None}
        if col not in df:
            row.update(verdict=f"not measured: add {col.split('.')[0]} to evaluate.metrics")
        elif against and against not in df:
            row.update(verdict=f"not measured: {against} is not a column of metrics.parquet")
        elif not len(a) or not len(b):
            row.update(verdict=f"not run: add {run if not len(a) else spec['baseline']} to study.methods")
        else:
            row.update(estimate_fields(verdicts.estimate(a, b, paired=bool(against) or spec["paired"]["seeds"])))
        row.update(paper_method=quoted.get(col, {}).get(spec["method"]),
                   paper_baseline=quoted.get(col, {}).get(spec["baseline"]), paper_label=label if col in quoted else None)
        rows.append(row)
        if primary and col == "fid" and "estimate" in row:
            rows += robustness_rows(row, spec, df)
    return pd.DataFrame(rows)


def side_fields(a: pd.Series, b: pd.Series) -> dict:
    """A claim row's per-side fields: the method's (``a``) and the baseline's (``b``) mean, std and seeds."""
    return {"method_mean": a.mean() if len(a) else None, "method_std": a.std(ddof=1) if len(a) > 1 else None,
            "baseline_mean": b.mean() if len(b) else None, "baseline_std": b.std(ddof=1) if len(b) > 1 else None,
            "n_seeds_method": len(a), "n_seeds_baseline": len(b)}


def estimate_fields(est: verdicts.Estimate) -> dict:
    """A claim row's test fields; ``n_paired``: the seeds a paired test used (those both runs ran)."""
    paired = est.design == "paired"
    return {"design": est.design, "n_paired": est.n if paired else None, "difference": est.difference,
            "ci_low": est.low, "ci_high": est.high, "p": est.p,
            "sd_difference": est.sd[0] if paired and est.sd else None, "estimate": est}


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
        if len(a) and len(b):
            rows.append({**claim, "metric": col, "role": "robustness", **side_fields(a, b),
                         **estimate_fields(verdicts.estimate(a, b, paired=spec["paired"]["seeds"])),
                         "paper_method": None, "paper_baseline": None, "paper_label": None})
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
