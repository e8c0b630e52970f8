"""Metric correctness on tiny data: NDB/JSD, FID, PRDC, LPIPS, classes, their stages, and the report."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.spatial.distance import cdist
from scipy import stats
from sklearn.datasets import load_digits

from conftest import write_params
from pipeline import backbones, catalogue, config, subsets
from pipeline.errors import PipelineError
from pipeline.images import to_float, to_uint8
from pipeline.io import load_json, load_npy, save_json, save_npy
from pipeline.metrics import classes, fd_infinity, fid, gram, inception_score, kid, lpips, ndb, prdc
from pipeline.stages import evaluate, reference, report


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., None], bunch.target


# --- NDB / JSD ---------------------------------------------------------------------------------

def test_z_test_matches_hand_computation():
    z, p = ndb.z_test(np.array([0.3, 0.3, 0.5, 0.0]), 100, np.array([0.2, 0.1, 0.5, 0.0]), 200)
    pooled = (0.3 * 100 + 0.2 * 200) / 300  # 0.2333
    z0 = 0.1 / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 200))
    assert z0 == pytest.approx(1.9305, abs=1e-4)
    assert z[0] == pytest.approx(z0) and p[0] == pytest.approx(math.erfc(z0 / math.sqrt(2)))
    assert p[0] == pytest.approx(0.0536, abs=1e-4)  # two-sided: not significant at 0.05 ...
    assert p[1] < 0.05  # ... while 0.3 vs 0.1 is
    assert (z[2:] == 0).all() and (p[2:] == 1).all()  # equal proportions; a bin empty in both


def test_jsd_natural_log():
    assert ndb.jsd(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.log(2))
    assert ndb.jsd(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0


def test_two_real_samples_give_ndb_near_alpha(digits):
    x = ndb.flatten(digits[0])
    rates = []
    for draw in range(20):
        order = np.random.default_rng(draw).permutation(len(x))
        bins = ndb.fit(x[order[:900]], 20, whiten=False, seed=draw)
        rates.append(ndb.score(bins, x[order[900:]], alpha=0.05, k_requested=20)["ndb_k"])
    assert 0.02 <= np.mean(rates) <= 0.09


def test_dropping_half_the_classes_gives_large_ndb_and_jsd(digits):
    x, y = ndb.flatten(digits[0]), digits[1]
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:900], order[900:]
    bins = ndb.fit(x[train], 20, whiten=True)
    same = ndb.score(bins, x[test], 0.05, 20)
    dropped = ndb.score(bins, x[test][y[test] < 5], 0.05, 20)
    assert dropped["ndb_k"] >= 0.4 > same["ndb_k"]
    assert dropped["jsd"] > 0.05 and dropped["jsd"] > 5 * same["jsd"]


def test_whitened_ndb_assigns_as_a_float64_argmin_over_every_pixel(digits):
    """A zero border (constant in training, std 1e-6 after the reference's eps) and samples with a
    grey level or two of noise there: the assignment is the reference's float64 argmin."""
    x = np.pad(digits[0][..., 0], ((0, 0), (4, 4), (4, 4))).reshape(len(digits[0]), -1).astype(np.float32) / 255
    train, test = x[:1000], x[1000:].copy()
    border = (x[:1000].std(axis=0) == 0)
    rng = np.random.default_rng(0)
    test[:, border] = rng.integers(0, 3, (len(test), int(border.sum()))) / 255
    bins = ndb.fit(train, 10, whiten=True)
    got = ndb.nearest((test[:, bins["dims"]] - bins["mean"][bins["dims"]]) / bins["std"][bins["dims"]],
                      bins["centres"][:, bins["dims"]])
    mean, std = train.astype(np.float64).mean(0), train.astype(np.float64).std(0) + ndb.STD_EPS
    white = (test - mean) / std  # every pixel, the border included
    centres = bins["centres"].astype(np.float64)
    expected = ((white[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(got, expected)
    assert bins["dims"].size == x.shape[1] - border.sum()
    np.testing.assert_allclose(ndb.proportions(bins, test), np.bincount(expected, minlength=10) / len(test))


def test_ndb_refuses_other_image_sizes(digits):
    bins = ndb.fit(ndb.flatten(digits[0]), 10, whiten=False)
    with pytest.raises(PipelineError, match="rebuild results/reference/ndb"):
        ndb.score(bins, np.zeros((50, 32), np.float32), 0.05, 10)


# --- FID ---------------------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2, v1, v2 = rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_agrees_with_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) + 0.5
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    ours = fid.frechet_distance(*stats[0], *stats[1])
    assert ours == pytest.approx(calculate_frechet_distance(*stats[0], *stats[1]), rel=1e-6)


@pytest.mark.parametrize("singular", [False, True])
def test_trace_of_the_square_root_equals_scipy_sqrtm(singular):
    """Eigenvalues of R^T S2 R against pytorch-fid's scipy.linalg.sqrtm(S1 @ S2), at 256-d with
    correlated features, and with a constant feature in S1 (singular)."""
    from scipy import linalg

    rng = np.random.default_rng(3)
    mix = rng.normal(size=(256, 256))
    a, b = rng.normal(size=(2000, 256)) @ mix, rng.normal(size=(1500, 256)) @ mix + rng.normal(size=(1500, 256))
    if singular:
        a[:, 7] = 1.0
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(linalg.sqrtm((s1 + np.eye(256) * 1e-6 * singular) @ s2)).real
    assert fid.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9 if not singular else 1e-6)


def test_the_factor_keeps_the_directions_where_features_vary(tmp_path):
    """R R^T = S over S's rank (ten constant features dropped), stored by the reference and read back."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 40)) @ rng.normal(size=(40, 40))
    x[:, 30:] = 0.5
    sigma = np.cov(x, rowvar=False)
    root = fid.factor(sigma)
    assert root.shape == (40, 30) and np.allclose(root @ root.T, sigma, rtol=0, atol=1e-10 * np.abs(sigma).max())
    fid.save_real(tmp_path / "stats.npz", x.mean(0), sigma, len(x))
    stored = fid.load_real(tmp_path / "stats.npz")
    assert np.array_equal(stored["root"], root) and int(stored["n"]) == 500
    other = np.cov(rng.normal(size=(300, 40)), rowvar=False)
    assert fid.frechet_distance(x.mean(0), sigma, np.zeros(40), other, stored["root"]) == \
        fid.frechet_distance(x.mean(0), sigma, np.zeros(40), other)


def test_frechet_distance_refuses_non_finite_covariances():
    sigma = np.eye(3)
    sigma[1, 1] = np.nan
    with pytest.raises(PipelineError, match="NaN or infinity"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), sigma)


# --- FD-infinity ------------------------------------------------------------------------------

def test_fd_infinity_fits_the_line_in_one_over_n():
    counts = np.array([200, 500, 1000, 4000])
    assert fd_infinity.extrapolate(counts, 3.0 + 150.0 / counts) == pytest.approx((3.0, 150.0))


def test_fd_at_each_count_is_the_fd_of_that_prefix_of_one_random_order():
    from scipy import linalg

    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(400, 6)), rng.normal(0.3, 1.2, size=(300, 6)) @ rng.normal(size=(6, 6))
    mu, sigma = real.mean(0), np.cov(real, rowvar=False)
    counts = fd_infinity.sample_counts(300, 100, 3)
    got = fd_infinity.fd_at_counts(mu, sigma, fid.factor(sigma), fake, counts, seed=4)
    order = np.random.default_rng(4).permutation(300)
    for n, value in zip(counts, got):
        x = fake[order[:n]]
        s = np.cov(x, rowvar=False)
        expected = ((mu - x.mean(0)) ** 2).sum() + np.trace(sigma + s - 2 * linalg.sqrtm(sigma @ s).real)
        assert value == pytest.approx(expected, rel=1e-9)


def test_fd_infinity_removes_the_small_sample_bias():
    """Samples of the reference Gaussian itself: FD at N is all bias (about d^2 / (2N) here), FD-infinity
    is near 0."""
    rng = np.random.default_rng(6)
    d = 20
    fake = rng.normal(size=(4000, d))
    counts = fd_infinity.sample_counts(4000, 400, 10)
    at_counts = fd_infinity.fd_at_counts(np.zeros(d), np.eye(d), np.eye(d), fake, counts)
    value, slope = fd_infinity.extrapolate(counts, at_counts)
    assert at_counts[0] > 0.3 and slope > 0
    assert abs(value) < 0.1 * at_counts[0]


def test_fd_infinity_needs_a_range_of_counts():
    with pytest.raises(PipelineError, match="fd_infinity_min_n below evaluate.n_fake"):
        fd_infinity.sample_counts(1300, 1300, 15)
    counts = fd_infinity.sample_counts(1300, 1281, 15)
    assert (counts[0], counts[-1], len(counts)) == (1281, 1300, 15) and (np.diff(counts) > 0).all()


def test_running_stats_equal_numpy():
    x = np.random.default_rng(2).normal(size=(101, 4))
    running = fid.RunningStats(4)
    for start in range(0, 101, 30):
        running.update(x[start:start + 30])
    mu, sigma = running.result()
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False))


def test_fewer_samples_than_dimensions_is_refused():
    with pytest.raises(PipelineError, match="singular"):
        fid.check_count(1000, 1280, "generated")


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    r = math.ceil(3 * sigma)
    g = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).view(1, 1, 1, -1)
    x = F.pad(to_float(images), (r, r, r, r), mode="reflect")
    return to_uint8(F.conv2d(F.conv2d(x, g), g.transpose(2, 3)))


def noise(images: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).round().astype(np.uint8)


def test_fid_is_zero_for_identical_sets_and_grows_with_disturbance(digits):
    """The FID paper's disturbance check, in the efficientnet_lite0 space (1300 images > 1280 dims)."""
    images = digits[0][:1300]
    net = backbones.load("efficientnet_lite0", 32)

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        running = fid.RunningStats(net.dim)
        for batch in backbones.feature_batches(net, x, 100):
            running.update(batch)
        return running.result()

    real = stats(images)
    assert abs(fid.frechet_distance(*real, *real)) < 1e-6 * np.trace(real[1])  # rounding: the covariance is singular
    blurred = [fid.frechet_distance(*real, *stats(blur(images, s))) for s in (0.5, 1.0)]
    noised = [fid.frechet_distance(*real, *stats(noise(images, s))) for s in (16, 48)]
    assert 0 < blurred[0] < blurred[1] and 0 < noised[0] < noised[1]


# --- PRDC --------------------------------------------------------------------------------------

# --- KID ----------------------------------------------------------------------------------------

def kid_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, summed pair by pair in float64."""
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


def test_kid_equals_a_pair_by_pair_computation(products_kept):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 7)), rng.normal(0.5, 1.2, size=(30, 7))
    mean, std, size = kid.kid(x, y, subsets=1, size=30)  # one subset of everything: the plain estimate
    assert size == 30 and std == 0
    assert mean == pytest.approx(kid_by_loops(x, y), rel=1e-5)
    # subsets: each is the estimate on its own rows (the kernel matrices are only computed once)
    mean, std, size = kid.kid(x, y[:20], subsets=5, size=50, seed=3)
    assert size == 20  # capped by the smaller set
    draws = np.random.default_rng(3)
    expected = []
    for _ in range(5):
        r, f = draws.choice(30, 20, replace=False), draws.choice(20, 20, replace=False)
        expected.append(kid_by_loops(x[r], y[:20][f]))
    assert mean == pytest.approx(np.mean(expected), rel=1e-5) and std == pytest.approx(np.std(expected), rel=1e-4)


def test_kid_and_prdc_with_real_terms_from_the_reference_equal_their_own(products_kept):
    """What the backbone reference computes once from the real rows (KID's within-real sums for
    n_fake generated rows, PRDC's real radii) gives the values computed from scratch."""
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(60, 5)), rng.normal(0.2, 1.1, size=(45, 5))
    alone = gram.Products(real, np.empty((0, 5)))
    xx = kid.real_within(alone, len(fake), subsets=6, size=40, seed=2)
    assert kid.kid_of(gram.Products(real, fake), 6, 40, seed=2, xx=xx) == pytest.approx(
        kid.kid(real, fake, 6, 40, seed=2), rel=1e-12)
    radii = prdc.real_radii(alone, 3)
    assert prdc.prdc_of(gram.Products(real, fake), 3, radii) == prdc.prdc(real, fake, 3)


def test_kid_is_unbiased_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    same = [kid.kid(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), 10, 100, seed=s)[0] for s in range(20)]
    shifted = kid.kid(rng.normal(size=(200, 16)), rng.normal(0.3, 1, size=(200, 16)), 10, 100)[0]
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same)) + 1e-4
    assert shifted > 10 * np.std(same)


