"""p2gan: Posterior Promoted GAN with a distribution discriminator (Zhang et al., CVPR 2021; seed 001,
no public code). Choices the sources leave open are stated here and tested.

D: the spectral-norm D body and two spectral-norm linear heads giving a d-dimensional Gaussian
N(mu, diag sigma^2), d = ``posterior_dim``. The paper's heads have no activation; here
sigma = softplus(head) so that it is a standard deviation (a negative sigma describes the same
Gaussian as |sigma|, but the distance below would treat the two differently).

Squared difference to a prior P: the closed form ``Dis = 1/2 [(mu - mu_p)^2 + (sigma - sigma_p)^2]``,
which is E_eps[1/2 (a - a_p)^2] for reparameterised samples a = mu + eps sigma, a_p = mu_p + eps sigma_p
sharing eps (the seed's derivation): the exact expectation instead of a one-sample estimate. Mean
over the d dimensions and the batch.

Priors (``mu_a, sigma_a, mu_b, sigma_b``; the sources give no values): Pa = N(-1, 1) for fakes,
Pb = N(1, 1) for reals, so Pc = N((mu_a+mu_b)/2, ((sigma_a+sigma_b)/2)^2) = N(0, 1). mu_b - mu_a = 2
and mu_b - mu_c = 1 are LSGAN's a = -1, b = 1, c = 0, under which its G minimises the Pearson chi^2
divergence (the condition of P2GAN's convergence argument); equal unit sigmas make Pc the standard
normal, so the posterior of a real image is a unit-variance Gaussian like the noise.

L_D = Dis(D(x_r), Pb) + Dis(D(x_g), Pa); L_G = Dis(D(x_g), Pc) + lambda_z L_z, with
L_z = mean(|mu_g - mu_r| + |sigma_g - sigma_r|): the L1 distance between the parameters of the
posterior of a generated image and that of the real image x_r whose posterior sample generated it.
G: noise eps and a posterior sample z ~ D(x_r) (reparameterised, no gradient into D); per-layer
posterior modules are the linear scale/shift maps of ConditionalNorm (BN statistics, then the
style's scale and shift: the paper's AdaIN). The pre-training step the seed mentions without
details is not done. Evaluation samples draw their posteriors from uniformly random training
images; condition ids are those images' indices.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.methods.base import Method
from pipeline.nets import linear


def gaussian_dis(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor | float,
                 sigma2: torch.Tensor | float) -> torch.Tensor:
    """1/2 [(mu1 - mu2)^2 + (sigma1 - sigma2)^2], mean over all elements."""
    return (0.5 * ((mu1 - mu2) ** 2 + (sigma1 - sigma2) ** 2)).mean()


def latent_l1(mu_g: torch.Tensor, sigma_g: torch.Tensor, mu_r: torch.Tensor, sigma_r: torch.Tensor) -> torch.Tensor:
    """L_z: mean over batch and dimensions of |mu_g - mu_r| + |sigma_g - sigma_r|."""
    return ((mu_g - mu_r).abs() + (sigma_g - sigma_r).abs()).mean()


class P2GAN(Method):
    name = "p2gan"
    d_nets = ("D", "D_mu", "D_sigma")

    def build(self):
        d = self.discriminator(sn=True)
        dim = self.hp["posterior_dim"]
        return {
            "G": self.generator(self.z_dim, cond_dim=dim),
            "D": d,
            "D_mu": linear(d.feat_dim, dim, sn=True),
            "D_sigma": linear(d.feat_dim, dim, sn=True),
        }

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(x): the mean and standard deviation of the Gaussian posterior."""
        phi = self.nets["D"](x)
        return self.nets["D_mu"](phi), F.softplus(self.nets["D_sigma"](phi))

    def prior(self, which: str) -> tuple[float, float]:
        hp = self.hp
        if which == "c":
            return (hp["mu_a"] + hp["mu_b"]) / 2, (hp["sigma_a"] + hp["sigma_b"]) / 2
        return hp[f"mu_{which}"], hp[f"sigma_{which}"]

    def fake_from(self, real: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """G(eps, z) with z ~ D(real) reparameterised; also D(real)."""
        with torch.no_grad():
            mu, sigma = self.posterior(real)
            z = mu + torch.randn_like(mu) * sigma
        return self.nets["G"](self.noise(len(real)), z), (mu, sigma)

    def d_loss(self, batch):
        real = batch["real"]
        with torch.no_grad():
            fake, _ = self.fake_from(real)
        l_real = gaussian_dis(*self.posterior(real), *self.prior("b"))
        l_fake = gaussian_dis(*self.posterior(fake), *self.prior("a"))
        loss = l_real + l_fake
        return loss, {"d_loss": loss.item()}

    def g_loss(self, batch):
        fake, (mu_r, sigma_r) = self.fake_from(batch["real"])
        mu_g, sigma_g = self.posterior(fake)
        adv = gaussian_dis(mu_g, sigma_g, *self.prior("c"))
        lz = latent_l1(mu_g, sigma_g, mu_r, sigma_r)
        loss = adv + self.hp["lambda_z"] * lz
        return loss, {"g_loss": loss.item(), "g_adv": adv.item(), "l_z": lz.item()}

    def generate(self, n, cond):
        fake, _ = self.fake_from(self.data.real(cond).to(self.device))
        return fake

    def sample_conditions(self, n):
        ids = torch.randint(len(self.data.images), (n,), device=self.device)
        return ids, {"conditioning": "posterior z ~ D(x) of uniformly random real training images "
                                     "(condition ids: their indices)"}
