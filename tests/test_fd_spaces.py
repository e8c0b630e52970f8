"""fd_spaces (pipeline/metrics/fd_spaces.py): the Fréchet distance in several feature spaces, checked
against an independent computation, and its reference built by the reference stage; the reference
networks of fd_spaces and classes (pipeline/metrics/classes.py) refused in one line when corrupt."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from scipy import linalg

from conftest import write_params
from pipeline import catalogue, config, subsets
from pipeline.errors import PipelineError
from pipeline.features import simclr
from pipeline.io import load_json, load_npy, save_json, save_npy
from pipeline.metrics import classes, fid
from pipeline.stages import evaluate, reference


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussian fits, straight from numpy and scipy."""
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # digits' constant border pixels make the covariances singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.fixture
def spaces(tmp_path, tiny_params, digits_data):
    """A spaces reference (pixels, an untrained SimCLR encoder, EfficientNet-Lite2) on digits."""
    torch.manual_seed(0)
    simclr.save_encoder(simclr.Encoder(1, 4), tmp_path / "encoder.pt")
    tiny_params["evaluate"].update(metrics=["fid", "fd_spaces"], spaces=["pixels", "simclr", "efficientnet_lite2"])
    params = write_params(tiny_params, tmp_path / "params.yaml")
    reference.main(["--params", str(params), "--name", "spaces", "--data", str(digits_data), "--out",
                    str(tmp_path / "reference" / "spaces"), "--encoder", str(tmp_path / "encoder.pt")])
    return params


def score(tmp_path, params, digits_data, samples: np.ndarray) -> dict:
    run = tmp_path / "gan" / "seed0"
    save_npy(run / "samples.npy", samples)
    save_json(run / "samples.json", {"method": "gan", "seed": 0})
    evaluate.main(["--params", str(params), "--metric", "fd_spaces", "--run", str(run), "--data", str(digits_data),
                   "--reference", str(tmp_path / "reference")])
    return load_json(run / "fd_spaces.json")


def test_each_space_gives_the_frechet_distance_of_its_features(tmp_path, spaces, digits_data):
    images = load_npy(digits_data / "images.npy")
    meta = load_json(tmp_path / "reference" / "spaces" / "reference.json")
    assert meta["spaces"] == ["pixels", "simclr", "efficientnet_lite2"] and meta["dim_pixels"] == 256
    assert len(meta["encoder_sha256"]) == 64 and meta["dim_simclr"] == 16 and meta["dim_efficientnet_lite2"] == 1280
    shifted = np.clip(images[:1300].astype(int) + 40, 0, 255).astype(np.uint8)
    got = score(tmp_path, spaces, digits_data, shifted)
    # pixels at 16 px: the images in [-1, 1], flattened (no pooling at this size)
    real = images[subsets.real_subset_indices(len(images), 1300)].reshape(1300, -1) / 127.5 - 1
    assert got["pixels"] == pytest.approx(frechet(real, shifted.reshape(1300, -1) / 127.5 - 1), rel=1e-6)
    assert got["value"] == got["pixels"] and got["spaces"] == "pixels,simclr,efficientnet_lite2"
    assert got["name"] == "FD_spaces" and got["n_fake"] == 1300 and got["n_real"] == 1300
    near = score(tmp_path, spaces, digits_data, images[:1300])  # mostly the real subset itself
    for space in ("pixels", "simclr", "efficientnet_lite2"):
        assert 0 <= near[space] < got[space], space


def test_a_space_whose_features_barely_vary_is_refused(tmp_path, tiny_params, digits_data):
    """EfficientNet-Lite2 fed 32 px digits keeps 5 of 1,280 features alive: refused, naming the fix;
    at 48 px (the default) about a thousand vary and the count is recorded."""
    images = load_npy(digits_data / "images.npy")
    tiny_params["evaluate"].update(metrics=["fd_spaces"], spaces=["efficientnet_lite2"], spaces_input_size=32)
    with pytest.raises(PipelineError, match=r"fd_spaces: efficientnet_lite2: \d of 1280 features vary over the real "
                                            r"images, a degenerate feature space; feed it larger images"):
        reference.BUILDERS["spaces"](config.load(write_params(tiny_params, tmp_path / "p.yaml")), images, None,
                                     tmp_path / "r32")
    tiny_params["evaluate"]["spaces_input_size"] = 48
    meta = reference.BUILDERS["spaces"](config.load(write_params(tiny_params, tmp_path / "p.yaml")), images, None,
                                        tmp_path / "r48")
    assert 128 <= meta["live_efficientnet_lite2"] <= 1280


