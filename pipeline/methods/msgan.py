"""msgan: cgan plus the mode-seeking regulariser (Mao et al., CVPR 2019; HelenMao/MSGAN, DCGAN-Mode-Seeking).

As in the official code: each step draws two noises z1, z2 with the same labels. D's loss is the
cgan loss of the real batch against each fake, summed; G's loss is the adversarial loss of both
fakes plus ``lambda_ms / (mean|G(z1,c) - G(z2,c)| / mean|z1 - z2| + 1e-5)``.
"""
from __future__ import annotations

import torch

from pipeline import losses
from pipeline.methods.cgan import CGAN

EPS = 1e-5


def mode_seeking(fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The mode-seeking term: 1 / (mean|fake1 - fake2| / mean|z1 - z2| + 1e-5)."""
    ratio = (fake1 - fake2).abs().mean() / (z1 - z2).abs().mean()
    return 1 / (ratio + EPS)


class MSGAN(CGAN):
    name = "msgan"

    def d_loss(self, batch):
        c = batch["label"]
        with torch.no_grad():
            fakes = [self.generate(len(c), c) for _ in range(2)]
        real = self.score(batch["real"], c)
        loss = sum(losses.d_loss(self.loss, real, self.score(f, c)) for f in fakes)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        c = batch["label"]
        z1, z2 = self.noise(len(c)), self.noise(len(c))
        f1, f2 = self.fake(z1, c), self.fake(z2, c)
        adv = losses.g_loss(self.loss, self.score(f1, c)) + losses.g_loss(self.loss, self.score(f2, c))
        ms = mode_seeking(f1, f2, z1, z2)
        loss = adv + self.hp["lambda_ms"] * ms
        return loss, {"g_loss": loss.item(), "g_adv": adv.item(), "mode_seeking": ms.item()}
