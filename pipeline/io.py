"""Atomic output writing, and input reading that fails with one line naming the file.

Each writer writes to a temporary file beside the target and renames it into place, so a killed
stage never leaves a truncated output that Snakemake or DVC would take as finished; the temporary
files a SIGKILL leaves behind (``.<name>.*.tmp``) are removed when the target is next written.
JSON is strict both ways: NaN and infinities are neither written nor read.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.errors import PipelineError

_UMASK = os.umask(0)
os.umask(_UMASK)


_STOPS = (signal.SIGTERM, signal.SIGINT)
_batches: list[list[tuple[Path, Path]]] = []  # open all_or_nothing blocks: their (temporary, target) pairs
_made: list[list[Path]] = []  # the folders each open block's outputs created, deepest first


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` if the block succeeds (inside
    ``all_or_nothing``: when that block succeeds)."""
    target = Path(target)
    made = _make_folder(target.parent)
    if _made:
        _made[-1][:0] = made
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual mode
    try:
        try:
            yield tmp_path
        except OSError as err:
            if err.filename is None:  # e.g. a full disk or a file size limit: say which output it was
                raise OSError(err.errno, err.strerror or str(err), str(target)) from err
            raise
        if _batches:  # renamed when the all_or_nothing block succeeds
            _batches[-1].append((tmp_path, target))
        else:
            _replace([(tmp_path, target)])
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        _remove_empty(made)
        raise


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    made = []
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    if made:
        made[0].mkdir(parents=True, exist_ok=True)
    return made


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders an output created, deepest first, while they are empty: a failed stage leaves
    no empty run folder behind."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (another output, or a file put there meanwhile), or gone
            continue


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """A stage's several outputs appear together or not at all: every ``atomic_path`` in the block
    keeps its temporary file until the block succeeds, then all are renamed into place; if it fails
    (a full disk, a signal, a folder where an output goes), they are removed and the previous outputs
    stay as they were."""
    batch: list[tuple[Path, Path]] = []
    _batches.append(batch)
    _made.append([])
    try:
        yield
        _replace(batch)
    except BaseException:
        for tmp, _ in batch:
            tmp.unlink(missing_ok=True)
        _remove_empty(_made[-1])
        raise
    finally:
        _batches.pop()
        _made.pop()


def _replace(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each temporary file to its target, every target checked first; a SIGTERM or SIGINT that
    arrives meanwhile is handled after the last rename, so that a stop cannot fall between two."""
    for _, target in pairs:
        if target.is_dir():
            raise PipelineError(f"{target}: a folder where this stage writes a file; remove it and rerun")
    deferred: list[int] = []
    on_main = threading.current_thread() is threading.main_thread()  # where Python handles signals
    held = {sig: signal.signal(sig, lambda signum, _: deferred.append(signum)) for sig in _STOPS} if on_main else {}
    try:
        for tmp, target in pairs:
            os.replace(tmp, target)
    finally:
        for sig, handler in held.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in deferred:
            signal.raise_signal(sig)


def save_npy(target: str | Path, array: np.ndarray) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def missing(path: Path) -> PipelineError:
    return PipelineError(f"{path}: no such file; run the stage that writes it (snakemake {path})")


def unreadable(path: Path, err: BaseException, kind: str) -> PipelineError:
    detail = " ".join(str(err).split())[:120] or type(err).__name__
    return PipelineError(f"{path}: unreadable {kind} ({detail}); delete it and rerun the stage that writes it")


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """A .npy array (no pickled objects); with ``mmap``, memory-mapped read-only (read as it is used)."""
    path = Path(path)
    if not path.is_file():
        raise missing(path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, EOFError, OSError) as err:  # truncated, object dtype, not an npy file
        raise unreadable(path, err, ".npy array") from None


def load_npz(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a .npz archive (no pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise missing(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in keys}
    except (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise unreadable(path, err, ".npz archive") from None


def save_json(target: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)  # ValueError on NaN: a bug upstream
    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_number(value: object) -> bool:
    """An int or float, not a bool (JSON's true would otherwise count as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_seed(value: object) -> bool:
    """A non-negative int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_json(path: str | Path) -> Any:
    """A strict JSON document (NaN, Infinity are refused)."""
    path = Path(path)
    if not path.is_file():
        raise missing(path)
    try:
        return json.loads(path.read_text(), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise unreadable(path, err, "JSON") from None


def load_json_object(path: str | Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object that has at least ``keys``."""
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(obj).__name__}; rerun the stage that writes it")
    lacking = [k for k in keys if k not in obj]
    if lacking:
        raise PipelineError(f"{path}: lacks {', '.join(lacking)}; rerun the stage that writes it")
    return obj


def save_npz(target: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
