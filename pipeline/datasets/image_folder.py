"""A user's images: ``dataset.path`` is a folder or a .zip of image files.

Class subfolders give the labels (ImageNet's ILSVRC train layout, ``train/<wnid>/*.JPEG``, works as
it is; a .zip may hold one top folder around them); a flat folder is one unlabelled class, and then
what needs labels is refused (see ``labelled``). Files are png, jpg/jpeg, webp, bmp, gif or tif(f),
matched by extension, in sorted order. Each is decoded with Pillow, converted to RGB, centre-cropped
to a square of its shorter side and resized with Pillow's bicubic filter (antialiased) to
``dataset.resolution``; meta.json says so. A file that cannot be decoded stops the stage naming it,
unless ``dataset.skip_corrupt: true``, which skips it and counts it in meta.json.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.datasets import UNLABELLED, RawDataset
from pipeline.errors import PipelineError

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


def _decode(data: bytes, resolution: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
        return np.asarray(im, np.uint8)


def load(path: str | None, resolution: int, skip_corrupt: bool = False) -> RawDataset:
    if not path:
        raise PipelineError("image_folder: set dataset.path to a folder or a .zip of images")
    root = Path(path)
    entries = _entries(root)
    is_labelled = _labelled(entries, root)
    classes = sorted({_class_of(rel) for rel, _ in entries}) if is_labelled else [UNLABELLED]
    index = {c: i for i, c in enumerate(classes)}
    archive = zipfile.ZipFile(root) if root.is_file() else None
    images, labels, skipped = [], [], []
    try:
        for rel, member in entries:
            try:
                data = archive.read(member) if archive else (root / member).read_bytes()
                images.append(_decode(data, resolution))
            except (UnidentifiedImageError, OSError, ValueError, zipfile.BadZipFile) as err:
                if not skip_corrupt:
                    raise PipelineError(f"image_folder: {root / member}: cannot be decoded ({type(err).__name__}); "
                                        f"fix or remove it, or set dataset.skip_corrupt: true") from None
                skipped.append(member)
                continue
            labels.append(index[_class_of(rel)] if is_labelled else 0)
    finally:
        if archive is not None:
            archive.close()
    if not images:
        raise PipelineError(f"image_folder: none of the {len(entries)} files under {root} could be decoded")
    return RawDataset(images=np.stack(images), labels=np.asarray(labels, np.int64), classes=classes,
                      source=str(root), split="all",
                      notes={"resize": RESIZE, "labelled": is_labelled, "skipped_corrupt": len(skipped),
                             "skipped_files": skipped[:20]})
