"""features stage: the NT-Xent loss by hand, SimCLR learning, extractors on digits, SwAV download."""
from __future__ import annotations

import functools
import hashlib
import http.server
import math
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny, write_params
from pipeline import knn_io
from pipeline.errors import PipelineError
from pipeline.features import embed, probe, simclr, swav
from pipeline.io import load_json, load_npy, save_json, save_npy
from pipeline.stages.features import main, run


@pytest.fixture
def digits(digits_data, default_params, tmp_path) -> tuple[Path, dict]:
    """data/ of sklearn's digits at 16x16, and params that train SimCLR for a few seconds."""
    params = tiny(default_params)
    params["features"]["simclr"].update(steps=80, batch_size=64, width=8, lr=0.003)
    params["features"]["probe"].update(n_train=1200, n_test=597, k=10)
    return digits_data, params


def test_nt_xent_equals_the_hand_computation() -> None:
    # Views in order a1, b1, a2, b2; positives are (a1, a2) and (b1, b2); temperature 0.5.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # a1, b1
    z2 = torch.tensor([[0.6, 0.8], [0.8, 0.6]])  # a2, b2
    # Cosine similarities: a1.b1 = 0, a1.a2 = 0.6, a1.b2 = 0.8, b1.a2 = 0.8, b1.b2 = 0.6, a2.b2 = 0.96;
    # divided by 0.5 they are the logits. Each anchor: -log(exp(positive) / sum over the other three).
    e = math.exp
    a1 = -math.log(e(1.2) / (e(0.0) + e(1.2) + e(1.6)))
    b1 = -math.log(e(1.2) / (e(0.0) + e(1.6) + e(1.2)))
    a2 = -math.log(e(1.2) / (e(1.2) + e(1.6) + e(1.92)))
    b2 = -math.log(e(1.2) / (e(1.6) + e(1.2) + e(1.92)))
    expected = (a1 + b1 + a2 + b2) / 4
    assert simclr.nt_xent(z1, z2, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert simclr.nt_xent(3 * z1, 2 * z2, 0.5).item() == pytest.approx(expected, rel=1e-6)  # scale-free


def test_one_step_lowers_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    encoder, head = simclr.Encoder(1, 8), simclr.projection_head(32, 16)
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    views = torch.cat([simclr.augment(x), simclr.augment(x)])
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def loss() -> torch.Tensor:
        return simclr.nt_xent(*head(encoder(views)).chunk(2), 0.5)

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_keeps_shape_and_range(channels: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(32, channels, 16, 16) * 2 - 1
    y = simclr.augment(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert not torch.allclose(y, x) and not torch.allclose(y, simclr.augment(x))


def test_simclr_beats_its_random_weights_on_digits(digits, tmp_path) -> None:
    data, params = digits
    main(["--params", str(write_params(params, tmp_path / "params.yaml")), "--data", str(data), "--out", str(tmp_path)])
    feats = load_npy(tmp_path / "features.npy")
    assert feats.dtype == np.float32 and feats.shape == (1797, 32)
    knn_io.check_features(feats, 1797, "features.npy")
    report = load_json(tmp_path / "probe.json")
    assert report["extractor"] == "simclr" and report["training"]["steps"] == 80
    random = report["baselines"]["random_weights"]
    assert report["linear_probe_accuracy"] > random["linear_probe_accuracy"] + 0.03
    assert report["knn_accuracy"] > random["knn_accuracy"] + 0.03
    assert report["baselines"]["pixels"]["knn_accuracy"] > 0.9
    encoder = simclr.load_encoder(tmp_path / "encoder.pt")
    again = embed(encoder, load_npy(data / "images.npy")[:50], 25, torch.device("cpu"), "reloaded")
    np.testing.assert_allclose(again, feats[:50], atol=1e-5)


@pytest.mark.parametrize("content", [b"", b"hello\n"], ids=["empty", "text"])
def test_a_corrupt_encoder_is_one_line_naming_it(tmp_path, content) -> None:
    path = tmp_path / "encoder.pt"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(path))}: not a SimCLR encoder saved by the features "
                                            rf"stage \((EOFError|KeyError)\); rebuild it"):
        simclr.load_encoder(path)


