"""The whole default study (every run, every metric, the report) on a folder of images, at a tiny budget."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from conftest import copy_repo, tiny, write_params

pytestmark = pytest.mark.workflow


def digit_folder(root: Path) -> int:
    """scikit-learn's digits and their mirror images as PNGs in one subfolder per class."""
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    count = 0
    for flip in (False, True):
        for i, (image, label) in enumerate(zip(images, bunch.target)):
            folder = root / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[:, ::-1] if flip else image).save(folder / f"{i:04d}{'_m' if flip else ''}.png")
            count += 1
    return count


def test_the_default_study_runs_on_an_image_folder(tmp_path, default_params):
    count = digit_folder(tmp_path / "images")
    repo = copy_repo(tmp_path / "repo")
    p = tiny(default_params)
    p["study"]["methods"] = copy.deepcopy(default_params["study"]["methods"])  # every run, the real images too
    p["evaluate"]["metrics"] = copy.deepcopy(default_params["evaluate"]["metrics"])  # every metric
    p["dataset"].update(name="image_folder", path=str(tmp_path / "images"))
    p["evaluate"].update(classifier_steps=30, lpips_pairs=200, lpips_conditions=10, lpips_pairs_per_condition=5)
    p["features"]["simclr"].update(steps=10, batch_size=64, width=8)
    p["features"]["probe"].update(n_train=1000, n_test=500, k=5)
    p["knn"].update(centres=100, iterations=10)
    write_params(p, repo / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["snakemake", "--cores", "2"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((repo / "data/meta.json").read_text())
    assert meta["count"] == count and len(meta["classes"]) == 10 and meta["shape"] == [16, 16, 3]  # images are read as RGB
    table = (repo / "results/comparisons/msgan.md").read_text()
    for run in p["study"]["methods"]:
        for metric in p["evaluate"]["metrics"]:
            assert (repo / f"results/{run}/{metric}.json").exists(), (run, metric)
    assert "msgan" in table and "cgan" in table
    assert (repo / "results/bigbigan/probe.json").exists() and (repo / "results/knn/knn.json").exists()
    summary = (repo / "results/summary.txt").read_text()
    assert all(run in summary for run in p["study"]["methods"])
