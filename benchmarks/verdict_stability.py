"""Verdict stability: the study trained on two disjoint seed sets, every verdict side by side.

    .venv/bin/python benchmarks/verdict_stability.py                     # train.seeds' count, sets 0.. and 100..
    .venv/bin/python benchmarks/verdict_stability.py --seeds 3 --offset 100 --cores 2 --out results/stability.md

``--workdir`` is made a git worktree of this checkout's HEAD (``git worktree add --detach``, or moved
to HEAD if it is one already; its data and results stay), and the working tree's uncommitted and
untracked (not ignored) files are copied over it, so that the report's provenance line names the
commit and says whether it had uncommitted changes. There Snakemake runs the whole study twice with ``train.seeds`` overridden
(``--config``; params.yaml is untouched): first seeds 0..n-1, then offset..offset+n-1. The data,
features, kNN and reference stages run once and serve both sets. Each set's
``results/comparisons/*.csv`` is kept; the table gives, per claim, both sets' difference, 95%
interval and verdict, and how they relate:

- ``agree``: the same verdict (primaries) or the same side of 0 (secondary claims' descriptions);
- ``CONFLICT``: a primary supported in one set and contradicted in the other (the design's goal: never);
- ``power p``: a primary supported in one set and inconclusive in the other, with ``p`` the power the
  inconclusive set had (its own seeds and variance, level 5% / number of primaries) to detect the
  supported set's difference: at 80% power one such disagreement in five is what chance predicts.

The last column is the first set's difference minus the second's, with the p that both sets estimate
the same true difference (``pipeline.verdicts.sets_differ``, Welch's t over the two sets): a changed
verdict whose estimates do not differ is chance meeting low power, not a change in what is measured.
A line under the table counts the claims below 5% against the count expected by chance.

The markdown table goes to ``--out`` and to stdout, with the commit and the machine's default
training img/s (the `gan` run, measured here by benchmarks/train_speed.py) so that times scale.

``--compare A B`` trains nothing: it sets two studies' ``results/comparisons`` folders side by side
in the same table, e.g. one commit's study run on two kinds of machine (copy one folder over), where
training is not bitwise the same (docs/results.md, "What reproduces where").

    .venv/bin/python benchmarks/verdict_stability.py --compare machine_a/comparisons results/comparisons
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import rule_times, train_speed  # noqa: E402
from pipeline import verdicts  # noqa: E402
from pipeline.claims import difference_text  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def prepare(workdir: Path) -> str:
    """``workdir`` as a worktree of HEAD with the working tree's changes; returns 'commit[ (uncommitted changes)]'."""
    head = git("rev-parse", "--short", "HEAD")
    if (workdir / ".git").is_file():  # a worktree already: move it to this HEAD, keeping data and results
        git("checkout", "--detach", "--force", git("rev-parse", "HEAD"), cwd=workdir)
    elif workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"error: {workdir} exists and is not a git worktree; remove it or give another --workdir")
    else:
        git("worktree", "add", "--detach", str(workdir), "HEAD")
    changed = git("ls-files", "-z", "--modified", "--others", "--exclude-standard").split("\0")
    for name in filter(None, changed):
        if (ROOT / name).is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, workdir / name)
    return head + (" (uncommitted changes)" if any(changed) else "")


def snakemake(workdir: Path, cores: int, *args: str) -> None:
    """Snakemake with this Python's environment in ``workdir`` (its jobs' ``python`` is this one)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), *args], cwd=workdir, env=env, check=True)


def run_set(workdir: Path, seeds: list[int], cores: int, keep: Path, extra: list[str] = ()) -> None:
    """The whole study at ``seeds``; its comparison tables, summary and Snakemake log copied to ``keep``.
    ``extra``: more Snakemake options."""
    snakemake(workdir, cores, "--rerun-incomplete", *extra, "--config", f"train={{seeds: [{', '.join(map(str, seeds))}]}}")
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(workdir / "results" / "comparisons", keep)
    shutil.copy(workdir / "results" / "summary.txt", keep / "summary.txt")
    log = max((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    shutil.copy(log, keep / "snakemake.log")


def wall_minutes(keep: Path) -> str:
    """The set's Snakemake wall time and the jobs it ran, from its log (benchmarks/rule_times.py): a set
    that reused outputs of an earlier, interrupted invocation says so by its smaller count."""
    if not (keep / "snakemake.log").exists():
        return "not logged"
    per_rule, wall = rule_times.job_seconds((keep / "snakemake.log").read_text().splitlines())
    trained = len(per_rule.get("train", []))
    return f"{wall / 60:.1f} min ({sum(map(len, per_rule.values()))} jobs, {trained} of them training)"


def estimate(row: pd.Series) -> verdicts.Estimate:
    """A claim's test rebuilt from its row of a comparison table (enough for its power)."""
    n = int(row["n_paired"] if pd.notna(row.get("n_paired")) else min(row["n_seeds_method"], row["n_seeds_baseline"]))
    sd = ((row["sd_difference"],) if row["design"] == "paired" else (row["method_std"], row["baseline_std"]))
    return verdicts.Estimate(row["design"], n, n, row["difference"], sd=sd if all(pd.notna(v) for v in sd) else ())


