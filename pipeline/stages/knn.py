"""knn stage: the k nearest neighbours of every instance and the k-means sampling centres (faiss).

Similarity is the inner product of the L2-normalised features (cosine). Exact search
(``knn.index: flat``, IndexFlatIP) is the default; ``ivf`` (IndexIVFFlat, ``nlist`` lists,
``nprobe`` visited per query) is approximate, for large N, and its recall@k against exact search
is measured on ``recall_queries`` random instances. Queries run in batches of ``knn.batch_size``
and ask for k + 1 results: the instance itself is dropped wherever it appears, or the last result
when ties with exact duplicates pushed it out. Cost: exact O(N^2 D); IVF about O(N D (nlist + N nprobe / nlist)).

Outputs in --out (rows are instances in the order of data/images.npy and features.npy), written
only once everything is computed, and all three or none (a failed write removes the others):

neighbours.parquet
    index         int64                          the instance, 0..N-1 in order
    neighbours    fixed_size_list<int64>[k]      the k most similar other instances, most similar first
    similarities  fixed_size_list<float32>[k]    their cosine similarities
centres.parquet (one row per k-means centre, ``knn.centres`` of them, ``knn.iterations`` iterations)
    centre        int64      the centre, 0..M-1
    index         int64      the instance nearest the centre (distinct for every centre)
    similarity    float32    cosine similarity of that instance and the centre
    size          int64      instances assigned to the centre
knn.json
    k, index settings, purity (mean fraction of an instance's neighbours sharing its label),
    purity_chance (the same for random neighbours), recall_at_k (ivf), seconds per phase; pixels
    (``knn.pixel_queries`` > 0, unless ``features.extractor`` is pixels, where purity is the
    baseline): the purity of exact cosine neighbours of the raw pixels, the no-learning baseline,
    and the features' own purity on the same random instances (queries).
"""
from __future__ import annotations

import time
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from pipeline import config
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.features import embed
from pipeline.context import read_data
from pipeline.io import all_or_nothing, save_json
from pipeline.knn_io import load_features, write_centres, write_neighbours

RECALL_TOLERANCE = 1e-5  # similarities within this of the exact k-th one count as found (ties)


