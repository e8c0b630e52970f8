"""CelebA, aligned and cropped faces (202,599 JPEGs of 178x218, no labels used), from img_align_celeba.zip.

The official hosting is Google Drive, which needs a scraper for its confirmation page; this project
has none. Download the zip yourself, as torchvision does (``torchvision.datasets.CelebA(download=True)``
fetches it with ``gdown``, file id ``0B7EVK8r0v71pZjFTYXZWM3FlRnM``; or ``gdown
0B7EVK8r0v71pZjFTYXZWM3FlRnM``), then give it as ``dataset.path``, or host it and give
``dataset.url``. Its md5 (torchvision's value) is checked before anything is read; the members
``img_align_celeba/NNNNNN.jpg`` are read from the zip, never extracted, in name order.

64 px protocol: each image's centre 108x108 square (rows 55-162, columns 35-142 of the 218x178
image), the crop of DCGAN-tensorflow's CelebA setting (``--input_height 108 --crop``) used by many
later 64 px GAN codes, is resized with Pillow's bicubic filter (antialiased) to
``dataset.resolution``; meta.json says so. The attribute and identity annotations are not read:
the dataset is one unlabelled class, so what needs labels is refused when params.yaml is read.
Decoding streams into data/images.npy (pipeline/datasets/stream.py).
"""
from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from pipeline.datasets import UNLABELLED, RawDataset, stream
from pipeline.datasets.archive import fetch
from pipeline.errors import PipelineError
from pipeline.io import load_npy

MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
DRIVE_ID = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
MEMBER = re.compile(r"img_align_celeba/\d{6}\.jpg")
CROP = 108
RESIZE = (f"centre crop {CROP}x{CROP} (DCGAN-tensorflow's CelebA crop), then Pillow bicubic (antialiased) "
          f"to the resolution")
NO_SOURCE = (f"celeba: set dataset.path to your img_align_celeba.zip (its official copy is on Google Drive: "
             f"pip install gdown; gdown {DRIVE_ID}) or dataset.url to where you host it")


def members(archive: Path) -> list[str]:
    """The img_align_celeba/NNNNNN.jpg members of the zip, sorted."""
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise PipelineError(f"celeba: {archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from None
    names = sorted(n for n in names if MEMBER.fullmatch(n))
    if not names:
        raise PipelineError(f"celeba: {archive} holds no img_align_celeba/NNNNNN.jpg; is it img_align_celeba.zip?")
    return names


def load(out: Path, resolution: int, path: str | None = None, url: str | None = None, max_images: int | None = None,
         md5: str | None = None, **stream_options) -> RawDataset:
    """Decode the zip's images into ``out`` (images.npy); the first ``max_images``."""
    if not path and not url:
        raise PipelineError(NO_SOURCE)
    with tempfile.TemporaryDirectory(prefix="celeba.") as work:
        archive, source, checksums = fetch("celeba", path, url, md5 or MD5, Path(work))
        done = stream.decode_to_npy(out, archive, members(archive), resolution, crop=CROP, limit=max_images,
                                    what="celeba", hint="the archive is damaged; download it again", **stream_options)
    return RawDataset(images=load_npy(out, mmap=True), labels=np.zeros(done.count, np.int64), classes=[UNLABELLED],
                      source=source, checksums={**checksums, stream.PIXELS: done.sha256}, split="all",
                      notes={"resize": RESIZE, "labelled": False})
