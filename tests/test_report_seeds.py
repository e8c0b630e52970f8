"""The report's figures come from the seeds its tables score (the results'), not from train.seeds; the
nearest-training-image figure of a run trained on flipped images also searches the mirrors."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from conftest import write_params
from pipeline import figures
from pipeline.stages import report
from test_metrics import fake_results


def calls(monkeypatch, module, name: str) -> list[tuple]:
    """Record the arguments of every call of ``module.name`` (which then draws nothing)."""
    seen = []
    monkeypatch.setattr(module, name, lambda *args, **kwargs: seen.append(args))
    return seen


def test_figures_read_the_results_seeds_not_train_seeds(tmp_path, tiny_params, monkeypatch):
    """Results of seeds 5 and 6 beside a params.yaml of seed 0, whose folders hold another study's runs."""
    tiny_params["study"]["methods"] = ["cgan", "msgan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {"cgan": {5: 40.0, 6: 41.0}, "msgan": {5: 30.0, 6: 31.0}})
    images = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    for run in ("cgan", "msgan"):
        for seed in (0, 5, 6):
            folder = tmp_path / run / f"seed{seed}"
            folder.mkdir(parents=True)
            pd.DataFrame({"step": [1, 2], "d_loss": [1.0, float(seed)]}).to_csv(folder / "train_log.csv", index=False)
            Image.new("L", (4, 4)).save(folder / "samples.png")
            np.save(folder / "samples.npy", images[seed:seed + 8])
    curves = calls(monkeypatch, figures, "curves_figure")
    grids = calls(monkeypatch, figures, "comparison_figure")
    nearest = calls(monkeypatch, report, "nearest_grids")
    report.main(["--params", str(params), "--results", str(tmp_path), "--data", str(tmp_path)])
    assert [(run, list(logs)) for run, logs, _ in curves] == [("cgan", [5, 6]), ("msgan", [5, 6])]
    assert all(log["d_loss"].iloc[-1] == seed for _, logs, _ in curves for seed, log in logs.items())
    msgan_grids = next(g for _, g, _, _, target in grids if target.name == "msgan.png")
    assert {run: path.parent.name for run, path in msgan_grids.items()} == {"msgan": "seed5", "cgan": "seed5"}
    (samples, _), = [call[:2] for call in nearest]
    assert all((s == images[5:13]).all() for s in samples.values())  # the first of the results' seeds


def test_the_nearest_figure_searches_mirrors_for_runs_trained_on_flips(tmp_path, tiny_params, monkeypatch):
    """biggan (hflip: true) and msgan (hflip: false) both sample mirrors of training images: only
    biggan's figure finds them, at distance 0, shows them mirrored back and says so in its title."""
    tiny_params["study"]["methods"] = ["cgan", "msgan", "biggan"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    params = write_params(tiny_params, tmp_path / "params.yaml")
    fake_results(tmp_path, {run: {0: 40.0, 1: 41.0} for run in ("cgan", "msgan", "biggan")})
    images = np.random.default_rng(0).integers(0, 256, (50, 16, 16, 1), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    for run in ("cgan", "msgan", "biggan"):
        (tmp_path / run / "seed0").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / run / "seed0" / "samples.npy", images[10:18, :, ::-1])
    drawn = calls(monkeypatch, figures, "nearest_figure")
    report.main(["--params", str(params), "--results", str(tmp_path), "--data", str(tmp_path)])
    by_run = {target.stem.removeprefix("nearest_"): (s, found, d, title) for s, found, d, _, title, target in drawn}
    samples, found, dist, title = by_run["biggan"]
    assert (dist[:, 0] == 0).all() and (found[:, 0] == samples).all() and "mirror" in title
    samples, found, dist, title = by_run["msgan"]
    assert (dist[:, 0] > 0).all() and "mirror" not in title