@pytest.mark.parametrize("extractor, dim", [("pixels", 256), ("efficientnet_lite0", 1280)])
def test_pretrained_and_pixel_extractors_on_digits(digits, tmp_path, extractor: str, dim: int) -> None:
    data, params = digits
    for name in ("images.npy", "labels.npy"):  # 400 images keep the ImageNet network to a few seconds
        save_npy(tmp_path / "data" / name, load_npy(data / name)[:400])
    save_json(tmp_path / "data" / "meta.json", {**load_json(data / "meta.json"), "count": 400})
    params = {**params, "features": {**params["features"], "extractor": extractor, "hflip": True, "input_size": 32}}
    feats, report = run(params, tmp_path / "data", tmp_path / "out")
    assert feats.shape == (400, dim) and report["dim"] == dim
    knn_io.check_features(feats, 400, extractor)
    flipped = load_npy(tmp_path / "out" / "features_flip.npy")
    assert flipped.shape == feats.shape and not np.allclose(flipped, feats)
    assert report["linear_probe_accuracy"] > 0.7 and report["knn_accuracy"] > 0.7
    assert ("pixels" in report["baselines"]) == (extractor != "pixels")


def test_the_probe_records_the_neighbours_it_used(digits, tmp_path) -> None:
    """probe.k above the probe's training images: the kNN votes over all of them, and says so."""
    data, params = digits
    probe = {**params["features"]["probe"], "n_train": 50, "n_test": 40, "k": 5000}
    params = {**params, "features": {**params["features"], "extractor": "pixels", "probe": probe}}
    _, report = run(params, data, tmp_path / "out")
    assert report["n_train"] == 50 and report["knn_k"] == 50


def test_stage_rejects_labels_of_another_size(digits, tmp_path) -> None:
    data, params = digits
    shutil.copytree(data, tmp_path / "data")
    save_npy(tmp_path / "data" / "labels.npy", load_npy(data / "labels.npy")[:10])
    with pytest.raises(PipelineError, match=r"labels.npy: expected \d+ integer labels, found int64 \(10,\)"):
        run(params, tmp_path / "data", tmp_path / "out")


def test_the_stage_checks_its_data_and_keeps_its_old_outputs_on_failure(digits, tmp_path, monkeypatch) -> None:
    """Float labels are refused by name before any work; a failure after the work (here the probe's
    baselines) leaves every previous output, the newly trained encoder.pt included, as it was."""
    data, params = digits
    shutil.copytree(data, tmp_path / "data")
    argv = ["--params", str(write_params(params, tmp_path / "params.yaml")), "--data", str(tmp_path / "data"),
            "--out", str(tmp_path / "out")]
    labels = load_npy(data / "labels.npy")
    save_npy(tmp_path / "data" / "labels.npy", labels.astype(np.float64))
    with pytest.raises(PipelineError, match="integer labels, found float64"):
        main(argv)
    assert not (tmp_path / "out").exists()
    save_npy(tmp_path / "data" / "labels.npy", labels)
    main(argv)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert {"encoder.pt", "features.npy", "probe.json"} <= set(before)
    params["features"]["seed"] += 1  # another encoder, then a failure
    write_params(params, tmp_path / "params.yaml")
    monkeypatch.setattr(probe, "net_scores", lambda *a, **k: (_ for _ in ()).throw(PipelineError("probe failed")))
    with pytest.raises(PipelineError, match="probe failed"):
        main(argv)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_zero_feature_vectors_are_an_error() -> None:
    images = np.zeros((4, 8, 8, 1), np.uint8)
    with pytest.raises(PipelineError, match="4 images have a zero"):
        embed(lambda x: torch.zeros(len(x), 3), images, 2, torch.device("cpu"), "zeros")


# --- SwAV: the download code against a loopback server serving a checkpoint built here ---------

@pytest.fixture(scope="module")
def swav_server(tmp_path_factory):
    """Serves swav.pth.tar: a ResNet-50 state dict in the SwAV release's layout ('module.' keys, head, prototypes)."""
    from torchvision.models import resnet50

    root = tmp_path_factory.mktemp("swav_server")
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in resnet50().state_dict().items() if not k.startswith("fc.")}
    state.update({"module.projection_head.0.weight": torch.randn(16, 2048), "module.prototypes.weight": torch.randn(30, 16)})
    torch.save(state, root / "swav.pth.tar")
    torch.save({k.removeprefix("module."): v for k, v in state.items()}, root / "unprefixed.pth.tar")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    sha = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in ("swav.pth.tar", "unprefixed.pth.tar")}
    yield url, sha
    server.shutdown()


