"""pipeline/verdicts.py against independent computations: scipy's t tests, Holm's procedure by hand,
the normal approximation of power at large n, a Monte Carlo estimate of power, and Welch's test
between two seed sets (scipy's, and the four-variance Satterthwaite form by hand)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline import verdicts


def series(values, seeds=None) -> pd.Series:
    return pd.Series(values, index=seeds if seeds is not None else range(len(values)), dtype=float)


def test_paired_estimate_is_scipys_paired_t_test_over_the_common_seeds():
    a, b = series([30.0, 31.0, 30.5, 29.0], [0, 1, 2, 3]), series([40.0, 41.0, 42.0], [0, 1, 2])
    got = verdicts.estimate(a, b, paired=True)
    ref = stats.ttest_rel(a[[0, 1, 2]], b[[0, 1, 2]])
    ci = ref.confidence_interval(0.95)
    assert got.design == "paired" and got.n == 3 and got.difference == pytest.approx(-10.5)
    assert got.p == pytest.approx(ref.pvalue) and (got.low, got.high) == pytest.approx((ci.low, ci.high))


def test_unpaired_estimate_is_welchs_t_test():
    a, b = series([1.0, 2.0, 4.0]), series([3.0, 3.5, 6.0, 7.0])
    got = verdicts.estimate(a, b, paired=False)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert got.design == "Welch" and got.p == pytest.approx(ref.pvalue)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high))


def test_pairing_removes_the_variance_seeds_share():
    shared = np.array([0.0, 10.0, -8.0, 5.0, 3.0])  # a seed's luck, common to both runs
    a, b = series(shared + 1.0 + [0.1, -0.1, 0.05, 0.0, -0.05]), series(shared)
    assert verdicts.estimate(a, b, paired=True).p < 1e-4 < 0.5 < verdicts.estimate(a, b, paired=False).p


def test_sets_differ_is_welchs_test_on_the_two_sets_per_seed_differences():
    rng = np.random.default_rng(3)
    m1, b1 = rng.normal(1, 1, 10), rng.normal(0, 1, 10)
    m2, b2 = rng.normal(2, 3, 6), rng.normal(0, 3, 6)
    first = verdicts.estimate(series(m1), series(b1), paired=True)
    second = verdicts.estimate(series(m2), series(b2), paired=True)
    reference = stats.ttest_ind(m1 - b1, m2 - b2, equal_var=False).pvalue
    assert verdicts.sets_differ(first, second) == pytest.approx(reference)


def test_sets_differ_of_unpaired_claims_pools_all_four_variances_by_hand():
    m1, b1, m2, b2 = [1.0, 2.0, 4.0, 3.0], [3.0, 3.5, 6.0, 7.0], [5.0, 1.0, 2.0, 2.5], [2.0, 4.0, 3.0, 1.0]
    first = verdicts.estimate(series(m1), series(b1), paired=False)
    second = verdicts.estimate(series(m2), series(b2), paired=False)
    parts = [np.var(x, ddof=1) / len(x) for x in (m1, b1, m2, b2)]
    dof = sum(parts) ** 2 / sum(v ** 2 / 3 for v in parts)
    t = (first.difference - second.difference) / math.sqrt(sum(parts))
    assert verdicts.sets_differ(first, second) == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert verdicts.sets_differ(first, verdicts.estimate(series([1.0]), series([2.0]), paired=False)) is None


def test_one_seed_gives_no_interval_and_a_descriptive_direction():
    got = verdicts.estimate(series([1.0]), series([2.0]), paired=True)
    assert got.p is None and got.low is None and got.difference == -1.0
    assert (verdicts.secondary_verdict(got, "lower")
            == "descriptive: the direction agrees; 1 seed(s) both runs ran; an interval needs at least 2")
    assert verdicts.detectable(got, 0.05) is None and verdicts.seeds_needed(got, 0.05) is None


def test_paired_runs_without_a_common_seed_are_not_testable_and_get_no_direction():
    got = verdicts.estimate(series([1.0, 2.0], [0, 1]), series([5.0, 6.0], [2, 3]), paired=True)
    assert got.n == 0 and got.p is None and math.isnan(got.difference)
    for direction in ("lower", "higher"):
        assert (verdicts.secondary_verdict(got, direction)
                == "not testable: 0 seed(s) both runs ran; an interval needs at least 2")


def test_differences_without_spread_give_no_test():
    # two seeds, both differences 3: the t statistic would be infinite and p 0 ("supported" on two integers)
    got = verdicts.estimate(series([5.0, 8.0]), series([2.0, 5.0]), paired=True)
    assert got.p is None and got.low is None and got.difference == 3.0 and verdicts.seeds_needed(got, 0.05) is None
    assert got.why_untested() == "2 seed(s) both runs ran, but the per-seed differences are all equal: no error to test against"
    assert verdicts.secondary_verdict(got, "higher").startswith("descriptive: the direction agrees; 2 seed(s)")
    welch = verdicts.estimate(series([1.0, 1.0]), series([2.0, 2.0]), paired=False)
    assert welch.p is None and welch.why_untested().endswith("but neither run's values vary: no error to test against")


def test_holm_by_hand():
    # sorted: 0.01 <= 0.05/4 rejects; 0.02 <= 0.05/3 fails, so it and everything after is kept
    got = verdicts.holm([0.04, 0.01, 0.3, 0.02])
    assert [r for _, r in got] == [False, True, False, False]
    assert [p for p, _ in got] == pytest.approx([0.08, 0.04, 0.3, 0.06])  # 2*0.04, 4*0.01, 1*0.3, 3*0.02
    assert verdicts.holm([0.001, 0.024]) == [(0.002, True), (0.024, True)]


def test_verdicts_of_primary_and_secondary_claims():
    est = verdicts.estimate(series([1.0, 1.2, 1.1]), series([2.0, 2.1, 2.3]), paired=True)
    assert verdicts.primary_verdict(est, "lower", 0.01, True).startswith("supported")
    assert verdicts.primary_verdict(est, "higher", 0.01, True).startswith("contradicted")
    assert verdicts.primary_verdict(est, "lower", 0.2, False) == "inconclusive (Holm-adjusted p = 0.2)"
    assert verdicts.secondary_verdict(est, "higher") == "descriptive: the interval excludes 0 against the claimed direction"


def test_power_matches_the_normal_approximation_at_large_n():
    rng = np.random.default_rng(0)
    est = verdicts.estimate(series(rng.normal(0, 2.0, 1000)), series(np.zeros(1000)), paired=True)
    se = est.sd[0] / math.sqrt(1000)
    expected = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se
    assert verdicts.detectable(est, 0.05) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("paired", [True, False])
def test_detectable_difference_is_rejected_80_percent_of_the_time_by_simulation(paired):
    a, b = series([3.0, 5.0, 4.0, 6.5, 2.5]), series([1.0, 2.5, 0.5, 4.0, 2.0])
    est = verdicts.estimate(a, b, paired=paired)
    alpha = 0.05 / 4
    delta = verdicts.detectable(est, alpha)
    rng = np.random.default_rng(1)
    n, sims = est.n, 20_000
    if paired:
        d = rng.normal(delta, est.sd[0], (sims, n))
        p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    else:
        x, y = rng.normal(delta, est.sd[0], (sims, n)), rng.normal(0.0, est.sd[1], (sims, n))
        p = stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue
    # paired: exact (noncentral t); Welch: its degrees of freedom are fixed at the observed variances,
    # an approximation that overstates power by a few points at 5 seeds
    assert (p <= alpha).mean() == pytest.approx(verdicts.POWER - (0 if paired else 0.045), abs=0.015)


def test_seeds_needed_is_the_first_count_with_enough_power():
    est = verdicts.estimate(series([1.0, 3.0, 2.0]), series([1.5, 2.0, 1.0]), paired=True)
    n = verdicts.seeds_needed(est, 0.01)
    assert n is not None and n > 3
    assert verdicts.power(est, est.difference, n - 1, 0.01) < verdicts.POWER <= verdicts.power(est, est.difference, n, 0.01)
