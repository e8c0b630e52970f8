"""Nearest training images of a few samples, by pixel distance: a generator that copies its training
data shows near-identical neighbours. The report draws them for the first seed in the results of every
trained run (results/plots/nearest_<run>.png: the samples in the top row, each with its nearest training
images below it, nearest first, and their distances); for a run trained on horizontally flipped images
(``hflip``), the search covers the images' mirrors too, since such a run may copy a mirror.

Exact search in float64 (the squared distances of uint8 pixels are exact integers), streaming over the
training images a chunk at a time (a memory map is never read whole): O(N D) per sample for N
training images of D pixels, O(2 N D) with the mirrors.
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from pipeline import figures


def mirror(images: np.ndarray) -> np.ndarray:
    """Horizontal mirrors of uint8 N,H,W,C images (flipped along the width axis)."""
    return images[:, :, ::-1]


def nearest(queries: np.ndarray, images: np.ndarray, k: int, chunk: int = 4096,
            mirrors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (Q, k) of each N,H,W,C query's ``k`` nearest ``images`` by Euclidean pixel distance,
    nearest first (ties by index), the distances, and whether each is the image's horizontal mirror.

    ``mirrors`` (Q booleans; default none): the queries that also search the images' mirrors, each image
    counting once, at the nearer of its two orientations (the unmirrored on a tie). A query's distance to
    a mirrored image is its mirror's distance to the image, so the M mirrored queries join the one pass
    over the images instead of a mirrored copy of them: O((Q + M) N D) time for N images of D pixels (2N
    candidates per mirrored query), memory for (Q + M) x (chunk + k) distances and one chunk of images.
    """
    q, mirrors = len(queries), np.zeros(len(queries), bool) if mirrors is None else np.asarray(mirrors, bool)
    found, found_sq = _search(np.concatenate([queries, mirror(queries[mirrors])]), images, k, chunk)
    idx, sq, mirrored = found[:q], found_sq[:q], np.zeros((q, found.shape[1]), bool)
    if mirrors.any():  # found[q:]: the mirrored queries' nearest, in the order of ``mirrors``
        idx[mirrors], sq[mirrors], mirrored[mirrors] = _nearer(idx[mirrors], sq[mirrors], found[q:], found_sq[q:], k)
    return idx, np.sqrt(np.maximum(sq, 0)), mirrored


def _search(queries: np.ndarray, images: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) of each query's ``k`` nearest images, nearest first (ties by index), and the
    squared distances: one streamed pass over the images."""
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
    return best_i, best_d


def _nearer(idx: np.ndarray, sq: np.ndarray, idx_m: np.ndarray, sq_m: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query, the ``k`` nearest of its own nearest images (``idx``, ``sq``) and its mirror's, each
    image once at the nearer orientation (the unmirrored on a tie), nearest first, ties by index; and
    which are mirrors. Exact: an image among the k nearest of the two is among the k nearest of the
    orientation that attains its distance."""
    all_i, all_d = np.concatenate([idx, idx_m], 1), np.concatenate([sq, sq_m], 1)
    is_mirror = np.arange(all_i.shape[1]) >= idx.shape[1]
    keep = []
    for i, d in zip(all_i, all_d):
        order = np.lexsort((is_mirror, i, d))  # by distance, then index, the unmirrored first
        _, first = np.unique(i[order], return_index=True)  # each image at its nearer orientation
        keep.append(order[np.sort(first)[:k]])
    keep = np.array(keep)
    return np.take_along_axis(all_i, keep, 1), np.take_along_axis(all_d, keep, 1), is_mirror[keep]


def nearest_grids(samples: dict[Path, np.ndarray], images: np.ndarray, mirrored: Collection[Path] = (),
                  n: int = 8, k: int = 5) -> None:
    """Per target PNG, the first ``n`` of its samples in the top row, each with its ``k`` nearest training
    images below it and their distances; the targets in ``mirrored`` also search the images' mirrors
    (their runs train on flipped images), show a mirror as it matched and say so in the title.
    One pass over the training images serves every figure."""
    queries = {target: s[:n] for target, s in samples.items()}
    flags = np.concatenate([np.full(len(q), target in mirrored) for target, q in queries.items()])
    found = nearest(np.concatenate(list(queries.values())), images, k, mirrors=flags)
    bounds = np.cumsum([len(q) for q in queries.values()])[:-1]
    for (target, q), idx, dist, flipped in zip(queries.items(), *(np.split(a, bounds) for a in found)):
        neighbours = images[idx.ravel()].reshape(*idx.shape, *images.shape[1:])
        neighbours[flipped] = mirror(neighbours[flipped])
        title = f"Samples (top row), each above its {k} nearest training images, nearest first (distance below)"
        if target in mirrored:
            title += ("\nsearched with their horizontal mirrors (the run trains on flipped images); "
                      "a nearer mirror is shown, marked")
        figures.nearest_figure(q, neighbours, dist, flipped, title, target)
