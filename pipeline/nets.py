"""Shared network blocks, so that methods differ only in what their paper changes.

Two backbones (``train.backbone``), each a generator and a discriminator with resolution and width
as parameters. ``dcgan``: the generator projects its input to 4x4 and doubles the size with
ConvTranspose(4, 2, 1) blocks; the discriminator halves it with Conv(4, 2, 1) blocks down to 4x4
and returns the flat 4x4 features. ``resnet`` (SNGAN/BigGAN-style residual blocks, 3x3 convolutions):
the generator maps its input linearly to 4x4 and doubles the size with pre-activation up blocks
(norm, ReLU, nearest x2, conv, norm, ReLU, conv; 1x1 shortcut); the discriminator halves it with
down blocks (ReLU, conv, ReLU, conv, average pool; 1x1 shortcut), never uses BatchNorm, and returns
the ReLU'd sum over positions of its last maps. Each method attaches its own head to D's features.
Conditioning plugs in through the generator's normalisation: plain BatchNorm, or
:class:`ConditionalNorm` (conditional BN for IC-GAN, AdaIN-style posterior modules for P2GAN: the
same operation, a normalised map scaled and shifted by linear functions of a vector), with one
condition for all blocks or one per block (:class:`HierGenerator`, BigGAN's hierarchical latent).
Discriminators may use spectral norm on every layer, generators too (:func:`spectral_normalise`).
Also shared: a projection head (conditional D scores).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def n_blocks(resolution: int) -> int:
    """Number of x2 blocks between 4x4 and ``resolution``."""
    blocks = int(math.log2(resolution)) - 2
    if blocks < 1 or 4 * 2**blocks != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return blocks


def maybe_sn(module: nn.Module, sn: bool) -> nn.Module:
    return spectral_norm(module) if sn else module


def init_dcgan(module: nn.Module) -> None:
    """N(0, 0.02) on convolutions and linear layers, as DCGAN and the MSGAN code do."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConditionalNorm(nn.Module):
    """BatchNorm without affine parameters, then ``(1 + gamma(c)) * x + beta(c)``, gamma and beta linear in c."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        g = self.gamma(cond)[:, :, None, None]
        b = self.beta(cond)[:, :, None, None]
        return self.norm(x) * (1 + g) + b


def per_block(cond: torch.Tensor | list[torch.Tensor] | None, blocks: int) -> list:
    """A generator's condition for each of its ``blocks``: one tensor shared by all, or a list of one per block."""
    if isinstance(cond, (list, tuple)):
        if len(cond) != blocks:
            raise ValueError(f"{len(cond)} per-block conditions for {blocks} blocks")
        return list(cond)
    return [cond] * blocks


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Spectral norm on every convolution and linear layer of ``module`` (BigGAN's G), in place."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    for layer in layers:
        spectral_norm(layer)
    return module


class HierGenerator(nn.Module):
    """BigGAN's hierarchical latent: z is split into ``blocks + 1`` equal chunks; the first is the
    backbone's input, block i's conditional norms get ``[shared, chunk_i]`` (``shared``: an embedding
    of the condition, or nothing for an unconditional G). ``z_dim`` is rounded down to a multiple of
    the chunk count, as BigGAN does."""

    def __init__(self, make: type[nn.Module], z_dim: int, shared_dim: int, width: int, resolution: int, channels: int):
        super().__init__()
        slots = n_blocks(resolution) + 1
        self.chunk = z_dim // slots
        if self.chunk < 1:
            raise ValueError(f"z_dim {z_dim} is smaller than the {slots} chunks of a hierarchical latent")
        self.z_dim = self.chunk * slots
        self.net = make(self.chunk, width, resolution, channels, cond_dim=shared_dim + self.chunk)

    def forward(self, z: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        first, *rest = z.split(self.chunk, 1)
        return self.net(first, [c if shared is None else torch.cat([shared, c], 1) for c in rest])


def _norm(channels: int, cond_dim: int) -> nn.Module:
    return ConditionalNorm(channels, cond_dim) if cond_dim else nn.BatchNorm2d(channels)


class Generator(nn.Module):
    """z (B, in_dim) [+ cond (B, cond_dim) for conditional norms] -> image (B, C, R, R) in [-1, 1]."""

    def __init__(self, in_dim: int, width: int, resolution: int, channels: int, cond_dim: int = 0):
        super().__init__()
        blocks = n_blocks(resolution)
        chans = [width * 2 ** (blocks - 1 - i) for i in range(blocks)]  # e.g. 4w, 2w, w at 32 px
        self.cond_dim = cond_dim
        self.convs = nn.ModuleList([nn.ConvTranspose2d(in_dim, chans[0], 4, 1, 0)])
        self.convs.extend(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(chans, chans[1:]))
        self.norms = nn.ModuleList(_norm(c, cond_dim) for c in chans)
        self.out = nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | list[torch.Tensor] | None = None) -> torch.Tensor:
        x = z[:, :, None, None]
        for conv, norm, c in zip(self.convs, self.norms, per_block(cond, len(self.norms))):
            x = conv(x)
            x = norm(x, c) if self.cond_dim else norm(x)
            x = torch.relu(x)
        return torch.tanh(self.out(x))


class Discriminator(nn.Module):
    """image (B, C, R, R) -> flat features (B, feat_dim); heads are the methods' own.

    BatchNorm after every conv but the first (DCGAN), or spectral norm on every conv and no
    BatchNorm (``sn=True``).
    """

    def __init__(self, channels: int, width: int, resolution: int, sn: bool = False):
        super().__init__()
        blocks = n_blocks(resolution)
        chans = [width * 2**i for i in range(blocks)]  # w, 2w, 4w at 32 px
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(channels, chans[0], 4, 2, 1), sn), nn.LeakyReLU(0.2)]
        for a, b in zip(chans, chans[1:]):
            layers.append(maybe_sn(nn.Conv2d(a, b, 4, 2, 1), sn))
            if not sn:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)
        self.feat_dim = chans[-1] * 4 * 4
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


