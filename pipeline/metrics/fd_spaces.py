"""fd_spaces: the Fréchet distance of the samples in several feature spaces, to check FD verdicts.

dgm-eval (Stein et al., 2023) found that the feature space can change how models rank: a verdict
that holds in one space only is weak. The primary FD verdicts are judged in ``evaluate.backbone``'s
space (the fid metric); this metric measures the same distance in each of ``evaluate.spaces``, and
the report shows the pair's difference in every space beside the verdict (docs/metrics.md):

- ``efficientnet_lite0``, ``efficientnet_lite2``, ``inception``: the ImageNet networks of
  pipeline/backbones.py at ``evaluate.spaces_input_size`` (48; Inception: 299 px, about 190 times
  Lite0's cost on CPU, so it is not in the default list) with ``evaluate.resize``. At 32 px
  EfficientNet-Lite2 leaves all but 3 of its 1,280 features at zero on Fashion-MNIST's 5,000
  reference images (5 on 1,300 digits); at 48 px 1,278 of them vary on 1,000 images (1,007);
- ``simclr``: the self-supervised encoder the features stage trained on this dataset (its pooled
  4w-d features, not L2-normalised), copied into the reference folder with its sha256;
- ``pixels``: the images average-pooled to at most 16 x 16 and flattened (at most 768 numbers, fewer
  than the sample counts need), the space with no learning at all.

The ``spaces`` reference (``python -m pipeline.stages.reference --name spaces``) holds each space's mean,
covariance and covariance factor of the ``evaluate.n_real`` real images the backbone reference uses. ``value`` is the
first listed space's distance; every space's is a field of its own. A space where fewer than a tenth
of the features vary over the real images is refused when the reference is built (degenerate: its
FD says little), and each space's count of varying features is recorded (``live_<space>`` in the
reference.json). Cost: one forward pass of each network over the samples, and one d x d
eigendecomposition per space (d <= 1,280 by default).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline import backbones
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.metrics.fid import RunningStats, check_count, frechet_distance, live_features, load_real, save_real
from pipeline.subsets import real_rows

reference = "spaces"
SPACES = (*backbones.NAMES, "simclr", "pixels")
PIXELS_SIDE = 16  # pixels: images average-pooled to at most this side
ENCODER = "encoder.pt"  # the SimCLR encoder, copied into the reference folder


class Pixels(nn.Module):
    """[-1, 1] images average-pooled to at most ``PIXELS_SIDE`` and flattened."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = min(PIXELS_SIDE, x.shape[-1])
        return F.adaptive_avg_pool2d(x, side).flatten(1)


def space_net(space: str, params: dict, device: torch.device | str,
              encoder: Path | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network that maps [-1, 1] images (B, C, H, W) to ``space``'s features (simclr: the ``encoder`` file's)."""
    ev = params["evaluate"]
    if space in backbones.NAMES:
        return backbones.load(space, ev["spaces_input_size"], device, ev["resize"])
    if space == "simclr":
        from pipeline.features import simclr

        return simclr.load_encoder(encoder, device)
    if space == "pixels":
        return Pixels()
    raise PipelineError(f"fd_spaces: unknown space {space!r} (known: {', '.join(SPACES)})")


def statistics(net: Callable, images: np.ndarray, batch_size: int, device) -> RunningStats:
    stats = None
    for batch in backbones.feature_batches(net, images, batch_size, device, desc="feature space"):
        if stats is None:
            stats = RunningStats(batch.shape[1])
        stats.update(batch)
    return stats


def build_reference(params: dict, images: np.ndarray, labels: np.ndarray, out: Path,
                    encoder: Path | None = None) -> dict:
    """Each space's real statistics over the backbone reference's real subset; the SimCLR encoder
    (``encoder``, the features stage's) loaded first, then copied beside them."""
    ev = params["evaluate"]
    spaces = ev["spaces"]
    if not spaces:
        raise PipelineError("fd_spaces: evaluate.spaces is empty; list the feature spaces to measure FD in")
    meta = {"spaces": spaces, "n_real": ev["n_real"], "spaces_input_size": ev["spaces_input_size"]}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if "simclr" in spaces:
        if encoder is None or not Path(encoder).is_file():
            raise PipelineError(f"fd_spaces: the simclr space needs the features stage's encoder ({encoder}); "
                                "run `snakemake results/features/encoder.pt`")
        simclr_net = space_net("simclr", params, dev, encoder)  # first: a bad file fails, named, before any output
        data = Path(encoder).read_bytes()
        with atomic_path(out / ENCODER) as tmp:
            tmp.write_bytes(data)
        meta["encoder_sha256"] = hashlib.sha256(data).hexdigest()
    real = real_rows(images, ev["n_real"], "evaluate.n_real")
    for space in spaces:
        net = simclr_net if space == "simclr" else space_net(space, params, dev, encoder)
        stats = statistics(net, real, ev["batch_size"], dev)
        mu, sigma = stats.result()
        hint = ("feed it larger images (evaluate.spaces_input_size) or leave it out of evaluate.spaces"
                if space in backbones.NAMES and space != "inception" else "leave it out of evaluate.spaces")
        meta[f"live_{space}"] = live_features(sigma, f"fd_spaces: {space}", hint)
        save_real(out / f"{space}.npz", mu, sigma, stats.n)
        meta[f"dim_{space}"] = len(mu)
    return meta


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    folder = ctx.reference_dir(reference)
    result: dict = {}
    for space in ev["spaces"]:
        ref = load_real(folder / f"{space}.npz")
        check_count(int(ref["n"]), len(ref["mu"]), f"real ({space})")
        check_count(len(ctx.samples), len(ref["mu"]), f"generated ({space})")
        if space == ev["backbone"] and ev["spaces_input_size"] == ev["input_size"]:  # fid's features: embedded once
            stats = RunningStats(ctx.backbone().dim)
            stats.update(ctx.sample_features())
        else:
            stats = statistics(space_net(space, ctx.params, ctx.device, folder / ENCODER), ctx.samples,
                               ev["batch_size"], ctx.device)
        mu, sigma = stats.result()
        if len(mu) != len(ref["mu"]):
            raise PipelineError(f"{folder}/{space}.npz: {len(ref['mu'])}-d statistics, but the {space} space gives "
                                f"{len(mu)}-d features; rebuild the reference")
        result[space] = frechet_distance(ref["mu"], ref["sigma"], mu, sigma, ref["root"])
    first = ev["spaces"][0]
    return {"name": "FD_spaces", "value": result[first], **result, "spaces": ",".join(ev["spaces"]),
            "input_size": ev["spaces_input_size"], "resize": ev["resize"], "n_real": int(ref["n"]),
            "n_fake": len(ctx.samples)}
