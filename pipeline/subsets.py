"""The fixed random subsets of the training images that every reference is computed on.

One subset of ``n`` images per dataset (seed 0), shared by the backbone, spaces and NDB references;
the real run draws its held-out images outside it (pipeline/stages/real.py).
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError

SUBSET_SEED = 0


def real_subset_indices(n_images: int, n: int) -> np.ndarray:
    """The fixed random subset of n of the training images (sorted indices, seed 0)."""
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n_images, n, replace=False))


class Rows:
    """Rows ``idx`` of ``images``, read a slice at a time (of a memory map: never all in memory)."""

    def __init__(self, images: np.ndarray, idx: np.ndarray):
        self.images, self.idx = images, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, part: slice) -> np.ndarray:
        return self.images[self.idx[part]]


def real_rows(images: np.ndarray, n: int, what: str) -> Rows:
    """A fixed random subset of n training images (sorted indices, seed 0), read when sliced."""
    if n > len(images):
        raise PipelineError(f"{what}: asks for {n} real images but the dataset has {len(images)}")
    return Rows(images, real_subset_indices(len(images), n))


def real_subset(images: np.ndarray, n: int, what: str) -> np.ndarray:
    """The images of :func:`real_rows`, in memory."""
    return real_rows(images, n, what)[:]
