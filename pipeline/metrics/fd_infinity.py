"""fd_infinity: FD extrapolated to infinitely many generated samples (Chong and Forsyth, CVPR 2020).

FD computed from N samples is biased upwards, by an amount that shrinks like 1/N and differs between
generators, so two models compared at one N can swap places at another. Chong and Forsyth fit
FD_N = FD_inf + slope / N by least squares over ``evaluate.fd_infinity_points`` (15) sample counts N
evenly spaced between a minimum and all the samples, and report the intercept FD_inf; ``slope`` is
recorded too. Real statistics stay those of the backbone reference's ``n_real`` images, as in their
code. Departures, stated: the counts run from ``evaluate.fd_infinity_min_n`` (2,000; theirs 5,000 to
50,000, here at most ``n_fake``, and above the feature dimension so every covariance is full rank
where the features are), and the subsets are nested prefixes of one random order (seed 0) instead
of a fresh shuffle per count: one pass of running sums gives every count's statistics.

Named ``FID-infinity`` with the inception backbone, else ``FD-infinity_<backbone>``. Cost: the
samples' features are fid's (embedded once); one O(N d^2) pass of running sums and, per count, an
r x r eigenvalue problem (r: the real covariance's rank, fid.factor): 1.1 s for 15 counts at
EfficientNet-Lite0's 32 px (r = 542 of 1,280) on one thread; not in the default study.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.metrics.fid import RunningStats, check_count, frechet_distance, load_real

reference = "backbone"
ORDER_SEED = 0


def sample_counts(n: int, n_min: int, points: int) -> np.ndarray:
    if points < 2 or n_min >= n:
        raise PipelineError(f"fd_infinity: counts from evaluate.fd_infinity_min_n ({n_min}) to the {n} samples "
                            f"need fd_infinity_min_n below evaluate.n_fake and at least 2 points")
    return np.unique(np.linspace(n_min, n, points).round().astype(int))


def extrapolate(counts: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ``values`` against 1 / ``counts``."""
    slope, intercept = np.polyfit(1.0 / counts, values, 1)
    return float(intercept), float(slope)


def fd_at_counts(mu: np.ndarray, sigma: np.ndarray, root: np.ndarray, features: np.ndarray, counts: np.ndarray,
                 seed: int = ORDER_SEED) -> np.ndarray:
    """FD against (mu, sigma) of the first N rows of one random order of ``features``, for each N
    (``root``: sigma's factor, fid.factor)."""
    order = np.random.default_rng(seed).permutation(len(features))
    stats, done, out = RunningStats(features.shape[1]), 0, []
    for n in counts:
        stats.update(features[order[done:n]])
        done = n
        out.append(frechet_distance(mu, sigma, *stats.result(), root1=root))
    return np.array(out)


def label(backbone: str) -> str:
    return "FID-infinity" if backbone == "inception" else f"FD-infinity_{backbone}"


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    stats = load_real(ctx.reference_dir("backbone") / "stats.npz")
    backbone, features = ctx.backbone(), ctx.sample_features()
    check_count(int(stats["n"]), backbone.dim, "real")
    check_count(ev["fd_infinity_min_n"], backbone.dim, "generated (evaluate.fd_infinity_min_n)")
    counts = sample_counts(len(features), ev["fd_infinity_min_n"], ev["fd_infinity_points"])
    value, slope = extrapolate(counts, fd_at_counts(stats["mu"], stats["sigma"], stats["root"], features, counts))
    return {"name": label(backbone.name), "value": value, "slope": slope, "n_points": len(counts),
            "n_min": int(counts[0]), "backbone": backbone.name, "weights": backbone.weights,
            "input_size": backbone.input_size, "resize": backbone.resize, "n_real": int(stats["n"]),
            "n_fake": len(features)}
