"""Every method's D and G loss equals its paper's formula on a tiny case computed by hand.

The networks are replaced by stubs with known outputs: real images are constant +1, fakes -0.5; a
score is half an image's mean (real 0.5, fake -0.25). The expected values are written out from the
papers' formulas, so a swapped sign, a swapped real/fake argument or a prior on the wrong side
changes the number (each was checked by flipping it in the code and seeing the test fail).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from test_methods import data, make  # noqa: F401  (data is a fixture)

B, RES = 2, 16


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


class Const(nn.Module):
    """A stub network: ``fn`` of its inputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def image(value: float, n: int = B) -> torch.Tensor:
    return torch.full((n, 1, RES, RES), value)


def half_mean(x: torch.Tensor, *_) -> torch.Tensor:
    return x.mean((1, 2, 3)) * 0.5


def stub_gan(m):
    m.generate = lambda n, cond: image(-0.5, n)
    m.score = half_mean
    return m


REAL = {"real": image(1.0), "label": torch.tensor([0, 1]), "instance": torch.tensor([0, 1]),
        "fake_instance": torch.tensor([2, 3])}


@pytest.mark.parametrize("name", ["gan", "cgan", "icgan"])
def test_non_saturating_loss(name, data):
    m = stub_gan(make(name, data, loss="ns"))
    # D: softplus(-D(x)) + softplus(D(G(z))); G: softplus(-D(G(z)))
    assert m.d_loss(REAL)[0].item() == pytest.approx(softplus(-0.5) + softplus(-0.25))
    assert m.g_loss(REAL)[0].item() == pytest.approx(softplus(0.25))


@pytest.mark.parametrize("sn", [False, True])  # two passes, or one over reals and fakes together
@pytest.mark.parametrize("name, real_c, fake_c", [("icgan", "instance", "fake_instance"), ("cgan", "label", "label")])
def test_d_scores_reals_and_fakes_under_their_own_conditions(name, real_c, fake_c, sn, data):
    """IC-GAN: D scores the real neighbour with its instance h_i and a fake with the instance h_j it was
    generated from; G is scored under h_j too. (cgan: the label both times.)"""
    m = make(name, data, sn=sn)
    generated, scored = [], []
    m.generate = lambda n, cond: generated.append(cond) or image(-0.5, n)

    def score(x, cond):
        scored.extend(zip(x.mean((1, 2, 3)).tolist(), cond.tolist()))
        return half_mean(x)

    m.score = score
    m.d_loss(REAL)
    assert [torch.equal(c, REAL[fake_c]) for c in generated] == [True]
    assert sorted(scored) == sorted([(-0.5, c) for c in REAL[fake_c].tolist()] + [(1.0, c) for c in REAL[real_c].tolist()])
    generated.clear(), scored.clear()
    m.g_loss(REAL)
    assert [torch.equal(c, REAL[fake_c]) for c in generated] == [True]
    assert sorted(scored) == [(-0.5, c) for c in sorted(REAL[fake_c].tolist())]


@pytest.mark.parametrize("name", ["gan", "cgan", "icgan"])
def test_hinge_loss(name, data):
    m = stub_gan(make(name, data, loss="hinge"))
    # D: relu(1 - D(x)) + relu(1 + D(G(z))) = 0.5 + 0.75; G: -D(G(z))
    assert m.d_loss(REAL)[0].item() == pytest.approx(1.25)
    assert m.g_loss(REAL)[0].item() == pytest.approx(0.25)


def test_least_squares_loss_with_targets_a_b_c(data):
    m = stub_gan(make("lsgan", data, a=-1.0, b=1.0, c=0.0))
    # D: 1/2 (D(x) - b)^2 + 1/2 (D(G(z)) - a)^2 = 1/2 0.25 + 1/2 0.5625; G: 1/2 (D(G(z)) - c)^2
    assert m.d_loss(REAL)[0].item() == pytest.approx(0.125 + 0.28125)
    assert m.g_loss(REAL)[0].item() == pytest.approx(0.03125)


