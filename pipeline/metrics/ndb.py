"""ndb: Number of statistically Different Bins, and the Jensen-Shannon divergence of the bins.

Richardson & Weiss (2018), following their reference code (eitanrich/gans-n-gmms, utils/ndb.py):

- bins (reference ``ndb``, built once per dataset into results/reference/ndb/bins.npz): K-means
  with K = ``evaluate.ndb_bins`` on training images as flattened pixels in [0, 1] (standardised
  per pixel when ``evaluate.ndb_whiten``), fitted with faiss (k-means++ start, 100 iterations,
  seed 0, every point used). As in the reference, when d > 1000 the clustering and the assignment
  use a fixed random subset of d // 6 pixels; centres are the means of their members over all
  pixels; bins are sorted by size (empty ones dropped). Whitening leaves out the pixels that are
  constant in the training images (Fashion-MNIST's zero-padded border): every centre is 0 there,
  so they change no argmin, while a sample's value there, divided by the reference's std of 1e-6,
  would swamp the other pixels' distances in floating point.
- each generated sample goes to its nearest centre (L2 in float64, exact);
- per bin, a two-sided two-proportion z-test with pooled proportion p:
  ``z = (p_train - p_gen) / sqrt(p (1 - p) (1/n_train + 1/n_gen))``; the bin is different when
  the p-value is below ``evaluate.ndb_alpha`` (0.05). ``value`` is NDB (the count), ``ndb_k`` NDB/K
  with K the bins requested (``evaluate.ndb_bins``, as the reference divides), ``n_bins`` the bins kept;
- ``jsd``: JSD of the two bin-proportion vectors, natural log (at most ln 2).

Two independent samples of the same distribution give NDB/K near alpha.
Cost: fitting O(iterations * n_train * K * d'), evaluating O(n * K * d'), d' the pixels used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import faiss
import numpy as np
from scipy.special import ndtr  # the standard normal cdf, scipy.stats.norm.cdf without importing scipy.stats (0.2 s)

from pipeline.errors import PipelineError
from pipeline.io import load_npz, save_npz
from pipeline.subsets import real_subset

reference = "ndb"
ITERATIONS = 100
SEED = 0
STD_EPS = 1e-6  # the reference's ndb_eps, added to the per-pixel std when whitening


def flatten(images: np.ndarray) -> np.ndarray:
    """uint8 N,H,W,C -> float32 N,d in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def faiss_kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster labels of the rows of ``x`` (float32) by faiss K-means."""
    km = faiss.Kmeans(x.shape[1], k, niter=ITERATIONS, seed=seed, max_points_per_centroid=len(x),
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(x)
    return km.index.search(x, 1)[1][:, 0]


def used_dims(d: int, seed: int) -> np.ndarray:
    """The pixels used for clustering and assignment: all, or a random d // 6 when d > 1000."""
    if d <= 1000:
        return np.arange(d)
    return np.sort(np.random.default_rng(seed).choice(d, d // 6, replace=False))


def fit(x: np.ndarray, k: int, whiten: bool, seed: int = SEED,
        cluster: Callable[[np.ndarray, int, int], np.ndarray] = faiss_kmeans) -> dict[str, np.ndarray]:
    """Bins of training rows ``x``: centres, proportions (sorted by size), mean, std, dims, n."""
    n, d = x.shape
    if n < 2 * k:
        raise PipelineError(f"ndb: {n} training images for {k} bins; use at least {2 * k}")
    mean = x.mean(axis=0) if whiten else np.zeros(d, np.float32)
    std = x.std(axis=0) + STD_EPS if whiten else np.ones(d, np.float32)
    white = (x - mean) / std
    dims = used_dims(d, seed)
    if whiten:  # constant pixels: 0 in every whitened training row and centre
        dims = dims[x[:, dims].std(axis=0) > 0]
    labels = cluster(np.ascontiguousarray(white[:, dims]), k, seed)
    counts = np.bincount(labels, minlength=k)
    order = [b for b in np.argsort(-counts, kind="stable") if counts[b] > 0]
    centres = np.stack([white[labels == b].mean(axis=0) for b in order]).astype(np.float32)
    return {"centres": centres, "proportions": counts[order] / n, "mean": mean.astype(np.float32),
            "std": std.astype(np.float32), "dims": dims, "n": np.array(n)}


def nearest(x: np.ndarray, centres: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Index of the nearest centre (L2) of every row of ``x``, from float64 differences."""
    centres = centres.astype(np.float64)
    out = np.empty(len(x), np.int64)
    for start in range(0, len(x), batch):
        rows = x[start:start + batch].astype(np.float64)
        out[start:start + batch] = np.stack([((rows - c) ** 2).sum(axis=1) for c in centres], axis=1).argmin(axis=1)
    return out


def proportions(bins: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Fraction of the rows of ``x`` whose nearest centre is each bin."""
    dims = bins["dims"]
    white = (x[:, dims] - bins["mean"][dims]) / bins["std"][dims]
    labels = nearest(white, bins["centres"][:, dims])
    return np.bincount(labels, minlength=len(bins["centres"])) / len(x)


def z_test(p1: np.ndarray, n1: int, p2: np.ndarray, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-proportion z-test with pooled proportion: (z, p-value) per bin."""
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = np.divide(p1 - p2, se, out=np.zeros_like(se), where=se > 0)  # a bin empty in both: no difference
    return z, 2 * ndtr(-np.abs(z))


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence, natural log."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        pos = a > 0
        return float(np.sum(a[pos] * np.log(a[pos] / m[pos])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def score(bins: dict[str, np.ndarray], x: np.ndarray, alpha: float, k_requested: int) -> dict:
    """NDB, NDB/K (K requested) and JSD of flattened samples ``x`` against the bins."""
    k, n_train = len(bins["centres"]), int(bins["n"])
    if x.shape[1] != bins["centres"].shape[1]:
        raise PipelineError(f"ndb: samples have {x.shape[1]} values per image but the bins "
                            f"{bins['centres'].shape[1]}; rebuild results/reference/ndb for this dataset")
    if len(x) < k:
        raise PipelineError(f"ndb: {len(x)} samples for {k} bins; use at least {k} (evaluate.n_fake)")
    q = proportions(bins, x)
    _, pvalues = z_test(bins["proportions"], n_train, q, len(x))
    ndb = int(np.count_nonzero(pvalues < alpha))
    return {"value": ndb, "ndb_k": ndb / k_requested, "jsd": jsd(bins["proportions"], q), "alpha": alpha,
            "n_bins": k, "n_bins_requested": k_requested, "n_train": n_train, "n_fake": len(x)}


def build_reference(params: dict, images: np.ndarray, labels: np.ndarray, out: Path) -> dict:
    ev = params["evaluate"]
    train = images if ev["ndb_n_train"] is None else real_subset(images, ev["ndb_n_train"], "evaluate.ndb_n_train")
    bins = fit(flatten(train), ev["ndb_bins"], ev["ndb_whiten"])
    save_npz(out / "bins.npz", **bins)
    return {"n_train": len(train), "bins": len(bins["centres"]), "pixels": int(bins["centres"].shape[1]),
            "pixels_used": len(bins["dims"]), "whiten": ev["ndb_whiten"],
            "kmeans": f"faiss, k-means++, {ITERATIONS} iterations, seed {SEED}"}


def compute(ctx) -> dict:
    bins = load_npz(ctx.reference_dir("ndb") / "bins.npz", ("centres", "proportions", "mean", "std", "dims", "n"))
    ev = ctx.params["evaluate"]
    return {"name": "NDB", **score(bins, flatten(ctx.samples), ev["ndb_alpha"], ev["ndb_bins"]), "whiten": ev["ndb_whiten"],
            "space": "pixels"}
