"""The per-paper studies (studies/*.yaml): each, merged over params.yaml, is a valid configuration at
its paper's setting; Snakemake plans it through the production SLURM profile (a dry run: no cluster,
no data); and the DVC route of docs/configuration.md (the resolved study as params.yaml, dvcgen) gives the
stages of its runs and seeds."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, copy_repo
from pipeline import config, pairs
from pipeline.catalogue import REAL, has_encoder, run_needs, trained_as, trained_runs
from pipeline.metrics import gram

BIN = Path(sys.executable).parent

# Each study's paper setting (docs/configuration.md, "Per-paper studies"): dataset, resolution, backbone, batch,
# steps, the runs, and the training images the dataset holds (for the held-out real run).
PAPER = {
    "msgan-cifar10": dict(dataset="cifar10", resolution=32, backbone="dcgan", batch=32, steps=312_500,
                          runs=["cgan", "msgan"], images=50_000),
    "icgan-imagenet64": dict(dataset="image_folder", resolution=64, backbone="resnet", batch=256, steps=500_000,
                             runs=["biggan", "icgan", REAL], images=1_281_167),
    "bigbigan-imagenet64": dict(dataset="image_folder", resolution=64, backbone="resnet", batch=2048,
                                steps=500_000, runs=["biggan", "bigbigan", REAL], images=1_281_167),
    "p2gan-celeba64": dict(dataset="image_folder", resolution=64, backbone="resnet", batch=32, steps=100_000,
                           runs=["lsgan", "p2gan", "p2gan_posterior", REAL], images=202_599),
}
# Stand-ins for the image folders the studies name (the real ones are the user's): ImageNet's class
# folders, CelebA's flat folder (unlabelled, so the parse-time label checks apply as they will).
STANDIN_IMAGES = {"datasets/imagenet/train/n01440764/a.png": 1, "datasets/imagenet/train/n01443537/b.png": 1,
                  "datasets/celeba/img_align_celeba/000001.png": 1}
EVALUATE_MEM_MB = 8000  # rules/evaluate.smk


def study_file(name: str) -> Path:
    return ROOT / "studies" / f"{name}.yaml"


def merged(name: str) -> dict:
    """params.yaml with the study merged over it, as Snakemake merges a --configfile."""
    params = config.read_yaml(ROOT / "params.yaml")
    config._merge(params, config.read_yaml(study_file(name)))
    return params


def env() -> dict[str, str]:
    """This environment without the profile's site variables (tests/test_slurm.py)."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("GANBENCH_")}
    out["PATH"] = f"{BIN}{os.pathsep}{out['PATH']}"
    return out


