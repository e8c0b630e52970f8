"""Where a primary claim's noise comes from: the seed it trains from, or the sample set it is scored on.

    .venv/bin/python benchmarks/noise_sources.py --seeds 400 401 402 403 404 405 --sets 4 --cores 2

A paired claim's per-seed difference (method - baseline) varies for two reasons: training (another
seed trains other weights) and evaluation (another draw of ``sample.n`` images from the same weights
scores differently). Only the first needs more seeds, that is more training, to average out; the
second also falls when each seed is scored on several sample sets, which costs sampling and
evaluation alone. This script measures the two, for every paired primary claim scored on samples (the
probe claim's evaluation noise is its linear probe's training, not a sample set: left out), on seeds
no verdict uses (outside ``train.seeds`` and the stability set, as benchmarks/tune.py requires):

1. Snakemake, in ``--workdir`` (a git worktree of HEAD, as benchmarks/verdict_stability.py makes;
   its data, features and references are reused), trains, samples and evaluates each claim's method
   and baseline at ``--seeds``: set 0 is the study's own sample set.
2. Sets 1 .. ``--sets`` - 1: every run at every seed draws ``sample.n`` images again from the streams
   of phase ``sample<k>`` instead of ``sample`` (pipeline/stages/sample.py ``draw``), so the method and
   its baseline share set k's draws as they share the study's; the evaluate stage's code scores them
   on the claims' metrics only. They are kept in ``<workdir>/results/noise_sources/`` (a rerun reuses them).
3. Per claim, a one-way random-effects analysis of the differences d[seed, set]: the set variance is
   the pooled variance within seeds, the seed variance that of the seeds' mean differences less
   set variance / sets (at least 0). A study of n seeds that averages k sets per seed has the standard
   error sqrt((seed variance + set variance / k) / n); the table gives the true difference such a study
   detects with 80% power at level 5% / number of primaries (Holm's strictest step, pipeline.verdicts),
   for 10 seeds with 1 set and with ``--sets`` sets, and 20 seeds with 1, as a share of the
   baseline's mean, beside the measured job-seconds of one more seed (training, sampling and every
   metric, both runs; from Snakemake's benchmark files) and one more set (sampling and the claim's
   metrics, both runs).

With few seeds the seed variance is uncertain (``--seeds`` - 1 degrees of freedom): the table says
where the evaluation noise is large or small, not its third digit. The markdown goes to ``--out`` and
stdout, with the commit and the machine's default ``gan`` training img/s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import rule_times, train_speed  # noqa: E402
from benchmarks.tune import metric_value, verdict_seeds  # noqa: E402
from benchmarks.verdict_stability import prepare, snakemake  # noqa: E402
from pipeline import catalogue, config, context, verdicts  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.io import all_or_nothing, save_json, save_npy  # noqa: E402
from pipeline.metrics import REGISTRY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path("results") / "noise_sources"  # under --workdir: the extra sets


def claims(params: dict) -> tuple[list[tuple[str, str]], int]:
    """(comparison, metric) of every paired primary claim scored on samples; the number of primaries."""
    out, primaries = [], 0
    for name, comp in params["comparisons"].items():
        for metric in comp["primary"]["metrics"]:
            primaries += 1
            if metric.partition(".")[0] in REGISTRY and comp["paired"]["seeds"]:
                out.append((name, metric))
    return out, primaries


def run_metrics(params: dict, chosen: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Run -> the metric files its claims read (e.g. lpips for lpips.per_condition)."""
    out: dict[str, set[str]] = {}
    for name, metric in chosen:
        comp = params["comparisons"][name]
        for run in (comp["method"], comp["baseline"]):
            out.setdefault(run, set()).add(metric.partition(".")[0])
    return {run: sorted(names) for run, names in out.items()}


