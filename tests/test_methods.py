"""Every method on tiny networks (width 8, 16x16, CPU): steps, sampling, checkpoints, and each
paper's distinctive piece checked against a hand computation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline import checkpoint, config
from pipeline.images import to_uint8
from pipeline.methods import REGISTRY, TrainData
from pipeline.methods.bigbigan import hinge_terms
from pipeline.methods.msgan import mode_seeking
from pipeline.methods.p2gan import gaussian_dis, latent_l1
from pipeline.nets import BACKBONES, Projection
from pipeline.streams import Streams
from pipeline.trainer import PARTIAL, Trainer

RUNS = config.load(Path(__file__).parents[1] / "params.yaml")["methods"]


def settings(name: str) -> dict:
    """params.yaml's settings for method class ``name``: the run of that name, else the first run of
    that class; cgan (no default run) takes the msgan-class cgan run's settings without lambda_ms."""
    if RUNS.get(name, {}).get("method") == name:
        return RUNS[name]
    for hp in RUNS.values():
        if hp["method"] == name:
            return hp
    assert name == "cgan"
    return {**{k: v for k, v in RUNS["cgan"].items() if k != "lambda_ms"}, "method": "cgan"}


HP = {name: settings(name) for name in REGISTRY}
N, RES, K_NB, N_CLASSES = 40, 16, 4, 3
CPU = torch.device("cpu")


@pytest.fixture
def data() -> TrainData:
    """Image j is constant with pixel value j (so a batch tells which images it holds); neighbours
    of i are i+1..i+4 (mod N); three centre instances."""
    g = torch.Generator().manual_seed(0)
    images = torch.arange(N, dtype=torch.uint8)[:, None, None, None].expand(N, RES, RES, 1).contiguous()
    return TrainData(
        images=images,
        labels=torch.arange(N) % N_CLASSES,
        n_classes=N_CLASSES,
        features=F.normalize(torch.randn(N, 6, generator=g), dim=1),
        neighbours=(torch.arange(N)[:, None] + torch.arange(1, K_NB + 1)) % N,
        centres=torch.tensor([0, 5, 10]),
    )


def make(name: str, data: TrainData, seed: int = 0, backbone: str = "dcgan", **hp):
    return REGISTRY[name]({**HP[name], **hp}, data, 8, 8, CPU, backbone, seed)


def trainer(m, run_dir: Path, steps: int = 2) -> Trainer:
    return Trainer(m, run_dir, steps=steps, batch_size=6, n_dis=1, ema=m.hp["ema"], ema_start=1, checkpoint_every=2,
                   log_every=1, fingerprint="test", meta={})


def image_ids(real: torch.Tensor) -> torch.Tensor:
    """Which images of the ``data`` fixture a float batch holds (their constant pixel value)."""
    return to_uint8(real)[:, 0, 0, 0].astype(np.int64)


def params_of(m, names) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": p.detach().clone() for n in names for k, p in m.nets[n].named_parameters()}


# --- every method -----------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_one_step_changes_every_weight_with_finite_losses(name, backbone, data, tmp_path):
    m = make(name, data, backbone=backbone)
    before = params_of(m, m.d_nets + m.g_nets)
    logs = trainer(m, tmp_path).one_step()
    assert {"d_loss", "g_loss"} <= set(logs) and all(math.isfinite(v) for v in logs.values())
    after = params_of(m, m.d_nets + m.g_nets)
    # biases may keep still: a hinge head's bias gets equal and opposite gradients from real and fake
    unchanged = [k for k in before if torch.equal(before[k], after[k]) and not k.endswith("bias")]
    assert not unchanged


