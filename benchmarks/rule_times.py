"""Per-rule job counts, job-seconds and peak memory of a Snakemake study.

    .venv/bin/python benchmarks/rule_times.py [.snakemake/log/<run>.snakemake.log] [--benchmarks logs/benchmark]

Every rule has Snakemake's ``benchmark:`` directive: each job's wall seconds and peak resident memory
land in logs/benchmark/<rule>/<job>.tsv (<rule>.tsv for a rule that runs once), the measurement of the job that made today's outputs, and
the table is built from those files when they exist. Otherwise (a study run before the directive)
from the log: a job's seconds run from the timestamp of its start block to that of its "Finished
jobid" line (one-second resolution), without memory. With several cores the job-seconds add up to
more than the wall time, which the log gives (default: the newest log in .snakemake/log/ that ran jobs).
Every file under logs/benchmark/ counts, so a job no longer in the study (a seed or run since
removed) still does: time a study from a clean tree, as ``scripts/run.sh`` on a fresh clone does.
The target rule ``all`` runs nothing and is not counted.
"""
from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import CommandLine  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_seconds(lines: list[str]) -> tuple[dict[str, list[float]], float]:
    """rule -> the seconds of each of its jobs; and the wall seconds from first to last timestamp."""
    started: dict[str, datetime] = {}
    per_rule: dict[str, list[float]] = defaultdict(list)
    stamps: list[datetime] = []
    now, pending = None, None
    for line in lines:
        if m := STAMP.match(line):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            stamps.append(now)
        elif m := START.match(line):
            pending = now
        elif (m := JOBID.match(line)) and pending is not None:
            started[m.group(1)], pending = pending, None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            seconds = (now - started.pop(m.group(1))).total_seconds()
            if m.group(2) != "all":  # the target: no work
                per_rule[m.group(2)].append(seconds)
    wall = (stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0
    return per_rule, wall


def last_run(log_dir: Path) -> tuple[Path, list[str], dict[str, list[float]], float] | None:
    """The newest Snakemake log in ``log_dir`` that ran jobs (not a dry run or a ``--report``): its
    path, lines, per-rule job seconds and wall seconds; None when there is none."""
    for log in sorted(log_dir.glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        lines = log.read_text().splitlines()
        per_rule, wall = job_seconds(lines)
        if per_rule:
            return log, lines, per_rule, wall
    return None


def measured(tsv: Path) -> tuple[float, float]:
    """(seconds, peak resident MB) of the job one Snakemake benchmark file measured (MB NaN when not recorded)."""
    header, row = (line.split("\t") for line in tsv.read_text().splitlines()[:2])
    cells = dict(zip(header, row))
    rss = cells.get("max_rss", "NA")
    return float(cells["s"]), float(rss) if rss != "NA" else math.nan


def benchmarked(root: Path) -> dict[str, list[tuple[float, float]]]:
    """rule -> (seconds, peak resident MB) of each job, from the benchmark files root/<rule>/*.tsv
    and, for the rules that run once (data, features, knn, report), root/<rule>.tsv."""
    per_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tsv in sorted(root.glob("**/*.tsv")):
        per_rule[tsv.relative_to(root).parts[0].removesuffix(".tsv")].append(measured(tsv))
    return per_rule


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/rule_times.py", description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", type=Path, help="a Snakemake log (default: the newest that ran jobs)")
    parser.add_argument("--benchmarks", type=Path, default=Path("logs/benchmark"),
                        help="Snakemake's benchmark files (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.log:
        log = args.log
        per_rule, wall = job_seconds(log.read_text().splitlines())
    elif found := last_run(Path(".snakemake/log")):
        log, _, per_rule, wall = found
    else:
        raise SystemExit("error: no Snakemake log of a run with jobs in .snakemake/log/; name one")
    print(f"{log}: wall {wall / 60:.1f} min")
    measured = benchmarked(args.benchmarks) if args.benchmarks.is_dir() else {}
    if measured:
        print(f"job-seconds and peak memory from {args.benchmarks}/ (the jobs that made the outputs)")
        rows = {rule: ([s for s, _ in jobs], max(m for _, m in jobs)) for rule, jobs in measured.items()}
    else:
        print(f"job-seconds from the log (no {args.benchmarks}/)")
        rows = {rule: (secs, math.nan) for rule, secs in per_rule.items()}
    print("| rule | jobs | job-seconds | per job | peak MB |\n| --- | --- | --- | --- | --- |")
    for rule, (secs, peak) in sorted(rows.items(), key=lambda kv: -sum(kv[1][0])):
        print(f"| {rule} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.0f} | "
              f"{'' if math.isnan(peak) else f'{peak:.0f}'} |")
    print(f"| total | {sum(len(s) for s, _ in rows.values())} | {sum(sum(s) for s, _ in rows.values()):.0f} | | |")


if __name__ == "__main__":
    main()
