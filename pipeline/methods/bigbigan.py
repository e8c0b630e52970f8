"""bigbigan: adversarial representation learning (BiGAN, Donahue et al. 2017; BigBiGAN, Donahue &
Simonyan 2019; no public training code, seed 002).

An encoder E (the backbone's D body without spectral norm + a linear head) maps x to z. With
``encoder: stochastic`` (BigBiGAN) the head gives mu and sigma = softplus(.) and E(x) = mu + eps sigma,
reparameterised; ``deterministic`` (BiGAN) gives E(x) = mu. D scores the pairs (x, E(x)) and
(G(z), z) with three terms: unary F(x) (the D body, spectral norm with ``sn``, and a linear head),
unary H(z) (an MLP on z and a linear head) and joint J (an MLP on F's and H's features).
Hinge losses summed over the three scores (``loss``: hinge is the only one BigBiGAN defines):
L_D = sum_k mean relu(1 - s_k(x, E(x))) + mean relu(1 + s_k(G(z), z)),
L_EG = sum_k mean s_k(x, E(x)) - mean s_k(G(z), z); G and E are updated together. With spectral
norm (no BatchNorm in D) both pairs are scored in one pass, as in BigGAN's code.
G is the run's generator (BigGAN's, with ``hier_z``, ``g_sn`` and EMA: the seed says BigBiGAN uses
BigGAN's G, D and training techniques), shared with the matched unconditional baseline.
``encode`` gives E's body features (sum-pooled for ``resnet``, flat 4x4 maps for ``dcgan``), the
pooled representation on which BigBiGAN's linear probe is trained (seed 002: AvgPool features).
Sampling is unconditional.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.functional import softplus

from pipeline import losses
from pipeline.methods.base import Method
from pipeline.nets import linear


def mlp(in_dim: int, hidden: int, sn: bool) -> nn.Sequential:
    """Two linear layers (spectral norm with ``sn``), each followed by LeakyReLU(0.2)."""
    return nn.Sequential(linear(in_dim, hidden, sn), nn.LeakyReLU(0.2), linear(hidden, hidden, sn), nn.LeakyReLU(0.2))


def hinge_terms(real: list[torch.Tensor], fake: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_D, L_EG) summed over the score terms; real[k] scores (x, E(x)), fake[k] scores (G(z), z)."""
    d = sum(losses.d_loss("hinge", r, f) for r, f in zip(real, fake))
    eg = sum(r.mean() - f.mean() for r, f in zip(real, fake))
    return d, eg


class Encoder(nn.Module):
    """image -> (mu, sigma): the D body without spectral norm (``features``) and a linear head;
    sigma = softplus of a second head when stochastic, else None."""

    def __init__(self, body: nn.Module, z_dim: int, stochastic: bool):
        super().__init__()
        self.features, self.z_dim, self.stochastic = body, z_dim, stochastic
        self.head = linear(body.feat_dim, 2 * z_dim if stochastic else z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.head(self.features(x))
        if not self.stochastic:
            return out, None
        mu, pre = out.split(self.z_dim, 1)
        return mu, softplus(pre)


class BigBiGAN(Method):
    name = "bigbigan"
    g_nets = ("G", "E")
    d_nets = ("F", "H", "J")

    def build(self):
        hidden, sn = self.hp["hidden"], self.hp["sn"]
        g = self.generator()  # first: with hier_z it sets the z_dim that E and H use
        f = self.discriminator(sn)  # F's body and head start as the unconditional baseline's D and D_head
        stochastic = self.hp["encoder"] == "stochastic"
        return {
            "G": g,
            "E": self.seeded("E.head", Encoder, self.discriminator(sn=False, name="E"), self.z_dim, stochastic),
            "F": nn.ModuleDict({"body": f, "head": self.seeded("D_head", linear, f.feat_dim, 1, sn)}),
            "H": self.seeded("H", lambda: nn.ModuleDict({"body": mlp(self.z_dim, hidden, sn),
                                                          "head": linear(hidden, 1, sn)})),
            "J": self.seeded("J", lambda: nn.Sequential(mlp(f.feat_dim + hidden, hidden, sn), linear(hidden, 1, sn))),
        }

    def scores(self, x: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        """[s_x, s_z, s_xz]: the scores of F(x), H(z) and J(F-features, H-features)."""
        F, H = self.nets["F"], self.nets["H"]
        fx, hz = F["body"](x), H["body"](z)
        return [F["head"](fx).squeeze(1), H["head"](hz).squeeze(1),
                self.nets["J"](torch.cat([fx, hz], 1)).squeeze(1)]

    def encode_z(self, x: torch.Tensor) -> torch.Tensor:
        """E(x): mu + eps sigma (stochastic encoder) or mu."""
        mu, sigma = self.nets["E"](x)
        return mu if sigma is None else mu + self.gaussian_like(mu) * sigma

    def scores_both(self, real: torch.Tensor, ez: torch.Tensor, fake: torch.Tensor,
                    z: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The scores of (x, E(x)) and (G(z), z): one pass over both with spectral norm, else two."""
        if not self.hp["sn"]:
            return self.scores(real, ez), self.scores(fake, z)
        both = self.scores(torch.cat([real, fake]), torch.cat([ez, z]))
        return [s[:len(real)] for s in both], [s[len(real):] for s in both]

    def d_loss(self, batch):
        real = batch["real"]
        with torch.no_grad():
            z = self.noise(len(real))
            fake, ez = self.nets["G"](z), self.encode_z(real)
        loss, _ = hinge_terms(*self.scores_both(real, ez, fake, z))
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        real, z = batch["real"], self.noise(len(batch["real"]))
        _, loss = hinge_terms(*self.scores_both(real, self.encode_z(real), self.nets["G"](z), z))
        return loss, {"g_loss": loss.item()}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """E's body features (B, feat_dim) of images in [-1, 1]; call under eval() and no_grad for a probe."""
        return self.nets["E"].features(images)
