"""SwAV ResNet-50 (Caron et al. 2020), the self-supervised extractor IC-GAN uses: 2048-d pooled features.

The public 800-epoch checkpoint is downloaded once into resources/. No checksum is published for
it, so its sha256 is pinned on first use: the first download that arrives complete (its full
Content-Length) and loads as a SwAV ResNet-50 is recorded in ``resources/<file>.sha256`` (commit
that file: it is not ignored), and every later use, and every later download, must match the
record; ``features.swav_sha256`` in params.yaml pins a value instead. It is a flat state dict saved from DistributedDataParallel: every key is
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
from pipeline.errors import PipelineError, say
from pipeline.io import atomic_path

URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
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


def record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def fetch(dest: Path = DEST, url: str = URL, sha256: str | None = None) -> Path:
    """The checkpoint at ``dest``, downloaded from ``url`` if absent, checked against ``sha256`` (a
    pin), else against the recorded hash; with neither, the verified first download is recorded."""
    record = record_path(dest)
    expected = sha256 or (record.read_text().split()[0] if record.exists() else None)
    if expected:
        return download.fetch(url, dest, expected)
    if not dest.exists():
        download.download(url, dest, sha256=None)
    try:
        resnet50(torch.load(dest, map_location="cpu", weights_only=True))
    except PipelineError:
        dest.unlink()
        raise
    except Exception as err:  # noqa: BLE001  (not a loadable checkpoint: keep nothing, record nothing)
        dest.unlink()
        raise PipelineError(f"swav: {url} is not a loadable checkpoint ({type(err).__name__}); nothing recorded") from None
    digest = download.sha256_file(dest)
    with atomic_path(record) as tmp:
        tmp.write_text(f"{digest}  {dest.name}\n")
    say(f"swav: recorded sha256 {digest} of {dest.name} in {record}; commit it to pin the weights")
    return dest


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
         sha256: str | None = None) -> Backbone:
    path = fetch(dest, url, sha256)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = nn.Sequential(ImageNetNormalise(), resnet50(state)).eval().to(device).requires_grad_(False)
    return Backbone("swav", net, 2048, input_size)
