"""benchmarks/rule_times.py: each job's seconds from a Snakemake log, the target rule left out."""
from __future__ import annotations

from benchmarks import rule_times

LOG = """\
[Mon Dec  7 16:30:40 2026]
localrule data:
    jobid: 5
[Mon Dec  7 16:30:42 2026]
Finished jobid: 5 (Rule: data)
[Mon Dec  7 16:30:43 2026]
localrule train:
    jobid: 7
[Mon Dec  7 16:31:46 2026]
Finished jobid: 7 (Rule: train)
[Mon Dec  7 16:31:46 2026]
localrule all:
    jobid: 0
[Mon Dec  7 16:31:46 2026]
Finished jobid: 0 (Rule: all)
"""


def test_job_seconds_per_rule_without_the_target():
    per_rule, wall = rule_times.job_seconds(LOG.splitlines())
    assert dict(per_rule) == {"data": [2.0], "train": [63.0]} and wall == 66.0