def test_msgan_losses(data):
    m = make("msgan", data, loss="ns", lambda_ms=2.0)
    m.noise = lambda n: torch.tensor([[0.0, 0.0]] * (n // 2) + [[1.0, 1.0]] * (n // 2))
    m.fake = lambda z, c: image(0.0, len(z)) + (z[:, :1, None, None] - 1) / 2  # z1 -> -0.5, z2 -> 0
    m.score = half_mean  # real 0.5, fake1 -0.25, fake2 0
    # D: the cgan loss against each fake, summed: the real term twice
    d = m.d_loss(REAL)[0].item()
    assert d == pytest.approx(2 * softplus(-0.5) + softplus(-0.25) + softplus(0.0))
    # G: both adversarial terms + lambda / (mean|f1 - f2| / mean|z1 - z2| + 1e-5) = ... / (0.5 / 1 + 1e-5)
    g, logs = m.g_loss(REAL)
    assert g.item() == pytest.approx(softplus(0.25) + softplus(0.0) + 2.0 / (0.5 + 1e-5))
    assert logs["mode_seeking"] == pytest.approx(1 / (0.5 + 1e-5))


def test_p2gan_losses_put_each_prior_on_its_side(data):
    m = make("p2gan", data, mu_a=-1.0, sigma_a=1.0, mu_b=1.0, sigma_b=0.1, lambda_z=10.0)
    m.nets["G"] = Const(lambda eps, z: image(-0.5, len(eps)))
    # D(x): mu = x / 2 and sigma = 0.6 + 0.4 x per dimension: real (mu 0.5, sigma 1.0), fake (-0.25, 0.4)
    m.posterior = lambda x: (half_mean(x)[:, None].expand(-1, 3), (0.6 + 0.8 * half_mean(x))[:, None].expand(-1, 3))
    # L_D = Dis(D(x_r), Pb = N(1, 0.1^2)) + Dis(D(x_g), Pa = N(-1, 1)), Dis = 1/2 [(mu - mu_p)^2 + (sigma - sigma_p)^2]
    d = m.d_loss(REAL)[0].item()
    assert d == pytest.approx(0.5 * (0.5**2 + 0.9**2) + 0.5 * (0.75**2 + 0.6**2))
    # L_G = Dis(D(x_g), Pc = N(0, 0.55^2)) + 10 (|mu_g - mu_r| + |sigma_g - sigma_r|)
    g = m.g_loss(REAL)[0].item()
    assert g == pytest.approx(0.5 * (0.25**2 + 0.15**2) + 10 * (0.75 + 0.6))
    assert m.chance() == pytest.approx(0.25 * (2**2 + 0.9**2))  # the best constant output


@pytest.mark.parametrize("encoder", ["deterministic", "stochastic"])
def test_bigbigan_scores_x_with_e_of_x_and_g_of_z_with_z(encoder, data):
    m = make("bigbigan", data, encoder=encoder)
    m.noise = lambda n: torch.full((n, 4), 0.7)
    m.nets["G"] = Const(lambda z: image(-0.5, len(z)))
    # E(x) = 0.3 (sigma 0: the stochastic encoder's sample is its mean)
    m.nets["E"] = Const(lambda x: (torch.full((len(x), 4), 0.3), None if encoder == "deterministic"
                                   else torch.zeros(len(x), 4)))
    mean = lambda t: t.flatten(1).mean(1, keepdim=True)  # noqa: E731
    m.nets["F"] = nn.ModuleDict({"body": Const(mean), "head": Const(lambda f: f)})           # s_x = mean(x)
    m.nets["H"] = nn.ModuleDict({"body": Const(mean), "head": Const(lambda h: 2 * h)})       # s_z = 2 mean(z)
    m.nets["J"] = Const(lambda fh: fh[:, :1] - fh[:, 1:])                                   # s_xz = mean(x) - mean(z)
    # real pair (x = 1, E(x) = 0.3): s = [1, 0.6, 0.7]; fake pair (G(z) = -0.5, z = 0.7): s = [-0.5, 1.4, -1.2]
    # L_D = sum_k relu(1 - s_k(real)) + relu(1 + s_k(fake)) = (0 + 0.5) + (0.4 + 2.4) + (0.3 + 0)
    assert m.d_loss(REAL)[0].item() == pytest.approx(3.6)
    # L_EG = sum_k s_k(real) - s_k(fake) = 1.5 - 0.8 + 1.9
    assert m.g_loss(REAL)[0].item() == pytest.approx(2.6)


def test_bigbigan_stochastic_encoder_is_reparameterised(data):
    m = make("bigbigan", data, encoder="stochastic")
    x = image(1.0, 4000)
    with torch.no_grad():
        mu, sigma = m.nets["E"](x[:1])
        z = m.encode_z(x)
    assert torch.allclose(z.mean(0), mu[0], atol=4 * sigma.max().item() / math.sqrt(4000))
    assert torch.allclose(z.std(0), sigma[0], rtol=0.1)
