"""benchmarks/tune.py: the search rules that keep tuning from favouring a method, and its choice."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("tune", ROOT / "benchmarks" / "tune.py")
tune = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tune)

SHARED = [{"sn": False}, {"sn": True}]
OWN = {"method": [{"sigma_b": 0.1}, {"sigma_b": 1.0}], "baseline": [{"c": 0.0}, {"c": 1.0}]}


@pytest.mark.parametrize("seeds, shared, own, message", [
    ([2, 200], SHARED, OWN, r"tuning seeds \[2\] are verdict or stability seeds"),
    ([101], SHARED, OWN, r"tuning seeds \[101\] are verdict or stability seeds"),
    ([200], [{"sigma_b": 1.0}], OWN, r"--shared keys \['sigma_b'\] are in comparisons.p2gan.differs_in"),
    ([200], SHARED, {"method": OWN["method"], "baseline": []}, "must get the same search"),
    ([200], SHARED, {"method": [{"sn": True}], "baseline": [{"c": 1.0}]}, r"method options \['sn'\] are not in"),
    ([200], SHARED, {"method": [{"a": 1.0}], "baseline": [{"c": 1.0}]}, r"run 'p2gan' has no settings \['a'\]"),
])
def test_a_search_that_could_favour_one_side_is_refused(default_params, seeds, shared, own, message):
    forbidden = {*default_params["train"]["seeds"], *range(100, 100 + len(default_params["train"]["seeds"]))}
    with pytest.raises(SystemExit, match=message):
        tune.check(default_params, "p2gan", seeds, forbidden, shared, own)


def test_the_shared_option_is_chosen_by_the_pair_then_each_side_takes_its_own_best(default_params):
    comp = default_params["comparisons"]["p2gan"]
    runs = tune.variants(default_params, comp, SHARED, OWN)
    assert len(runs) == 8 and runs["tune_p2gan_3"][3]["sn"] is True and runs["tune_p2gan_3"][3]["sigma_b"] == 1.0
    assert runs["tune_lsgan_1"][3]["c"] == 1.0 and runs["tune_lsgan_1"][3]["sn"] is False
    # sn true is the method's best (10) but the pair's worse (10 + 40 against 15 + 20)
    means = {"tune_p2gan_0": 15, "tune_p2gan_1": 16, "tune_p2gan_2": 10, "tune_p2gan_3": 11,
             "tune_lsgan_0": 21, "tune_lsgan_1": 20, "tune_lsgan_2": 40, "tune_lsgan_3": 41}
    scores = {r: np.array([v - 1.0, v + 1.0]) for r, v in means.items()}
    shared, chosen = tune.choose(scores, runs, sign=1.0)
    assert shared == 0 and chosen == {"method": "tune_p2gan_0", "baseline": "tune_lsgan_1"}
    shared, chosen = tune.choose(scores, runs, sign=-1.0)  # higher is better
    assert shared == 1 and chosen == {"method": "tune_p2gan_3", "baseline": "tune_lsgan_3"}
