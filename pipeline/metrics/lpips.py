"""lpips: diversity of a method's samples, the mean perceptual distance between random pairs of them.

Nets (``evaluate.lpips_net``):

- ``alex``: LPIPS v0.1 of the lpips package (AlexNet trunk, linear heads calibrated on human
  judgements), reported as ``LPIPS_alex``. The trunk's ImageNet weights (torchvision's
  alexnet-owt-7be5be79.pth) are downloaded once into resources/ and checked by sha256; offline
  that is an error naming the fallback.
- ``efficientnet_lite0`` (offline default): the same computation - unit-normalise each feature
  map over channels, squared difference, spatial mean, sum over channels and layers - on five
  EfficientNet-Lite0 maps (the last block at strides 2, 4, 8, 16 and 32), with equal channel
  weights (the lpips package's ``lpips=False`` form). Not calibrated against human judgements:
  reported as ``LPIPS-uncalibrated_efficientnet_lite0``, never as LPIPS-alex.

Images go to [-1, 1] (grayscale repeated to 3 channels) and are resized bilinearly
(align_corners=False, no antialiasing) to ``evaluate.lpips_input_size`` (64): small images are
upsampled.

Protocol: ``value`` is the mean over ``evaluate.lpips_pairs`` random pairs of distinct samples.
For conditional samples (condition ids not -1) ``per_condition`` is MSGAN's protocol: in each of
up to ``lpips_conditions`` conditions with two or more samples, the mean over
``lpips_pairs_per_condition`` random pairs within it (all its distinct pairs when it has fewer), averaged over the conditions (null when
unconditional or when no condition has two samples). Pairs are drawn with the run's seed.
Cost: O(pairs), two net passes per pair; the N^2 / 2 pairs of all samples are never formed.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.backbones import RESOURCES, efficientnet_lite0_net, in_parts
from pipeline.download import fetch
from pipeline.errors import PipelineError
from pipeline.images import to_float

reference = None
ALEX_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEX_SHA256 = "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
EPS = 1e-10  # the lpips package's normalize_tensor
TAPS = (0, 2, 4, 10, 15)  # EfficientNet-Lite0 blocks ending the stride 2, 4, 8, 16 and 32 stages

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alex_weights() -> Path:
    """torchvision's AlexNet ImageNet weights in resources/, downloaded if absent; sha256-checked."""
    try:
        return fetch(ALEX_URL, RESOURCES / Path(ALEX_URL).name, ALEX_SHA256)
    except PipelineError as err:
        raise PipelineError(f"lpips_net alex: {err}; place the file in {RESOURCES}/ or set "
                            f"evaluate.lpips_net: efficientnet_lite0 (uncalibrated, offline)") from None


def alex_lpips(trunk: Path | None) -> nn.Module:
    """The lpips package's LPIPS v0.1 (alex): its linear heads, and AlexNet trunk weights from ``trunk``.

    ``trunk=None`` keeps a random trunk (``pnet_rand=True``): it runs, but is not LPIPS.
    """
    import lpips as lpips_package  # imports torchvision (1.6 s): only this net needs it

    heads = Path(lpips_package.__file__).parent / "weights" / "v0.1" / "alex.pth"
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained`` flag
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_package.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    model.load_state_dict(torch.load(heads, map_location="cpu", weights_only=True), strict=False)
    if trunk is not None:
        state = torch.load(trunk, map_location="cpu", weights_only=True)
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            part.load_state_dict({k: v for k, v in features.items() if k.split(".")[0] in part._modules})
    return model.eval().requires_grad_(False)


