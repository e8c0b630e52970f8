"""The trainer: resume after SIGKILL gives the uninterrupted weights; NaN stops cleanly; safe loading."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from conftest import PYTHON, ROOT, run_stage, write_params
from pipeline import checkpoint, context
from pipeline.errors import PipelineError
from pipeline.methods.gan import GAN
from pipeline.stages import knn
from pipeline.stages.train import run as train_run
from pipeline.trainer import FINAL, PARTIAL, Trainer
from test_methods import data, make  # noqa: F401  (data is a fixture)


def train_cmd(params, data, out):
    return [PYTHON, "-m", "pipeline.stages.train", "--params", str(params), "--method", "gan", "--seed", "0",
            "--data", str(data), "--out", str(out)]


def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_params, digits_data):
    tiny_params["train"].update(steps=300, checkpoint_every=10)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    run_stage("train", *train_cmd(params, digits_data, tmp_path / "straight")[3:])

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(params, digits_data, killed), cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (killed / PARTIAL).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / FINAL).exists(), "run ended before the kill"
    interrupted_at = checkpoint.load(killed / PARTIAL)["step"]
    assert 0 < interrupted_at < 300

    resumed = run_stage("train", *train_cmd(params, digits_data, killed)[3:])
    assert f"resumed gan from step {interrupted_at}" in resumed.stderr
    a, b = checkpoint.load(tmp_path / "straight" / FINAL), checkpoint.load(killed / FINAL)
    assert a["step"] == b["step"] == 300
    for name, tensor in a["nets"].items():
        assert torch.equal(tensor, b["nets"][name]), name
    assert not (killed / PARTIAL).exists()
    log = (killed / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,d_loss,d_acc,g_loss") and len(log) == 1 + 300 // tiny_params["train"]["log_every"]


def test_changed_settings_do_not_resume(tmp_path, tiny_params, digits_data):
    out = tmp_path / "run"
    tiny_params["train"].update(steps=4, checkpoint_every=2)
    train_run(tiny_params, "gan", 0, digits_data, out, {})
    checkpoint.save(out / PARTIAL, {**checkpoint.load(out / FINAL), "fingerprint": "other"})
    tiny_params["train"]["steps"] = 6
    trainer = train_run(tiny_params, "gan", 0, digits_data, out, {})
    assert trainer.step == 6 and len(trainer.rows) == 3


def test_other_instance_features_do_not_resume(tmp_path, tiny_params, digits_data, capsys):
    """icgan's features and kNN graph are part of what defines the run: after the features stage reruns
    with other settings, a partial checkpoint from the old features is not resumed."""
    tiny_params["knn"].update(k=4, centres=10, iterations=5)
    tiny_params["train"].update(steps=4, checkpoint_every=2)
    params = write_params(tiny_params, tmp_path / "params.yaml")
    features = tmp_path / "features.npy"

    def new_features(seed: int) -> None:
        x = np.random.default_rng(seed).normal(size=(len(np.load(digits_data / "labels.npy")), 16)).astype(np.float32)
        np.save(features, x / np.linalg.norm(x, axis=1, keepdims=True))
        knn.main(["--params", str(params), "--features", str(features), "--data", str(digits_data),
                  "--out", str(tmp_path / "knn")])

    new_features(0)
    inputs = {"features": features, **{k: tmp_path / "knn" / f"{k}.parquet" for k in ("neighbours", "centres")}}
    out = tmp_path / "run"
    train_run(tiny_params, "icgan", 0, digits_data, out, inputs)
    checkpoint.save(out / PARTIAL, {**checkpoint.load(out / FINAL), "step": 2})
    new_features(1)
    capsys.readouterr()
    trainer = train_run(tiny_params, "icgan", 0, digits_data, out, inputs)
    assert "is from other settings; starting afresh" in capsys.readouterr().err and trainer.step == 4


def test_every_rank_logs_the_scored_steps_whether_or_not_it_scores(data, tmp_path):
    """Only rank 0 has the quality monitor, but every rank averages the losses (an all_reduce) at the
    steps it scores: the logged steps must not depend on having the monitor, or the ranks would hang."""
    logged = []
    for monitor in (None, lambda m, nets, g: {"fd": 1.0, "kid": 2.0}):
        t = Trainer(make("gan", data), tmp_path / str(len(logged)), steps=4, batch_size=6, n_dis=1, ema=0.0, ema_start=0,
                    checkpoint_every=10, log_every=2, fingerprint="test", meta={}, monitor=monitor, eval_every=3)
        t.fit()
        logged.append([r["step"] for r in t.rows])
    assert logged == [[2, 3, 4], [2, 3, 4]] and "fd" in t.rows[1]


@pytest.mark.skipif(not context.native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")
def test_bf16_precision_trains_under_autocast_and_keeps_fp32_weights(tmp_path, tiny_params, digits_data):
    tiny_params["train"].update(steps=3, precision="bf16")
    trainer = train_run(tiny_params, "gan", 0, digits_data, tmp_path / "bf16", {})
    state = checkpoint.load(tmp_path / "bf16" / FINAL)
    assert state["train"]["precision"] == "bf16" and all(t.dtype == torch.float32 for t in state["nets"].values()
                                                          if t.is_floating_point())
    tiny_params["train"]["precision"] = "fp32"
    fp32 = checkpoint.load(train_run(tiny_params, "gan", 0, digits_data, tmp_path / "fp32", {}).dir / FINAL)
    differ = [k for k, t in state["nets"].items() if t.is_floating_point() and not torch.equal(t, fp32["nets"][k])]
    assert differ and trainer.step == 3  # bf16 arithmetic took the steps, not fp32's


def test_bf16_precision_is_refused_on_a_cpu_without_native_bf16(tmp_path, tiny_params, digits_data, monkeypatch):
    monkeypatch.setattr(context, "native_bf16", lambda: False)
    tiny_params["train"]["precision"] = "bf16"
    with pytest.raises(PipelineError, match="train.precision: bf16 needs a GPU or a CPU with native bf16"):
        train_run(tiny_params, "gan", 0, digits_data, tmp_path / "run", {})
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    assert isinstance(context.autocast("auto", torch.device("cpu")), contextlib.nullcontext)  # auto: fp32 on a CPU


def test_nan_loss_stops_with_a_clear_error(tmp_path, tiny_params, digits_data, monkeypatch):
    original = GAN.d_loss

    def poisoned(self, batch):
        loss, logs = original(self, batch)
        return loss * float("nan"), {"d_loss": float("nan")}

    monkeypatch.setattr(GAN, "d_loss", poisoned)
    with pytest.raises(PipelineError, match=r"^biggan: non-finite loss at step 0 \(d_loss=nan\)"):  # the run, not its method
        train_run(tiny_params, "biggan", 0, digits_data, tmp_path / "run", {})
    assert not any((tmp_path / "run").glob("*.pt")) and not (tmp_path / "run" / "train_log.csv").exists()


def test_checkpoint_loading_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(PipelineError, match="unreadable checkpoint"):
        checkpoint.load(tmp_path / "evil.pt")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(PipelineError, match="unreadable checkpoint"):
        checkpoint.load(tmp_path / "trunc.pt")


def test_fd_and_kid_during_training_leave_the_weights_alone_and_match_the_metrics(tmp_path, tiny_params,
                                                                                  digits_data):
    """train.eval_every: fd and kid on the eval rows of train_log.csv, from the metric code on the
    monitor's fixed samples; the run ends with the weights of a run without the monitor."""
    import numpy as np
    import pandas as pd

    from pipeline import backbones
    from pipeline.metrics import fid, kid
    from pipeline.monitor import QualityMonitor

    tiny_params["train"].update(steps=6, log_every=1, eval_samples=1300)
    ref = tmp_path / "reference"
    run_stage("reference", "--params", write_params(tiny_params, tmp_path / "plain.yaml"), "--name", "backbone",
              "--data", digits_data, "--out", ref)
    plain = train_run(tiny_params, "gan", 0, digits_data, tmp_path / "plain", {})
    tiny_params["train"]["eval_every"] = 4
    scored = train_run(tiny_params, "gan", 0, digits_data, tmp_path / "scored", {}, ref)
    for name, tensor in plain.plain.state_dict().items():
        assert torch.equal(tensor, scored.plain.state_dict()[name]), name
    log = pd.read_csv(tmp_path / "scored" / "train_log.csv")
    assert log.dropna(subset=["fd"])["step"].tolist() == [4, 6]  # every 4 steps, and the last
    assert (log["fd"].dropna() > 0).all() and log["kid"].notna().sum() == 2

    monitor = QualityMonitor(tiny_params, ref, torch.device("cpu"))
    images = monitor.samples(scored.m, scored.plain, scored.plain["G"])
    assert images.shape == (1300, 16, 16, 1) and np.array_equal(images, monitor.samples(scored.m, scored.plain,
                                                                                         scored.plain["G"]))
    features = backbones.features(monitor.backbone, images, 650)
    stats = np.load(ref / "stats.npz")
    expected_fd = fid.frechet_distance(stats["mu"], stats["sigma"], features.mean(0), np.cov(features.T))
    expected_kid = kid.kid(np.load(ref / "features.npy"), features, tiny_params["evaluate"]["kid_subsets"],
                           1000)[0]
    got = monitor(scored.m, scored.plain, scored.plain["G"])
    assert got["fd"] == pytest.approx(expected_fd, rel=1e-5) and got["kid"] == pytest.approx(expected_kid, abs=1e-7)
    assert log["fd"].iloc[-1] == got["fd"]  # the last row scored this generator (no EMA in gan)
