"""gan: the unconditional baseline (DCGAN networks; non-saturating BCE or hinge loss, ``loss``)."""
from __future__ import annotations

import torch

from pipeline import losses
from pipeline.methods.base import Method
from pipeline.nets import Discriminator, Generator, linear


class GAN(Method):
    name = "gan"
    loss_kind: str | None = None  # fixed by subclasses (lsgan); else read from hp["loss"]

    @property
    def loss(self) -> str:
        return self.loss_kind or self.hp["loss"]

    def build(self):
        d = Discriminator(self.channels, self.width, self.resolution)
        return {
            "G": Generator(self.z_dim, self.width, self.resolution, self.channels),
            "D": d,
            "D_head": linear(d.feat_dim, 1),
        }

    d_nets = ("D", "D_head")

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["D_head"](self.nets["D"](x)).squeeze(1)

    def d_loss(self, batch):
        n = len(batch["real"])
        with torch.no_grad():
            fake = self.generate(n, None)
        loss = losses.d_loss(self.loss, self.score(batch["real"]), self.score(fake))
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        fake = self.generate(len(batch["real"]), None)
        loss = losses.g_loss(self.loss, self.score(fake))
        return loss, {"g_loss": loss.item()}
