"""Dataset registry: name -> loader returning a :class:`RawDataset` at the source's own size.

A loader takes keyword options (source locations) and returns uint8 images N,H,W,C, int64 labels,
and provenance (where the bytes came from, their checksums). ``pipeline.stages.data`` resizes and writes,
except for the datasets of image files (``pipeline.stages.data.STREAMED``), whose loaders decode straight
into data/images.npy at the resolution and return it memory-mapped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


UNLABELLED = "(unlabelled)"  # the one class of a dataset without labels


@dataclass
class RawDataset:
    images: np.ndarray  # uint8 N,H,W,C
    labels: np.ndarray  # int64 N
    classes: list[str]
    source: str
    checksums: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    notes: dict[str, Any] = field(default_factory=dict)  # written to meta.json as they are


def _fashion_mnist(**options: Any) -> RawDataset:
    from pipeline.datasets.fashion_mnist import load

    return load(**options)


def _digits(**options: Any) -> RawDataset:
    from pipeline.datasets.digits import load

    return load(**options)


def _cifar(name: str) -> Callable[..., RawDataset]:
    def load(**options: Any) -> RawDataset:
        from pipeline.datasets import cifar

        return cifar.load(name, **options)
    return load


def _stl10(**options: Any) -> RawDataset:
    from pipeline.datasets.stl10 import load

    return load(**options)


def _image_folder(**options: Any) -> RawDataset:
    from pipeline.datasets.image_folder import load

    return load(**options)


def _celeba(**options: Any) -> RawDataset:
    from pipeline.datasets.celeba import load

    return load(**options)


REGISTRY: dict[str, Callable[..., RawDataset]] = {
    "fashion_mnist": _fashion_mnist,
    "digits": _digits,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "stl10": _stl10,
    "image_folder": _image_folder,
    "celeba": _celeba,
}
