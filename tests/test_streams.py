"""Common random numbers (pipeline/streams.py): a method and its baseline at the same seed draw the
same real batches, flips and noise, and start from the same weights wherever their networks
coincide; and the tests that catch wiring (what each G is actually given), not only formulas."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import streams
from pipeline.methods import REGISTRY, TrainData
from pipeline.streams import Streams
from pipeline.trainer import Trainer
from test_methods import HP, RES, data, make  # noqa: F401  (data: the fixture)

PAIRS = {"unconditional BigGAN family": ["gan", "icgan", "bigbigan"], "P2GAN's": ["lsgan", "p2gan"],
         "MSGAN's": ["cgan", "msgan"]}
# networks (name in each method) that coincide in shape within each family, at params.yaml's settings
SAME_INIT = [(("gan", "G"), ("bigbigan", "G")), (("gan", "D"), ("icgan", "D")), (("gan", "D"), ("bigbigan", "F.body")),
             (("gan", "D_head"), ("bigbigan", "F.head")), (("lsgan", "D"), ("p2gan", "D"))]
# the baselines' settings are the BigGAN-style runs' (hinge, SN, hier_z, flips), so that gan stands for biggan
BIGGAN = {k: HP["icgan"][k] for k in ("loss", "hier_z", "sn", "g_sn", "ema", "ema_start", "hflip", "beta1")}


def build(name: str, data: TrainData, seed: int = 0):
    """Method class ``name`` at params.yaml's settings; ``gan`` as the BigGAN-style baseline run, and
    ``cgan`` as the study's cgan run (msgan's class without the regulariser)."""
    if name == "cgan":
        return make("msgan", data, seed=seed, lambda_ms=0.0)
    hp = BIGGAN if name in PAIRS["unconditional BigGAN family"] else {}
    return make(name, data, seed=seed, **hp)


def module(m, path: str) -> torch.nn.Module:
    net, _, sub = path.partition(".")
    return m.nets[net] if not sub else m.nets[net][sub]


@pytest.fixture
def halves(data) -> TrainData:
    """The ``data`` fixture with image j's left half at 100 + j and its right half black, so that a
    batch shows which rows were flipped."""
    images = data.images.clone() + 100
    images[:, :, RES // 2:] = 0
    data.images = images
    return data


def record(m) -> dict[str, list[torch.Tensor]]:
    """Wrap the method's draws so that every real-index draw, flip pattern and noise draw is recorded."""
    seen: dict[str, list[torch.Tensor]] = {"indices": [], "flips": [], "z": []}
    draw, noise, real_indices = m.draw, m.noise, m.real_indices

    def recorded_draw(batch_size):
        batch = draw(batch_size)
        seen["flips"].append(batch["real"][:, 0, 0, -1] != -1)  # black right edge: not flipped
        return batch

    def recorded(kind, f):
        def wrapped(n):
            out = f(n)
            seen[kind].append(out.clone())
            return out
        return wrapped

    m.draw, m.noise, m.real_indices = recorded_draw, recorded("z", noise), recorded("indices", real_indices)
    return seen


def steps(m, tmp_path: Path, n: int = 3) -> None:
    t = Trainer(m, tmp_path, steps=n, batch_size=6, n_dis=1, ema=0.0, ema_start=0, checkpoint_every=n,
                log_every=1, fingerprint="test", meta={})
    for _ in range(n):
        t.one_step()


@pytest.mark.parametrize("family", sorted(PAIRS))
def test_a_method_and_its_baseline_draw_the_same_reals_flips_and_noise(family, halves, tmp_path):
    """IC-GAN's instances are its baseline's real images (its reals are their neighbours, as the paper's)."""
    seen = {}
    for name in PAIRS[family]:
        m = build(name, halves)
        seen[name] = record(m)
        steps(m, tmp_path / name)
    base, *others = PAIRS[family]
    flips = bool(BIGGAN["hflip"]) if base == "gan" else HP[base]["hflip"]
    assert any(f.any() for f in seen[base]["flips"]) == flips  # the comparison of flips below means something
    for name in others:
        for kind in ("indices", "flips", "z"):
            a, b = seen[base][kind], seen[name][kind]
            assert len(a) == len(b) > 0 and all(torch.equal(x, y) for x, y in zip(a, b)), f"{name} vs {base}: {kind}"


