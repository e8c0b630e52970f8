"""The statistics behind each paper comparison's verdicts: paired or Welch intervals, Holm's
step-down over the study's pre-registered primary claims, and power.

- **Design.** A claim's difference is method minus baseline over seeds. When the comparison declares
  its seeds paired (``comparisons.<paper>.paired``: the runs share their random streams per seed,
  pipeline/streams.py) the test is the one-sample t test of the per-seed differences over the seeds
  both sides ran; otherwise Welch's t test. A claim ``against`` another column of the method's own
  rows is always paired (the same run at the same seed).
- **Primary claims** (``comparisons.<paper>.primary``, named before results exist) share one
  family-wise error rate of ``ALPHA``: Holm's step-down over the two-sided p-values of every primary
  of the study. A rejected primary is *supported* when its difference is in the claimed direction,
  *contradicted* otherwise; the rest are *inconclusive*.
- **Secondary claims** keep their unadjusted 95% interval and are labelled *descriptive*: never
  supported or contradicted.
- **Power.** ``detectable`` is the smallest true difference the design detects with ``POWER``
  probability at level ``ALPHA / m`` (m primaries: Holm's first and strictest step, so the figure
  is conservative), from the observed standard deviation(s) and the noncentral t distribution
  (exact for the paired design; for Welch's, with its degrees of freedom fixed at the observed
  variances, about 5 points optimistic at 5 seeds per run, by simulation in tests/test_verdicts.py);
  ``seeds_needed``, for an inconclusive primary whose difference goes the claimed way, how many
  seeds per run the observed difference would need for the same power (None above ``MAX_SEEDS``).
- **Replication.** ``sets_differ`` tests whether a second study of a claim (other seeds, or the
  same seeds on another kind of machine) estimates the same difference, so that a changed verdict
  can be told apart from chance: a supported/inconclusive split whose estimates do not differ is
  what an underpowered claim gives.

Costs are negligible: a handful of t quantiles per claim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

ALPHA, POWER, MAX_SEEDS = 0.05, 0.8, 1000


@dataclass
class Estimate:
    """One claim's difference (method - baseline) and its test; None where it cannot be computed."""

    design: str  # "paired" or "Welch"
    n_method: int
    n_baseline: int
    difference: float
    low: float | None = None  # 95% interval (unadjusted)
    high: float | None = None
    p: float | None = None  # two-sided
    sd: tuple[float, ...] = ()  # paired: (sd of differences,); Welch: (sd method, sd baseline)

    @property
    def n(self) -> int:
        return min(self.n_method, self.n_baseline)

    def why_untested(self) -> str | None:
        """Why there is no t test (too few seeds, or no spread to estimate an error from); None when there is."""
        if self.p is not None:
            return None
        seeds = f"{self.n} seed(s) {'both runs ran' if self.design == 'paired' else 'per run'}"
        if self.n < 2:
            return f"{seeds}; an interval needs at least 2"
        spread = "the per-seed differences are all equal" if self.design == "paired" else "neither run's values vary"
        return f"{seeds}, but {spread}: no error to test against"

    def interval(self) -> str:
        return "none" if self.low is None else f"[{self.low:.4g}, {self.high:.4g}]"


def _t_test(diff: float, se: float, dof: float) -> tuple[float, float, float]:
    """(low, high, p) of a t statistic diff / se with ``dof`` degrees of freedom."""
    if se == 0:
        return diff, diff, 1.0 if diff == 0 else 0.0
    half = float(stats.t.ppf(1 - ALPHA / 2, dof) * se)
    return diff - half, diff + half, float(2 * stats.t.sf(abs(diff) / se, dof))


def satterthwaite(*terms: tuple[float, float]) -> float:
    """Degrees of freedom of a sum of independent variance terms, each (variance, its degrees of freedom)."""
    total = sum(v for v, _ in terms)
    return total ** 2 / sum(v ** 2 / dof for v, dof in terms) if total > 0 else float(sum(dof for _, dof in terms))


def welch_dof(va: float, vb: float, na: int, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom of per-run variances ``va``, ``vb`` over ``na``, ``nb`` seeds."""
    return satterthwaite((va / na, na - 1), (vb / nb, nb - 1))


def estimate(method: pd.Series, baseline: pd.Series, paired: bool) -> Estimate:
    """The claim's test from per-seed values (indexed by seed) of the method and the baseline."""
    if paired:
        common = method.index.intersection(baseline.index)
        d = (method[common] - baseline[common]).to_numpy(float)
        t = Estimate("paired", len(d), len(d), float(d.mean()) if len(d) else math.nan)
        if len(d) >= 2:
            t.sd = (float(d.std(ddof=1)),)
            if t.sd[0] > 0:
                t.low, t.high, t.p = _t_test(t.difference, t.sd[0] / math.sqrt(len(d)), len(d) - 1)
        return t
    a, b = method.to_numpy(float), baseline.to_numpy(float)
    t = Estimate("Welch", len(a), len(b), float(a.mean() - b.mean()) if len(a) and len(b) else math.nan)
    if len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1), b.var(ddof=1)
        t.sd = (math.sqrt(va), math.sqrt(vb))
        if va + vb > 0:
            t.low, t.high, t.p = _t_test(t.difference, math.sqrt(va / len(a) + vb / len(b)), welch_dof(va, vb, len(a), len(b)))
    return t


