"""Fashion-MNIST training split (60,000 28x28 grayscale images, 10 classes).

Sources are tried in order: a local directory of the idx .gz files (Debian's package
``dataset-fashion-mnist`` installs them in /usr/share/datasets/fashion-mnist), then the official
download URL. Debian recompressed the .gz files, so the checksums below are of the *decompressed*
idx files, which are byte-identical to upstream's.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.datasets import RawDataset
from pipeline.download import download, gunzip_to, verify_sha256
from pipeline.errors import PipelineError

LOCAL_DIR = "/usr/share/datasets/fashion-mnist"
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
FILES = {  # decompressed idx file -> sha256
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def parse_idx(path: Path) -> np.ndarray:
    """Parse an idx file (big-endian header: magic with dtype code and rank, then dimensions)."""
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise PipelineError(f"{path.name}: not an unsigned-byte idx file")
    rank = data[3]
    header = 4 + 4 * rank
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    if len(data) != header + int(np.prod(dims)):
        raise PipelineError(f"{path.name}: idx size does not match its header {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _fetch(name: str, sha256: str, local_dir: Path | None, base_url: str | None, work: Path) -> tuple[Path, str]:
    dest = work / name
    if local_dir is not None and (local_dir / f"{name}.gz").exists():
        gunzip_to(local_dir / f"{name}.gz", dest, what=str(local_dir / f"{name}.gz"))
        verify_sha256(dest, sha256, str(local_dir / f"{name}.gz"))
        return dest, str(local_dir)
    if base_url is None:
        raise PipelineError(f"fashion_mnist: {name}.gz not found in {local_dir} and no download URL given")
    download(f"{base_url.rstrip('/')}/{name}.gz", dest, sha256, gunzip=True)
    return dest, base_url


def load(local_dir: str | None = LOCAL_DIR, base_url: str | None = BASE_URL) -> RawDataset:
    local = Path(local_dir) if local_dir else None
    with tempfile.TemporaryDirectory(prefix="fashion_mnist.") as work:
        arrays, sources = {}, set()
        for name, sha256 in FILES.items():
            path, source = _fetch(name, sha256, local, base_url, Path(work))
            arrays[name] = parse_idx(path)
            sources.add(source)
    images = arrays["train-images-idx3-ubyte"][..., None]
    labels = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    if len(images) != len(labels):
        raise PipelineError(f"fashion_mnist: {len(images)} images but {len(labels)} labels")
    return RawDataset(images=images, labels=labels, classes=CLASSES, source=", ".join(sorted(sources)),
                      checksums={f"{k} (decompressed)": v for k, v in FILES.items()})
