"""Per-rule job counts and job-seconds of a finished Snakemake run, from its log.

    .venv/bin/python benchmarks/rule_times.py [.snakemake/log/<run>.snakemake.log]

A job's seconds run from the timestamp of its start block to that of its "Finished jobid" line
(one-second resolution), so with several cores the job-seconds add up to more than the wall time,
which is printed too. Default: the newest log in .snakemake/log/.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

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
            per_rule[m.group(2)].append((now - started.pop(m.group(1))).total_seconds())
    wall = (stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0
    return per_rule, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", type=Path, help="a Snakemake log (default: the newest)")
    args = parser.parse_args()
    log = args.log or max(Path(".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    per_rule, wall = job_seconds(log.read_text().splitlines())
    print(f"{log}: wall {wall / 60:.1f} min")
    print("| rule | jobs | job-seconds | per job |\n| --- | --- | --- | --- |")
    for rule, secs in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {rule} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.0f} |")
    print(f"| all | {sum(map(len, per_rule.values()))} | {sum(map(sum, per_rule.values())):.0f} | |")


if __name__ == "__main__":
    main()