def _se_dof(t: Estimate, n: int) -> tuple[float, float]:
    """Standard error and degrees of freedom of ``t``'s design with ``n`` seeds per run."""
    if t.design == "paired":
        return t.sd[0] / math.sqrt(n), n - 1
    va, vb = t.sd[0] ** 2, t.sd[1] ** 2
    return math.sqrt((va + vb) / n), welch_dof(va, vb, n, n)


def _power_nc(nc: float, dof: float, alpha: float) -> float:
    """Two-sided t test's rejection probability at noncentrality ``nc``."""
    crit = stats.t.ppf(1 - alpha / 2, dof)
    value = stats.nct.sf(crit, dof, nc) + stats.nct.cdf(-crit, dof, nc)
    return 1.0 if math.isnan(value) else float(value)  # scipy gives NaN far out in the tail, where power is 1


def power(t: Estimate, delta: float, n: int, alpha: float) -> float:
    """The probability that ``t``'s design with ``n`` seeds per run rejects at two-sided level ``alpha``
    when the true difference is ``delta`` (variances as observed)."""
    se, dof = _se_dof(t, n)
    if se == 0:
        return 1.0 if delta else alpha
    return _power_nc(abs(delta) / se, dof, alpha)


def detectable(t: Estimate, alpha: float) -> float | None:
    """The true difference detected with probability POWER at the seeds ``t`` has."""
    if not t.sd or t.n < 2:
        return None
    se, dof = _se_dof(t, t.n)
    if se == 0:
        return 0.0
    high = 1.0
    while _power_nc(high, dof, alpha) < POWER:
        high *= 2
    nc = optimize.brentq(lambda x: _power_nc(x, dof, alpha) - POWER, 0.0, high, xtol=1e-6)
    return float(nc * se)


def seeds_needed(t: Estimate, alpha: float) -> int | None:
    """Seeds per run at which the observed difference would be detected with probability POWER."""
    if t.p is None or t.difference == 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if power(t, t.difference, n, alpha) >= POWER:
            return n
    return None


def sets_differ(a: Estimate, b: Estimate) -> float | None:
    """Two-sided p that two independent studies of one claim (disjoint seed sets) estimate the same true
    difference: Welch's t on ``a.difference - b.difference``, its degrees of freedom by Satterthwaite from
    each study's standard error and degrees of freedom (for paired claims exactly Welch's test on the two
    sets' per-seed differences). None without deviations. For one seed set on two kinds of machine the
    studies are not independent (a seed keeps scores correlated, docs/performance.md), so p is conservative."""
    if not (a.sd and b.sd) or a.n < 2 or b.n < 2:
        return None
    (se_a, dof_a), (se_b, dof_b) = _se_dof(a, a.n), _se_dof(b, b.n)
    dof = satterthwaite((se_a ** 2, dof_a), (se_b ** 2, dof_b))
    return _t_test(a.difference - b.difference, math.hypot(se_a, se_b), dof)[2]


def holm(p_values: list[float]) -> list[tuple[float, bool]]:
    """Holm's step-down at ALPHA: per p-value (in the order given), its adjusted p and whether it is rejected."""
    order = np.argsort(p_values, kind="stable")
    m, adjusted, running, rejecting = len(p_values), [0.0] * len(p_values), 0.0, True
    out: list[tuple[float, bool]] = [(1.0, False)] * m
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
        rejecting = rejecting and p_values[i] <= ALPHA / (m - rank)
        out[i] = (running, rejecting)
    return out


def agrees(difference: float, direction: str) -> bool:
    """Whether a difference (method - baseline) lies on the claimed side of 0 ("lower" or "higher")."""
    return (difference < 0) == (direction == "lower") and difference != 0


def primary_verdict(t: Estimate, direction: str, p_holm: float, rejected: bool) -> str:
    """The verdict of a primary claim after Holm's adjustment."""
    if not rejected:
        return f"inconclusive (Holm-adjusted p = {p_holm:.3g})"
    return f"{'supported' if agrees(t.difference, direction) else 'contradicted'} (Holm-adjusted p = {p_holm:.3g})"


def secondary_verdict(t: Estimate, direction: str) -> str:
    """A secondary claim's label: where its unadjusted interval lies, never a verdict."""
    if t.n == 0:
        return f"not testable: {t.why_untested()}"
    if t.low is None:
        side = ("no difference" if t.difference == 0
                else f"the direction {'agrees' if agrees(t.difference, direction) else 'disagrees'}")
        return f"descriptive: {side}; {t.why_untested()}"
    if t.low <= 0 <= t.high:
        return "descriptive: the interval includes 0"
    return f"descriptive: the interval excludes 0 {'in' if agrees(t.high, direction) else 'against'} the claimed direction"
