"""knn stage: faiss search against brute force, self exclusion with ties, IVF recall, centres, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import write_params
from pipeline import knn_io
from pipeline.errors import PipelineError, run_cli
from pipeline.io import load_json, save_json, save_npy
from pipeline.stages import knn


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def features() -> np.ndarray:
    """60 random unit vectors with exact duplicates: rows 3, 10, 11 and 12 equal, 20 equals 21."""
    x = unit(np.random.default_rng(0).normal(size=(60, 8)))
    x[[10, 11, 12]] = x[3]
    x[21] = x[20]
    return x


def brute_force(x: np.ndarray, k: int) -> np.ndarray:
    """The k largest cosine similarities to every other row, in numpy (float64)."""
    s = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    return -np.sort(-s, axis=1)[:, :k]


def exact(x: np.ndarray, k: int, batch_size: int = 7) -> tuple[np.ndarray, np.ndarray]:
    return knn.search(knn.exact_index(x), x, k, batch_size, "test")


@pytest.mark.parametrize("k", [1, 5, 59])
def test_exact_search_equals_brute_force_with_ties(features: np.ndarray, k: int) -> None:
    idx, sim = exact(features, k)
    n = len(features)
    assert idx.shape == sim.shape == (n, k)
    assert not (idx == np.arange(n)[:, None]).any(), "an instance is its own neighbour"
    assert all(len(set(row)) == k for row in idx)
    np.testing.assert_allclose(sim, brute_force(features, k), atol=1e-5)
    true_sim = (features[idx] * features[:, None, :]).sum(-1)  # each returned index has its returned similarity
    np.testing.assert_allclose(sim, true_sim, atol=1e-5)
    if k == n - 1:
        assert all(set(row) == set(range(n)) - {i} for i, row in enumerate(idx))
    # the duplicates of row 3 come first among its neighbours, whatever the order of the ties
    assert set(idx[3, :min(k, 3)]) <= {10, 11, 12}


def test_drop_self_drops_the_last_result_when_ties_push_self_out() -> None:
    idx = np.array([[4, 5, 6], [1, 0, 2]])  # query 0 absent (duplicates 4 and 5 and 6 rank first); query 1 second
    sim = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.5]], np.float32)
    got_idx, got_sim = knn.drop_self(idx, sim, np.array([0, 1]), 2)
    np.testing.assert_array_equal(got_idx, [[4, 5], [0, 2]])
    np.testing.assert_array_equal(got_sim, [[1.0, 1.0], [1.0, 0.5]])


def test_ivf_recall_is_measured_against_brute_force() -> None:
    x = unit(np.random.default_rng(1).normal(size=(3000, 16)))
    k, queries = 10, np.arange(0, 3000, 10)
    brute = np.argsort(-(x[queries] @ x.T - 2 * np.eye(3000)[queries]), axis=1)[:, :k]  # self pushed last
    for nprobe, expect_full in ((1, False), (40, True)):
        index = knn.ivf_index(x, nlist=40, nprobe=nprobe, seed=0)
        idx, sim = knn.search(index, x, k, 1000, "ivf")
        measured = knn.recall_at_k(x, sim, queries, k)
        by_sets = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx[queries], brute)])
        assert measured == pytest.approx(by_sets, abs=1e-9)
        assert (measured == 1.0) == expect_full
    assert 0.2 < knn.recall_at_k(x, knn.search(knn.ivf_index(x, 40, 1, 0), x, k, 1000, "ivf")[1], queries, k) < 1.0


def test_centres_are_distinct_nearest_instances(features: np.ndarray) -> None:
    chosen, similarity, size = knn.centres(features, 10, 20, seed=0)
    assert len(set(chosen)) == 10 and size.sum() == len(features)
    assert np.all(similarity <= 1 + 1e-6)
    everyone, _, _ = knn.centres(features, len(features), 5, seed=0)  # as many centres as instances
    assert sorted(everyone) == list(range(len(features)))


def test_purity_and_chance() -> None:
    labels = np.array([0, 0, 1, 1])
    p, chance = knn.purity(np.array([[1], [0], [3], [1]]), labels)  # the last differs
    assert p == 0.75 and chance == 0.5


def test_pixel_purity_equals_brute_force_cosine_neighbours() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (50, 4, 4, 1), np.uint8)
    images[7] = images[30]  # a duplicate: its twin is its nearest neighbour, itself excluded
    labels, queries, k = rng.integers(0, 3, 50), np.array([30, 7, 0, 49, 12]), 3
    labels[7] = labels[30]  # so that which twin a tie keeps does not matter
    x = images.reshape(50, -1).astype(np.float64) / 127.5 - 1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    nearest = np.argsort(-s, axis=1)[queries, :k]
    assert nearest[0, 0] == 7 and nearest[1, 0] == 30
    expected = (labels[nearest] == labels[queries][:, None]).mean()
    for batch_size in (7, 50):  # blocks of the images, and all at once
        assert knn.pixel_purity(images, labels, queries, k, batch_size) == pytest.approx(expected)


@pytest.fixture
def stage(tmp_path, tiny_params, features):
    """A params file, data/ (labels.npy, images.npy, meta.json) and features.npy for 60 instances."""
    tiny_params["knn"].update(k=4, centres=6, iterations=10, nlist=4, nprobe=2, recall_queries=20, pixel_queries=25)
    write_params(tiny_params, tmp_path / "params.yaml")
    save_npy(tmp_path / "data" / "labels.npy", np.arange(60) % 3)
    save_npy(tmp_path / "data" / "images.npy", np.random.default_rng(1).integers(0, 256, (60, 5, 5, 3), np.uint8))
    save_json(tmp_path / "data" / "meta.json", {"dataset": "test", "shape": [5, 5, 3], "count": 60, "classes": list("abc")})
    save_npy(tmp_path / "features.npy", features)
    return tmp_path


def argv(tmp_path, *extra: str) -> list[str]:
    return ["--params", str(tmp_path / "params.yaml"), "--features", str(tmp_path / "features.npy"),
            "--data", str(tmp_path / "data"), "--out", str(tmp_path / "knn"), *extra]


@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_stage_writes_files_the_trainer_can_load(stage, features, index: str) -> None:
    params = yaml.safe_load((stage / "params.yaml").read_text())
    params["knn"]["index"] = index
    (stage / "params.yaml").write_text(yaml.safe_dump(params))
    knn.main(argv(stage))
    report = load_json(stage / "knn" / "knn.json")
    assert report["k"] == 4 and 0 <= report["purity"] <= 1 and report["purity_chance"] == pytest.approx(1 / 3, abs=1e-3)
    assert ("recall_at_k" in report) == (index == "ivf")
    assert report["pixels"]["queries"] == 25 and 0 <= report["pixels"]["purity"] <= 1
    neighbours = knn_io.load("neighbours", stage / "knn" / "neighbours.parquet", n=60)
    assert neighbours.dtype == torch.int64 and neighbours.shape == (60, 4)
    if index == "flat":
        np.testing.assert_array_equal(neighbours.numpy(), exact(features, 4)[0])
    centres = knn_io.load("centres", stage / "knn" / "centres.parquet", n=60)
    assert centres.dtype == torch.int64 and len(centres) == 6
    feats = knn_io.load("features", stage / "features.npy", n=60)
    assert feats.dtype == torch.float32 and feats.shape == (60, 8)


def test_no_pixel_baseline_when_the_features_are_the_pixels(stage) -> None:
    params = yaml.safe_load((stage / "params.yaml").read_text())
    params["features"]["extractor"] = "pixels"
    (stage / "params.yaml").write_text(yaml.safe_dump(params))
    knn.main(argv(stage))
    report = load_json(stage / "knn" / "knn.json")
    assert "pixels" not in report and "pixels" not in report["seconds"] and 0 <= report["purity"] <= 1


def test_stage_errors_are_one_line(stage, features, capsys) -> None:
    bad = features.copy()
    bad[5, 0] = np.nan
    save_npy(stage / "features.npy", bad)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(knn.main, argv(stage))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "NaN" in err and err.count("\n") == 1


@pytest.mark.parametrize("change, message", [
    (lambda f, p: (f * 2, p), "not L2-normalised"),
    (lambda f, p: (f[:50], p), "50 feature rows but the data has 60"),
    (lambda f, p: (f.astype(np.float64), p), "expected float32"),
    (lambda f, p: (f, {**p, "k": 60}), "must be less than the 60 instances"),
    (lambda f, p: (f, {**p, "centres": 61}), "more than the 60 instances"),
    (lambda f, p: (f, {**p, "index": "ivf", "nlist": 61}), "more than the 60 instances"),
])
def test_stage_errors(stage, features, change, message: str) -> None:
    params = yaml.safe_load((stage / "params.yaml").read_text())
    feats, params["knn"] = change(features, params["knn"])
    save_npy(stage / "features.npy", feats)
    with pytest.raises(PipelineError, match=message):
        knn.run(params, stage / "features.npy", stage / "data", stage / "knn")


def test_load_rejects_files_of_another_dataset(stage) -> None:
    knn.main(argv(stage))
    with pytest.raises(PipelineError, match="60 rows but the data has 59"):
        knn_io.load("neighbours", stage / "knn" / "neighbours.parquet", n=59)
    with pytest.raises(PipelineError, match="unique indices in 0..4"):
        knn_io.load("centres", stage / "knn" / "centres.parquet", n=5)
    with pytest.raises(PipelineError, match="no such file"):
        knn_io.load("features", stage / "missing.npy", n=60)
    with pytest.raises(PipelineError, match="unknown input kind"):
        knn_io.load("labels", stage / "features.npy", n=60)
