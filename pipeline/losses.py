"""Adversarial losses shared by the methods (D scores are raw logits / critic values).

ns: non-saturating BCE (Goodfellow et al.), D: softplus(-D(x)) + softplus(D(G(z))), G: softplus(-D(G(z)));
hinge: D: relu(1 - D(x)) + relu(1 + D(G(z))), G: -D(G(z));
ls: least squares with targets a=0 (fake), b=1 (real), c=1 (G) as in LSGAN, each term halved.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "ls":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    if kind == "ls":
        return 0.5 * ((fake - 1) ** 2).mean()
    raise ValueError(f"unknown loss {kind!r}")
