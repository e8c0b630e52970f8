"""Nearest training images: exact, streamed in chunks, against a brute-force computation, with and
without the images' horizontal mirrors."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline import figures
from pipeline.nearest import mirror, nearest, nearest_grids


def test_streamed_search_equals_brute_force_and_finds_copies_at_distance_zero():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 6, 6, 1), dtype=np.uint8)
    queries = np.concatenate([images[[17, 250]], rng.integers(0, 256, (3, 6, 6, 1), dtype=np.uint8)])
    idx, dist, mirrored = nearest(queries, images, k=4, chunk=64)  # five chunks, the last one short
    full = ((queries.reshape(5, 1, -1).astype(float) - images.reshape(1, 300, -1)) ** 2).sum(2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(dist, np.sqrt(np.take_along_axis(full, idx, 1)))
    assert idx[0, 0] == 17 and idx[1, 0] == 250 and dist[0, 0] == dist[1, 0] == 0  # a copy is its own nearest
    assert not mirrored.any()  # no query searched the mirrors


def test_ties_go_to_the_lower_index_whatever_the_chunking():
    images = np.zeros((10, 2, 2, 1), np.uint8)
    images[[3, 7]] = 5
    idx, _, _ = nearest(images[[7]], images, k=2, chunk=4)
    assert idx.tolist() == [[3, 7]]


def test_mirrored_search_equals_brute_force_over_both_orientations_each_image_once():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (300, 6, 6, 2), dtype=np.uint8)
    queries = np.concatenate([mirror(images[[17, 250]]), rng.integers(0, 256, (4, 6, 6, 2), dtype=np.uint8)])
    searched = np.array([True, False, True, True, False, True])
    idx, dist, mirrored = nearest(queries, images, k=6, chunk=64, mirrors=searched)
    flat = lambda x: x.reshape(len(x), -1).astype(float)  # noqa: E731
    own = ((flat(queries)[:, None] - flat(images)[None]) ** 2).sum(2)
    flipped = ((flat(queries)[:, None] - flat(mirror(images))[None]) ** 2).sum(2)
    full = np.where(searched[:, None], np.minimum(own, flipped), own)  # each image once, at the nearer
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(dist, np.sqrt(np.take_along_axis(full, idx, 1)))
    np.testing.assert_array_equal(mirrored, searched[:, None] & (np.take_along_axis(flipped, idx, 1)
                                                                 < np.take_along_axis(own, idx, 1)))
    assert idx[0, 0] == 17 and dist[0, 0] == 0 and mirrored[0, 0]  # a mirror copy, found as the mirror
    assert idx[1, 0] != 250  # ... but not by a query that searches the images alone


def test_a_symmetric_image_matches_unmirrored():
    images = np.zeros((4, 2, 2, 1), np.uint8)
    images[2] = 9  # its own mirror: the tie goes to the unmirrored
    idx, dist, mirrored = nearest(images[[2]], images, k=2, mirrors=[True])
    assert idx.tolist() == [[2, 0]] and dist[0, 0] == 0 and not mirrored.any()


def test_each_figure_has_its_samples_on_top_and_each_ones_neighbours_below_it(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 8, 8, 1), dtype=np.uint8)
    samples = np.concatenate([images[[4]], mirror(images[[9]]), rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)])
    drawn = []
    monkeypatch.setattr(figures, "nearest_figure", lambda *args: drawn.append(args))
    targets = tmp_path / "n.png", tmp_path / "other.png", tmp_path / "flips.png"
    nearest_grids(dict(zip(targets, (samples, images[10:14], samples))), images, mirrored={targets[2]}, n=4, k=2)
    (shown, found, dist, flipped, title, target), other, flips = drawn
    assert target == targets[0] and (shown == samples).all() and (other[0] == images[10:14]).all()
    idx, _, _ = nearest(samples, images, 2)
    assert (found == images[idx]).all() and not flipped.any() and "mirror" not in title
    assert dist[0, 0] == 0 and dist[1, 0] > 0  # a copy is found, a mirror copy is not ...
    _, found, dist, flipped, title, _ = flips
    assert dist[1, 0] == 0 and flipped[1, 0] and (found[1, 0] == samples[1]).all()  # ... unless mirrors are searched
    assert "horizontal mirrors" in title  # shown as it matched, and said so


def test_the_figure_is_a_png_with_a_column_per_sample(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    nearest_grids({tmp_path / "n.png": images[:6]}, images, mirrored={tmp_path / "n.png"}, n=4, k=2)
    with Image.open(tmp_path / "n.png") as png:
        assert png.format == "PNG" and png.width > png.height  # 4 samples wide, a sample and 2 neighbours tall
