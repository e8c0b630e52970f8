"""gan: the unconditional baseline (``train.backbone`` networks; non-saturating BCE or hinge loss, ``loss``).

With the recipe keys of every run (``sn``, ``g_sn``, ``hier_z``, ``ema``, ``hflip``, Adam) it is
both the DCGAN reference and the unconditional BigGAN-style baseline of IC-GAN and BigBiGAN
(hinge, spectral norm in D and G, hierarchical z, EMA, flips; see params.yaml).
Conditional subclasses (cgan, msgan, icgan) change ``conditions``, ``fake_conditions``,
``generate`` and ``score``; lsgan changes the adversarial terms. The D and G steps below then hold
for them too: D sees a real batch with its conditions and a fake batch generated from
``fake_conditions``; G's loss scores a fresh fake batch. A spectral-norm D (no BatchNorm) scores
the real and the fake batch in one pass over both, as BigGAN's code does (one power iteration per
step; the scores equal two passes'); a BatchNorm D scores them in two passes, as DCGAN's code does
(per-batch statistics). Logged: ``d_acc``, the fraction of the
D step's reals and fakes whose scores fall on their side of ``d_threshold``.
"""
from __future__ import annotations

import torch

from pipeline import losses
from pipeline.methods.base import Method
from pipeline.nets import linear


def d_accuracy(real: torch.Tensor, fake: torch.Tensor, threshold: float) -> float:
    """The fraction of a real and a fake batch that D's scores put on the right side of ``threshold``."""
    return 0.5 * ((real > threshold).float().mean() + (fake < threshold).float().mean()).item()


class GAN(Method):
    name = "gan"
    d_nets = ("D", "D_head")

    def extra_inputs(self) -> int:
        """Channels added to G's z and to D's image (cgan: the one-hot label)."""
        return 0

    def build(self):
        k = self.extra_inputs()
        d = self.discriminator(self.hp["sn"], extra_channels=k)
        return {
            "G": self.generator(extra_in=k),
            "D": d,
            "D_head": self.seeded("D_head", linear, d.feat_dim, 1, sn=self.hp["sn"]),
        }

    def d_adv(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """D's adversarial loss from the scores of a real and a fake batch."""
        return losses.d_loss(self.hp["loss"], real, fake)

    def d_threshold(self) -> float:
        """The score above which D calls an image real (for the logged accuracy ``d_acc``)."""
        return 0.0

    def g_adv(self, fake: torch.Tensor) -> torch.Tensor:
        """G's adversarial loss from the scores of a fake batch."""
        return losses.g_loss(self.hp["loss"], fake)

    def conditions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The condition ids of a training batch's real images (None: unconditional)."""
        return None

    def fake_conditions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The condition ids the batch's fakes are generated from (default: the real ones)."""
        return self.conditions(batch)

    def score(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.nets["D_head"](self.nets["D"](x)).squeeze(1)

    def score_both(self, real: torch.Tensor, c: torch.Tensor | None, fake: torch.Tensor,
                   cf: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D's scores of a real and a fake batch: one pass over both with spectral norm, else two."""
        if not self.hp["sn"]:
            return self.score(real, c), self.score(fake, cf)
        both = self.score(torch.cat([real, fake]), None if c is None else torch.cat([c, cf]))
        return both[:len(real)], both[len(real):]

    def d_loss(self, batch):
        c, cf = self.conditions(batch), self.fake_conditions(batch)
        with torch.no_grad():
            fake = self.generate(len(batch["real"]), cf)
        real_s, fake_s = self.score_both(batch["real"], c, fake, cf)
        loss = self.d_adv(real_s, fake_s)
        return loss, {"d_loss": loss.item(), "d_acc": d_accuracy(real_s, fake_s, self.d_threshold())}

    def g_loss(self, batch):
        c = self.fake_conditions(batch)
        loss = self.g_adv(self.score(self.generate(len(batch["real"]), c), c))
        return loss, {"g_loss": loss.item()}
