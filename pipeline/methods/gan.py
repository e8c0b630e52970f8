"""gan: the unconditional baseline (``train.backbone`` networks; non-saturating BCE or hinge loss, ``loss``).

``sn``: spectral norm on every D layer instead of BatchNorm (the BigGAN-style D of IC-GAN and
BigBiGAN, for a baseline that differs from them only in what their papers add).
Conditional subclasses (cgan, msgan, icgan) change ``conditions``, ``generate`` and ``score``; the
D and G steps below then hold for them too.
"""
from __future__ import annotations

import torch

from pipeline import losses
from pipeline.methods.base import Method
from pipeline.nets import linear


class GAN(Method):
    name = "gan"
    d_nets = ("D", "D_head")
    loss_kind: str | None = None  # fixed by subclasses (lsgan, icgan); else read from hp["loss"]

    @property
    def loss(self) -> str:
        return self.loss_kind or self.hp["loss"]

    def extra_inputs(self) -> int:
        """Channels added to G's z and to D's image (cgan: the one-hot label)."""
        return 0

    def build(self):
        k = self.extra_inputs()
        d = self.discriminator(self.hp["sn"], extra_channels=k)
        return {
            "G": self.generator(self.z_dim + k),
            "D": d,
            "D_head": linear(d.feat_dim, 1, sn=self.hp["sn"]),
        }

    def conditions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The condition ids of a training batch (None: unconditional)."""
        return None

    def score(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.nets["D_head"](self.nets["D"](x)).squeeze(1)

    def d_loss(self, batch):
        c = self.conditions(batch)
        with torch.no_grad():
            fake = self.generate(len(batch["real"]), c)
        loss = losses.d_loss(self.loss, self.score(batch["real"], c), self.score(fake, c))
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        c = self.conditions(batch)
        loss = losses.g_loss(self.loss, self.score(self.generate(len(batch["real"]), c), c))
        return loss, {"g_loss": loss.item()}