class UpBlock(nn.Module):
    """Residual generator block: x2 the size, ``a`` -> ``b`` channels; norms conditional when cond_dim > 0."""

    def __init__(self, a: int, b: int, cond_dim: int):
        super().__init__()
        self.cond_dim = cond_dim
        self.norm1, self.norm2 = _norm(a, cond_dim), _norm(b, cond_dim)
        self.conv1, self.conv2 = nn.Conv2d(a, b, 3, 1, 1), nn.Conv2d(b, b, 3, 1, 1)
        self.skip = nn.Conv2d(a, b, 1)

    def _n(self, norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return torch.relu(norm(x, cond) if self.cond_dim else norm(x))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.interpolate(self._n(self.norm1, x, cond), scale_factor=2.0))
        h = self.conv2(self._n(self.norm2, h, cond))
        return h + self.skip(F.interpolate(x, scale_factor=2.0))


class ResGenerator(nn.Module):
    """The ``resnet`` generator; same contract as :class:`Generator`."""

    def __init__(self, in_dim: int, width: int, resolution: int, channels: int, cond_dim: int = 0):
        super().__init__()
        blocks = n_blocks(resolution)
        chans = [width * 2 ** (blocks - 1 - i) for i in range(blocks)] + [width]  # 4w, 2w, w, w at 32 px
        self.cond_dim, self.c0 = cond_dim, chans[0]
        self.fc = nn.Linear(in_dim, chans[0] * 16)
        self.blocks = nn.ModuleList(UpBlock(a, b, cond_dim) for a, b in zip(chans, chans[1:]))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, cond: torch.Tensor | list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.fc(z).view(len(z), self.c0, 4, 4)
        for block, c in zip(self.blocks, per_block(cond, len(self.blocks))):
            x = block(x, c)
        return self.out(x)


class DownBlock(nn.Module):
    """Residual discriminator block: /2 the size; the first block skips the leading ReLU (it sees pixels)."""

    def __init__(self, a: int, b: int, sn: bool, first: bool):
        super().__init__()
        self.first = first
        self.conv1, self.conv2 = maybe_sn(nn.Conv2d(a, b, 3, 1, 1), sn), maybe_sn(nn.Conv2d(b, b, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(a, b, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else torch.relu(x))
        h = F.avg_pool2d(self.conv2(torch.relu(h)), 2)
        return h + self.skip(F.avg_pool2d(x, 2))


class ResDiscriminator(nn.Module):
    """The ``resnet`` discriminator; same contract as :class:`Discriminator`, feat_dim = last channels."""

    def __init__(self, channels: int, width: int, resolution: int, sn: bool = False):
        super().__init__()
        blocks = n_blocks(resolution)
        chans = [channels] + [width * 2**i for i in range(blocks)]  # C, w, 2w, 4w at 32 px
        self.body = nn.Sequential(*(DownBlock(a, b, sn, i == 0) for i, (a, b) in enumerate(zip(chans, chans[1:]))))
        self.feat_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x)).sum((2, 3))


BACKBONES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "dcgan": (Generator, Discriminator),
    "resnet": (ResGenerator, ResDiscriminator),
}


def linear(in_dim: int, out_dim: int, sn: bool = False) -> nn.Module:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    nn.init.zeros_(layer.bias)
    return maybe_sn(layer, sn)


class Projection(nn.Module):
    """Projection discriminator head (Miyato & Koyama 2018): ``psi(phi) + <embed(c), phi>`` per sample."""

    def __init__(self, feat_dim: int, cond_dim: int, sn: bool = True):
        super().__init__()
        self.psi = linear(feat_dim, 1, sn)
        self.embed = linear(cond_dim, feat_dim, sn)

    def forward(self, phi: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.psi(phi).squeeze(1) + (self.embed(cond) * phi).sum(1)