def drop_self(idx: np.ndarray, sim: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From k + 1 results per query, drop the query itself, or the last result where it is absent."""
    keep = idx != queries[:, None]
    keep[keep.all(axis=1), k] = False
    return idx[keep].reshape(len(idx), k), sim[keep].reshape(len(idx), k)


def search(index: faiss.Index, features: np.ndarray, k: int, batch_size: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """k neighbours (self excluded) of every row of ``features`` in ``index``, in query batches."""
    n = len(features)
    idx, sim = np.empty((n, k), np.int64), np.empty((n, k), np.float32)
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=None, leave=False):
        stop = min(start + batch_size, n)
        s, i = index.search(features[start:stop], k + 1)
        idx[start:stop], sim[start:stop] = drop_self(i, s, np.arange(start, stop), k)
    missing = int((idx < 0).any(axis=1).sum())
    if missing:
        raise PipelineError(f"{desc}: {missing} instances got fewer than k = {k} neighbours; raise knn.nprobe or lower knn.nlist")
    return idx, sim


def exact_index(features: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(features.shape[1])
    index.add(features)
    return index


def ivf_index(features: np.ndarray, nlist: int, nprobe: int, seed: int) -> faiss.Index:
    if nlist > len(features):
        raise PipelineError(f"knn.nlist = {nlist} is more than the {len(features)} instances")
    quantizer = faiss.IndexFlatIP(features.shape[1])
    index = faiss.IndexIVFFlat(quantizer, features.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(features)
    index.add(features)
    index.nprobe = nprobe
    return index


def recall_at_k(features: np.ndarray, sim: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Fraction of approximate neighbours at least as similar as the exact k-th (tie-aware recall@k)."""
    exact, idx = faiss.knn(features[queries], features, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    kth = drop_self(idx, exact, queries, k)[1][:, -1:]
    return float((sim[queries] >= kth - RECALL_TOLERANCE).mean())


def shared(neighbours: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """Mean fraction of the neighbours of instances ``rows`` (one row of ``neighbours`` each) sharing its label."""
    return float((labels[neighbours] == labels[rows][:, None]).mean())


def purity(neighbours: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean fraction of neighbours sharing the instance's label, and its value for random neighbours."""
    p = np.bincount(labels) / len(labels)
    return shared(neighbours, labels, np.arange(len(labels))), float((p ** 2).sum())


def pixel_purity(images: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, batch_size: int) -> float:
    """Purity of the exact k neighbours of ``queries`` among all images by cosine similarity of their
    pixels, embedded as ``features.extractor: pixels`` embeds them (N D floats in memory, as that
    extractor holds). Cost O(queries N D)."""
    pixels = embed(nn.Flatten(), images, batch_size, torch.device("cpu"), "pixel baseline")
    sim, idx = faiss.knn(pixels[queries], pixels, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return shared(drop_self(idx, sim, queries, k)[0], labels, queries)


def centres(features: np.ndarray, m: int, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means (faiss) with m centres; each centre's nearest instance not taken by an earlier centre.

    Returns the instances, their cosine similarity to the centre, and the centre sizes. Looking
    m deep guarantees a free instance: at most m - 1 are taken before any centre.
    """
    n, d = features.shape
    if m > n:
        raise PipelineError(f"knn.centres = {m} is more than the {n} instances")
    km = faiss.Kmeans(d, m, niter=iterations, seed=seed)
    km.train(features)
    size = np.bincount(km.index.search(features, 1)[1][:, 0], minlength=m)
    # For unit-norm instances the L2-nearest to a centre is the one with the largest inner product.
    _, cand = faiss.knn(km.centroids, features, m, metric=faiss.METRIC_INNER_PRODUCT)
    taken: set[int] = set()
    chosen = np.empty(m, np.int64)
    for c in range(m):
        chosen[c] = next(int(i) for i in cand[c] if int(i) not in taken)
        taken.add(int(chosen[c]))
    unit = km.centroids / np.linalg.norm(km.centroids, axis=1, keepdims=True)
    return chosen, (features[chosen] * unit).sum(1).astype(np.float32), size


def run(params: dict, features_path: Path, data_dir: Path, out: Path) -> dict:
    cfg = params["knn"]
    faiss.omp_set_num_threads(params["train"]["threads"])
    images, labels, _ = read_data(data_dir)
    features = load_features(features_path, len(labels))
    n, k = len(features), cfg["k"]
    if k >= n:
        raise PipelineError(f"knn.k = {k} must be less than the {n} instances (the instance itself is excluded)")
    if cfg["centres"] > n:
        raise PipelineError(f"knn.centres = {cfg['centres']} is more than the {n} instances")
    report: dict = {"n": n, "dim": features.shape[1], "k": k, "index": cfg["index"], "seconds": {}}
    t = time.perf_counter()
    if cfg["index"] == "ivf":
        index = ivf_index(features, cfg["nlist"], cfg["nprobe"], cfg["seed"])
        report.update(nlist=cfg["nlist"], nprobe=cfg["nprobe"])
    else:
        index = exact_index(features)
    report["seconds"]["index"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    idx, sim = search(index, features, k, cfg["batch_size"], f"knn {cfg['index']}")
    report["seconds"]["search"] = round(time.perf_counter() - t, 2)
    del index
    if cfg["index"] == "ivf":
        queries = np.random.default_rng(cfg["seed"]).choice(n, min(cfg["recall_queries"], n), replace=False)
        report.update(recall_at_k=round(recall_at_k(features, sim, queries, k), 4), recall_queries=len(queries))
    report["purity"], report["purity_chance"] = (round(v, 4) for v in purity(idx, labels))
    # the no-learning baseline on random instances, paired with the features' own (pixels: it is their purity)
    if cfg["pixel_queries"] and params["features"]["extractor"] != "pixels":
        t = time.perf_counter()
        queries = np.random.default_rng(cfg["seed"]).choice(n, min(cfg["pixel_queries"], n), replace=False)
        report["pixels"] = {"queries": len(queries), "purity": round(pixel_purity(images, labels, queries, k, cfg["batch_size"]), 4),
                            "features_purity": round(shared(idx[queries], labels, queries), 4)}
        report["seconds"]["pixels"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    chosen, similarity, size = centres(features, cfg["centres"], cfg["iterations"], cfg["seed"])
    report["seconds"]["kmeans"] = round(time.perf_counter() - t, 2)
    report.update(centres=cfg["centres"], iterations=cfg["iterations"], centre_similarity_mean=round(float(similarity.mean()), 4))
    outputs = [out / name for name in ("neighbours.parquet", "centres.parquet", "knn.json")]
    with all_or_nothing():  # the three describe one run: all of them or none (a failure keeps the previous ones)
        write_neighbours(outputs[0], idx, sim)
        write_centres(outputs[1], chosen, similarity, size)
        save_json(outputs[2], report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.knn", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--features", type=Path, default=Path("results/features/features.npy"),
                        help="features stage output (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder, for labels.npy (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/knn"), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    r = run(config.load(args.params), args.features, args.data, args.out)
    recall = f", recall@{r['k']} {r['recall_at_k']:.4f}" if "recall_at_k" in r else ""
    pixels = (f", pixels' {r['pixels']['purity']:.4f} against the features' {r['pixels']['features_purity']:.4f} on "
              f"{r['pixels']['queries']} instances" if "pixels" in r else "")
    print(f"knn: {r['n']} x {r['k']} neighbours ({r['index']}{recall}), purity {r['purity']:.4f} "
          f"(chance {r['purity_chance']:.4f}{pixels}), {r['centres']} centres; seconds {r['seconds']}")


if __name__ == "__main__":
    run_cli(main)
