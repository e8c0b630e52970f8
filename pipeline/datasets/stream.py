"""Streaming preparation: image files decoded by a pool of worker processes into a memory-mapped .npy.

The files (of a folder, or members of a .zip) are cut into chunks of ``CHUNK`` images; each worker
process reads and decodes a chunk (Pillow: RGB, centre square crop, bicubic resize) and sends back
its uint8 images, which the main process writes, in file order, through a memory-mapped window
into images.npy (created by ``numpy.lib.format.open_memmap`` beside the target and renamed into
place when every image is written; pipeline/io.py ``atomic_path``). At most ``2 x workers`` chunks
are in flight and each window is unmapped once written, so peak memory does not grow with the
dataset. The sha256 of the pixels is computed as the chunks are written. The output is the same,
byte for byte, as decoding every file in one process and saving the stacked array with
``numpy.save``.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import multiprocessing
import os
import zipfile
import zlib
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.errors import PipelineError, die_with_parent
from pipeline.io import atomic_path

CHUNK = 256  # images per worker task
COPY_ROWS = 4096  # rows per block when a skipped file leaves the array to be shortened
PIXELS = "pixels (uint8 N,H,W,C of images.npy)"  # meta.json checksums_sha256 key of the decoded images
# what an unreadable file raises: bad bytes, and Pillow's DecompressionBombError (more than twice
# Image.MAX_IMAGE_PIXELS); _read turns a zip member it cannot read into a ValueError first
ERRORS = (UnidentifiedImageError, OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
          Image.DecompressionBombError)
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
               zipfile.ZIP_LZMA: "lzma"}  # the compression methods zipfile reads
WIDE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}  # mode -> full scale


def workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def to_8bit(im: Image.Image) -> Image.Image:
    """Single-channel images wider than 8 bits scaled by their full range to 8 bits (``WIDE``: 16-bit
    integers, and 32-bit ones read as 16-bit PNGs are, by 65,535; floats by 1.0), rounded; Pillow's
    own conversion would clip them at 255. Values outside that range are refused."""
    if im.mode not in WIDE:
        return im
    a = np.asarray(im, np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > WIDE[im.mode]:
        raise ValueError(f"{im.mode} pixel values {a.min():g}..{a.max():g} lie outside 0..{WIDE[im.mode]:g}")
    return Image.fromarray(np.rint(a * (255 / WIDE[im.mode])).astype(np.uint8), "L")


def decode(data: bytes, resolution: int, crop: int | None = None) -> np.ndarray:
    """uint8 H,W,3 of an encoded image (``to_8bit``): RGB, the centre square of side ``crop`` (None:
    the shorter side) cut out, then resized with Pillow's bicubic filter (antialiased) to ``resolution``."""
    with Image.open(io.BytesIO(data)) as im:
        im = to_8bit(im).convert("RGB")
        side = crop or min(im.size)
        if side > min(im.size):
            raise ValueError(f"{im.width}x{im.height} is smaller than the {side}-pixel centre crop")
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
        return np.asarray(im, np.uint8)


_ZIP: tuple[int, str, zipfile.ZipFile] | None = None  # this process's open archive (never shared across a fork)


def _read(root: str, name: str) -> bytes:
    global _ZIP
    if not os.path.isdir(root):
        if _ZIP is None or _ZIP[:2] != (os.getpid(), root):
            _ZIP = (os.getpid(), root, zipfile.ZipFile(root))
        info = _ZIP[2].getinfo(name)
        if info.flag_bits & 0x1:
            raise ValueError("an encrypted zip member (no password is given)")
        if info.compress_type not in ZIP_METHODS:
            raise ValueError(f"zip compression method {info.compress_type} is not one of {', '.join(ZIP_METHODS.values())}")
        return _ZIP[2].read(info)
    with open(os.path.join(root, name), "rb") as fh:
        return fh.read()


