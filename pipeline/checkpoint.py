"""Checkpoints: plain dicts of tensors and numbers, loaded with ``weights_only=True``.

Contents: format, method, fingerprint (hash of everything that defines the run), step, nets,
optimiser and EMA state dicts, RNG states (CPU and CUDA), the training log so far, and the
method's hyper-parameters and train settings (so sampling rebuilds the same networks).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

FORMAT = 2  # 2: the method's random streams in rng (pipeline/streams.py)
KEYS = ("method", "fingerprint", "step", "nets", "opts", "ema", "rng", "log", "elapsed")  # the trainer's


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically. torch.save reports a failed write (a full disk) as a RuntimeError
    from its zip writer; it becomes one line naming the file."""
    with atomic_path(path) as tmp:
        try:
            torch.save({"format": FORMAT, **state}, tmp)
        except RuntimeError as err:
            if "inline_container" not in str(err) and "write" not in str(err).lower():
                raise
            free = shutil.disk_usage(Path(path).parent).free / 2**20
            raise PipelineError(f"{path}: the checkpoint could not be written ({free:.0f} MiB free on its disk); "
                                "free space and rerun to resume") from None


def load(path: str | Path, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A checkpoint with the trainer's keys and ``keys`` (e.g. the train stage's run, hp, train, seed)."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: no checkpoint; run the train stage first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: report it, do not guess
        raise PipelineError(f"{path}: unreadable checkpoint ({type(err).__name__}); delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PipelineError(f"{path}: not a ganbench checkpoint of format {FORMAT}; delete it and retrain")
    lacking = [k for k in (*KEYS, *keys) if k not in state]
    if lacking:
        raise PipelineError(f"{path}: checkpoint lacks {', '.join(lacking)}; delete it and retrain")
    return state
