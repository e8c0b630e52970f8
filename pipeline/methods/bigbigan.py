"""bigbigan: adversarial representation learning (BiGAN, Donahue et al. 2017; BigBiGAN, Donahue &
Simonyan 2019; no public training code, seed 002).

An encoder E (the backbone's D body without spectral norm + linear head, deterministic as in BiGAN) maps x to z. D scores the
pairs (x, E(x)) and (G(z), z) with three terms: unary F(x) (spectral-norm D body and a linear
head), unary H(z) (an MLP on z and a linear head) and joint J (an MLP on F's and H's features).
Hinge losses summed over the three scores:
L_D = sum_k mean relu(1 - s_k(x, E(x))) + mean relu(1 + s_k(G(z), z)),
L_EG = sum_k mean s_k(x, E(x)) - mean s_k(G(z), z); G and E are updated together.
``encode`` gives E's body features, the representation BigBiGAN's linear probe measures.
Sampling is unconditional.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline import losses
from pipeline.methods.base import Method
from pipeline.nets import Encoder, linear


def mlp(in_dim: int, hidden: int) -> nn.Sequential:
    """Two spectral-norm linear layers, each followed by LeakyReLU(0.2)."""
    return nn.Sequential(linear(in_dim, hidden, sn=True), nn.LeakyReLU(0.2),
                         linear(hidden, hidden, sn=True), nn.LeakyReLU(0.2))


def hinge_terms(real: list[torch.Tensor], fake: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_D, L_EG) summed over the score terms; real[k] scores (x, E(x)), fake[k] scores (G(z), z)."""
    d = sum(losses.d_loss("hinge", r, f) for r, f in zip(real, fake))
    eg = sum(r.mean() - f.mean() for r, f in zip(real, fake))
    return d, eg


class BigBiGAN(Method):
    name = "bigbigan"
    g_nets = ("G", "E")
    d_nets = ("F", "H", "J")

    def build(self):
        hidden = self.hp["hidden"]
        f = self.discriminator(sn=True)
        return {
            "G": self.generator(self.z_dim),
            "E": Encoder(self.discriminator(sn=False), self.z_dim),
            "F": nn.ModuleDict({"body": f, "head": linear(f.feat_dim, 1, sn=True)}),
            "H": nn.ModuleDict({"body": mlp(self.z_dim, hidden), "head": linear(hidden, 1, sn=True)}),
            "J": nn.Sequential(mlp(f.feat_dim + hidden, hidden), linear(hidden, 1, sn=True)),
        }

    def scores(self, x: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        """[s_x, s_z, s_xz]: the scores of F(x), H(z) and J(F-features, H-features)."""
        F, H = self.nets["F"], self.nets["H"]
        fx, hz = F["body"](x), H["body"](z)
        return [F["head"](fx).squeeze(1), H["head"](hz).squeeze(1),
                self.nets["J"](torch.cat([fx, hz], 1)).squeeze(1)]

    def d_loss(self, batch):
        real = batch["real"]
        with torch.no_grad():
            z = self.noise(len(real))
            fake, ez = self.nets["G"](z), self.nets["E"](real)
        loss, _ = hinge_terms(self.scores(real, ez), self.scores(fake, z))
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        real, z = batch["real"], self.noise(len(batch["real"]))
        _, loss = hinge_terms(self.scores(real, self.nets["E"](real)), self.scores(self.nets["G"](z), z))
        return loss, {"g_loss": loss.item()}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """E's body features (B, feat_dim) of images in [-1, 1]; call under eval() and no_grad for a probe."""
        return self.nets["E"].features(images)