def kind(verdict: str) -> str:
    return str(verdict).removeprefix("descriptive: ").split(" (")[0]


def relation(a: pd.Series, b: pd.Series, alpha: float) -> str:
    ka, kb = kind(a["verdict"]), kind(b["verdict"])
    if ka == kb:
        return "agree"
    if {ka, kb} == {"supported", "contradicted"}:
        return "CONFLICT"
    if a["role"] == "primary" and {ka, kb} == {"supported", "inconclusive"}:
        weak, strong = (a, b) if ka == "inconclusive" else (b, a)
        est = estimate(weak)
        return f"power {verdicts.power(est, strong['difference'], est.n, alpha):.2f}" if est.sd else "differ"
    return "differ"


def apart_cell(a: pd.Series, b: pd.Series) -> tuple[str, float | None]:
    """The cell giving how far the two sets' differences lie apart, and the p that they estimate the same one."""
    p = verdicts.sets_differ(estimate(a), estimate(b))
    return f"{a['difference'] - b['difference']:.4g}" + ("" if p is None else f" (p {p:.2g})"), p


def cell(row: pd.Series) -> str:
    return f"{difference_text(row)}: {row['verdict']}"


def table(sets: dict[str, Path], names: list[str], prefix: str = "seeds ") -> list[str]:
    """Markdown rows comparing the two sets' claims, paper by paper (columns headed ``prefix`` + label)."""
    (la, a_dir), (lb, b_dir) = sets.items()
    frames = {label: pd.concat([pd.read_csv(d / f"{p}.csv") for p in names]) for label, d in sets.items()}
    m = int(((frames[la]["role"] == "primary") & frames[la]["p_holm"].notna()).sum())
    alpha = verdicts.ALPHA / max(1, m)
    lines = [f"| paper | claim | role | {prefix}{la} | {prefix}{lb} | relation | {la} - {lb} |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    p_values = []
    for (_, ra), (_, rb) in zip(frames[la].iterrows(), frames[lb].iterrows()):
        run = f"{ra['method']} " if ra["method"] != ra["paper"] else ""
        claim = f"{run}{ra['metric']} {ra['direction']} than {ra['baseline']}"
        apart, p = apart_cell(ra, rb)
        p_values += [] if p is None else [p]
        lines.append(f"| {ra['paper']} | {claim} | {ra['role']} | {cell(ra)} | {cell(rb)} | {relation(ra, rb, alpha)} "
                     f"| {apart} |")
    below = sum(p < verdicts.ALPHA for p in p_values)
    return lines + ["", f"The two sets' differences lie apart beyond chance (p < {verdicts.ALPHA}, last column) for "
                        f"{below} of {len(p_values)} claims; {verdicts.ALPHA * len(p_values):.1f} would by chance alone."]


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/verdict_stability.py", description=__doc__.splitlines()[0])
    default_n = len(yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["seeds"])
    parser.add_argument("--seeds", type=int, default=default_n, help="seeds per set (default: train.seeds' count, %(default)s)")
    parser.add_argument("--offset", type=int, default=100, help="first seed of the second set (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="Snakemake --cores (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".stability", help="copy of the repository where the study runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "verdict_stability.md")
    parser.add_argument("--snakemake", default="", metavar="OPTIONS",
                        help="more Snakemake options for both sets, one string (e.g. \"--rerun-triggers mtime params input\" "
                             "after a code change known to move no result: the stages whose inputs or settings "
                             "changed rerun, not every stage whose command changed)")
    parser.add_argument("--tabulate", metavar="COMMIT", help="train nothing: tabulate the sets' tables (and logs) "
                        "kept in --workdir by an earlier run of COMMIT")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="train nothing: set side by side two studies' results/comparisons folders (the same "
                             "commit and seeds on two machines, say), each labelled by its path")
    args = parser.parse_args(argv)
    if args.compare:
        names = list(yaml.safe_load((ROOT / "params.yaml").read_text())["comparisons"])
        lines = table({str(d): d for d in args.compare}, names, prefix="")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    if args.offset < args.seeds:
        parser.error(f"--offset {args.offset} must be at least --seeds {args.seeds}, so that the sets are disjoint")
    commit = args.tabulate or prepare(args.workdir)
    a, b = list(range(args.seeds)), list(range(args.offset, args.offset + args.seeds))
    sets = {}
    for seeds in (a, b):
        label = f"{seeds[0]}-{seeds[-1]}"
        sets[label] = args.workdir / "stability" / label
        if not args.tabulate:
            run_set(args.workdir, seeds, args.cores, sets[label], shlex.split(args.snakemake))
    names = list(yaml.safe_load((args.workdir / "params.yaml").read_text())["comparisons"])
    times = "Snakemake wall time " + ", ".join(f"{k}: {wall_minutes(d)}" for k, d in sets.items()) + f" on {args.cores} cores"
    lines = [f"Verdict stability: commit {commit}, {time.strftime('%Y-%m-%d')}, {args.seeds} seeds per set; {times}; "
             f"default gan training {train_speed.measured_img_per_s(args.workdir) or 'not measured'} img/s on this machine.", "", *table(sets, names)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