@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("side", ["d", "g"])
def test_the_trainers_step_lowers_that_sides_loss_on_its_batch(side, name, backbone, data, tmp_path):
    """One trainer step of D (G held still: learning rate 0) lowers d_loss, and one of G (D held
    still) lowers g_loss, on the same draws: a sign flip in the update or the loss fails it."""
    m = make(name, data, backbone=backbone)
    for module in m.nets.modules():  # spectral norm's power iteration would move the loss between the two passes
        if type(module).__name__ == "_SpectralNorm":
            module.eval()
    t = trainer(m, tmp_path)
    for group in t.opts["g" if side == "d" else "d"].param_groups:
        group["lr"] = 0.0
    rng = torch.get_rng_state()
    before = t.one_step()[f"{side}_loss"]
    torch.set_rng_state(rng)
    m.streams, m.phase = Streams(m.streams.seed), "d"  # the step's draws again, in its order (msgan's G
    _, after = m.d_loss(m.draw(6))                      # step reuses the D step's fakes)
    if side == "g":
        m.phase = "g"
        _, after = m.g_loss(m.draw(6))
    assert after[f"{side}_loss"] < before


@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_trains_and_samples_at_64_px(name, backbone, tmp_path):
    """The papers' 64 px settings (ImageNet 64, CelebA 64): one step and a sample of the data's shape."""
    g = torch.Generator().manual_seed(0)
    n = 24
    data64 = TrainData(images=torch.randint(0, 256, (n, 64, 64, 3), generator=g, dtype=torch.uint8),
                       labels=torch.arange(n) % N_CLASSES, n_classes=N_CLASSES,
                       features=F.normalize(torch.randn(n, 6, generator=g), dim=1),
                       neighbours=(torch.arange(n)[:, None] + torch.arange(1, K_NB + 1)) % n,
                       centres=torch.tensor([0, 5, 10]))
    m = make(name, data64, backbone=backbone)
    logs = trainer(m, tmp_path).one_step()
    assert all(math.isfinite(v) for v in logs.values())
    m.nets.eval()
    cond, _ = m.sample_conditions(2)
    with torch.no_grad():
        x = m.generate(2, cond)
    assert x.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_sample_gives_uint8_images_of_the_data_shape(name, backbone, data):
    m = make(name, data, backbone=backbone)
    m.nets.eval()
    cond, how = m.sample_conditions(7)
    assert cond is None or (cond.dtype == torch.int64 and cond.shape == (7,))
    assert how["conditioning"]
    with torch.no_grad():
        images = to_uint8(m.generate(7, cond))
    assert images.dtype == np.uint8 and images.shape == (7, *data.shape)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_checkpoint_round_trip(name, data, tmp_path):
    t = trainer(make(name, data), tmp_path)
    t.one_step()
    t.step = 1
    checkpoint.save(tmp_path / PARTIAL, t.state())
    fresh = trainer(make(name, data, seed=1), tmp_path)
    assert fresh.try_resume() and fresh.step == 1
    for k, v in t.m.nets.state_dict().items():
        assert torch.equal(v, fresh.m.nets.state_dict()[k]), k
    assert fresh.opts["g"].state_dict()["state"].keys() == t.opts["g"].state_dict()["state"].keys()
    t.one_step()  # the next step draws the same batches and noise from the restored streams
    fresh.one_step()
    for k, v in t.m.nets.state_dict().items():
        assert torch.equal(v, fresh.m.nets.state_dict()[k]), k


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128])
def test_backbones_keep_their_contract_at_every_resolution(backbone, resolution):
    make_g, make_d = BACKBONES[backbone]
    g, d = make_g(5, 4, resolution, 3, cond_dim=2), make_d(3, 4, resolution, sn=True)
    x = g(torch.randn(2, 5), torch.randn(2, 2))
    assert x.shape == (2, 3, resolution, resolution) and x.abs().max() <= 1
    assert d(x).shape == (2, d.feat_dim)


