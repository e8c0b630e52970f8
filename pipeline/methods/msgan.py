"""msgan: cgan plus the mode-seeking regulariser (Mao et al., CVPR 2019; HelenMao/MSGAN, DCGAN-Mode-Seeking).

As in the official training step (model.py): two noises z1, z2 with the batch's labels go through
G as one concatenated batch (shared BatchNorm statistics) and are split into fake1, fake2. D's loss
is the cgan loss of the real batch against each fake, summed (the real term counts twice). G's
step reuses those two fakes, without a new G pass, scored by the updated D:
adversarial loss of both plus ``lambda_ms / (mean|fake1 - fake2| / mean|z1 - z2| + 1e-5)``, the
means over every element. With ``lambda_ms: 0`` this is the matched cgan baseline: the same step
without the regulariser (the ratio is still logged). With ``train.n_dis`` > 1, G reuses the last D
step's fakes.
"""
from __future__ import annotations

import torch

from pipeline.methods.cgan import CGAN
from pipeline.methods.gan import d_accuracy

EPS = 1e-5


def mode_seeking(fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The mode-seeking term: 1 / (mean|fake1 - fake2| / mean|z1 - z2| + 1e-5)."""
    ratio = (fake1 - fake2).abs().mean() / (z1 - z2).abs().mean()
    return 1 / (ratio + EPS)


class MSGAN(CGAN):
    name = "msgan"

    def d_loss(self, batch):
        c = batch["label"]
        z = self.noise(2 * len(c))
        fakes = self.fake(z, c.repeat(2))  # kept with G's graph for the G step
        self.pair = fakes.chunk(2), z.chunk(2), c
        real = self.score(batch["real"], c)
        scores = [self.score(f.detach(), c) for f in fakes.chunk(2)]
        loss = sum(self.d_adv(real, s) for s in scores)
        return loss, {"d_loss": loss.item(), "d_acc": d_accuracy(real, torch.cat(scores), self.d_threshold())}

    def g_loss(self, batch):
        if getattr(self, "pair", None) is None:
            raise RuntimeError("msgan's G step reuses the fakes of a D step: call d_loss first")
        (f1, f2), (z1, z2), c = self.pair
        self.pair = None
        adv = self.g_adv(self.score(f1, c)) + self.g_adv(self.score(f2, c))
        ms = mode_seeking(f1, f2, z1, z2)
        loss = adv + self.hp["lambda_ms"] * ms
        return loss, {"g_loss": loss.item(), "g_adv": adv.item(), "mode_seeking": ms.item()}