# --- Inception Score (classifier variant) --------------------------------------------------------

def test_inception_score_is_k_for_a_uniform_confident_mix_and_1_for_one_class():
    k = 7
    confident = np.eye(k)[np.arange(700) % k] * (1 - 1e-12) + 1e-12 / k
    mean, std = inception_score.inception_score(confident, splits=10)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    assert inception_score.inception_score(np.eye(k)[np.full(700, 3)], splits=10) == (1.0, 0.0)
    uncertain = np.full((700, k), 1 / k)  # no class is recognisable: also 1
    assert inception_score.inception_score(uncertain, splits=10)[0] == pytest.approx(1.0)


def test_inception_score_proper_is_the_fid_inceptions_unbiased_logits(tmp_path, monkeypatch, tiny_params, digits):
    """Plumbing with random weights in the FID Inception's layout (the real file cannot be had here):
    the metric's IS equals softmax(pool3 @ fc.weight^T) computed through pytorch-fid's own resize and
    normalisation; the sha256 check and the checked file are the ones FID uses."""
    import hashlib
    from unittest import mock

    import pytorch_fid.inception as fid_inception
    from scipy.special import softmax

    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, state, *a, **k: None):
        torch.manual_seed(0)
        state = fid_inception.fid_inception_v3().state_dict()
    assert state["fc.weight"].shape == (1008, 2048)
    torch.save(state, tmp_path / backbones.FID_WEIGHTS)
    monkeypatch.setattr(backbones, "RESOURCES", tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "FID_SHA256", hashlib.sha256((tmp_path / backbones.FID_WEIGHTS).read_bytes()).hexdigest())

    images = digits[0][:10]
    tiny_params["evaluate"].update(is_net="inception", is_splits=2, batch_size=5)
    ctx = evaluate.EvalContext(tiny_params, images, np.full(10, -1), tmp_path, 0, torch.device("cpu"))
    got = inception_score.compute(ctx)

    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: state):
        net = fid_inception.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).expand(-1, 3, -1, -1)
        pool3 = net(x)[0].flatten(1).double()
    probs = softmax((pool3 @ state["fc.weight"].double().T).numpy(), axis=1)
    expected = inception_score.inception_score(probs, 2)
    assert got["name"] == "IS" and got["n_classes"] == 1008 and got["net"] == "inception"
    assert got["value"] == pytest.approx(expected[0], rel=1e-4) and got["split_std"] == pytest.approx(expected[1], rel=1e-2, abs=1e-6)
    monkeypatch.setattr(backbones, "FID_SHA256", "0" * 64)  # another file: refused, as for FID
    with pytest.raises(PipelineError, match="not pytorch-fid's FID Inception weights"):
        inception_score.compute(evaluate.EvalContext(tiny_params, images, np.full(10, -1), tmp_path, 0))