def test_resume_equals_an_uninterrupted_run(data, tmp_path):
    """p2gan (the method with the most random draws per step): kill after step 3, resume from step 2."""
    full = trainer(make("p2gan", data), tmp_path / "full", steps=4)
    full.fit()
    cut = trainer(make("p2gan", data), tmp_path / "cut", steps=4)
    one_step, calls = cut.one_step, []

    def dies_on_third_step():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return one_step()

    cut.one_step = dies_on_third_step
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    resumed = trainer(make("p2gan", data, seed=5), tmp_path / "cut", steps=4)
    resumed.fit()
    final = checkpoint.load(tmp_path / "cut" / "checkpoint.pt")["nets"]
    for k, v in full.m.nets.state_dict().items():
        assert torch.equal(v, final[k]), k


# --- cgan / msgan -----------------------------------------------------------------------------
def test_cgan_feeds_the_label_to_g_and_tiles_it_into_d(data):
    m = make("cgan", data)
    assert m.nets["G"].convs[0].in_channels == 8 + N_CLASSES
    assert m.nets["D"].body[0].in_channels == 1 + N_CLASSES
    cond, _ = m.sample_conditions(7)
    assert cond.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_mode_seeking_term_by_hand():
    # |f1 - f2| = [1, 3, 0, 4]: mean 2; |z1 - z2| = [1, 3]: mean 2; ratio 1 -> 1 / (1 + 1e-5)
    f1, f2 = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 3.0], [0.0, -4.0]]]])
    z1, z2 = torch.zeros(1, 2), torch.tensor([[1.0, -3.0]])
    assert mode_seeking(f1, f2, z1, z2).item() == pytest.approx(1 / (1 + 1e-5), rel=1e-7)
    # mean|f1 - f2| = 0.5, mean|z1 - z2| = 2: ratio 0.25 -> 1 / 0.25001 = 3.99984...
    assert mode_seeking(f1, f2 / 4, z1, z2).item() == pytest.approx(1 / 0.25001, rel=1e-6)


def test_msgan_runs_z1_and_z2_through_g_in_one_batch_and_g_reuses_the_d_step_fakes(data):
    m = make("msgan", data, lambda_ms=2.0)
    batch = m.draw(6)
    calls = []
    m.nets["G"].register_forward_hook(lambda mod, args, out: calls.append(len(out)))
    m.d_loss(batch)
    (f1, f2), (z1, z2), c = m.pair
    assert calls == [12] and torch.equal(c, batch["label"])
    loss, logs = m.g_loss(m.draw(6))
    assert calls == [12], "the G step ran G again"
    adv = F.softplus(-m.score(f1, c)).mean() + F.softplus(-m.score(f2, c)).mean()
    assert logs["mode_seeking"] == pytest.approx(mode_seeking(f1, f2, z1, z2).item(), rel=1e-5)
    assert loss.item() == pytest.approx(adv.item() + 2.0 * logs["mode_seeking"], rel=1e-5)
    with pytest.raises(RuntimeError, match="reuses the fakes"):
        m.g_loss(batch)


# --- icgan ------------------------------------------------------------------------------------
def test_icgan_real_batch_is_drawn_from_the_neighbours_of_its_instances(data):
    m = make("icgan", data)
    torch.manual_seed(0)
    batch = m.draw(2000)
    inst, shown = batch["instance"], image_ids(batch["real"])
    offset = (shown - inst.numpy()) % N  # neighbour j of i is i + j
    assert set(offset.tolist()) == set(range(1, K_NB + 1))  # always a neighbour, never i, each of the k
    counts = np.bincount(offset, minlength=K_NB + 1)[1:]
    assert counts.min() > 2000 / K_NB * 0.8  # uniform over the neighbourhood


def test_icgan_samples_from_centres_or_from_distinct_uniform_instances(data):
    m = make("icgan", data, sampling="centres")
    cond, how = m.sample_conditions(5)
    assert cond.tolist() == [0, 5, 10, 0, 5] and how["sampling"] == "centres"
    assert torch.equal(m.h(cond), data.features[cond])
    m = make("icgan", data, sampling="instances")
    cond, how = m.sample_conditions(30)
    assert how["sampling"] == "instances" and len(set(cond.tolist())) == 30 and cond.max() < N