def score_set(workdir: Path, run: str, seed: int, k: int, metrics: list[str]) -> float:
    """Draw and score sample set ``k`` of ``run`` at ``seed`` into its folder (kept: a rerun reads it);
    the seconds it took (sampling and the metrics)."""
    from pipeline.stages import evaluate, sample

    folder = workdir / FOLDER / run / f"seed{seed}" / f"set{k}"
    if (folder / "cost.json").exists():
        return json.loads((folder / "cost.json").read_text())["seconds"]
    os.chdir(workdir)  # the stage code reads data/ and results/ relative to the study
    params = config.load("params.yaml")
    context.limit_threads(params["train"]["threads"])
    start = time.perf_counter()
    inputs = {need: Path(catalogue.NEED_FILES[need]) for need in catalogue.run_needs(params, run)}
    images, ids, meta = sample.draw(params, run, Path("results") / run / f"seed{seed}", Path("data"), inputs,
                                    phase=f"sample{k}")
    with all_or_nothing():
        save_npy(folder / "samples.npy", images)
        save_npy(folder / "conditions.npy", ids)
        save_json(folder / "samples.json", {**meta, "phase": f"sample{k}"})
    results = evaluate.evaluate(params, metrics, folder, Path("data"), Path("results") / "reference")
    seconds = time.perf_counter() - start
    with all_or_nothing():
        for metric, result in results.items():
            save_json(folder / f"{metric}.json", result)
        save_json(folder / "cost.json", {"seconds": seconds})
    return seconds


def components(d: np.ndarray) -> tuple[float, float]:
    """(seed variance, set variance) of differences d[seed, set] by one-way random-effects ANOVA."""
    seeds, sets = d.shape
    means = d.mean(axis=1)
    within = float(((d - means[:, None]) ** 2).sum() / (seeds * (sets - 1)))
    return max(float(means.var(ddof=1)) - within / sets, 0.0), within


def detectable(seed_var: float, set_var: float, seeds: int, sets: int, alpha: float) -> float:
    """The true difference a paired study of ``seeds`` seeds, averaging ``sets`` sets each, detects with
    verdicts.POWER at two-sided level ``alpha``."""
    sd = float(np.sqrt(seed_var + set_var / sets))
    return verdicts.detectable(verdicts.Estimate("paired", seeds, seeds, 0.0, sd=(sd,)), alpha)


def job_seconds(workdir: Path, rule: str, run: str, seed: int) -> float | None:
    """A job's seconds from Snakemake's benchmark file (None when it has none)."""
    path = workdir / "logs" / "benchmark" / rule / f"{run}_seed{seed}.tsv"
    return rule_times.measured(path)[0] if path.exists() else None


def seed_cost(workdir: Path, runs: tuple[str, str], seeds: list[int]) -> float | None:
    """Mean job-seconds of one seed of both runs: training, sampling and evaluation (None when not logged)."""
    per_seed = [[job_seconds(workdir, rule, run, s) for run in runs for rule in ("train", "sample", "evaluate")]
                for s in seeds]
    return None if any(None in jobs for jobs in per_seed) else float(np.mean([sum(jobs) for jobs in per_seed]))


def differences(workdir: Path, runs: tuple[str, str], metric: str, seeds: list[int], sets: int) -> tuple[np.ndarray, float]:
    """d[seed, set] = method - baseline (set 0: the study's samples), and the baseline's mean on set 0."""
    def values(run: str) -> np.ndarray:
        folder = workdir / "results" / run
        return np.array([[metric_value(folder / f"seed{s}" if k == 0 else workdir / FOLDER / run / f"seed{s}" / f"set{k}",
                                       metric) for k in range(sets)] for s in seeds])

    method, baseline = values(runs[0]), values(runs[1])
    return method - baseline, float(baseline[:, 0].mean())


