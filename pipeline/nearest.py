"""Nearest training images of a few samples, by pixel distance: a generator that copies its training
data shows near-identical neighbours. The report draws them for the first seed of every trained run
(results/plots/nearest_<run>.png: the samples in the top row, each with its nearest training images
below it, nearest first).

Exact search in float64 (the squared distances of uint8 pixels are exact integers), streaming over the
training images a chunk at a time (a memory map is never read whole): O(N D) per sample for N
training images of D pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.images import save_grid


def nearest(queries: np.ndarray, images: np.ndarray, k: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) of each query's ``k`` nearest ``images`` by Euclidean pixel distance, nearest
    first (ties by index), and the distances."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    q_sq = (q * q).sum(1)[:, None]
    best_d = np.empty((len(q), 0))
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(images), chunk):
        x = np.asarray(images[start:start + chunk]).reshape(-1, q.shape[1]).astype(np.float64)
        d = q_sq - 2 * q @ x.T + (x * x).sum(1)[None]
        all_d = np.concatenate([best_d, d], 1)
        all_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(x)), d.shape)], 1)
        order = np.lexsort((all_i, all_d))[:, :k]  # by distance, then index
        best_d, best_i = np.take_along_axis(all_d, order, 1), np.take_along_axis(all_i, order, 1)
    return best_i, np.sqrt(np.maximum(best_d, 0))


def nearest_grids(samples: dict[Path, np.ndarray], images: np.ndarray, n: int = 8, k: int = 5) -> None:
    """Per target PNG, a grid: the first ``n`` of its samples in the top row, each with its ``k`` nearest
    training images below it (landscape for n > k, so that a viewer fitting the width shows it whole).
    One pass over the training images serves every grid."""
    queries = {target: s[:n] for target, s in samples.items()}
    idx, _ = nearest(np.concatenate(list(queries.values())), images, k)
    for target, part in zip(queries, np.split(idx, np.cumsum([len(q) for q in queries.values()])[:-1])):
        save_grid(np.concatenate([queries[target], images[part.T.ravel()]]), len(part), path=target)