def test_icgan_fakes_are_conditioned_on_separately_drawn_instances(data):
    m = make("icgan", data)
    torch.manual_seed(0)
    batch = m.draw(500)
    assert not torch.equal(batch["instance"], batch["fake_instance"])
    assert torch.equal(m.fake_conditions(batch), batch["fake_instance"])


def test_icgan_g_uses_per_block_z_chunks_after_the_instance_embedding(data):
    m = make("icgan", data, hier_z=True)
    m.nets.eval()  # fixed spectral-norm vectors: the embedding can be recomputed exactly
    g = m.nets["G"].net  # HierGenerator: z_dim 8 over 16 px = 2 blocks + 1 -> chunks of 2, z_dim 6
    assert m.z_dim == 6 and g.chunk == 2
    seen = []
    for norm in g.net.norms:
        norm.register_forward_hook(lambda mod, args, out: seen.append(args[1]))
    z, h = torch.randn(3, 6), data.features[:3]
    with torch.no_grad():
        m.nets["G"](z, h)
        e = m.nets["G"].embed(h)
    assert [c.shape[1] for c in seen] == [HP["icgan"]["embed_dim"] + 2] * 2
    for k, c in enumerate(seen):
        assert torch.equal(c, torch.cat([e, z[:, 2 * (k + 1): 2 * (k + 2)]], 1))


def test_projection_head_by_hand():
    head = Projection(2, 1, sn=False)
    with torch.no_grad():
        head.psi.weight.copy_(torch.tensor([[1.0, 2.0]]))
        head.psi.bias.fill_(0.5)
        head.embed.weight.copy_(torch.tensor([[3.0], [-1.0]]))
        head.embed.bias.zero_()
    phi, cond = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.tensor([[1.0], [2.0]])
    # row 0: 1 + 2 + 0.5 + (3*1 - 1*1) = 5.5; row 1: 2 + 0.5 + (6*2 + -2*0) = 14.5
    assert head(phi, cond).tolist() == [5.5, 14.5]


# --- p2gan ------------------------------------------------------------------------------------
def test_gaussian_distance_by_hand():
    mu1, s1 = torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0, 0.5]])
    # 1/2 [(1-0)^2 + (2-1)^2] = 1, 1/2 [(-1-0)^2 + (0.5-1)^2] = 0.625: mean 0.8125
    assert gaussian_dis(mu1, s1, 0.0, 1.0).item() == pytest.approx(0.8125)


def test_gaussian_distance_is_the_expected_squared_difference_of_shared_eps_samples():
    mu1, s1, mu2, s2 = 0.3, 1.7, -0.4, 0.6
    eps = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampled = (0.5 * ((mu1 + eps * s1) - (mu2 + eps * s2)) ** 2).mean().item()
    closed = gaussian_dis(torch.tensor(mu1), torch.tensor(s1), mu2, s2).item()
    assert closed == pytest.approx(0.5 * (0.7**2 + 1.1**2)) and sampled == pytest.approx(closed, rel=0.01)


def test_latent_regulariser_by_hand():
    mu_g, s_g = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 2.0]])
    mu_r, s_r = torch.tensor([[0.0, 0.5]]), torch.tensor([[1.5, 2.0]])
    # (|1-0| + |1-1.5|) and (|0-0.5| + |2-2|): 1.5 and 0.5, mean 1.0
    assert latent_l1(mu_g, s_g, mu_r, s_r).item() == pytest.approx(1.0)