def table(params: dict, workdir: Path, chosen: list[tuple[str, str]], primaries: int, seeds: list[int], sets: int,
          set_cost: dict[tuple[str, int], float]) -> list[str]:
    """The summary row of every claim, then each claim's differences by seed and set."""
    alpha = verdicts.ALPHA / primaries
    rows = ["| claim | seeds x sets | mean difference | sd, one set | seed part (sd) | set part (sd) | set share of "
            f"variance | detectable: 10 seeds, 1 set | 10 seeds, {sets} sets | 20 seeds, 1 set | one more seed, "
            "job-s | one more set, job-s |", "| --- " * 12 + "|"]
    details = []
    for name, metric in chosen:
        comp = params["comparisons"][name]
        runs = (comp["method"], comp["baseline"])
        d, scale = differences(workdir, runs, metric, seeds, sets)
        seed_var, set_var = components(d)

        def shown(n: int, k: int) -> str:
            delta = detectable(seed_var, set_var, n, k, alpha)
            return f"{delta:.3g} ({100 * delta / abs(scale):.0f}%)" if scale else f"{delta:.3g}"

        cost = seed_cost(workdir, runs, seeds)
        one_set = np.mean([set_cost[(run, s)] for s in seeds for run in runs]) * len(runs)
        rows.append(f"| {name}: {metric} ({runs[0]} - {runs[1]}) | {len(seeds)} x {sets} | {d.mean():.4g} | "
                    f"{np.sqrt(seed_var + set_var):.3g} | {np.sqrt(seed_var):.3g} | {np.sqrt(set_var):.3g} | "
                    f"{set_var / (seed_var + set_var):.0%} | {shown(10, 1)} | {shown(10, sets)} | {shown(20, 1)} | "
                    f"{'not logged' if cost is None else f'{cost:.0f}'} | {one_set:.0f} |")
        details += ["", f"{name}: {metric}, {runs[0]} - {runs[1]} by seed (rows) and sample set (set 0: the study's)", "",
                    "| seed | " + " | ".join(f"set {k}" for k in range(sets)) + " |", "| --- " * (sets + 1) + "|",
                    *(f"| {s} | " + " | ".join(f"{v:.4g}" for v in row) + " |" for s, row in zip(seeds, d))]
    return rows + details


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/noise_sources.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--seeds", type=int, nargs="+", required=True,
                        help="at least three seeds that no verdict uses (not train.seeds, not the stability set)")
    parser.add_argument("--sets", type=int, default=4, help="sample sets per seed, the study's included (default: %(default)s)")
    parser.add_argument("--offset", type=int, default=100, help="first seed of the stability set (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="Snakemake --cores and parallel sets (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".stability", help="copy of the repository where it runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "noise_sources.md", help="markdown (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(ROOT / "params.yaml")
    if clash := sorted(set(args.seeds) & verdict_seeds(params, args.offset)):
        parser.error(f"seeds {clash} are verdict or stability seeds; choose seeds no verdict uses")
    if len(set(args.seeds)) < 3 or args.sets < 2:
        parser.error("need at least three distinct seeds and two sets per seed to separate the two variances")
    chosen, primaries = claims(params)
    if not chosen:
        parser.error("no paired primary claim is scored on samples in params.yaml's comparisons")
    per_run = run_metrics(params, chosen)

    commit = prepare(args.workdir)
    seeds = sorted(set(args.seeds))
    targets = [f"results/{run}/seed{s}/{metric}.json" for run, metrics in per_run.items() for s in seeds for metric in metrics]
    snakemake(args.workdir, args.cores, "--rerun-incomplete", "--", *targets)
    jobs = [(run, s, k) for run in per_run for s in seeds for k in range(1, args.sets)]
    with ProcessPoolExecutor(args.cores) as pool:
        costs = list(tqdm(pool.map(score_set, *zip(*[(args.workdir.resolve(), run, s, k, per_run[run])
                                                     for run, s, k in jobs])), total=len(jobs), desc="sample sets"))
    set_cost: dict[tuple[str, int], list[float]] = {}
    for (run, s, _), seconds in zip(jobs, costs):
        set_cost.setdefault((run, s), []).append(seconds)
    mean_cost = {key: float(np.mean(v)) for key, v in set_cost.items()}

    lines = [f"Noise sources of the paired primary claims: commit {commit}, {time.strftime('%Y-%m-%d')}, seeds {seeds}, "
             f"{args.sets} sample sets of {params['sample']['n']} per seed; default gan training "
             f"{train_speed.measured_img_per_s(args.workdir) or 'not measured'} img/s on this machine. Detectable: the true "
             f"difference found with {verdicts.POWER:.0%} power at level {verdicts.ALPHA} / {primaries}, and its share of the "
             "baseline's mean.", "", *table(params, args.workdir, chosen, primaries, seeds, args.sets, mean_cost), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
