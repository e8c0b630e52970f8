"""Read, write and validate the files of the features and knn stages (schemas in :mod:`pipeline.stages.knn`).

Every reader checks its file against the dataset it is used with (``n`` images) and raises
PipelineError naming the file and what to rerun, so a stale or foreign file never trains a model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_path, load_npy

NORM_TOLERANCE = 1e-3  # |norm - 1| allowed for an L2-normalised float32 row


def check_features(features: np.ndarray, n: int, what: str) -> None:
    """float32 N,D with N == n, finite, every row of unit norm."""
    if features.dtype != np.float32 or features.ndim != 2:
        raise PipelineError(f"{what}: expected float32 N,D features, got {features.dtype} {features.shape}")
    if len(features) != n:
        raise PipelineError(f"{what}: {len(features)} feature rows but the data has {n} images; rerun the features stage")
    bad = int((~np.isfinite(features)).any(axis=1).sum())
    if bad:
        raise PipelineError(f"{what}: {bad} feature rows contain NaN or inf")
    off = np.abs(np.linalg.norm(features, axis=1) - 1) > NORM_TOLERANCE
    if off.any():
        raise PipelineError(f"{what}: {int(off.sum())} feature rows are not L2-normalised (|norm - 1| > {NORM_TOLERANCE})")


def load_features(path: Path, n: int) -> np.ndarray:
    features = _read(path, load_npy)
    check_features(features, n, str(path))
    return features


def _read(path: Path, reader):
    try:
        return reader(path)
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file; run the stage that writes it first") from None
    except (OSError, ValueError, pa.ArrowException) as err:
        raise PipelineError(f"{path}: unreadable ({str(err).splitlines()[0]})") from None


def _fixed(values: np.ndarray, arrow_type: pa.DataType) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), arrow_type), values.shape[1])


def write_neighbours(path: Path, neighbours: np.ndarray, similarities: np.ndarray) -> None:
    table = pa.table({
        "index": pa.array(np.arange(len(neighbours)), pa.int64()),
        "neighbours": _fixed(neighbours, pa.int64()),
        "similarities": _fixed(similarities, pa.float32()),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_centres(path: Path, index: np.ndarray, similarity: np.ndarray, size: np.ndarray) -> None:
    table = pa.table({
        "centre": pa.array(np.arange(len(index)), pa.int64()),
        "index": pa.array(index, pa.int64()),
        "similarity": pa.array(similarity, pa.float32()),
        "size": pa.array(size, pa.int64()),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _column(table: pa.Table, name: str, path: Path) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise PipelineError(f"{path}: no column {name!r} (has {', '.join(table.column_names)}); rerun the knn stage")
    return table.column(name)


def read_neighbours(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 N,k neighbour indices and float32 N,k similarities, checked against ``n`` instances."""
    table = _read(path, pq.read_table)
    if table.num_rows != n:
        raise PipelineError(f"{path}: {table.num_rows} rows but the data has {n} images; rerun the knn stage")
    lists = []
    for name in ("neighbours", "similarities"):
        col = _column(table, name, path).combine_chunks()
        if not pa.types.is_fixed_size_list(col.type):
            raise PipelineError(f"{path}: column {name!r} is {col.type}, not a fixed-size list")
        lists.append(col.flatten().to_numpy().reshape(n, col.type.list_size))
    idx, sim = lists[0].astype(np.int64), lists[1].astype(np.float32)
    if not np.array_equal(_column(table, "index", path).to_numpy(), np.arange(n)):
        raise PipelineError(f"{path}: column 'index' is not 0..{n - 1} in order")
    if idx.min(initial=0) < 0 or idx.max(initial=0) >= n or (idx == np.arange(n)[:, None]).any():
        raise PipelineError(f"{path}: neighbour indices outside 0..{n - 1} or an instance listed as its own neighbour")
    return idx, sim


def read_centres(path: Path, n: int) -> np.ndarray:
    """int64 instance indices standing for the k-means centres, unique and within ``n``."""
    idx = _column(_read(path, pq.read_table), "index", path).to_numpy().astype(np.int64)
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != len(idx):
        raise PipelineError(f"{path}: centre instances must be unique indices in 0..{n - 1}; rerun the knn stage")
    return idx


READERS = {
    "features": load_features,  # float32 N,D
    "neighbours": lambda path, n: read_neighbours(path, n)[0],  # int64 N,k
    "centres": read_centres,  # int64 M
}


def load(kind: str, path: Path, n: int) -> torch.Tensor:
    """A training input by kind (a key of READERS), validated against ``n`` instances."""
    if kind not in READERS:
        raise PipelineError(f"unknown input kind {kind!r} (known: {', '.join(READERS)})")
    return torch.from_numpy(READERS[kind](Path(path), n))