@pytest.mark.parametrize("sn", [False, True])
def test_p2gan_heads_are_normalised_as_its_lsgan_baselines_head(sn, data):
    """The seed's spectral norm on every D layer, the two posterior heads included, as in the baseline."""
    heads = [make("p2gan", data, sn=sn).nets[n] for n in ("D_mu", "D_sigma")] + [make("lsgan", data, sn=sn).nets["D_head"]]
    assert [torch.nn.utils.parametrize.is_parametrized(h, "weight") for h in heads] == [sn] * 3


def test_p2gan_priors_and_losses(data):
    m = make("p2gan", data, mu_a=-1.0, mu_b=3.0, sigma_a=0.5, sigma_b=1.5)
    m.nets.eval()  # fixed spectral-norm vectors, so that the losses can be recomputed exactly
    assert m.prior("a") == (-1.0, 0.5) and m.prior("b") == (3.0, 1.5) and m.prior("c") == (1.0, 1.0)
    batch = m.draw(6)
    mu, sigma = m.posterior(batch["real"])
    assert mu.shape == sigma.shape == (6, HP["p2gan"]["posterior_dim"]) and (sigma > 0).all()
    m.streams = Streams(4)
    loss, logs = m.g_loss(batch)
    m.streams = Streams(4)  # the same draws again
    fake, (mu_r, s_r) = m.fake_from(batch["real"])
    mu_g, s_g = m.posterior(fake)
    assert logs["g_adv"] == pytest.approx(gaussian_dis(mu_g, s_g, 1.0, 1.0).item(), rel=1e-5)
    assert logs["l_z"] == pytest.approx(latent_l1(mu_g, s_g, mu_r, s_r).item(), rel=1e-5)
    assert loss.item() == pytest.approx(logs["g_adv"] + 10.0 * logs["l_z"], rel=1e-5)


def test_p2gan_samples_from_posteriors_of_real_images(data):
    m = make("p2gan", data, sampling="posterior")
    cond, how = m.sample_conditions(5)
    assert "real training images" in how["conditioning"] and cond.max() < N and how["sampling"] == "posterior"


def test_p2gan_prior_sampling_styles_g_from_pc_without_real_images(data):
    m = make("p2gan", data, sampling="prior", mu_a=-1.0, mu_b=3.0, sigma_a=0.5, sigma_b=1.5)  # Pc = N(1, 1)
    m.nets.eval()
    cond, how = m.sample_conditions(5)
    assert cond is None and how["sampling"] == "prior"
    styles = []
    m.nets["G"].register_forward_hook(lambda mod, args, out: styles.append(args[1]))
    with torch.no_grad():
        m.generate(2000, cond)
    (style,) = styles
    assert style.shape == (2000, HP["p2gan"]["posterior_dim"])
    assert style.mean().item() == pytest.approx(1.0, abs=0.01) and style.std().item() == pytest.approx(1.0, abs=0.01)


# --- bigbigan ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gan", "icgan"])
@pytest.mark.parametrize("sn", [True, False])
def test_d_scores_reals_and_fakes_in_one_pass_with_spectral_norm_else_two(data, name, sn):
    m = make(name, data, sn=sn)
    m.nets.eval()  # fixed spectral-norm vectors and BatchNorm statistics: passes must agree exactly
    batch = m.draw(5)
    c, cf = m.conditions(batch), m.fake_conditions(batch)
    fake = m.generate(5, cf)
    calls = []
    hook = m.nets["D"].register_forward_hook(lambda mod, inp, out: calls.append(len(inp[0])))
    real_s, fake_s = m.score_both(batch["real"], c, fake, cf)
    hook.remove()
    assert calls == ([10] if sn else [5, 5])
    torch.testing.assert_close(real_s, m.score(batch["real"], c))
    torch.testing.assert_close(fake_s, m.score(fake, cf))