def test_flips_happen_and_differ_between_seeds(halves):
    masks = []
    for seed in (0, 1):
        m = build("gan", halves, seed=seed)
        m.phase = "d"
        masks.append(m.draw(32)["real"][:, 0, 0, -1] != -1)
    assert 0 < masks[0].sum() < 32 and not torch.equal(*masks)


@pytest.mark.parametrize("a, b", SAME_INIT, ids=[f"{a[0]}.{a[1]}={b[0]}.{b[1]}" for a, b in SAME_INIT])
def test_coinciding_networks_start_from_the_same_weights(a, b, data):
    ma, mb = build(a[0], data), build(b[0], data)
    sa, sb = module(ma, a[1]).state_dict(), module(mb, b[1]).state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    other = build(a[0], data, seed=1)  # and another seed starts elsewhere
    assert not all(torch.equal(v, module(other, a[1]).state_dict()[k]) for k, v in sa.items())


def test_initialisation_does_not_depend_on_the_global_generator(data):
    torch.manual_seed(123)
    first = build("icgan", data).nets.state_dict()
    torch.manual_seed(456)
    second = build("icgan", data).nets.state_dict()
    assert all(torch.equal(v, second[k]) for k, v in first.items())


def test_streams_are_independent_of_the_order_they_are_first_used():
    a, b = Streams(7), Streams(7)
    za = torch.randn(3, generator=a("d/z", "cpu"))
    torch.randn(100, generator=b("d/eps", "cpu"))  # an extra draw of another purpose first
    assert torch.equal(za, torch.randn(3, generator=b("d/z", "cpu")))
    assert streams.derive(7, "d/z") != streams.derive(8, "d/z") != streams.derive(7, "g/z")


def test_stream_state_round_trips():
    a = Streams(3)
    torch.randn(5, generator=a("g/z", "cpu"))
    b = Streams(99)
    b.load(a.state())
    assert torch.equal(torch.randn(4, generator=a("g/z", "cpu")), torch.randn(4, generator=b("g/z", "cpu")))


# --- wiring: what each generator is given ------------------------------------------------------
def g_inputs(m) -> list[tuple]:
    calls = []
    m.nets["G"].register_forward_hook(lambda mod, args, out: calls.append(tuple(a.detach() for a in args)))
    return calls


def test_p2gan_g_is_given_a_posterior_sample_not_its_mean(data):
    m = make("p2gan", data)
    m.nets.eval()
    m.phase = "g"
    batch = m.draw(6)
    calls = g_inputs(m)
    m.streams = Streams(5)
    m.g_loss(batch)
    (_, style), = calls
    with torch.no_grad():
        mu, sigma = m.posterior(batch["real"])
    eps = torch.randn(mu.shape, generator=Streams(5)("g/eps", "cpu"))
    torch.testing.assert_close(style, mu + eps * sigma)
    assert (style - mu).abs().max() > 1e-3 * sigma.mean()


def test_icgan_g_step_is_conditioned_on_the_separately_drawn_instance(data):
    m = make("icgan", data)
    m.phase = "g"
    batch = m.draw(6)
    assert not torch.equal(batch["instance"], batch["fake_instance"])
    calls = g_inputs(m)
    m.g_loss(batch)
    (_, h), = calls
    assert torch.equal(h, data.features[batch["fake_instance"]])
    assert not torch.equal(h, data.features[batch["instance"]])


def test_every_method_draws_only_from_its_streams(data, tmp_path):
    """Training and sampling do not touch PyTorch's global generator: a run's draws are its seed's."""
    for name in sorted(REGISTRY):
        m = build(name, data)
        before = torch.get_rng_state()
        steps(m, tmp_path / name, n=1)
        m.phase = "sample"
        cond, _ = m.sample_conditions(4)
        with torch.no_grad():
            m.generate(4, cond)
        assert torch.equal(before, torch.get_rng_state()), name
