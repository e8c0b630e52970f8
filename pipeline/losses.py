"""Adversarial losses shared by the methods (D scores are raw logits / critic values).

ns: non-saturating BCE (Goodfellow et al.), D: softplus(-D(x)) + softplus(D(G(z))), G: softplus(-D(G(z)));
hinge: D: relu(1 - D(x)) + relu(1 + D(G(z))), G: -D(G(z));
least squares (LSGAN, Mao et al. 2017) with targets a (fake), b (real), c (G), each term halved:
D: 1/2 (D(x) - b)^2 + 1/2 (D(G(z)) - a)^2, G: 1/2 (D(G(z)) - c)^2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}")


def ls_d_loss(real: torch.Tensor, fake: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return 0.5 * ((real - b) ** 2).mean() + 0.5 * ((fake - a) ** 2).mean()


def ls_g_loss(fake: torch.Tensor, c: float) -> torch.Tensor:
    return 0.5 * ((fake - c) ** 2).mean()
