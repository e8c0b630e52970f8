"""prdc: improved precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020).

Computed in the evaluation backbone's feature space, against the real features stored by the
``backbone`` reference (results/reference/backbone/features.npy, the ``evaluate.n_real`` images
fid uses), with k = ``evaluate.prdc_k`` (5) and Euclidean distances, as the reference code
(clovaai/generative-evaluation-prdc) defines them. With r_i the distance from real i to its k-th
nearest other real and s_j the same among the fakes:

- precision (``value``): fraction of fakes inside at least one real ball B(x_i, r_i);
- recall: fraction of reals inside at least one fake ball B(y_j, s_j);
- density: mean over fakes of (number of real balls containing it) / k;
- coverage: fraction of reals whose nearest fake lies inside their ball.

Distances are float64, from the inner products shared with kid (pipeline/metrics/gram.py),
O((n_real + n_fake)^2 d), kept whole up to gram.BUDGET (2 GiB; 600 MB at 5,000 + 5,000 rows), else
computed a block of rows at a time (memory O(block x n)). The real radii
depend on the real features alone: the backbone reference computes them once per study.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.metrics.gram import Products

reference = "backbone"


def distances(norms_a: np.ndarray, norms_b: np.ndarray, dots: np.ndarray) -> np.ndarray:
    """Euclidean distances from squared norms and inner products (float64)."""
    return np.sqrt(np.maximum(norms_a[:, None] + norms_b[None, :] - 2 * dots, 0))


def kth_radii(p: Products, side: str, k: int) -> np.ndarray:
    """Distance from each real (``side`` "r") or generated ("f") row to its k-th nearest other row."""
    norms = p.norms[side]
    out = np.empty(len(norms))
    for start, dots in p.rows(side * 2):
        d = distances(norms[start:start + len(dots)], norms, dots)
        out[start:start + len(dots)] = np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """PRDC of two feature arrays: see :func:`prdc_of`."""
    for what, x in (("real", real), ("generated", fake)):
        if len(x) <= k:
            raise PipelineError(f"prdc: {len(x)} {what} samples for k = {k}; use more than {k}")
    return prdc_of(Products(real, fake), k)


def real_radii(p: Products, k: int) -> np.ndarray:
    """The real rows' k-th neighbour radii, as :func:`prdc_of` computes them."""
    if p.n_real <= k:
        raise PipelineError(f"prdc: {p.n_real} real samples for k = {k}; use more than {k} (evaluate.n_real)")
    return kth_radii(p, "r", k)


def prdc_of(p: Products, k: int, r: np.ndarray | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage; ``r``: the real radii of :func:`real_radii`, computed
    here when None."""
    n_real, n_fake = p.n_real, p.n_fake
    for what, n in (("real", n_real), ("generated", n_fake)):
        if n <= k:
            raise PipelineError(f"prdc: {n} {what} samples for k = {k}; use more than {k}")
    r = kth_radii(p, "r", k) if r is None else r
    s = kth_radii(p, "f", k)
    norms_r, norms_f = p.norms["r"], p.norms["f"]
    inside = np.zeros(n_fake)  # number of real balls holding each fake
    recalled = np.zeros(n_real, bool)
    covered = np.zeros(n_real, bool)
    for start, dots in tqdm(p.rows("rf"), desc="prdc", disable=None, leave=False):
        stop = start + len(dots)
        d = distances(norms_r[start:stop], norms_f, dots)
        rb = r[start:stop, None]
        inside += (d < rb).sum(0)
        recalled[start:stop] = (d < s[None, :]).any(1)
        covered[start:stop] = d.min(1) < rb[:, 0]
    return {"precision": float((inside > 0).mean()), "recall": float(recalled.mean()),
            "density": float(inside.mean() / k), "coverage": float(covered.mean())}


def compute(ctx) -> dict:
    backbone, products = ctx.backbone(), ctx.products()
    k = ctx.params["evaluate"]["prdc_k"]
    scores = prdc_of(products, k, ctx.real_terms("prdc_radii", {"prdc_k": k}))
    return {"name": f"PRDC-precision_{backbone.name}", "value": scores.pop("precision"), **scores, "k": k,
            "backbone": backbone.name, "input_size": backbone.input_size,
            "resize": backbone.resize, "n_real": products.n_real, "n_fake": products.n_fake}
