"""A user's images: ``dataset.path`` is a folder or a .zip of image files.

Class subfolders give the labels (ImageNet's ILSVRC train layout, ``train/<wnid>/*.JPEG``, works as
it is; a .zip may hold one top folder around them); a flat folder is one unlabelled class, and then
what needs labels is refused (see ``labelled``). Files are png, jpg/jpeg, webp, bmp, gif or tif(f),
matched by extension, in sorted order. Each is decoded with Pillow, converted to RGB, centre-cropped
to a square of its shorter side and resized with Pillow's bicubic filter (antialiased) to
``dataset.resolution``; meta.json says so. A file that cannot be decoded stops the stage naming it,
unless ``dataset.skip_corrupt: true``, which skips it and counts it in meta.json. Decoding streams
into data/images.npy by a pool of worker processes (pipeline/datasets/stream.py), so memory does
not grow with the folder; meta.json records the sha256 of the decoded pixels.
"""
from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.datasets import UNLABELLED, RawDataset, stream
from pipeline.errors import PipelineError
from pipeline.io import load_npy

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESIZE = "centre crop to the shorter side, then Pillow bicubic (antialiased) to the resolution"


def _entries(path: Path) -> list[tuple[PurePosixPath, str]]:
    """(path relative to the class root, member name) of the image files of a folder or a .zip, sorted."""
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
    else:
        raise PipelineError(f"image_folder: dataset.path {path} is neither a folder nor a .zip file")
    names = sorted(n for n in names if PurePosixPath(n).suffix.lower() in EXTENSIONS
                   and not PurePosixPath(n).name.startswith("."))
    if not names:
        raise PipelineError(f"image_folder: no image files ({', '.join(sorted(EXTENSIONS))}) under {path}")
    rel = [PurePosixPath(n) for n in names]
    if len({r.parts[0] for r in rel}) == 1 and all(len(r.parts) > 2 for r in rel):  # one folder around the classes
        rel = [PurePosixPath(*r.parts[1:]) for r in rel]
    return list(zip(rel, names))


def _class_of(name: PurePosixPath) -> str | None:
    return name.parts[0] if len(name.parts) > 1 else None


def labelled(path: str | Path) -> bool:
    """Whether the images sit in class subfolders (every one of them)."""
    return _labelled(_entries(Path(path)), path)


def _labelled(entries: list[tuple[PurePosixPath, str]], path: str | Path) -> bool:
    classes = [_class_of(rel) for rel, _ in entries]
    if any(c is None for c in classes) and any(c is not None for c in classes):
        raise PipelineError(f"image_folder: {path} mixes images in class subfolders with images at its top; "
                            f"move the loose ones into a class folder")
    return classes[0] is not None


def load(path: str | None, resolution: int, out: Path, skip_corrupt: bool = False, max_images: int | None = None,
         **stream_options) -> RawDataset:
    """Decode the images into ``out`` (images.npy, streamed: pipeline/datasets/stream.py); the first
    ``max_images`` that decode. ``stream_options``: ``n_workers``, ``chunk``."""
    if not path:
        raise PipelineError("image_folder: set dataset.path to a folder or a .zip of images")
    root = Path(path)
    entries = _entries(root)
    is_labelled = _labelled(entries, root)
    classes = sorted({_class_of(rel) for rel, _ in entries}) if is_labelled else [UNLABELLED]
    index = {c: i for i, c in enumerate(classes)}
    done = stream.decode_to_npy(out, root, [member for _, member in entries], resolution, limit=max_images,
                                skip_corrupt=skip_corrupt, what="image_folder",
                                hint="fix or remove it, or set dataset.skip_corrupt: true", **stream_options)
    labels = np.asarray([index[_class_of(entries[i][0])] if is_labelled else 0 for i in done.kept], np.int64)
    return RawDataset(images=load_npy(out, mmap=True), labels=labels, classes=classes, source=str(root), split="all",
                      checksums={stream.PIXELS: done.sha256},
                      notes={"resize": RESIZE, "labelled": is_labelled, "skipped_corrupt": len(done.skipped),
                             "skipped_files": done.skipped[:20]})
