"""lsgan: least squares GAN (Mao et al. 2017), the loss P2GAN generalises to distributions.

The gan baseline with least-squares terms and targets ``a`` (fake), ``b`` (real), ``c`` (what G
asks for): 0/1/1 is LSGAN's usual coding; -1/1/0 (b - c = 1, b - a = 2) the one under which G
minimises the Pearson chi^2 divergence, which P2GAN's priors generalise (its matched baseline).
"""
from __future__ import annotations

from pipeline import losses
from pipeline.methods.gan import GAN


class LSGAN(GAN):
    name = "lsgan"

    def d_adv(self, real, fake):
        return losses.ls_d_loss(real, fake, self.hp["a"], self.hp["b"])

    def d_threshold(self):
        return (self.hp["a"] + self.hp["b"]) / 2

    def g_adv(self, fake):
        return losses.ls_g_loss(fake, self.hp["c"])
