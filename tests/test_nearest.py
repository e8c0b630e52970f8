"""Nearest training images: exact, streamed in chunks, against a brute-force computation."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.nearest import nearest, nearest_grids


def test_streamed_search_equals_brute_force_and_finds_copies_at_distance_zero():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 6, 6, 1), dtype=np.uint8)
    queries = np.concatenate([images[[17, 250]], rng.integers(0, 256, (3, 6, 6, 1), dtype=np.uint8)])
    idx, dist = nearest(queries, images, k=4, chunk=64)  # five chunks, the last one short
    full = ((queries.reshape(5, 1, -1).astype(float) - images.reshape(1, 300, -1)) ** 2).sum(2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(dist, np.sqrt(np.take_along_axis(full, idx, 1)))
    assert idx[0, 0] == 17 and idx[1, 0] == 250 and dist[0, 0] == dist[1, 0] == 0  # a copy is its own nearest


def test_ties_go_to_the_lower_index_whatever_the_chunking():
    images = np.zeros((10, 2, 2, 1), np.uint8)
    images[[3, 7]] = 5
    idx, _ = nearest(images[[7]], images, k=2, chunk=4)
    assert idx.tolist() == [[3, 7]]


def test_the_grid_has_the_samples_on_top_and_each_ones_neighbours_below_it(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 8, 8, 1), dtype=np.uint8)
    samples = np.concatenate([images[[4]], rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)])
    nearest_grids({tmp_path / "n.png": samples, tmp_path / "other.png": images[10:14]}, images, n=4, k=2)
    with Image.open(tmp_path / "other.png") as png:  # a second grid from the same pass: its own samples
        assert (np.asarray(png)[::256 // 8, ::256 // 8][2:10, 2:10] == images[10, :, :, 0]).all()
    scale = 256 // 8
    with Image.open(tmp_path / "n.png") as png:
        assert png.size == ((4 * 10 + 2) * scale, (3 * 10 + 2) * scale)  # 4 samples wide, sample + 2 neighbours tall
        grid = np.asarray(png)[::scale, ::scale]
    cell = lambda row, col: grid[2 + 10 * row: 10 + 10 * row, 2 + 10 * col: 10 + 10 * col]  # noqa: E731
    assert (cell(0, 0) == cell(1, 0)).all()  # a copy of a training image has that image as its nearest
    idx, _ = nearest(samples, images, 2)
    for col in range(4):
        assert (cell(2, col) == images[idx[col, 1], :, :, 0]).all()  # the second nearest in the third row