def sh(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_study_file_is_known():
    assert sorted(p.stem for p in (ROOT / "studies").glob("*.yaml")) == sorted(PAPER)


@pytest.mark.parametrize("name", PAPER)
def test_study_is_valid_at_its_papers_setting(name):
    params = config.validate(merged(name), str(study_file(name)))
    paper, train, ev = PAPER[name], params["train"], params["evaluate"]
    assert (params["dataset"]["name"], params["dataset"]["resolution"]) == (paper["dataset"], paper["resolution"])
    assert (train["backbone"], train["batch_size"], train["steps"]) == (paper["backbone"], paper["batch"],
                                                                         paper["steps"])
    assert params["study"]["methods"] == paper["runs"]
    # Inception FID of 50,000 samples
    assert "fid" in ev["metrics"] and ev["backbone"] == "inception"
    assert ev["n_fake"] == params["sample"]["n"] == 50_000
    for paper_name, spec in params["comparisons"].items():
        assert pairs.undeclared(params, spec) == [], f"{name}: comparisons.{paper_name} is no longer a fair pair"


@pytest.mark.parametrize("name", PAPER)
def test_study_holds_only_what_differs_from_params(name):
    base = config.read_yaml(ROOT / "params.yaml")

    def leaves(tree: dict, path: tuple = ()):
        for key, value in tree.items():
            yield from leaves(value, (*path, key)) if isinstance(value, dict) else [((*path, key), value)]

    for path, value in leaves(config.read_yaml(study_file(name))):
        default = base
        for key in path:
            default = default.get(key, KeyError) if isinstance(default, dict) else KeyError
        assert value != default, f"{name}: {'.'.join(path)} repeats params.yaml's value {value!r}"


@pytest.mark.parametrize("name", PAPER)
def test_study_fits_what_the_schema_cannot_check(name):
    """Limits that the stages check only when they run, hours into a study."""
    params = merged(name)
    ev, n = params["evaluate"], params["sample"]["n"]
    if REAL in params["study"]["methods"]:  # held-out images outside the FID reference (pipeline/stages/real.py)
        assert PAPER[name]["images"] - ev["n_real"] >= n
    if {"kid", "prdc"} & set(ev["metrics"]):  # float64 features, and their products a block of rows at a time
        dim = 2048 if ev["backbone"] == "inception" else 1280
        need = 8 * (ev["n_real"] + ev["n_fake"]) * dim + 3 * 8 * gram.BLOCK * max(ev["n_real"], ev["n_fake"])
        if 8 * (ev["n_real"] + ev["n_fake"]) ** 2 <= gram.BUDGET:
            need += 8 * (ev["n_real"] + ev["n_fake"]) ** 2  # small enough to be held whole
        assert need < EVALUATE_MEM_MB * 1e6, f"{name}: kid/prdc need {need / 1e9:.1f} GB"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the repository with stand-ins for the image folders the studies read."""
    repo = copy_repo(tmp_path_factory.mktemp("studies") / "repo")
    for rel in STANDIN_IMAGES:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(repo / rel)
    return repo


def job_stats(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:"):]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


def job_resources(out: str, rule: str) -> list[dict[str, str]]:
    """The resources of each planned job of ``rule`` in a dry run's output."""
    blocks = re.findall(rf"^rule {rule}:\n((?:    .*\n)+)", out, flags=re.M)
    found = [re.search(r"^    resources: (.*)$", b, flags=re.M) for b in blocks]
    return [dict(item.split("=", 1) for item in m[1].split(", ")) for m in found if m]


@pytest.mark.parametrize("name", PAPER)
def test_study_dry_runs_through_the_slurm_profile(repo, name):
    """`snakemake -n --configfile studies/<name>.yaml --profile profiles/slurm`, as docs/configuration.md says. The dry
    run needs no cluster. Conda is not on this machine: --sdm env-modules stands in for the profile's
    conda (the rules name no modules); a dry run caps threads at --cores, which a SLURM run does not."""
    out = sh(repo, "snakemake", "-n", "--configfile", f"studies/{name}.yaml", "--profile", "profiles/slurm",
             "--sdm", "env-modules", "--cores", "1024").stdout
    params = merged(name)
    # the stages get the merged study
    assert yaml.safe_load((repo / config.RESOLVED).read_text()) == params
    runs, seeds = params["study"]["methods"], len(params["train"]["seeds"])
    trained = trained_runs(params)
    instance = any(run_needs(params, r) for r in trained)
    encoders = [r for r in trained if has_encoder(params, r)]
    stats = job_stats(out)
    shared = sum(trained_as(params, r) != r for r in trained)
    assert stats["train"] + stats.get("shared_training", 0) == stats["sample"] == len(trained) * seeds
    assert stats.get("shared_training", 0) == shared * seeds
    assert stats["evaluate"] == len(runs) * seeds
    assert stats.get("real", 0) == (seeds if REAL in runs else 0)
    assert stats.get("features", 0) == stats.get("knn", 0) == int(instance)
    assert stats.get("encoder_probe", 0) == len(encoders) * seeds
    # the profile's requests: GPUs and 4 CPUs per GPU for training; train.threads CPUs for evaluation
    gpus = params["train"].get("gpus", 1)
    trains = job_resources(out, "train")
    assert len(trains) == stats["train"]
    assert all(r["gpu"] == str(gpus) and r["cpus_per_task"] == str(4 * gpus) for r in trains), trains[0]
    assert {r["cpus_per_task"] for r in job_resources(out, "evaluate")} == {str(params["train"]["threads"])}


def test_unlabelled_celeba_refuses_a_class_conditional_run(repo):
    bad = sh(repo, "snakemake", "-n", "--cores", "1", "--configfile", "studies/p2gan-celeba64.yaml",
             "--config", "study={methods: [lsgan, msgan]}", ok=False)
    assert bad.returncode != 0
    assert "has no class subfolders, so its images have no labels, but run msgan needs them" in bad.stderr


@pytest.mark.parametrize("name", PAPER)
def test_study_through_dvc(repo, tmp_path, name):
    """The DVC route of docs/configuration.md: the resolved study becomes params.yaml, dvcgen writes its stages."""
    wd = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    sh(wd, "snakemake", "-n", "--cores", "1", "--configfile", f"studies/{name}.yaml")
    shutil.copy(wd / config.RESOLVED, wd / "params.yaml")
    assert config.load(wd / "params.yaml") == merged(name)
    sh(wd, "python", "-m", "pipeline.dvcgen")
    sh(wd, "git", "init", "-q")
    stages = sh(wd, "dvc", "stage", "list", "--name-only").stdout.split()
    params = merged(name)
    expected = {f"{run}-{seed}" for run in trained_runs(params) for seed in params["train"]["seeds"]
                if trained_as(params, run) == run}
    assert {s.split("@")[1] for s in stages if s.split("@")[0] in ("train", "train_instance")} == expected
    assert {s.split("@")[1] for s in stages if s.startswith("shared_training_")} == {
        f"{run}-{seed}" for run in trained_runs(params) for seed in params["train"]["seeds"]} - expected
    # Snakemake, now without --configfile, plans the same study
    assert job_stats(sh(wd, "snakemake", "-n", "--cores", "1").stdout)["train"] == len(expected)
