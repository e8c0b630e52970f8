"""SwAV ResNet-50 (Caron et al. 2020), the self-supervised extractor IC-GAN uses: 2048-d pooled features.

The public 800-epoch checkpoint is downloaded once into resources/ and checked against ``SHA256``
before use, every time. It is a flat state dict saved from DistributedDataParallel: every key is
prefixed ``module.``, and besides the torchvision ResNet-50 trunk (without ``fc``) it holds the
projection head and the prototypes, which are dropped. Images are repeated to RGB when grayscale,
resized bilinearly to ``features.input_size`` (IC-GAN: 224) and normalised with ImageNet's mean/std.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from pipeline.backbones import RESOURCES, Backbone
from pipeline import download
from pipeline.errors import PipelineError

URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
# UNVERIFIED placeholder: the release's sha256 could not be computed offline where this was written,
# so a real download stops with "checksum mismatch" (and keeps nothing) until this constant holds
# the true value: fetch URL by other means, check it against the SwAV release, put its sha256sum here.
SHA256 = "0" * 64
DEST = RESOURCES / "swav_800ep_pretrain.pth.tar"
DROPPED = ("projection_head.", "prototypes.")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageNetNormalise(nn.Module):
    """[-1, 1] RGB -> ImageNet-normalised input."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2 - self.mean) / self.std


def fetch(dest: Path = DEST, url: str = URL, sha256: str = SHA256) -> Path:
    """The verified checkpoint at ``dest``, downloaded from ``url`` if it is not there yet."""
    return download.fetch(url, dest, sha256)


def resnet50(state: dict[str, torch.Tensor]) -> nn.Module:
    """torchvision's ResNet-50 with ``fc`` removed, loaded from a SwAV release state dict."""
    from torchvision.models import resnet50 as tv_resnet50

    if not all(k.startswith("module.") for k in state):
        raise PipelineError("swav: checkpoint keys lack the 'module.' prefix of the SwAV release")
    net = tv_resnet50(weights=None)
    net.fc = nn.Identity()
    trunk = {k.removeprefix("module."): v for k, v in state.items()}
    trunk = {k: v for k, v in trunk.items() if not k.startswith(DROPPED)}
    try:
        net.load_state_dict(trunk)
    except RuntimeError as err:
        raise PipelineError(f"swav: checkpoint does not fit torchvision's ResNet-50 ({str(err).splitlines()[0]})") from None
    return net


def load(input_size: int, device: torch.device | str = "cpu", dest: Path = DEST, url: str = URL,
         sha256: str = SHA256) -> Backbone:
    path = fetch(dest, url, sha256)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = nn.Sequential(ImageNetNormalise(), resnet50(state)).eval().to(device).requires_grad_(False)
    return Backbone("swav", net, 2048, input_size)
