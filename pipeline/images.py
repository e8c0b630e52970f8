"""Image conversions shared by every stage: uint8 N,H,W,C arrays <-> float tensors in [-1, 1]."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.io import atomic_path


def to_float(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 N,H,W,C -> float32 N,C,H,W in [-1, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:  # a slice of a read-only memory map
        images = np.array(images)
    t = torch.as_tensor(images).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float N,C,H,W in [-1, 1] -> uint8 N,H,W,C (values outside the range are clipped)."""
    t = images.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255)
    return t.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def fit_to_resolution(images: np.ndarray, resolution: int) -> tuple[np.ndarray, str]:
    """Bring uint8 N,H,W,C square images to ``resolution``; returns the images and how it was done.

    28 -> 32 is a zero-pad of 2 pixels on each side (the digits keep their pixels); any other
    change is a bilinear, antialiased resize.
    """
    n, h, w, c = images.shape
    if h != w:
        raise PipelineError(f"images are {h}x{w}; only square images are supported")
    if h == resolution:
        return images, "none"
    if (h, resolution) == (28, 32):
        return np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))), f"zero-pad {h}->{resolution}"
    out = np.empty((n, resolution, resolution, c), np.uint8)
    for start in range(0, n, 4096):
        t = to_float(images[start:start + 4096])
        t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + 4096] = to_uint8(t)
    return out, f"bilinear resize {h}->{resolution}"


def check_images(images: np.ndarray, like: tuple[int, ...], what: str) -> None:
    """Raise PipelineError unless ``images`` is uint8 N,H,W,C with the H,W,C of ``like``."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != tuple(like):
        raise PipelineError(
            f"{what}: expected uint8 images of shape N,{','.join(map(str, like))}, "
            f"got {images.dtype} {images.shape}"
        )


def condition_columns(images: np.ndarray, conditions: np.ndarray, n: int) -> tuple[np.ndarray, int | None]:
    """About ``n`` of ``images`` a condition per column (a class, for class-conditional runs and real
    images), conditions in ascending order left to right, each column the first images of its
    condition, in save_grid's row-major order; returns them and the row length (the number of
    conditions). With fewer than two conditions, or more than ``n``, the first ``n`` images and no
    row length (save_grid's square layout)."""
    ids = np.unique(conditions)
    if not 2 <= len(ids) <= n:
        return images[:n], None
    members = [np.flatnonzero(conditions == k) for k in ids]
    per = min(n // len(ids), *(len(m) for m in members))
    return images[np.stack([m[:per] for m in members], 1).ravel()], len(ids)


def save_grid(images: np.ndarray, columns: int | None = None, *, path: str | Path) -> None:
    """Write uint8 N,H,W,C images as one PNG grid with 2-pixel gaps, ``columns`` per row (default:
    a square)."""
    n, h, w, c = images.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = 2
    grid = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[gap + r * (h + gap): gap + r * (h + gap) + h, gap + k * (w + gap): gap + k * (w + gap) + w] = img
    scale = max(1, 256 // max(h, w))
    pil = Image.fromarray(grid[..., 0] if c == 1 else grid)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
