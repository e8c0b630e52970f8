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

Cost: the inner products of all n_real and n_fake features, O((n_real + n_fake)^2 d), are shared
with prdc (pipeline/metrics/gram.py); the kernels are elementwise, and all subsets' sums come from
three products with the subsets' membership matrix, O((n_real + n_fake)^2 subsets). The first sum
depends on the real features alone: the backbone reference computes it once per study
(:func:`real_within`, for ``evaluate.n_fake`` generated samples, which fixes the subsets' draws).
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.metrics.gram import Products

reference = "backbone"
SUBSET_SEED = 0


def kernel(dots: np.ndarray, dim: int) -> np.ndarray:
    """The cubic polynomial kernel of inner products ``dots`` of ``dim``-d rows."""
    return (dots / dim + 1) ** 3


def kid(real: np.ndarray, fake: np.ndarray, subsets: int, size: int, seed: int = SUBSET_SEED) -> tuple[float, float, int]:
    """KID of two feature arrays: see :func:`kid_of`."""
    return kid_of(Products(real, fake), subsets, size, seed)


def memberships(n_real: int, n_fake: int, subsets: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 membership matrices (n x subsets) of the real and generated subsets, drawn alternately
    from one generator: the real subsets may depend on n_fake too (numpy's rejection sampling)."""
    rng = np.random.default_rng(seed)
    s_r, s_f = np.zeros((n_real, subsets)), np.zeros((n_fake, subsets))
    for j in range(subsets):
        s_r[rng.choice(n_real, size, replace=False), j] = 1
        s_f[rng.choice(n_fake, size, replace=False), j] = 1
    return s_r, s_f


def subset_size(size: int, n_real: int, n_fake: int) -> int:
    size = min(size, n_real, n_fake)
    if size < 2:
        raise PipelineError(f"kid: subsets need at least 2 real and 2 generated samples, got {n_real} and {n_fake}")
    return size


def quadratic(p: Products, pair: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left^T K right per subset column, K the kernel of the pair's products, a block of rows at a time."""
    return sum((left[start:start + len(block)] * (kernel(block, p.dim) @ right)).sum(0)
               for start, block in p.rows(pair))


def within(p: Products, side: str, s: np.ndarray) -> np.ndarray:
    """Per subset, the kernel summed over its pairs i != j of real (``side`` "r") or generated ("f") rows."""
    return quadratic(p, side * 2, s, s) - kernel(p.norms[side], p.dim) @ s


def real_within(p: Products, n_fake: int, subsets: int, size: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """The real subsets' within sums that :func:`kid_of` computes for ``n_fake`` generated rows."""
    size = subset_size(size, p.n_real, n_fake)
    s_r, _ = memberships(p.n_real, n_fake, subsets, size, seed)
    return within(p, "r", s_r)


def kid_of(p: Products, subsets: int, size: int, seed: int = SUBSET_SEED,
           xx: np.ndarray | None = None) -> tuple[float, float, int]:
    """(mean, std) of MMD^2 over ``subsets`` random subset pairs, and the subset size used; ``xx``:
    the real within sums of :func:`real_within` with the same arguments, computed here when None.

    A subset's sums are s^T K s with s its 0/1 membership vector, so all subsets come from three
    matrix products K S (S: n x subsets), not from copying 3 x subsets blocks of the kernels."""
    size = subset_size(size, p.n_real, p.n_fake)
    s_r, s_f = memberships(p.n_real, p.n_fake, subsets, size, seed)
    xx = within(p, "r", s_r) if xx is None else xx
    values = (xx + within(p, "f", s_f)) / (size * (size - 1)) - 2 * quadratic(p, "rf", s_r, s_f) / size**2
    return float(values.mean()), float(values.std()), size


def label(backbone: str) -> str:
    return "KID" if backbone == "inception" else f"KD_{backbone}"


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    backbone, products = ctx.backbone(), ctx.products()
    xx = ctx.real_terms("kid_within", {"kid_subsets": ev["kid_subsets"], "kid_subset_size": ev["kid_subset_size"],
                                       "n_fake": products.n_fake})
    mean, std, size = kid_of(products, ev["kid_subsets"], ev["kid_subset_size"], xx=xx)
    return {"name": label(backbone.name), "value": mean, "subset_std": std, "subsets": ev["kid_subsets"],
            "n_subset": size, "kernel": "(x.y / d + 1)^3", "backbone": backbone.name,
            "input_size": backbone.input_size,
            "resize": backbone.resize, "n_real": products.n_real, "n_fake": products.n_fake}
