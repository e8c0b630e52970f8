"""Benchmark of the knn stage's search (a script, not a test): ``python benchmarks/knn.py``.

1. Exact kNN, N = 70,000 random unit vectors of D = 1,280, k = 50: faiss IndexFlatIP (the stage's
   batched search) against scikit-learn's brute-force NearestNeighbors (cosine), and their ratio.
   Both are O(N^2 D).
2. IVF (IndexIVFFlat, nlist = 4 sqrt(N), nprobe 16) at N = 200,000, D = 2,048: build and search
   time and recall@50 against exact search on 1,000 queries. Uniform random vectors have no
   neighbourhood structure (every point is about equally far from every other), which no
   partitioning index can exploit, so these are drawn around 1,000 centres like ImageNet's classes.
   Search is about O(N D (nlist + N nprobe / nlist)), i.e. O(N^1.5 D) with nlist ~ sqrt(N).
3. Projections to ImageNet's N = 1.28M at D = 2,048, by counting multiply-adds: exact N^2 D; IVF
   build (k-means on min(N, 256 nlist) points, 10 iterations, then assigning N points)
   D nlist (10 min(N, 256 nlist) + N); IVF search D N (nlist + N nprobe / nlist).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import knn  # noqa: E402

IMAGENET = 1_281_167


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def exact(n: int, d: int, k: int, batch_size: int) -> float:
    from sklearn.neighbors import NearestNeighbors

    x = unit(np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))
    (_, sim), t_faiss = timed(lambda: knn.search(knn.exact_index(x), x, k, batch_size, "faiss"))
    (dist, _), t_sk = timed(lambda: NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(x).kneighbors(x))
    agree = np.abs((1 - dist[:, 1:]) - sim).max()
    print(f"exact  N={n:,} D={d} k={k}: faiss IndexFlatIP {t_faiss:.1f} s, sklearn brute {t_sk:.1f} s, "
          f"ratio {t_sk / t_faiss:.1f}x (max similarity difference {agree:.1e})")
    return t_faiss


def ivf_costs(n: int, nprobe: int) -> tuple[int, float, float]:
    """nlist, and the build and search multiply-adds per dimension (see the module docstring)."""
    nlist = int(4 * math.sqrt(n))  # = sqrt(N nprobe) at nprobe 16: balances coarse and fine search
    return nlist, nlist * (10 * min(n, 256 * nlist) + n), n * (nlist + n * nprobe / nlist)


def ivf(n: int, d: int, k: int, nprobe: int, queries: int, batch_size: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(1000, d)))
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 50_000):  # each point: a centre plus noise of about the same norm
        m = min(50_000, n - start)
        x[start:start + m] = unit(centres[rng.integers(0, 1000, m)] + rng.normal(size=(m, d)).astype(np.float32) / math.sqrt(d))
    nlist = ivf_costs(n, nprobe)[0]
    index, t_build = timed(knn.ivf_index, x, nlist, nprobe, 0)
    (_, sim), t_search = timed(knn.search, index, x, k, batch_size, "ivf")
    q = rng.choice(n, queries, replace=False)
    recall = knn.recall_at_k(x, sim, q, k)
    print(f"ivf    N={n:,} D={d} k={k} nlist={nlist} nprobe={nprobe}: build {t_build:.1f} s, search {t_search:.1f} s, "
          f"recall@{k} {recall:.3f} on {queries} queries")
    return t_build, t_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact-n", type=int, default=70_000)
    parser.add_argument("--exact-d", type=int, default=1_280)
    parser.add_argument("--ivf-n", type=int, default=200_000, help="lower it if memory is short (about 8 N D bytes)")
    parser.add_argument("--ivf-d", type=int, default=2_048)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=8_192)
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs")
    t_exact = exact(args.exact_n, args.exact_d, args.k, args.batch_size)
    t_build, t_search = ivf(args.ivf_n, args.ivf_d, args.k, args.nprobe, args.queries, args.batch_size)
    _, build, search = ivf_costs(args.ivf_n, args.nprobe)
    nlist_big, build_big, search_big = ivf_costs(IMAGENET, args.nprobe)
    exact_big = t_exact * (IMAGENET / args.exact_n) ** 2 * (args.ivf_d / args.exact_d)
    print(f"projection to N={IMAGENET:,}, D={args.ivf_d}: exact ~{exact_big / 3600:.1f} h; ivf (nlist={nlist_big}) "
          f"build ~{t_build * build_big / build / 60:.0f} min, search ~{t_search * search_big / search / 60:.0f} min")


if __name__ == "__main__":
    main()
