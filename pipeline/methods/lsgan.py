"""lsgan: least squares GAN (Mao et al. 2017), the loss P2GAN generalises to distributions.

The gan baseline with ``losses`` kind ``ls``: targets a = 0 (fake), b = 1 (real), c = 1 (G).
"""
from __future__ import annotations

from pipeline.methods.gan import GAN


class LSGAN(GAN):
    name = "lsgan"
    loss_kind = "ls"
