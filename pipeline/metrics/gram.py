"""Inner products of real and generated features, shared by kid and prdc.

Both metrics need every pairwise product of the n_real + n_fake feature rows (KID's kernel is a
function of x.y, PRDC's distances are |x|^2 + |y|^2 - 2 x.y), O((n_real + n_fake)^2 d) float64
work, and both read them one block of rows at a time. When the matrices fit ``BUDGET`` (they take
600 MB at 5,000 + 5,000 rows) each is computed on its first read and shared; beyond it (the papers' 50,000 +
50,000 would take 60 GB) each block is computed when it is read, so memory stays O(BLOCK x n) and
the products are computed once per metric. What depends on the real rows alone (the real-real
products: KID's within-real sums, PRDC's real radii) is computed once per study by the reference
stage, so an evaluation computes two of the three matrices.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

BUDGET = 2 * 2**30  # bytes of float64 products kept whole
BLOCK = 1024  # rows per block
REAL_TERMS = "real_terms.npz"  # in the backbone reference: what kid and prdc need of the real rows alone


class Products:
    """Inner products of the real (r) and generated (f) feature rows, read by blocks of rows:
    ``rows("rr" | "ff" | "rf")`` yields (start, block); ``norms`` are the rows' squared norms."""

    def __init__(self, real: np.ndarray, fake: np.ndarray):
        self.r, self.f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
        self.n_real, self.n_fake, self.dim = len(self.r), len(self.f), self.r.shape[1]
        self.whole = 8 * (self.n_real + self.n_fake) ** 2 <= BUDGET
        self._pairs = {"rr": (self.r, self.r), "ff": (self.f, self.f), "rf": (self.r, self.f)}
        self._cache: dict[str, np.ndarray] = {}
        self.norms = {"r": np.einsum("ij,ij->i", self.r, self.r), "f": np.einsum("ij,ij->i", self.f, self.f)}

    def rows(self, pair: str) -> Iterator[tuple[int, np.ndarray]]:
        a, b = self._pairs[pair]
        if self.whole and pair not in self._cache:
            self._cache[pair] = a @ b.T
        for start in range(0, len(a), BLOCK):
            yield start, (self._cache[pair][start:start + BLOCK] if self.whole else a[start:start + BLOCK] @ b.T)
