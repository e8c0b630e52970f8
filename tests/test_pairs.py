"""Each comparison's pair differs only in the settings its paper contributes (params.yaml)."""
from __future__ import annotations

import copy

import pytest

from pipeline import pairs


def test_default_pairs_differ_only_in_their_declared_contribution(default_params):
    for paper, spec in default_params["comparisons"].items():
        assert pairs.undeclared(default_params, spec) == [], paper
        assert pairs.differences(default_params["methods"][spec["method"]],
                                 default_params["methods"][spec["baseline"]]), f"{paper}: the pair is one run"


@pytest.mark.parametrize("paper", ["msgan", "icgan", "p2gan", "bigbigan"])
@pytest.mark.parametrize("key", ["lr_d", "beta1", "ema", "hflip", "sn"])
def test_an_undeclared_recipe_difference_is_caught(default_params, paper, key):
    params = copy.deepcopy(default_params)
    baseline = params["methods"][params["comparisons"][paper]["baseline"]]
    baseline[key] = not baseline[key] if isinstance(baseline[key], bool) else baseline[key] + 0.5
    assert pairs.undeclared(params, params["comparisons"][paper]) == [key]


def test_a_key_only_one_side_has_is_a_difference():
    assert pairs.differences({"method": "icgan", "embed_dim": 8, "lr": 1}, {"method": "gan", "lr": 1}) == {
        "method": ("icgan", "gan"), "embed_dim": (8, pairs.ABSENT)}
