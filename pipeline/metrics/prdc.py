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

Distances are computed in float64, one block of rows at a time: O((n_real + n_fake)^2 d) time and
O(block * n) memory.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.io import load_npy

reference = "backbone"
BLOCK = 1024


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b`` (float64)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def kth_radii(x: np.ndarray, k: int, block: int = BLOCK) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    out = np.empty(len(x))
    for start in range(0, len(x), block):
        d = distances(x[start:start + block], x)
        out[start:start + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int, block: int = BLOCK) -> dict[str, float]:
    for what, x in (("real", real), ("generated", fake)):
        if len(x) <= k:
            raise PipelineError(f"prdc: {len(x)} {what} samples for k = {k}; use more than {k}")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r, s = kth_radii(real, k, block), kth_radii(fake, k, block)
    inside = np.zeros(len(fake))  # number of real balls holding each fake
    recalled = np.zeros(len(real), bool)
    covered = np.zeros(len(real), bool)
    for start in tqdm(range(0, len(real), block), desc="prdc", disable=None, leave=False):
        d = distances(real[start:start + block], fake)
        rb = r[start:start + block, None]
        inside += (d < rb).sum(0)
        recalled[start:start + block] = (d < s[None, :]).any(1)
        covered[start:start + block] = d.min(1) < rb[:, 0]
    return {"precision": float((inside > 0).mean()), "recall": float(recalled.mean()),
            "density": float(inside.mean() / k), "coverage": float(covered.mean())}


def compute(ctx) -> dict:
    real = load_npy(ctx.reference_dir("backbone") / "features.npy")
    backbone = ctx.backbone()
    if real.shape[1] != backbone.dim:
        raise PipelineError(f"prdc: reference features are {real.shape[1]}-d but {backbone.name} gives "
                            f"{backbone.dim}-d; rebuild results/reference/backbone")
    fake = ctx.sample_features()
    k = ctx.params["evaluate"]["prdc_k"]
    scores = prdc(real, fake, k)
    return {"name": f"PRDC-precision_{backbone.name}", "value": scores.pop("precision"), **scores, "k": k,
            "backbone": backbone.name, "input_size": backbone.input_size,
            "resize": backbone.resize, "n_real": len(real), "n_fake": len(fake)}
