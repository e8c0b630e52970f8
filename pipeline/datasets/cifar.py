"""CIFAR-10 and CIFAR-100 from the binary archives of the Toronto page (no pickle).

Each record is the label byte(s) then 3,072 pixel bytes: the 32x32 red plane, then green, then
blue, rows first. CIFAR-10 records have one label byte; CIFAR-100 records a coarse then a fine
label byte (the fine label, 100 classes, is used). The archive is read from ``path`` when given,
else downloaded from ``url``, and its md5 is checked against the page's published value before
anything is read. Members are read from the archive, never extracted (pipeline/datasets/archive.py);
unexpected members are ignored and missing ones are an error. ``split``: train (50,000), test
(10,000) or all.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.datasets import RawDataset
from pipeline.datasets.archive import fetch, read_members
from pipeline.errors import PipelineError

PIXELS = 32 * 32 * 3


@dataclass(frozen=True)
class Layout:
    url: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_bytes: int  # bytes before the pixels; the last one is the label used
    names: str  # the member with one class name per line


CIFAR10 = Layout("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                 "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",),
                 1, "batches.meta.txt")
CIFAR100 = Layout("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                  "cifar-100-binary", ("train.bin",), ("test.bin",), 2, "fine_label_names.txt")
LAYOUTS = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def parse_records(data: bytes, label_bytes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N,32,32,3 images and int64 labels of a binary batch."""
    size = label_bytes + PIXELS
    if len(data) == 0 or len(data) % size:
        raise PipelineError(f"{what}: {len(data)} bytes is not a whole number of {size}-byte records")
    records = np.frombuffer(data, np.uint8).reshape(-1, size)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, label_bytes - 1].astype(np.int64)


def read_archive(archive: Path, layout: Layout, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    members = {"train": layout.train, "test": layout.test, "all": layout.train + layout.test}[split]
    names = [f"{layout.folder}/{m}" for m in (*members, layout.names)]
    data = read_members(archive, names)
    parts = [parse_records(data[f"{layout.folder}/{m}"], layout.label_bytes, m) for m in members]
    classes = [line.strip() for line in data[names[-1]].decode().splitlines() if line.strip()]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if labels.max() >= len(classes):
        raise PipelineError(f"{archive}: label {labels.max()} but {len(classes)} class names")
    return images, labels, classes


def load(name: str, path: str | None = None, url: str | None = None, split: str = "train",
         md5: str | None = None) -> RawDataset:
    layout = LAYOUTS[name]
    md5 = md5 or layout.md5
    with tempfile.TemporaryDirectory(prefix=f"{name}.") as work:
        archive, source, checksums = fetch(name, path, url or layout.url, md5, Path(work))
        images, labels, classes = read_archive(archive, layout, split)
    return RawDataset(images=images, labels=labels, classes=classes, source=source, checksums=checksums, split=split)
