"""STL-10 (96x96 RGB, 10 classes, and 100,000 unlabelled images) from stl10_binary.tar.gz.

``X`` files hold uint8 images of 3 x 96 x 96 bytes, each channel (red, green, blue) stored column by
column; ``y`` files one label byte per image, 1 to 10. The archive's md5 (torchvision's value) is
checked before anything is read, and members are read without extraction (archive.py).
``split``: train (5,000 labelled), test (8,000 labelled), unlabeled (100,000) or train+unlabeled
(105,000, the unsupervised setting; its labels are dropped: one unlabelled class, so what needs
labels is refused when params.yaml is read). Images are resized to ``dataset.resolution`` by the
data stage (bilinear, antialiased).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.datasets import UNLABELLED, RawDataset
from pipeline.datasets.archive import fetch, read_members
from pipeline.errors import PipelineError

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
FOLDER = "stl10_binary"
SIDE = 96
SPLITS = {"train": ["train"], "test": ["test"], "unlabeled": ["unlabeled"], "train+unlabeled": ["train", "unlabeled"]}


def parse_images(data: bytes, what: str) -> np.ndarray:
    """uint8 N,96,96,3 from channel planes stored column by column."""
    size = 3 * SIDE * SIDE
    if len(data) == 0 or len(data) % size:
        raise PipelineError(f"{what}: {len(data)} bytes is not a whole number of {size}-byte images")
    return np.ascontiguousarray(np.frombuffer(data, np.uint8).reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1))


def labelled(split: str) -> bool:
    return split in ("train", "test")


def load(path: str | None = None, url: str | None = None, split: str = "train", md5: str = MD5) -> RawDataset:
    if split not in SPLITS:
        raise PipelineError(f"stl10: dataset.split {split!r} is not one of {', '.join(SPLITS)}")
    parts = SPLITS[split]
    names = [f"{FOLDER}/{p}_X.bin" for p in parts] + [f"{FOLDER}/class_names.txt"]
    names += [f"{FOLDER}/{p}_y.bin" for p in parts if p != "unlabeled"] if labelled(split) else []
    with tempfile.TemporaryDirectory(prefix="stl10.") as work:
        archive, source, checksums = fetch("stl10", path, url or URL, md5, Path(work))
        data = read_members(archive, names)
    images = np.concatenate([parse_images(data[f"{FOLDER}/{p}_X.bin"], f"{p}_X.bin") for p in parts])
    if labelled(split):
        classes = [c.strip() for c in data[f"{FOLDER}/class_names.txt"].decode().splitlines() if c.strip()]
        labels = np.frombuffer(data[f"{FOLDER}/{parts[0]}_y.bin"], np.uint8).astype(np.int64) - 1
        if len(labels) != len(images) or labels.min() < 0 or labels.max() >= len(classes):
            raise PipelineError(f"stl10: {parts[0]}_y.bin holds {len(labels)} labels in "
                                f"{labels.min() + 1}..{labels.max() + 1} for {len(images)} images and {len(classes)} classes")
    else:
        classes, labels = [UNLABELLED], np.zeros(len(images), np.int64)
    return RawDataset(images=images, labels=labels, classes=classes, source=source, checksums=checksums, split=split,
                      notes={"labelled": labelled(split)})
