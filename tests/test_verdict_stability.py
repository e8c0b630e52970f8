"""benchmarks/verdict_stability.py's table: two seed sets' verdicts side by side, with the power that
explains a supported/inconclusive disagreement (from the report's own comparison tables)."""
from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from conftest import ROOT, write_params
from pipeline import verdicts
from pipeline.stages import report
from test_metrics import fake_results

spec = importlib.util.spec_from_file_location("verdict_stability", ROOT / "benchmarks" / "verdict_stability.py")
stability = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stability)


def study(root, tiny_params, values):
    tiny_params["study"]["methods"] = ["cgan", "msgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    root.mkdir(parents=True)
    params = write_params(tiny_params, root / "params.yaml")
    fake_results(root, values)
    report.main(["--params", str(params), "--results", str(root)])
    return root / "comparisons"


def test_the_table_sets_verdicts_side_by_side_with_the_power_of_a_disagreement(tmp_path, tiny_params):
    a = study(tmp_path / "a", tiny_params, {"cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 30.0, 1: 31.0, 2: 30.5}})
    b = study(tmp_path / "b", tiny_params, {"cgan": {100: 40.0, 101: 41.0, 102: 42.0},
                                            "msgan": {100: 30.0, 101: 44.0, 102: 33.0}})
    lines = stability.table({"0-2": a, "100-102": b}, ["msgan"])
    assert lines[0] == "| paper | claim | role | seeds 0-2 | seeds 100-102 | relation | 0-2 - 100-102 |"
    ndb = next(line for line in lines if "| ndb lower than cgan | primary |" in line)
    assert "supported" in ndb and "inconclusive" in ndb
    # the inconclusive set's power at the supported set's difference, recomputed from its table
    ra, rb = (pd.read_csv(d / "msgan.csv").set_index("metric").loc["ndb"] for d in (a, b))
    est = verdicts.Estimate("paired", 3, 3, rb["difference"], sd=(rb["sd_difference"],))
    expected = verdicts.power(est, ra["difference"], 3, 0.05)
    assert f"| power {expected:.2f} |" in ndb and 0 < expected < 0.8
    # how far apart the sets' differences lie, and Welch's p that they estimate one difference
    p = verdicts.sets_differ(*(verdicts.Estimate("paired", 3, 3, r["difference"], sd=(r["sd_difference"],)) for r in (ra, rb)))
    assert ndb.endswith(f"| {ra['difference'] - rb['difference']:.4g} (p {p:.2g}) |") and 0 < p < 1
    fid = next(line for line in lines if "| fid lower than cgan | secondary |" in line)
    assert "descriptive" in fid and "| differ |" in fid  # excludes 0 in one set, includes it in the other
    assert lines[-1].startswith("The two sets' differences lie apart beyond chance (p < 0.05, last column) for ")


@pytest.mark.parametrize("a, b, expected", [
    ("supported (Holm-adjusted p = 0.01)", "contradicted (Holm-adjusted p = 0.02)", "CONFLICT"),
    ("inconclusive (Holm-adjusted p = 0.3)", "inconclusive (Holm-adjusted p = 0.6)", "agree"),
    ("descriptive: the interval includes 0", "descriptive: the interval includes 0", "agree"),
])
def test_relations(a, b, expected):
    row = lambda verdict: pd.Series({"verdict": verdict, "role": "primary"})  # noqa: E731
    assert stability.relation(row(a), row(b), 0.05) == expected


def test_compare_sets_two_studies_folders_side_by_side(tmp_path, tiny_params):
    a = study(tmp_path / "a", tiny_params, {"cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 30.0, 1: 31.0, 2: 30.5}})
    b = study(tmp_path / "b", tiny_params, {"cgan": {0: 40.5, 1: 41.5, 2: 41.0}, "msgan": {0: 30.2, 1: 31.5, 2: 30.0}})
    out = tmp_path / "machines.md"
    stability.main(["--compare", str(a), str(b), "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0] == f"| paper | claim | role | {a} | {b} | relation | {a} - {b} |"
    fid = next(line for line in lines if "| msgan | fid lower than cgan |" in line)
    assert "| agree |" in fid