def decode_chunk(root: str, names: list[str], resolution: int, crop: int | None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The decoded images of ``names`` (a folder's files or a .zip's members), stacked, and the
    (position, error) of each that could not be read or decoded."""
    images, failed = [], []
    for pos, name in enumerate(names):
        try:
            images.append(decode(_read(root, name), resolution, crop))
        except ERRORS as err:
            failed.append((pos, f"{type(err).__name__}: {err}"[:200]))
    return (np.stack(images) if images else np.empty((0, resolution, resolution, 3), np.uint8)), failed


@dataclass
class Decoded:
    count: int  # images written
    kept: np.ndarray  # positions in ``names`` of the images written, in order
    skipped: list[str]  # files that could not be decoded (with skip_corrupt)
    sha256: str  # of the uint8 N,H,W,C pixels as written


class _Inline(Executor):
    """Runs each task in this process (one worker, or a single chunk)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _chunks(pool: Executor, root: Path, names: list[str], resolution: int, crop: int | None, chunk: int,
            window: int):
    """(start, images, failures) of each chunk in order, with at most ``window`` chunks in flight."""
    pending: collections.deque = collections.deque()
    starts = iter(range(0, len(names), chunk))
    for start in starts:
        pending.append((start, pool.submit(decode_chunk, str(root), names[start:start + chunk], resolution, crop)))
        if len(pending) >= window:
            break
    while pending:
        start, future = pending.popleft()
        nxt = next(starts, None)
        try:
            if nxt is not None:
                pending.append((nxt, pool.submit(decode_chunk, str(root), names[nxt:nxt + chunk], resolution, crop)))
            result = future.result()
        except BrokenProcessPool:
            raise PipelineError(f"a decode worker process died while reading {root} (killed, or out of memory); "
                                "rerun the stage") from None
        yield (start, *result)


@contextlib.contextmanager
def _closing(pool: Executor):
    """Stop the workers however the block ends (chunks not started are cancelled), and close this
    process's archive if it read one."""
    global _ZIP
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if _ZIP is not None and _ZIP[0] == os.getpid():
            _ZIP[2].close()
            _ZIP = None


def _put(path: Path, offset: int, start: int, block: np.ndarray) -> None:
    """Write ``block`` at row ``start`` of the .npy at ``path`` (data at ``offset``) through a memory map."""
    row = int(np.prod(block.shape[1:]))
    window = np.memmap(path, np.uint8, "r+", offset=offset + start * row, shape=block.shape)
    window[:] = block
    window.flush()
    del window  # unmapped: written pages leave this process's resident set


def _create(path: Path, shape: tuple[int, ...]) -> int:
    """An uninitialised uint8 .npy of ``shape`` at ``path``, its blocks reserved on disk; the offset of
    its data. Writing through a memory map into a sparse file on a full disk kills the process with
    SIGBUS; reserving the blocks first turns that into an OSError (ENOSPC) naming the file."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    offset = array.offset
    del array
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, offset + int(np.prod(shape)))
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate: left sparse
                raise OSError(err.errno, err.strerror, str(path)) from None
    return offset


def decode_to_npy(target: Path, root: Path, names: list[str], resolution: int, *, crop: int | None = None,
                  limit: int | None = None, skip_corrupt: bool = False, what: str, hint: str,
                  n_workers: int | None = None, chunk: int | None = None) -> Decoded:
    """Decode ``names`` (files of the folder ``root``, or members of the .zip ``root``) in order into
    ``target``, an images.npy of uint8 N,``resolution``,``resolution``,3 (N: the first ``limit`` that
    decode, default all). An undecodable file raises PipelineError naming it (``what``: the dataset,
    ``hint``: what to do), unless ``skip_corrupt``; nothing is written at ``target`` unless all went well."""
    n_workers = n_workers or workers()
    chunk = chunk or CHUNK
    n = len(names) if limit is None else min(limit, len(names))
    shape = (n, resolution, resolution, 3)
    digest, skipped_at, written, end = hashlib.sha256(), [], 0, 0
    use_pool = n_workers > 1 and len(names) > chunk
    pool = (ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent,
                                initargs=(os.getpid(),)) if use_pool else _Inline())
    with atomic_path(target) as tmp, _closing(pool), tqdm(total=n, unit="img", desc=f"{what}: decoding",
                                                          disable=None, leave=False) as bar:
        offset = _create(tmp, shape)
        for start, images, failures in _chunks(pool, root, names, resolution, crop, chunk, 2 * n_workers):
            take = min(len(images), n - written)
            bad = dict(failures)
            good = [i for i in range(min(chunk, len(names) - start)) if i not in bad]
            # files read so far: the chunk, or up to the last image needed (a file after it is never decoded)
            end = start + (good[take - 1] + 1 if written + take == n else min(chunk, len(names) - start))
            for pos, err in bad.items():
                if start + pos >= end:  # past the last image needed
                    continue
                if not skip_corrupt:
                    raise PipelineError(f"{what}: {root / names[start + pos]}: cannot be decoded ({err}); {hint}")
                skipped_at.append(start + pos)
            block = images[:take]
            _put(tmp, offset, written, block)
            digest.update(block.data)
            written += take
            bar.update(take)
            if written == n:
                break
        if written == 0:
            raise PipelineError(f"{what}: none of the {len(names)} files under {root} could be decoded")
        if written < n:  # skipped files: the array holds fewer rows than allocated
            _shorten(tmp, offset, (written, *shape[1:]))
    return Decoded(count=written, kept=np.setdiff1d(np.arange(end), skipped_at), skipped=[names[i] for i in skipped_at],
                   sha256=digest.hexdigest())


def _shorten(path: Path, offset: int, shape: tuple[int, ...]) -> None:
    """Keep the first shape[0] rows of the .npy at ``path`` (a new header, copied block by block)."""
    src = np.memmap(path, np.uint8, "r", offset=offset, shape=shape)
    with atomic_path(path) as tmp:
        out_offset = _create(tmp, shape)
        for start in range(0, shape[0], COPY_ROWS):
            _put(tmp, out_offset, start, np.asarray(src[start:start + COPY_ROWS]))
    del src
