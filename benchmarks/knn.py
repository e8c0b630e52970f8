"""Benchmark of the knn stage's search (a script, not a test): ``python benchmarks/knn.py``.

1. Exact kNN, 4,096 queries against N = 20,000 random unit vectors of D = 1,280, k = 50 (51 results
   with the query itself): the stage's faiss IndexFlatIP search and a blocked torch matmul + topk,
   each as a fraction of the throughput of numpy's sgemm of the same product in the same run (the
   ceiling for an O(N^2 D) exact search), and the largest similarity difference between them.
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

import math
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.stages import knn  # noqa: E402

IMAGENET = 1_281_167


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def best_of_two(fn):
    """The result and the faster of two timed calls (the first warms caches and thread pools)."""
    (_, first), (result, second) = timed(fn), timed(fn)
    return result, min(first, second)


def exact(n: int, queries: int, d: int, k: int, batch_size: int) -> tuple[float, int]:
    """Seconds of the stage's exact search and its size, after printing it against sgemm and torch."""
    x = unit(np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))
    q = x[:queries]
    _, t_sgemm = best_of_two(lambda: q @ x.T)
    index = knn.exact_index(x)
    (_, sim), t_faiss = best_of_two(lambda: knn.search(index, q, k, batch_size, "faiss"))
    xt = torch.from_numpy(x)

    def blocked_topk() -> np.ndarray:
        return np.concatenate([torch.topk(torch.from_numpy(q[s:s + 1024]) @ xt.T, k + 1, dim=1).values.numpy()
                               for s in range(0, queries, 1024)])

    top, t_torch = best_of_two(blocked_topk)
    agree = np.abs(top[:, 1:] - sim).max()
    print(f"exact  {queries:,} queries x N={n:,}, D={d}, k={k}: sgemm {t_sgemm:.2f} s; faiss IndexFlatIP "
          f"{t_faiss:.2f} s ({t_sgemm / t_faiss:.2f} of sgemm); torch matmul+topk in blocks of 1,024 "
          f"{t_torch:.2f} s ({t_sgemm / t_torch:.2f} of sgemm); max similarity difference {agree:.1e}")
    return t_faiss, queries


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


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/knn.py", description=__doc__.splitlines()[0])
    parser.add_argument("--exact-n", type=int, default=20_000)
    parser.add_argument("--exact-queries", type=int, default=4_096)
    parser.add_argument("--exact-d", type=int, default=1_280)
    parser.add_argument("--ivf-n", type=int, default=200_000, help="lower it if memory is short (about 8 N D bytes)")
    parser.add_argument("--ivf-d", type=int, default=2_048)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=8_192)
    args = parser.parse_args(argv)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs")
    t_exact, queries = exact(args.exact_n, args.exact_queries, args.exact_d, args.k, args.batch_size)
    t_build, t_search = ivf(args.ivf_n, args.ivf_d, args.k, args.nprobe, args.queries, args.batch_size)
    _, build, search = ivf_costs(args.ivf_n, args.nprobe)
    nlist_big, build_big, search_big = ivf_costs(IMAGENET, args.nprobe)
    exact_big = t_exact * IMAGENET ** 2 / (queries * args.exact_n) * (args.ivf_d / args.exact_d)
    print(f"projection to N={IMAGENET:,}, D={args.ivf_d}: exact ~{exact_big / 3600:.1f} h; ivf (nlist={nlist_big}) "
          f"build ~{t_build * build_big / build / 60:.0f} min, search ~{t_search * search_big / search / 60:.0f} min")


if __name__ == "__main__":
    main()