def test_bigbigan_hinge_terms_by_hand():
    real = [torch.tensor([0.5, 2.0]), torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 1.0])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([0.5, -0.5]), torch.tensor([3.0, -1.0])]
    d, eg = hinge_terms(real, fake)
    # D: F (0.5+0)/2 + (0+1)/2 = 0.75; H (2+1)/2 + (1.5+0.5)/2 = 2.5; J (0+0)/2 + (4+0)/2 = 2
    assert d.item() == pytest.approx(0.75 + 2.5 + 2.0)
    # EG: F 1.25 - (-1) = 2.25; H -0.5 - 0 = -0.5; J 1 - 1 = 0
    assert eg.item() == pytest.approx(1.75)


def test_bigbigan_scores_pairs_with_three_terms_and_encodes(data):
    m = make("bigbigan", data)
    m.nets.eval()  # fixed spectral-norm vectors, so that the loss can be recomputed exactly
    x, z = m.draw(5)["real"], m.noise(5)
    scores = m.scores(x, z)
    assert len(scores) == 3 and all(s.shape == (5,) for s in scores)
    mu, sigma = m.nets["E"](x)
    assert mu.shape == sigma.shape == (5, m.z_dim) and (sigma > 0).all()
    assert m.encode(x).shape == (5, m.nets["E"].features.feat_dim)
    m.streams = Streams(2)
    loss, _ = m.d_loss({"real": x})
    m.streams = Streams(2)  # the same draws again: z, then the encoder's eps
    z = m.noise(5)
    with torch.no_grad():
        fake = m.nets["G"](z)
        ez = mu + torch.randn(mu.shape, generator=m.rng("eps")) * sigma
    assert loss.item() == pytest.approx(hinge_terms(m.scores(x, ez), m.scores(fake, z))[0].item(), rel=1e-5)


def test_encoder_probe_scores_the_trained_encoder_and_its_initialisation(tmp_path, tiny_params, digits_data):
    from conftest import run_stage, write_params

    tiny_params["features"]["probe"].update(n_train=600, n_test=300)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    run = tmp_path / "bigbigan" / "seed0"
    run_stage("train", "--params", params, "--method", "bigbigan", "--seed", 0, "--data", digits_data, "--out", run)
    run_stage("encoder_probe", "--params", params, "--method", "bigbigan", "--run", run, "--data", digits_data)
    got = json.loads((run / "probe.json").read_text())
    assert got["n_train"] == 600 and got["n_test"] == 300 and got["method"] == "bigbigan"
    for key in ("value", "knn", "random_init", "random_init_knn"):
        assert 0.1 < got[key] <= 1.0, key  # ten classes: above chance even at initialisation
    refused = run_stage("encoder_probe", "--params", params, "--method", "gan", "--run", run, "--data", digits_data,
                        check=False)
    assert refused.returncode == 1 and "holds run 'bigbigan', not 'gan'" in refused.stderr



def test_ema_of_a_spectral_norm_generator_keeps_unit_spectral_norms(data, tmp_path):
    """Sampling uses the EMA copy in eval mode, where spectral norm divides by u^T W v from stored vectors:
    the copy's own power iteration must keep them right for its averaged weights (averaging the live
    G's vectors did not: samples saturated)."""
    m = make("gan", data, g_sn=True, hier_z=True, ema=0.9)
    t = Trainer(m, tmp_path, steps=60, batch_size=6, n_dis=1, ema=0.9, ema_start=0, checkpoint_every=100,
                log_every=10, fingerprint="test", meta={})
    t.fit()
    t.ema.eval()
    vectors = {k: v for k, v in t.ema.named_buffers() if k.endswith(("._u", "._v"))}
    assert vectors and all(v.norm().item() == pytest.approx(1.0, abs=1e-4) for v in vectors.values())
    layers = [mod for mod in t.ema.modules() if torch.nn.utils.parametrize.is_parametrized(mod, "weight")]
    assert layers
    for mod in layers:
        w = mod.weight.detach()  # eval mode: the stored vectors' estimate
        w = w.transpose(0, 1) if isinstance(mod, torch.nn.ConvTranspose2d) else w
        assert torch.linalg.matrix_norm(w.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)