@pytest.mark.parametrize("content", [b"", b"hello\n"], ids=["empty", "text"])
def test_a_corrupt_encoder_is_named_before_any_output(tmp_path, tiny_params, digits_data, content):
    """The encoder given is loaded before anything is written: the error names it, not the copy."""
    bad = tmp_path / "encoder.pt"
    bad.write_bytes(content)
    tiny_params["evaluate"].update(metrics=["fd_spaces"], spaces=["pixels", "simclr"])
    out = tmp_path / "reference" / "spaces"
    with pytest.raises(PipelineError, match=f"^{re.escape(str(bad))}: not a SimCLR encoder"):
        reference.BUILDERS["spaces"](config.load(write_params(tiny_params, tmp_path / "p.yaml")),
                                     load_npy(digits_data / "images.npy"), None, out, encoder=bad)
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"hello\n"], ids=["empty", "text"])
def test_corrupt_classifier_weights_are_one_line_naming_the_file(tmp_path, tiny_params, content):
    params = config.load(write_params(tiny_params, tmp_path / "p.yaml"))
    ref = tmp_path / "classifier"
    save_json(ref / "reference.json", {"settings": catalogue.reference_settings(params, "classifier"), "channels": 1,
                                       "n_classes": 10, "width": classes.WIDTH})
    (ref / "weights.pt").write_bytes(content)
    ctx = evaluate.EvalContext(params, np.zeros((4, 16, 16, 1), np.uint8), np.full(4, -1), tmp_path, 0, "cpu")
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(ref / 'weights.pt'))}: unreadable classifier weights "
                                            rf"\((EOFError|KeyError)\); rebuild the classifier reference"):
        classes.sample_probabilities(ctx)


def test_live_features_count_the_features_that_vary():
    sigma = np.diag([4.0, 1e-14, 0.0, 2.0] + [0.0] * 17)  # 1e-14: rounding, not variation
    with pytest.raises(PipelineError, match="x: 2 of 21 features vary"):
        fid.live_features(sigma, "x", "hint")
    assert fid.live_features(sigma[:20, :20], "x", "hint") == 2  # a tenth: enough


def test_the_simclr_space_needs_the_features_stages_encoder(tmp_path, tiny_params, digits_data):
    tiny_params["evaluate"].update(metrics=["fd_spaces"], spaces=["simclr"])
    params = write_params(tiny_params, tmp_path / "params.yaml")
    with pytest.raises(PipelineError, match="the simclr space needs the features stage's encoder"):
        reference.BUILDERS["spaces"](config.load(params), load_npy(digits_data / "images.npy"), None, tmp_path / "r")
    tiny_params["features"]["extractor"] = "pixels"
    with pytest.raises(PipelineError, match="evaluate.spaces has simclr, which embeds with the features stage's SimCLR"):
        config.load(write_params(tiny_params, tmp_path / "params.yaml"))


def test_the_report_shows_a_primary_fd_claim_in_every_space(tmp_path, tiny_params):
    """icgan's primary FD claim gets one descriptive row per space, with the claim's paired design."""
    import pandas as pd

    from pipeline import verdicts
    from pipeline.stages import report

    tiny_params["study"]["methods"] = ["biggan", "icgan"]
    tiny_params["evaluate"].update(metrics=["fid", "fd_spaces"], spaces=["efficientnet_lite2", "pixels"])
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fid = {"biggan": [20.0, 21.0, 22.5], "icgan": [18.0, 19.5, 20.0]}
    spaces = {"efficientnet_lite2": {"biggan": [30.0, 31.0, 33.0], "icgan": [25.0, 27.0, 26.0]},
              "pixels": {"biggan": [5.0, 5.5, 4.0], "icgan": [5.2, 5.4, 4.5]}}
    for run in fid:
        common = {"method": run, "dataset": "digits", "n_fake": 100, "std": None, "n_seeds": 3, "mean": {}, "stdev": {}}
        save_json(tmp_path / run / "fid.json", {
            **common, "metric": "fid", "name": "FD_efficientnet_lite0", "backbone": "efficientnet_lite0",
            "value": float(np.mean(fid[run])), "per_seed": {str(s): {"value": v} for s, v in enumerate(fid[run])}})
        per_seed = {str(s): {"value": spaces["efficientnet_lite2"][run][s], **{k: spaces[k][run][s] for k in spaces}}
                    for s in range(3)}
        save_json(tmp_path / run / "fd_spaces.json", {
            **common, "metric": "fd_spaces", "name": "FD_spaces", "spaces": "efficientnet_lite2,pixels",
            "value": float(np.mean(spaces["efficientnet_lite2"][run])), "per_seed": per_seed})
    report.main(["--params", str(params), "--results", str(tmp_path)])
    table = pd.read_csv(tmp_path / "comparisons" / "icgan.csv")
    rows = table[table["role"] == "robustness"].set_index("metric")
    assert list(rows.index) == ["fd_spaces.efficientnet_lite2", "fd_spaces.pixels"]
    assert table["metric"].tolist()[:3] == ["fid", "fd_spaces.efficientnet_lite2", "fd_spaces.pixels"]
    for space in spaces:
        expected = verdicts.estimate(pd.Series(spaces[space]["icgan"]), pd.Series(spaces[space]["biggan"]), paired=True)
        assert rows.at[f"fd_spaces.{space}", "difference"] == pytest.approx(expected.difference)
        assert rows.at[f"fd_spaces.{space}", "ci_low"] == pytest.approx(expected.low)
        assert rows.at[f"fd_spaces.{space}", "design"] == "paired"
        assert str(rows.at[f"fd_spaces.{space}", "verdict"]).startswith("descriptive: ")
    page = (tmp_path / "comparisons" / "icgan.md").read_text()
    assert "| fd_spaces.pixels lower | robustness |" in page and "Robustness rows" in page
    dvc = load_json(tmp_path / "metrics.json")
    assert dvc["icgan"]["fd_spaces.pixels"] == pytest.approx(np.mean(spaces["pixels"]["icgan"]))
