"""benchmarks/noise_sources.py: a claim's per-seed variance split into the seed's part and the sample
set's, the differences a design detects, and the extra sample sets the sample stage draws."""
from __future__ import annotations

import importlib.util
import math
import re

import numpy as np
import pytest

from conftest import ROOT
from pipeline import verdicts
from pipeline.io import save_json
from pipeline.stages import sample
from pipeline.stages.train import run as train_run

spec = importlib.util.spec_from_file_location("noise_sources", ROOT / "benchmarks" / "noise_sources.py")
noise_sources = importlib.util.module_from_spec(spec)
spec.loader.exec_module(noise_sources)


def test_components_by_hand():
    # seed means 2, 6, 10 (variance 16); each set 1 from its seed's mean (pooled within variance 6 / 3 = 2)
    seed_var, set_var = noise_sources.components(np.array([[1.0, 3.0], [5.0, 7.0], [9.0, 11.0]]))
    assert set_var == pytest.approx(2.0) and seed_var == pytest.approx(16.0 - 2.0 / 2)
    # no spread between seeds beyond what the sets explain: the seed part is 0, not negative
    assert noise_sources.components(np.array([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]]))[0] == 0.0


def test_components_recover_known_variances():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 2.0, (4000, 1)) + rng.normal(0, 1.0, (4000, 3))  # seed sd 2, set sd 1
    seed_var, set_var = noise_sources.components(d)
    assert seed_var == pytest.approx(4.0, rel=0.05) and set_var == pytest.approx(1.0, rel=0.05)


def test_detectable_difference_shrinks_with_sets_only_down_to_the_seed_part():
    alpha = verdicts.ALPHA / 5
    plain = verdicts.detectable(verdicts.Estimate("paired", 10, 10, 0.0, sd=(math.sqrt(1.0 + 3.0),)), alpha)
    assert noise_sources.detectable(1.0, 3.0, 10, 1, alpha) == pytest.approx(plain)
    four = noise_sources.detectable(1.0, 3.0, 10, 4, alpha)
    assert four == pytest.approx(plain * math.sqrt((1.0 + 3.0 / 4) / 4.0), rel=1e-4)  # same dof, se scales
    assert noise_sources.detectable(1.0, 3.0, 10, 10 ** 6, alpha) > noise_sources.detectable(1.0, 0.0, 10, 1, alpha) * 0.999


def test_the_claims_are_the_paired_primaries_scored_on_samples(default_params):
    chosen, primaries = noise_sources.claims(default_params)
    assert chosen == [("msgan", "ndb"), ("msgan", "lpips.per_condition"), ("icgan", "fid"), ("p2gan", "fid")]
    assert primaries == 5  # bigbigan's probe counts for the level, but its noise is not a sample set's
    assert noise_sources.run_metrics(default_params, chosen) == {
        "msgan": ["lpips", "ndb"], "cgan": ["lpips", "ndb"], "icgan": ["fid"], "biggan": ["fid"], "p2gan": ["fid"],
        "lsgan": ["fid"]}
    default_params["comparisons"]["p2gan"]["paired"]["seeds"] = False
    assert ("p2gan", "fid") not in noise_sources.claims(default_params)[0]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "400", "3", "401"], r"seeds \[3\] are verdict or stability seeds"),
    (["--seeds", "400", "401", "105"], r"seeds \[105\] are verdict or stability seeds"),
    (["--seeds", "400", "401"], "at least three distinct seeds"),
    (["--seeds", "400", "401", "402", "--sets", "1"], "two sets per seed"),
])
def test_verdict_seeds_and_designs_that_cannot_split_the_variance_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        noise_sources.main(argv)
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_the_table_reads_each_set_where_it_was_written(tmp_path, default_params):
    seeds, sets = [400, 401, 402], 3
    rng = np.random.default_rng(1)
    expected = {}
    for i, s in enumerate(seeds):
        for k in range(sets):
            base = 20.0 + rng.normal()
            diff = -2.0 + i + 0.1 * k  # seed effect -2, -1, 0; set effect 0, 0.1, 0.2
            expected[s, k] = diff
            for run, value in (("p2gan", base + diff), ("lsgan", base)):
                folder = (tmp_path / "results" / run / f"seed{s}" if k == 0
                          else tmp_path / noise_sources.FOLDER / run / f"seed{s}" / f"set{k}")
                save_json(folder / "fid.json", {"value": value})
        for rule in ("train", "sample", "evaluate"):
            for run in ("p2gan", "lsgan"):
                tsv = tmp_path / "logs" / "benchmark" / rule / f"{run}_seed{s}.tsv"
                tsv.parent.mkdir(parents=True, exist_ok=True)
                tsv.write_text("s\th:m:s\n10.0\t0:00:10\n")
    d, _ = noise_sources.differences(tmp_path, ("p2gan", "lsgan"), "fid", seeds, sets)
    assert np.allclose(d, [[expected[s, k] for k in range(sets)] for s in seeds])

    cost = {(run, s): 2.0 for run in ("p2gan", "lsgan") for s in seeds}
    lines = noise_sources.table(default_params, tmp_path, [("p2gan", "fid")], 5, seeds, sets, cost)
    row = lines[2].split(" | ")
    seed_var, set_var = noise_sources.components(d)
    assert row[0] == "| p2gan: fid (p2gan - lsgan)" and row[1] == "3 x 3" and float(row[2]) == pytest.approx(-0.9)
    assert float(row[5]) == pytest.approx(math.sqrt(set_var), rel=1e-2) and row[6] == f"{set_var / (seed_var + set_var):.0%}"
    assert row[-2] == "60" and row[-1] == "4 |"  # a seed: 3 jobs of 10 s for each run; a set: 2 s for each run
    assert "| 402 | 0 | 0.1 | 0.2 |" in lines


def test_another_phase_draws_another_set_the_same_way_every_time(tmp_path, tiny_params, digits_data):
    out = tmp_path / "run"
    tiny_params["train"].update(steps=2, checkpoint_every=2)
    train_run(tiny_params, "gan", 0, digits_data, out, {})
    study, _, _ = sample.draw(tiny_params, "gan", out, digits_data, {})
    again, _, _ = sample.draw(tiny_params, "gan", out, digits_data, {}, phase="sample")
    other, _, _ = sample.draw(tiny_params, "gan", out, digits_data, {}, phase="sample1")
    other_again, _, _ = sample.draw(tiny_params, "gan", out, digits_data, {}, phase="sample1")
    assert np.array_equal(study, again) and np.array_equal(other, other_again)
    assert not np.array_equal(study, other)