class UncalibratedLPIPS(nn.Module):
    """LPIPS's distance with equal channel weights on EfficientNet-Lite0 feature maps."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)  # as the net (pipeline.backbones)
        x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        out = []
        for i, block in enumerate(self.net._blocks[:TAPS[-1] + 1]):
            x = block(x)
            if i in TAPS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + EPS))  # lpips.normalize_tensor
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return in_parts(self.distance, x0, x1)  # as the EfficientNet backbones run (pipeline.backbones)

    def distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return sum((a - b).pow(2).sum(1, keepdim=True).mean((2, 3), keepdim=True)  # lpips.spatial_average
                   for a, b in zip(self.maps(x0), self.maps(x1)))


def load_net(name: str, device: torch.device | str) -> tuple[str, nn.Module]:
    """(label, module mapping two [-1, 1] image batches to per-pair distances)."""
    if name == "alex":
        return "LPIPS_alex", alex_lpips(alex_weights()).to(device)
    return f"LPIPS-uncalibrated_{name}", UncalibratedLPIPS(efficientnet_lite0_net()).to(device).requires_grad_(False)


def prepare(images: np.ndarray, size: int, device: torch.device | str) -> torch.Tensor:
    x = to_float(images, device)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def random_pairs(members: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random pairs (rows) of distinct elements of ``members`` (at least two)."""
    i = rng.integers(0, len(members), count)
    j = (i + rng.integers(1, len(members), count)) % len(members)
    return np.stack([members[i], members[j]], axis=1)


def condition_pairs(conditions: np.ndarray, n_conditions: int, per_condition: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Per chosen condition, random pairs of its samples (conditions with two or more samples)."""
    ids, counts = np.unique(conditions[conditions != -1], return_counts=True)
    ids = ids[counts >= 2]
    chosen = np.sort(rng.choice(ids, min(len(ids), n_conditions), replace=False)) if len(ids) else ids
    groups = []
    for c in chosen:
        members = np.flatnonzero(conditions == c)
        if len(members) * (len(members) - 1) // 2 <= per_condition:  # few samples: each distinct pair once
            groups.append(members[np.stack(np.triu_indices(len(members), 1), 1)])
        else:
            groups.append(random_pairs(members, per_condition, rng))
    return groups


def pair_distances(dist: Distance, images: np.ndarray, pairs: np.ndarray, size: int, batch_size: int,
                   device: torch.device | str) -> np.ndarray:
    out = np.empty(len(pairs))
    with torch.no_grad():
        for start in tqdm(range(0, len(pairs), batch_size), desc="lpips pairs", disable=None, leave=False):
            p = pairs[start:start + batch_size]
            d = dist(prepare(images[p[:, 0]], size, device), prepare(images[p[:, 1]], size, device))
            out[start:start + len(p)] = d.flatten().double().cpu().numpy()
    return out


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    n = len(ctx.samples)
    if n * (n - 1) // 2 < ev["lpips_pairs"]:
        raise PipelineError(f"lpips: {n} samples have {n * (n - 1) // 2} distinct pairs, fewer than evaluate.lpips_pairs "
                            f"({ev['lpips_pairs']}); raise evaluate.n_fake or lower lpips_pairs")
    rng = np.random.default_rng(ctx.seed)
    overall = random_pairs(np.arange(n), ev["lpips_pairs"], rng)
    groups = condition_pairs(ctx.conditions, ev["lpips_conditions"], ev["lpips_pairs_per_condition"], rng)
    label, net = load_net(ev["lpips_net"], ctx.device)
    d = pair_distances(net, ctx.samples, np.concatenate([overall, *groups]), ev["lpips_input_size"],
                       ev["batch_size"], ctx.device)
    per_group = np.split(d[len(overall):], np.cumsum([len(g) for g in groups])[:-1]) if groups else []
    return {"name": label, "value": float(d[:len(overall)].mean()),
            "per_condition": float(np.mean([g.mean() for g in per_group])) if groups else None,
            "net": ev["lpips_net"], "calibrated": ev["lpips_net"] == "alex", "input_size": ev["lpips_input_size"],
            "resize": "bilinear, align_corners=False", "n_pairs": len(overall), "n_conditions": len(groups),
            "n_pairs_per_condition": ev["lpips_pairs_per_condition"] if groups else 0,
            "n_condition_pairs": int(sum(len(g) for g in groups)), "n_fake": n}
