"""SimCLR on the dataset itself: a small ResNet encoder trained with the NT-Xent loss.

Each step draws ``batch_size`` images, makes two augmented views of each (random resized crop,
horizontal flip, brightness and contrast jitter; for colour images also saturation jitter and
random grayscale), and pulls the projections of the two views of an image together against the
other 2B - 2 views (Chen et al. 2020). Adam with a cosine learning-rate decay. Labels are never
used. The features are the encoder's pooled output (the projection head is dropped).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.images import to_float
from pipeline.io import atomic_path
from pipeline.methods.base import hold

CROP_SCALE = (0.3, 1.0)  # area fraction of a random resized crop (SimCLR: 0.08; small images need more)
JITTER = 0.4  # brightness, contrast and saturation factors are drawn from [1 - JITTER, 1 + JITTER]
JITTER_P = 0.8
GRAYSCALE_P = 0.2


class Block(nn.Module):
    """ResNet basic block: two 3x3 convolutions with BatchNorm and a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Encoder(nn.Module):
    """Stride-2 stem, then three blocks of width w, 2w, 4w (the last two stride 2), average-pooled: 4w-d."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.channels, self.width, self.dim = channels, width, 4 * width
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def projection_head(dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: mean over the 2B views of -log softmax of the positive among the other 2B - 1 views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    b = len(z1)
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, positive)


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def augment(x: torch.Tensor) -> torch.Tensor:
    """One random view of each float image in [-1, 1] (B, C, H, W); draws from torch's global RNG."""
    b, c, dev = x.shape[0], x.shape[1], x.device
    area = _uniform(b, *CROP_SCALE, dev)
    ratio = torch.exp(_uniform(b, math.log(3 / 4), math.log(4 / 3), dev))
    sx, sy = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
    tx, ty = _uniform(b, -1, 1, dev) * (1 - sx), _uniform(b, -1, 1, dev) * (1 - sy)
    zero = torch.zeros(b, device=dev)
    theta = torch.stack([torch.stack([sx * flip, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).add(1).div(2)

    on = (torch.rand(b, 1, 1, 1, device=dev) < JITTER_P).float()
    factor = lambda: 1 + on * _uniform(b, -JITTER, JITTER, dev).view(b, 1, 1, 1)  # noqa: E731
    y = y * factor()
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * factor() + mean
    if c == 3:
        gray = (y * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
        y = (y - gray) * factor() + gray
        to_gray = torch.rand(b, 1, 1, 1, device=dev) < GRAYSCALE_P
        y = torch.where(to_gray, gray.expand_as(y), y)
    return y.clamp(0, 1).mul(2).sub(1)


def train(images: np.ndarray, cfg: dict[str, Any], device: torch.device,
          budget_mb: float | None = None) -> tuple[Encoder, dict[str, Any]]:
    """Train an encoder on uint8 N,H,W,C ``images`` for ``cfg['steps']`` steps (seed set by the caller);
    images over ``budget_mb`` are read batch by batch from their memory map (same results)."""
    encoder = Encoder(images.shape[-1], cfg["width"]).to(device)
    head = projection_head(encoder.dim, cfg["projection_dim"]).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["steps"])
    data = hold(images, device, budget_mb)
    losses, start = [], time.perf_counter()
    bar = tqdm(range(cfg["steps"]), desc="simclr", disable=None, leave=False)
    for _ in bar:
        x = to_float(data[torch.randint(len(data), (cfg["batch_size"],), device=device)])
        z = head(encoder(torch.cat([augment(x), augment(x)])))
        loss = nt_xent(*z.chunk(2), cfg["temperature"])
        if not torch.isfinite(loss):
            raise PipelineError(f"simclr: loss became {loss.item()} at step {len(losses)}; lower features.simclr.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    tail = max(1, len(losses) // 10)
    log = {"steps": cfg["steps"], "seconds": round(time.perf_counter() - start, 1),
           "loss_first": round(losses[0], 4), "loss_last_10pct": round(float(np.mean(losses[-tail:])), 4)}
    return encoder.eval(), log


def save_encoder(encoder: Encoder, path: str | Path) -> None:
    """A plain dict (architecture numbers and the state dict), loadable with ``weights_only=True``."""
    with atomic_path(path) as tmp:
        torch.save({"channels": encoder.channels, "width": encoder.width, "state_dict": encoder.state_dict()}, tmp)


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> Encoder:
    """The encoder saved by :func:`save_encoder`, in eval mode (to embed new images in the same space)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        encoder = Encoder(state["channels"], state["width"])
        encoder.load_state_dict(state["state_dict"])
    except Exception as err:  # empty (EOFError), text (KeyError), truncated or foreign: report it, do not guess
        raise PipelineError(f"{path}: not a SimCLR encoder saved by the features stage ({type(err).__name__}); "
                            f"rebuild it (snakemake -f {path})") from None
    return encoder.to(device).eval()
