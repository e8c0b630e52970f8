"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): offline, for fast tests."""
from __future__ import annotations

import numpy as np

from pipeline.datasets import RawDataset


def load() -> RawDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return RawDataset(
        images=images,
        labels=bunch.target.astype(np.int64),
        classes=[str(c) for c in range(10)],
        source="sklearn.datasets.load_digits",
        split="all",
    )
