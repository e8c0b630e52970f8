"""benchmarks/precision_equivalence.py: the paired TOST of bf16 against fp32 scores, on hand-checked cases."""
from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("precision_equivalence", ROOT / "benchmarks" / "precision_equivalence.py")
pe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pe)


def write(results, run, values):
    (results / run).mkdir(parents=True)
    per_seed = {str(s): {"value": v} for s, v in enumerate(values)}
    (results / run / "fid.json").write_text(json.dumps({"value": sum(values) / len(values), "per_seed": per_seed}))


def test_differences_inside_the_margin_are_equivalent_and_a_shift_is_named(tmp_path, capsys):
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    write(fp32, "cgan", [10.0, 12.0, 14.0])
    write(bf16, "cgan", [10.1, 12.2, 14.3])  # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1
    write(fp32, "biggan", [10.0, 12.0, 14.0])
    write(bf16, "biggan", [12.0, 12.0, 14.0])  # differences 2, 0, 0: mean 0.667, sd 1.155
    pe.main(["--fp32", str(fp32), "--bf16", str(bf16), "--runs", "cgan", "biggan", "--out", str(tmp_path / "t.md")])
    # t(0.95, 2) = 2.919986: cgan's half-width 2.919986 x 0.1 / sqrt(3) = 0.16859; margin 10% of 12 = 1.2
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "0.2 [0.03141, 0.3686] | ±1.2 |" in rows["cgan"] and rows["cgan"].endswith(
        "| equivalent; the interval excludes 0 |")
    # biggan: half-width 2.919986 x 1.1547 / sqrt(3) = 1.9467 -> [-1.28, 2.613], beyond ±1.2
    assert "0.6667 [-1.28, 2.613]" in rows["biggan"] and rows["biggan"].endswith("| not shown equivalent |")
    assert (tmp_path / "t.md").read_text().count("\n| ") == 3


def test_a_run_without_per_seed_scores_is_one_error(tmp_path):
    write(tmp_path / "fp32", "cgan", [1.0, 2.0])
    (tmp_path / "bf16").mkdir()
    with pytest.raises(SystemExit, match="bf16/cgan/fid.json: missing"):
        pe.main(["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16"), "--runs", "cgan"])
