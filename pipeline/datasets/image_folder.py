"""A user's images: ``dataset.path`` is a folder or a .zip of image files.

Class subfolders give the labels (ImageNet's ILSVRC train layout, ``train/<wnid>/*.JPEG``, works as
it is; a .zip may hold one top folder around them; symbolic links to folders are followed, loops
refused; a .zip's member names must be relative, without ``..``, and unique); a flat folder is one unlabelled class, and then
what needs labels is refused (see ``labelled``). Files are png, jpg/jpeg, webp, bmp, gif or tif(f),
matched by extension, in sorted order. Each is decoded with Pillow, converted to RGB, centre-cropped
to a square of its shorter side and resized with Pillow's bicubic filter (antialiased) to
``dataset.resolution``; meta.json says so. A file that cannot be decoded stops the stage naming it,
unless ``dataset.skip_corrupt: true``, which skips it and counts it in meta.json; so does an
encrypted or unsupported-compression member and an image over Pillow's decompression-bomb limit.
16-bit and float images are scaled by their full range (pipeline/datasets/stream.py ``to_8bit``). Decoding streams
into data/images.npy by a pool of worker processes (pipeline/datasets/stream.py), so memory does
not grow with the folder; meta.json records the sha256 of the decoded pixels.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from pipeline.datasets import UNLABELLED, RawDataset, stream
from pipeline.errors import PipelineError
from pipeline.io import load_npy

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESIZE = "centre crop to the shorter side, then Pillow bicubic (antialiased) to the resolution"


def _files(path: Path) -> list[str]:
    """The image files of a folder or a .zip: names within it, "/"-separated, sorted."""
    if path.is_dir():
        names = _walk(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
        _check_members(path, names)
    else:
        raise PipelineError(f"image_folder: dataset.path {path} is neither a folder nor a .zip file")
    names.sort()
    names = [n for n in names if os.path.splitext(n)[1].lower() in EXTENSIONS
             and not any(part.startswith(".") for part in n.split("/"))]  # hidden files and folders
    if not names:
        raise PipelineError(f"image_folder: no image files ({', '.join(sorted(EXTENSIONS))}) under {path}")
    if path.is_dir():
        for name in names:  # a FIFO or a device would block or never end a read
            try:
                regular = stat.S_ISREG(os.stat(path / name).st_mode)
            except OSError as err:
                raise PipelineError(f"image_folder: {path / name}: cannot be read ({err.strerror}); fix or remove it") from None
            if not regular:
                raise PipelineError(f"image_folder: {path / name} is not a regular file (a FIFO, socket or device); "
                                    "remove it")
    return names


def _walk(path: Path) -> list[str]:
    """The files under a folder, following symbolic links to folders (class folders are often links);
    one that leads to a folder already read (a loop, or a second link to it) is refused."""
    names, seen = [], set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            raise PipelineError(f"image_folder: {folder} leads to a folder already read (a symbolic link loop, or two links to one folder); "
                                "remove the link")
        seen.add(real)
        dirs.sort()
        rel = os.path.relpath(folder, path)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        names += [prefix + f for f in files]
    return names


def _check_members(path: Path, names: list[str]) -> None:
    """A .zip's member names must stay inside it (no absolute names, no ``..``) and be unique."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (parts[0].endswith(":") and len(parts[0]) == 2) or ".." in parts:
            raise PipelineError(f"image_folder: {path} holds member {name!r}, a name outside the archive "
                                "(absolute or with ..); rebuild the .zip with relative names")
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[:3]
        raise PipelineError(f"image_folder: {path} holds members stored more than once ({', '.join(twice)}); "
                            "rebuild the .zip with each file once")


def _classes(names: list[str], path: str | Path) -> tuple[list[str], np.ndarray]:
    """The class subfolders (sorted; [UNLABELLED] for a flat folder) and each file's class index. A
    .zip (or folder) holding one folder around the class folders, or around a flat folder, is read
    inside it."""
    wrapped = len({n.partition("/")[0] for n in names}) == 1
    if wrapped and all(n.count("/") == 1 for n in names):  # imgs/a.png, ...: a flat folder, zipped with its name
        return [UNLABELLED], np.zeros(len(names), np.int64)
    depth = int(wrapped and all(n.count("/") >= 2 for n in names))

    def class_of(name: str) -> str | None:
        return name.split("/", depth + 1)[depth] if name.count("/") > depth else None

    found = {class_of(n) for n in names}
    if None in found and len(found) > 1:
        raise PipelineError(f"image_folder: {path} mixes images in class subfolders with images at its top; "
                            f"move the loose ones into a class folder")
    if found == {None}:
        return [UNLABELLED], np.zeros(len(names), np.int64)
    classes = sorted(found)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.fromiter((index[class_of(n)] for n in names), np.int64, len(names))


def labelled(path: str | Path) -> bool:
    """Whether the images sit in class subfolders (every one of them)."""
    return _classes(_files(Path(path)), path)[0] != [UNLABELLED]


def load(path: str | None, resolution: int, out: Path, skip_corrupt: bool = False, max_images: int | None = None,
         **stream_options) -> RawDataset:
    """Decode the images into ``out`` (images.npy, streamed: pipeline/datasets/stream.py); the first
    ``max_images`` that decode. ``stream_options``: ``n_workers``, ``chunk``."""
    if not path:
        raise PipelineError("image_folder: set dataset.path to a folder or a .zip of images")
    root = Path(path)
    names = _files(root)
    classes, labels = _classes(names, root)
    done = stream.decode_to_npy(out, root, names, resolution, limit=max_images, skip_corrupt=skip_corrupt,
                                what="image_folder", hint="fix or remove it, or set dataset.skip_corrupt: true",
                                **stream_options)
    is_labelled = classes != [UNLABELLED]
    labels = labels[done.kept]
    return RawDataset(images=load_npy(out, mmap=True), labels=labels, classes=classes, source=str(root), split="all",
                      checksums={stream.PIXELS: done.sha256},
                      notes={"resize": RESIZE, "labelled": is_labelled, "skipped_corrupt": len(done.skipped),
                             "skipped_files": done.skipped[:20]})
