"""Sample grids: a class (or condition) per column where the samples have few enough conditions."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.images import condition_columns, save_grid


def numbered(n: int, side: int = 4) -> np.ndarray:
    """uint8 images whose every pixel is the image's index (mod 256)."""
    return np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None], (n, side, side, 1)).copy()


def test_class_conditional_samples_get_a_class_per_column_in_class_order():
    images, classes = numbered(100), np.arange(100) % 10  # as cgan samples: cycling through the classes
    grid, columns = condition_columns(images, classes, 64)
    assert columns == 10 and len(grid) == 60
    rows = grid[:, 0, 0, 0].reshape(6, 10)  # save_grid's row-major order
    np.testing.assert_array_equal(rows % 10, np.tile(np.arange(10), (6, 1)))  # column k is class k
    np.testing.assert_array_equal(rows[:, 3], [3, 13, 23, 33, 43, 53])  # its first images, in sample order


def test_columns_are_as_long_as_the_rarest_class_allows():
    classes = np.array([0] * 30 + [1] * 2 + [2] * 30)
    grid, columns = condition_columns(numbered(62), classes, 30)
    assert columns == 3 and grid[:, 0, 0, 0].tolist() == [0, 30, 32, 1, 31, 33]


def test_unconditional_or_per_image_conditions_keep_the_square_grid():
    images = numbered(100)
    for conditions in (np.full(100, -1), np.arange(100)):  # unconditional; more conditions than the grid holds
        grid, columns = condition_columns(images, conditions, 64)
        assert columns is None
        np.testing.assert_array_equal(grid, images[:64])


def test_the_png_has_one_column_per_class_and_is_landscape(tmp_path):
    grid, columns = condition_columns(numbered(100, side=8), np.arange(100) % 10, 64)
    save_grid(grid, columns, path=tmp_path / "g.png")
    scale = 256 // 8
    with Image.open(tmp_path / "g.png") as png:
        assert png.size == ((10 * 10 + 2) * scale, (6 * 10 + 2) * scale)  # 10 columns, 6 rows of 8 px + 2 px gaps
