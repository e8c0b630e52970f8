"""Shared network blocks, so that methods differ only in what their paper changes.

DCGAN-style generator and discriminator with resolution and width as parameters: the generator
projects its input to 4x4 and doubles the size with ConvTranspose(4, 2, 1) blocks; the
discriminator halves it with Conv(4, 2, 1) blocks down to 4x4 and returns flat features, to which
each method attaches its own head. Conditioning plugs in through the generator's normalisation:
plain BatchNorm, or :class:`ConditionalNorm` (conditional BN for IC-GAN, AdaIN-style posterior
modules for P2GAN: the same operation, a normalised map scaled and shifted by linear functions of a
vector). Discriminators may use spectral norm on every layer (hinge and P2GAN's D). Also shared: a
projection head (conditional D scores) and an encoder (the discriminator's body with a linear head).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
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


class Generator(nn.Module):
    """z (B, in_dim) [+ cond (B, cond_dim) for conditional norms] -> image (B, C, R, R) in [-1, 1]."""

    def __init__(self, in_dim: int, width: int, resolution: int, channels: int, cond_dim: int = 0):
        super().__init__()
        blocks = n_blocks(resolution)
        chans = [width * 2 ** (blocks - 1 - i) for i in range(blocks)]  # e.g. 4w, 2w, w at 32 px
        self.cond_dim = cond_dim
        self.convs = nn.ModuleList([nn.ConvTranspose2d(in_dim, chans[0], 4, 1, 0)])
        self.convs.extend(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(chans, chans[1:]))
        self.norms = nn.ModuleList(
            ConditionalNorm(c, cond_dim) if cond_dim else nn.BatchNorm2d(c) for c in chans
        )
        self.out = nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = z[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = norm(x, cond) if self.cond_dim else norm(x)
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


class Encoder(nn.Module):
    """image -> (B, out_dim): a DCGAN discriminator body (``features``) and a linear head."""

    def __init__(self, channels: int, width: int, resolution: int, out_dim: int):
        super().__init__()
        self.features = Discriminator(channels, width, resolution)
        self.head = linear(self.features.feat_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