def test_swav_downloads_verifies_and_embeds(swav_server, tmp_path) -> None:
    url, sha = swav_server
    dest = tmp_path / "resources" / "swav.pth.tar"
    backbone = swav.load(32, dest=dest, url=f"{url}/swav.pth.tar", sha256=sha["swav.pth.tar"])
    assert dest.exists() and backbone.dim == 2048
    feats = embed(backbone, np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), np.uint8), 2,
                  torch.device("cpu"), "swav")
    assert feats.shape == (2, 2048)
    swav.fetch(dest, url="http://127.0.0.1:9/unused", sha256=sha["swav.pth.tar"])  # present: verified, not fetched
    with pytest.raises(PipelineError, match="checksum mismatch"):
        swav.fetch(dest, sha256="0" * 64)


def test_swav_first_download_records_its_sha256_and_later_uses_check_it(swav_server, tmp_path) -> None:
    url, sha = swav_server
    dest = tmp_path / "resources" / "swav.pth.tar"
    swav.fetch(dest, url=f"{url}/swav.pth.tar")  # no pin, no record: verified (loads as SwAV) and recorded
    record = swav.record_path(dest)
    assert record.read_text().split()[0] == sha["swav.pth.tar"]
    swav.fetch(dest, url="http://127.0.0.1:9/unused")  # present and matching the record: not fetched again
    dest.unlink()
    with pytest.raises(PipelineError, match="checksum mismatch"):  # the server now serves another file
        swav.fetch(dest, url=f"{url}/unprefixed.pth.tar")
    assert not dest.exists() and record.read_text().split()[0] == sha["swav.pth.tar"]
    dest.write_bytes(b"edited on disk")
    with pytest.raises(PipelineError, match="checksum mismatch"):
        swav.fetch(dest, url=f"{url}/swav.pth.tar")


def test_swav_pin_is_checked_and_nothing_is_recorded_from_a_bad_first_download(swav_server, tmp_path) -> None:
    url, sha = swav_server
    dest = tmp_path / "resources" / "swav.pth.tar"
    with pytest.raises(PipelineError, match="checksum mismatch"):
        swav.fetch(dest, url=f"{url}/swav.pth.tar", sha256="1" * 64)  # a pin that the file does not match
    assert not dest.exists() and not swav.record_path(dest).exists()
    with pytest.raises(PipelineError, match="lack the 'module.' prefix"):  # complete, but not SwAV's layout
        swav.fetch(dest, url=f"{url}/unprefixed.pth.tar")
    assert not dest.exists() and not swav.record_path(dest).exists()


def test_published_weights_hashes_agree_with_their_file_names() -> None:
    from pipeline import backbones
    from pipeline.metrics import lpips

    assert backbones.FID_WEIGHTS.removesuffix(".pth").split("-")[-1] == backbones.FID_SHA256[:8]
    assert Path(lpips.ALEX_URL).stem.split("-")[-1] == lpips.ALEX_SHA256[:8]


def test_inception_weights_of_another_hash_are_refused(tmp_path, monkeypatch) -> None:
    from pipeline import backbones

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / backbones.FID_WEIGHTS).write_bytes(b"not the FID Inception weights")
    with pytest.raises(PipelineError, match="checksum mismatch"):
        backbones.load("inception", 299)


def test_swav_errors(swav_server, tmp_path) -> None:
    url, sha = swav_server
    with pytest.raises(PipelineError, match="checksum mismatch"):
        swav.fetch(tmp_path / "a.pth.tar", url=f"{url}/swav.pth.tar", sha256="0" * 64)
    assert not (tmp_path / "a.pth.tar").exists()
    with pytest.raises(PipelineError, match="are you offline"):
        swav.fetch(tmp_path / "b.pth.tar", url="http://127.0.0.1:9/swav.pth.tar", sha256=sha["swav.pth.tar"])
    with pytest.raises(PipelineError, match="lack the 'module.' prefix"):
        swav.load(32, dest=tmp_path / "c.pth.tar", url=f"{url}/unprefixed.pth.tar", sha256=sha["unprefixed.pth.tar"])
