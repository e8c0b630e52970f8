"""kid: Kernel Inception Distance (Binkowski et al. 2018) in the evaluation backbone's feature space.

The unbiased estimate of the squared MMD between real and generated features with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, d the feature dimension:

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

on ``evaluate.kid_subsets`` random pairs of subsets of ``evaluate.kid_subset_size`` real and
generated features (torch-fidelity's defaults, 100 of 1,000; the size is capped by the smaller
sample count, and the json states what was used). ``value`` is the mean over subsets,
``subset_std`` their standard deviation. Unlike FD, the estimate is unbiased at any sample count. Features are
the ones FD and PRDC read (the run's samples embedded once; the reference's real features).
Named ``KID`` only with the ``inception`` backbone, else ``KD_<backbone>``, as FD is.

Cost: the three kernel matrices over all n_real and n_fake features are computed once,
O((n_real + n_fake)^2 d), and every subset reads its blocks: O(subsets * size^2).
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.io import load_npy

reference = "backbone"
SUBSET_SEED = 0


def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The cubic polynomial kernel matrix of the rows of x and y: float32 products (sgemm), float64 powers."""
    dots = x.astype(np.float32) @ y.T.astype(np.float32)
    return (dots.astype(np.float64) / x.shape[1] + 1) ** 3


def mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 from the kernel matrices of one subset pair (equal sizes m)."""
    m = len(k_xx)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def kid(real: np.ndarray, fake: np.ndarray, subsets: int, size: int, seed: int = SUBSET_SEED) -> tuple[float, float, int]:
    """(mean, std) of MMD^2 over ``subsets`` random subset pairs, and the subset size used."""
    size = min(size, len(real), len(fake))
    if size < 2:
        raise PipelineError(f"kid: subsets need at least 2 real and 2 generated samples, got {len(real)} and {len(fake)}")
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        r = rng.choice(len(real), size, replace=False)
        f = rng.choice(len(fake), size, replace=False)
        values.append(mmd2(k_rr[np.ix_(r, r)], k_ff[np.ix_(f, f)], k_rf[np.ix_(r, f)]))
    return float(np.mean(values)), float(np.std(values)), size


def label(backbone: str) -> str:
    return "KID" if backbone == "inception" else f"KD_{backbone}"


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    real = load_npy(ctx.reference_dir("backbone") / "features.npy")
    backbone = ctx.backbone()
    if real.shape[1] != backbone.dim:
        raise PipelineError(f"kid: reference features are {real.shape[1]}-d but {backbone.name} gives "
                            f"{backbone.dim}-d; rebuild results/reference/backbone")
    mean, std, size = kid(real, ctx.sample_features(), ev["kid_subsets"], ev["kid_subset_size"])
    return {"name": label(backbone.name), "value": mean, "subset_std": std, "subsets": ev["kid_subsets"],
            "n_subset": size, "kernel": "(x.y / d + 1)^3", "backbone": backbone.name,
            "input_size": backbone.input_size,
            "resize": backbone.resize, "n_real": len(real), "n_fake": len(ctx.sample_features())}