def test_inception_score_by_hand_on_two_samples():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    marginal = probs.mean(0)
    kl = (probs * np.log(probs / marginal)).sum(1).mean()
    assert inception_score.inception_score(probs, splits=1)[0] == pytest.approx(math.exp(kl))


# --- resize protocols --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 299])
def test_clean_resize_equals_clean_fids_resizer(size):
    from cleanfid.resize import make_resizer

    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), np.uint8)
    theirs = make_resizer("PIL", False, "bicubic", (size, size))
    np.testing.assert_array_equal(backbones.clean_resize(images, size), np.stack([theirs(im) for im in images]))


def test_the_resize_protocol_changes_the_features_and_is_recorded(digits):
    images = digits[0][:8]
    legacy = backbones.load("efficientnet_lite0", 32)
    clean = backbones.load("efficientnet_lite0", 32, resize="clean")
    a, b = backbones.features(legacy, images, 8), backbones.features(clean, images, 8)
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-3)
    assert (legacy.resize, clean.resize) == ("legacy", "clean")


@pytest.mark.parametrize("size", [32, 57, 64])
def test_folded_paddings_and_batch_norms_keep_the_shipped_features(size):
    shipped = backbones.efficientnet_lite_net(0, as_shipped=True)
    loaded = backbones.efficientnet_lite0_net()
    pads_only = backbones.efficientnet_lite_net(0, as_shipped=True)
    assert backbones.fold_padding(pads_only) == 17  # 12 at stride 1, and the 5 one-sided ones at stride 2
    assert len([m for m in shipped.modules() if isinstance(m, torch.nn.BatchNorm2d)]) == 49
    count = lambda net, kind: sum(isinstance(m, kind) for m in net.modules())  # noqa: E731
    assert (count(loaded, torch.nn.ZeroPad2d), count(loaded, torch.nn.BatchNorm2d)) == (0, 0)
    x = torch.randn(3, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = shipped.extract_features(x)
        torch.testing.assert_close(pads_only.extract_features(x), reference, rtol=0, atol=1e-6)  # same arithmetic
        torch.testing.assert_close(loaded.extract_features(x), reference, rtol=1e-4, atol=1e-4)  # rounding only


def test_nets_run_in_near_equal_parts_of_bounded_pixels_on_cpu_only():
    calls = []
    def fn(x, y):  # noqa: E306
        calls.append(len(x))
        return (x * y).sum((1, 2, 3))
    x, y = torch.randn(250, 3, 64, 64), torch.randn(250, 3, 64, 64)
    torch.testing.assert_close(backbones.in_parts(fn, x, y), (x * y).sum((1, 2, 3)), rtol=0, atol=0)
    assert calls == [63, 63, 62, 62]  # 250 x 64 x 64 pixels over PIXELS_PER_CALL = 2^18: four parts
    calls.clear()
    backbones.in_parts(fn, x[:, :, :32, :32], y[:, :, :32, :32])  # 250 x 32 x 32 pixels fit one call
    backbones.in_parts(fn, x.to("meta"), y.to("meta"))  # not a CPU: one call however large
    assert calls == [250, 250]
    # as evaluation runs them: one call of 250 Lite0 images at 64 px against four parts
    lite0 = backbones.load("efficientnet_lite0", 64)
    x = torch.rand(250, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        whole = lite0.net.net.extract_features(x.contiguous(memory_format=torch.channels_last)).mean((2, 3))  # one call
        torch.testing.assert_close(lite0(x), whole, rtol=1e-5, atol=1e-6)


@pytest.fixture(params=["whole", "blocked"])
def products_kept(request, monkeypatch):
    """kid and prdc with the products held whole, and computed block by block (several blocks)."""
    monkeypatch.setattr(gram, "BLOCK", 16)
    if request.param == "blocked":
        monkeypatch.setattr(gram, "BUDGET", 0)
    return request.param


def test_prdc_equals_brute_force(products_kept):
    rng = np.random.default_rng(3)
    real, fake, k = rng.normal(size=(70, 6)), rng.normal(0.3, 1.2, size=(55, 6)), 3
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    s = np.sort(d_ff, axis=1)[:, k]
    expected = {
        "precision": np.mean([any(d_rf[i, j] < r[i] for i in range(70)) for j in range(55)]),
        "recall": np.mean([any(d_rf[i, j] < s[j] for j in range(55)) for i in range(70)]),
        "density": np.mean([sum(d_rf[i, j] < r[i] for i in range(70)) for j in range(55)]) / k,
        "coverage": np.mean([d_rf[i].min() < r[i] for i in range(70)]),
    }
    got = prdc.prdc(real, fake, k)
    assert got == pytest.approx(expected)
    assert prdc.prdc(real, real, k)["precision"] == 1.0


def test_prdc_needs_more_samples_than_k():
    with pytest.raises(PipelineError, match="more than 5"):
        prdc.prdc(np.zeros((5, 2)), np.zeros((10, 2)), 5)


# --- LPIPS -------------------------------------------------------------------------------------

def test_uncalibrated_lpips_is_zero_for_identical_pairs(digits):
    net = lpips.UncalibratedLPIPS(backbones.efficientnet_lite0_net()).requires_grad_(False)
    pairs = np.array([[0, 0], [5, 5], [0, 1], [2, 7]])
    d = lpips.pair_distances(net, digits[0], pairs, 64, 3, "cpu")
    assert d[0] == d[1] == 0 and (d[2:] > 0).all()


def test_uncalibrated_lpips_is_the_lpips_packages_formula_on_its_maps(digits):
    import lpips as lpips_package

    net = lpips.UncalibratedLPIPS(backbones.efficientnet_lite0_net()).requires_grad_(False)
    x0, x1 = (lpips.prepare(digits[0][i], 64, "cpu") for i in (slice(0, 4), slice(4, 8)))
    with torch.no_grad():
        expected = sum(lpips_package.spatial_average(
            (lpips_package.normalize_tensor(a) - lpips_package.normalize_tensor(b)).pow(2).sum(1, keepdim=True))
            for a, b in zip(*(raw_maps(net.net, x) for x in (x0, x1))))
        got = net(x0, x1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def raw_maps(net, x):
    x = net._swish(net._bn0(net._conv_stem(x.contiguous(memory_format=torch.channels_last))))
    out = []
    for i, block in enumerate(net._blocks[:lpips.TAPS[-1] + 1]):
        x = block(x)
        if i in lpips.TAPS:
            out.append(x)
    return out


def test_lpips_package_path_plumbing_with_random_trunk(digits):
    """Plumbing only: the lpips package runs with a random AlexNet (pnet_rand); that is not LPIPS."""
    net = lpips.alex_lpips(None)
    import lpips as lpips_package

    path = Path(lpips_package.__file__).parent / "weights" / "v0.1" / "alex.pth"
    heads = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(net.lin0.model[1].weight, heads["lin0.model.1.weight"])
    d = lpips.pair_distances(net, digits[0], np.array([[3, 3], [3, 4]]), 64, 2, "cpu")
    assert d[0] == pytest.approx(0, abs=1e-7) and d[1] > 0


def test_alexnet_trunk_weights_are_loaded_into_the_lpips_slices(tmp_path):
    import torchvision

    features = torchvision.models.alexnet().features
    path = tmp_path / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    net = lpips.alex_lpips(path)
    assert torch.equal(getattr(net.net.slice1, "0").weight, features[0].weight)
    assert torch.equal(getattr(net.net.slice5, "10").bias, features[10].bias)


def test_alex_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lpips, "RESOURCES", tmp_path)
    monkeypatch.setattr(lpips, "ALEX_URL", "http://127.0.0.1:9/alexnet-owt-7be5be79.pth")
    with pytest.raises(PipelineError, match="lpips_net: efficientnet_lite0"):
        lpips.alex_weights()
    assert list(tmp_path.iterdir()) == []


def test_pairs_stay_within_conditions():
    conditions = np.array([-1, 0, 0, 1, 1, 1, 2, 3, 3])
    rng = np.random.default_rng(0)
    groups = lpips.condition_pairs(conditions, 10, 20, rng)
    assert len(groups) == 3  # condition 2 has one sample
    for g in groups:
        assert (g[:, 0] != g[:, 1]).all() and len(set(conditions[g.ravel()])) == 1
    assert len(lpips.condition_pairs(conditions, 2, 20, rng)) == 2
    assert lpips.condition_pairs(np.full(5, -1), 10, 20, rng) == []


# --- classes -----------------------------------------------------------------------------------

def test_class_coverage_and_kl_by_hand():
    real = np.array([0.25, 0.25, 0.5])
    got = classes.class_stats(np.array([0, 0, 1, 1]), real)
    assert got["value"] == 2 and got["kl"] == pytest.approx(2 * 0.5 * math.log(0.5 / 0.25))
    assert classes.class_stats(np.array([0, 1, 2, 2]), real) == {"value": 3, "kl": pytest.approx(0)}


# --- stages: reference + evaluate for ndb, classes and lpips -------------------------------------

def test_reference_and_evaluate_stages(tmp_path, tiny_params, digits_data):
    tiny_params["evaluate"].update(classifier_steps=60, classifier_batch_size=32, lpips_pairs=20,
                                   lpips_pairs_per_condition=4, lpips_conditions=3)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    ref = tmp_path / "reference"
    for name in ("ndb", "classifier"):
        reference.main(["--params", str(params), "--name", name, "--data", str(digits_data), "--out", str(ref / name)])
    assert load_json(ref / "classifier" / "reference.json")["test_accuracy"] > 0.3
    run = tmp_path / "cgan" / "seed0"
    save_npy(run / "samples.npy", load_npy(digits_data / "images.npy")[:1300])
    save_npy(run / "conditions.npy", load_npy(digits_data / "labels.npy")[:1300])
    save_json(run / "samples.json", {"method": "cgan", "seed": 0})
    for metric in ("ndb", "classes", "lpips"):
        evaluate.main(["--params", str(params), "--metric", metric, "--run", str(run), "--data", str(digits_data),
                       "--reference", str(ref)])
    got = {m: load_json(run / f"{m}.json") for m in ("ndb", "classes", "lpips")}
    assert got["ndb"]["ndb_k"] < 0.2 and got["ndb"]["n_fake"] == 1300  # real images as samples
    assert got["classes"]["value"] == 10 and got["classes"]["kl"] < 0.1
    assert got["lpips"]["name"] == "LPIPS-uncalibrated_efficientnet_lite0" and not got["lpips"]["calibrated"]
    assert got["lpips"]["n_conditions"] == 3 and got["lpips"]["per_condition"] > 0


def test_backbone_reference_and_fd_infinity_kid_prdc_through_the_stages(tmp_path, tiny_params, digits_data):
    """The backbone reference and evaluate: FD-infinity's line passes near fid's FD at n_fake (one of its
    counts), and its json names the protocol; KID and PRDC read the reference's real terms, which
    must have been computed with the evaluation's settings."""
    tiny_params["evaluate"].update(metrics=["fid", "kid", "prdc", "fd_infinity"], fd_infinity_points=4,
                                   fd_infinity_min_n=1281)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    reference.main(["--params", str(params), "--name", "backbone", "--data", str(digits_data), "--out",
                    str(tmp_path / "reference" / "backbone")])
    run = tmp_path / "gan" / "seed0"
    images = load_npy(digits_data / "images.npy")
    save_npy(run / "samples.npy", np.clip(images[-1300:].astype(int) + 30, 0, 255).astype(np.uint8))
    save_json(run / "samples.json", {"method": "gan", "seed": 0})
    evaluate.main(["--params", str(params), "--metric", "fid", "fd_infinity", "kid", "prdc", "--run", str(run),
                   "--data", str(digits_data), "--reference", str(tmp_path / "reference")])
    fd, inf = load_json(run / "fid.json"), load_json(run / "fd_infinity.json")
    assert inf["name"] == "FD-infinity_efficientnet_lite0" and (inf["n_points"], inf["n_min"]) == (4, 1281)
    assert inf["value"] + inf["slope"] / 1300 == pytest.approx(fd["value"], rel=0.02)
    assert load_json(run / "kid.json")["value"] > 0 and 0 <= load_json(run / "prdc.json")["value"] <= 1
    for key, value, term in (("kid_subsets", 7, "kid_within"), ("prdc_k", 4, "prdc_radii")):
        changed = copy.deepcopy(tiny_params)
        changed["evaluate"][key] = value
        with pytest.raises(PipelineError, match=f"{term} was computed with {key} .*, this evaluation uses {value}; "
                                                "rebuild the backbone reference"):
            evaluate.evaluate(changed, ["kid", "prdc"], run, digits_data, tmp_path / "reference")
    for key, value in (("backbone", "efficientnet_lite2"), ("n_real", 1400), ("resize", "clean")):
        changed = copy.deepcopy(tiny_params)
        changed["evaluate"][key] = value
        with pytest.raises(PipelineError, match=f"backbone: built with evaluate.{key} .*, this evaluation uses "
                                                f"'?{value}'?; rebuild it"):
            evaluate.evaluate(changed, ["fid"], run, digits_data, tmp_path / "reference")
    changed = copy.deepcopy(tiny_params)
    changed["evaluate"]["batch_size"] = 100  # rounding only: the reference still serves
    evaluate.evaluate(changed, ["fid"], run, digits_data, tmp_path / "reference")


def test_fid_refuses_a_reference_of_too_few_real_images(tmp_path, tiny_params):
    """The reference stage serves KID and PRDC at any count; FD needs more real images than dimensions."""
    dim = 1280
    fid.save_real(tmp_path / "backbone" / "stats.npz", np.zeros(dim), np.eye(dim), 50)
    save_json(tmp_path / "backbone" / "reference.json",
              {"settings": catalogue.reference_settings(tiny_params, "backbone")})
    ctx = evaluate.EvalContext(tiny_params, np.zeros((4, 16, 16, 1), np.uint8), np.full(4, -1), tmp_path, 0)
    with pytest.raises(PipelineError, match="fid: 50 real samples for 1280-d features"):
        fid.compute(ctx)


def test_missing_reference_is_a_clear_error(tmp_path, tiny_params, digits_data):
    ctx = evaluate.EvalContext(tiny_params, np.zeros((4, 16, 16, 1), np.uint8), np.full(4, -1), tmp_path, 0)
    with pytest.raises(PipelineError, match="pipeline.stages.reference --name ndb"):
        ndb.compute(ctx)


# --- report ------------------------------------------------------------------------------------

def fake_results(root, methods: dict[str, dict[int, float]]) -> None:
    """Aggregated fid and ndb jsons as pipeline.stages.aggregate writes them."""
    for method, per_seed in methods.items():
        for metric, extra in (("fid", {}), ("ndb", {"jsd": 0.01})):
            values = {str(s): {"value": v, **extra} for s, v in per_seed.items()}
            save_json(root / method / f"{metric}.json", {
                "metric": metric, "name": "FD_efficientnet_lite0" if metric == "fid" else "NDB",
                **({"backbone": "efficientnet_lite0"} if metric == "fid" else {"space": "pixels"}),
                "n_fake": 100, "method": method, "dataset": "digits", "value": float(np.mean(list(per_seed.values()))),
                "std": None, "n_seeds": len(per_seed), "mean": {}, "stdev": {}, "per_seed": values})


def test_the_ic_gan_page_says_how_semantic_its_instance_features_are(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["biggan", "icgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"biggan": {0: 40.0, 1: 41.0}, "icgan": {0: 30.0, 1: 31.0}})
    save_json(tmp_path / "features" / "probe.json", {
        "extractor": "simclr", "dim": 64, "linear_probe_accuracy": 0.805, "knn_accuracy": 0.7618,
        "baselines": {"pixels": {"linear_probe_accuracy": 0.819, "knn_accuracy": 0.8092}}})
    save_json(tmp_path / "knn" / "knn.json", {"k": 5, "purity": 0.7636, "purity_chance": 0.1})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    page = (tmp_path / "comparisons" / "icgan.md").read_text()
    assert ("Instance features: `simclr` (64-d) score 0.805 by linear probe and 0.762 by kNN classification of "
            "held-out images (raw pixels: 0.819 and 0.809); an instance's 5 neighbours share its class 76.4% of "
            "the time (chance 10%). The features probe no better than pixels") in page
    assert "Instance features" not in (tmp_path / "comparisons" / "msgan.md").read_text()
    # features that beat pixels are not called weak
    save_json(tmp_path / "features" / "probe.json", {
        "extractor": "efficientnet_lite0", "dim": 1280, "linear_probe_accuracy": 0.827, "knn_accuracy": 0.82,
        "baselines": {"pixels": {"linear_probe_accuracy": 0.819, "knn_accuracy": 0.8092}}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    page = (tmp_path / "comparisons" / "icgan.md").read_text()
    assert "`efficientnet_lite0` (1280-d) score 0.827" in page and "weak test" not in page
    # ... unless their neighbourhoods are less pure than raw pixels' on the same instances
    save_json(tmp_path / "knn" / "knn.json", {"k": 5, "purity": 0.7958, "purity_chance": 0.1,
                                             "pixels": {"queries": 5000, "purity": 0.8275, "features_purity": 0.7933}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    page = (tmp_path / "comparisons" / "icgan.md").read_text()
    assert ("share its class 79.6% of the time (chance 10%), raw pixels' neighbours 82.8% on 5,000 random instances "
            "where the features' share it 79.3%. The features probe better than pixels, but their neighbourhoods "
            "share labels less often than pixel ones: a weak test") in page


def test_report_on_a_fake_results_tree(tmp_path, tiny_params, capsys):
    tiny_params["study"]["methods"] = ["gan", "cgan", "msgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    tiny_params["comparisons"]["msgan"]["paper"].update(dataset="digits", backbone="efficientnet_lite0")
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"gan": {0: 50.0}, "cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 30.0, 1: 31.0, 2: 30.5}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    table = pd.read_parquet(tmp_path / "metrics.parquet")
    assert len(table) == 7 and {"fid", "fid.backbone", "fid.name", "ndb", "ndb.jsd"} <= set(table.columns)
    # DVC's metrics: per run, the mean of each metric's value and of the columns claims name, nothing else
    dvc = json.loads((tmp_path / "metrics.json").read_text())
    assert list(dvc) == ["gan", "cgan", "msgan"] and dvc["gan"]["fid"] == 50.0 and dvc["msgan"]["fid"] == 30.5
    assert set(dvc["cgan"]) == {"fid", "ndb", "ndb.jsd"}  # lpips.per_condition and probe: not measured here
    assert dvc["msgan"]["ndb.jsd"] == pytest.approx(table[table["method"] == "msgan"]["ndb.jsd"].mean())
    claims = pd.read_csv(tmp_path / "comparisons" / "msgan.csv")
    fid_claim, ndb_claim = claims.set_index("metric").loc["fid"], claims.set_index("metric").loc["ndb"]
    # ndb is msgan's pre-registered primary (paired seeds: differences -10, -10, -11.5); the only primary
    # this study tests, so Holm leaves its p-value as it is: t = -21.0 on 2 degrees of freedom
    assert ndb_claim["role"] == "primary" and ndb_claim["design"] == "paired"
    assert ndb_claim["p_holm"] == pytest.approx(2 * stats.t.sf(10.5 / (math.sqrt(0.75) / math.sqrt(3)), 2))
    assert ndb_claim["verdict"].startswith("supported (Holm-adjusted p = 0.00226)") and ndb_claim["detectable"] > 0
    # fid is secondary: described by its interval, never "supported"
    assert fid_claim["role"] == "secondary" and fid_claim["n_seeds_method"] == 3
    assert fid_claim["verdict"] == "descriptive: the interval excludes 0 in the claimed direction"
    assert fid_claim["paper_method"] == 28.73 and "unverified" in fid_claim["paper_label"]
    page = (tmp_path / "comparisons" / "msgan.md").read_text()
    assert "30.5 ± 0.5" in page and "| fid (paper's, unverified) |" in page and "| 28.73 |" in page
    assert "not run: add icgan to study.methods" in (tmp_path / "comparisons" / "icgan.md").read_text()
    assert (tmp_path / "plots" / "metrics.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "msgan: NDB lower than cgan (primary): difference -10.5 paired 95% [-12.65, -8.349]: supported" in out
    assert "msgan: FD_efficientnet_lite0 lower than cgan (secondary): difference -10.5 paired 95% [" in out
    assert "Primary claims (pre-registered in params.yaml): ndb, lpips.per_condition." in page
    assert "Seeds: paired. cgan is msgan's own class" in page
    df = pd.read_parquet(tmp_path / "metrics.parquet")
    df["classes.accuracy"] = 0.9  # the same for every method: not plotted
    assert report.plotted_columns(df, ["fid", "ndb", "ndb.jsd", "classes.accuracy"]) == ["fid", "ndb"]  # jsd: 0.01 for all
    assert "| lambda_ms | 1.0 | 0.0 |" in page and "Unfair pair" not in page


def test_report_names_seeds_a_paired_test_left_out_and_a_difference_against_the_claim(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["cgan", "msgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    # seeds 0-2 paired, msgan's seed 3 has no partner; differences +1, -0.5, +2: NDB higher, not lower as claimed
    fake_results(tmp_path, {"cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 41.0, 1: 40.5, 2: 44.0, 3: 30.0}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    ndb = pd.read_csv(tmp_path / "comparisons" / "msgan.csv").set_index("metric").loc["ndb"]
    assert ndb["n_paired"] == 3 and ndb["n_seeds_method"] == 4 and ndb["difference"] == pytest.approx(2.5 / 3)
    assert ndb["verdict"].startswith("inconclusive") and pd.isna(ndb["seeds_needed"])  # more seeds cannot support it
    page = (tmp_path / "comparisons" / "msgan.md").read_text()
    assert "the observed difference goes against the claim" in page and "needs" not in page.split("| ndb lower")[1].split("\n")[0]
    assert ("so these rows leave seeds out: fid (msgan vs cgan): 3 of 4 and 3; ndb (msgan vs cgan): 3 of 4 and 3; "
            "ndb.jsd (msgan vs cgan): 3 of 4 and 3.") in page
    jsd = pd.read_csv(tmp_path / "comparisons" / "msgan.csv").set_index("metric").loc["ndb.jsd"]  # 0.01 at every seed
    assert jsd["verdict"] == ("descriptive: no difference; 3 seed(s) both runs ran, but the per-seed differences are "
                              "all equal: no error to test against")


def test_report_flags_a_pair_that_differs_in_an_undeclared_setting(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["cgan", "msgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    tiny_params["methods"]["msgan"]["lr_g"] = 0.001
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 30.0, 1: 31.0, 2: 30.5}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    page = (tmp_path / "comparisons" / "msgan.md").read_text()
    assert "| lr_g (undeclared) | 0.001 | 0.0002 |" in page and "**Unfair pair**: msgan also differs from cgan in lr_g" in page
    verdicts = pd.read_csv(tmp_path / "comparisons" / "msgan.csv").set_index("metric")["verdict"]
    assert verdicts["ndb"].startswith("unfair pair (also differs in lr_g): supported")


def test_only_the_claiming_run_that_differs_is_flagged_unfair(tmp_path, tiny_params):
    """p2gan_posterior with its own learning rate: its rows are flagged, p2gan's (the primary) are not."""
    tiny_params["study"]["methods"] = ["lsgan", "p2gan", "p2gan_posterior"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    tiny_params["methods"]["p2gan_posterior"]["lr_g"] = 0.0001
    del tiny_params["methods"]["p2gan_posterior"]["trained_as"]  # so trained by itself
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"lsgan": {0: 40.0, 1: 41.0}, "p2gan": {0: 30.0, 1: 31.0}, "p2gan_posterior": {0: 35.0, 1: 36.0}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    rows = pd.read_csv(tmp_path / "comparisons" / "p2gan.csv")
    flagged = rows["verdict"].str.startswith("unfair pair (also differs in lr_g)")
    assert flagged[rows["method"] == "p2gan_posterior"].all() and not flagged[rows["method"] == "p2gan"].any()
    page = (tmp_path / "comparisons" / "p2gan.md").read_text()
    assert "**Unfair pair**: p2gan_posterior also differs from lsgan in lr_g" in page and "**Unfair pair**: p2gan " not in page


def test_encoder_claim_compares_the_methods_own_columns(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["biggan", "bigbigan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"biggan": {0: 50.0}, "bigbigan": {0: 45.0, 1: 47.0}})
    per_seed = {"0": {"value": 0.80, "random_init": 0.70}, "1": {"value": 0.82, "random_init": 0.71}}
    save_json(tmp_path / "bigbigan" / "probe.json", {
        "metric": "probe", "name": "linear_probe_accuracy", "method": "bigbigan", "dataset": "digits", "value": 0.81,
        "std": None, "n_seeds": 2, "mean": {}, "stdev": {}, "per_seed": per_seed})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    claims = pd.read_csv(tmp_path / "comparisons" / "bigbigan.csv").set_index("metric")
    probe = claims.loc["probe"]
    assert probe["baseline"] == "probe.random_init" and probe["difference"] == pytest.approx(0.105)
    # paired by seed (the same run): differences 0.10, 0.11, t = 21 on 1 degree of freedom
    assert probe["design"] == "paired" and probe["p_holm"] == pytest.approx(2 * stats.t.sf(21.0, 1))
    assert probe["verdict"].startswith("supported") and claims.loc["fid", "baseline"] == "biggan"
    page = (tmp_path / "comparisons" / "bigbigan.md").read_text()
    assert "higher probe than its own probe.random_init" in page and "| 0.81 ± 0.01414 |" in page
    assert "| probe (linear_probe_accuracy) |" in page  # named although biggan, the first row, has no probe
    assert "| biggan (baseline) | 50 (1 seed) | n/a | n/a |" in page
    summary = (tmp_path / "summary.txt").read_text()
    assert ("bigbigan: linear_probe_accuracy higher than linear_probe_accuracy.random_init (primary): difference "
            "0.105 paired 95% [0.04147, 0.1685]: supported") in summary


# --- the real-data run ---------------------------------------------------------------------------

def test_real_run_holds_out_images_outside_the_reference_subset(tmp_path, tiny_params, digits_data):
    from pipeline.stages import real

    tiny_params["sample"].update(n=400, grid=16)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    out = tmp_path / "results/real/seed1"
    real.main(["--params", str(params), "--seed", "1", "--data", str(digits_data), "--out", str(out)])
    images, labels = load_npy(digits_data / "images.npy"), load_npy(digits_data / "labels.npy")
    idx = real.held_out(len(images), tiny_params["evaluate"]["n_real"], 400, 1)
    assert not set(idx) & set(subsets.real_subset_indices(len(images), tiny_params["evaluate"]["n_real"]))
    np.testing.assert_array_equal(load_npy(out / "samples.npy"), images[idx])
    np.testing.assert_array_equal(load_npy(out / "conditions.npy"), labels[idx])  # per-class LPIPS of real data
    assert load_json(out / "samples.json")["method"] == "real"
    with Image.open(out / "samples.png") as png:  # grid 16 over 10 classes: a class per column, one image each
        side = images.shape[1] + 2  # 2-pixel gaps
        assert png.size[0] / png.size[1] == (10 * side + 2) / (1 * side + 2)
    assert not np.array_equal(real.held_out(len(images), 1300, 400, 2), idx)  # another seed, another draw
    with pytest.raises(PipelineError, match="leave 497 outside the reference's evaluate.n_real"):
        real.held_out(len(images), 1300, 500, 0)


def test_report_shows_the_real_run_as_the_floor_of_each_comparison(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["cgan", "msgan", "real"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"cgan": {0: 40.0, 1: 41.0}, "msgan": {0: 30.0, 1: 31.0}, "real": {0: 2.0, 1: 4.0}})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    page = (tmp_path / "comparisons" / "msgan.md").read_text()
    assert "| real (held-out real images: the floor) | 3 ± 1.414 |" in page


def test_a_run_may_not_be_named_real(tiny_params, tmp_path):
    tiny_params["methods"]["real"] = tiny_params["methods"]["gan"]
    with pytest.raises(PipelineError, match="methods.real: the name 'real' is the held-out real-data run"):
        config.load(write_params(tiny_params, tmp_path / "params.yaml"))
