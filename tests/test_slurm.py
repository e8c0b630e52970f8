"""The workflow on a real SLURM cluster, and the SLURM profiles.

The `slurm` tests submit the tiny workflow (digits, a few training steps) through
profiles/slurm-ci to a running cluster: the single-node one of scripts/slurm_local.sh, which CI
starts before pytest (`bash scripts/slurm_local.sh start`). Elsewhere they skip when no SLURM
controller answers; under CI (CI set) they fail instead, so that a cluster that did not come up
cannot pass as skipped tests.

The profile tests need no cluster: profiles/slurm-ci must be profiles/slurm with only the
differences that the test cluster needs, so that CI exercises the profile that users run.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.profiles import ProfileConfigFileParser

from conftest import ROOT, copy_repo, end_processes, tiny, write_params

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
PROFILE_CI = ROOT / "profiles" / "slurm-ci" / "config.yaml"
SITE_VARS = ("GANBENCH_SLURM_ACCOUNT", "GANBENCH_SLURM_PARTITION", "GANBENCH_SLURM_GPU_PARTITION",
             "GANBENCH_GPU_MODEL")
GPU_RULES = {"features", "sample", "encoder_probe"}  # one GPU each; train asks for train.gpus itself


# --- the profiles (no cluster needed) ------------------------------------------------------------

def load_profile(path: Path) -> dict[str, object]:
    """The profile as Snakemake reads it (YTE rendered), back into nested form."""
    with open(path) as fh:
        args = ProfileConfigFileParser().parse(fh)
    out: dict[str, object] = {}
    for key, value in args.items():
        if key == "default-resources":
            out[key] = dict(item.split("=", 1) for item in value)
        elif key == "set-resources":
            rules: dict[str, dict[str, str]] = {}
            for item in value:
                rule_res, val = item.split("=", 1)
                rule, res = rule_res.split(":", 1)
                rules.setdefault(rule, {})[res] = val
            out[key] = rules
        else:
            out[key] = value
    return out


@pytest.fixture
def no_site_vars(monkeypatch):
    for var in SITE_VARS:
        monkeypatch.delenv(var, raising=False)


def test_production_profile_asks_gpus_for_gpu_rules_only(no_site_vars):
    prof = load_profile(PROFILE)
    assert prof["executor"] == "slurm"
    assert int(prof["retries"]) >= 1, "preempted or cancelled jobs must be resubmitted"
    assert str(prof["slurm-requeue"]).lower() == "true"
    assert prof["software-deployment-method"] in ("conda", ["conda"])
    assert {"mem_mb", "runtime", "cpus_per_task"} <= prof["default-resources"].keys()
    # nothing site-specific unless the environment says so
    assert not {"slurm_account", "slurm_partition"} & prof["default-resources"].keys()
    assert set(prof["set-resources"]) == GPU_RULES  # train: its rule's resources (rules/train.smk)
    for rule, res in prof["set-resources"].items():
        assert res["gpu"] == "1", rule
        assert "gpu_model" not in res and "slurm_partition" not in res
    assert "gpu" not in prof["default-resources"]


def test_production_profile_takes_site_names_from_the_environment(monkeypatch):
    monkeypatch.setenv("GANBENCH_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("GANBENCH_SLURM_PARTITION", "cpu")
    monkeypatch.setenv("GANBENCH_SLURM_GPU_PARTITION", "gpu")
    monkeypatch.setenv("GANBENCH_GPU_MODEL", "a100")
    prof = load_profile(PROFILE)
    assert prof["default-resources"]["slurm_account"] == "proj42"
    assert prof["default-resources"]["slurm_partition"] == "cpu"
    for rule in GPU_RULES:
        assert prof["set-resources"][rule] == {"gpu": "1", "cpus_per_task": "4", "gpu_model": "a100",
                                               "slurm_partition": "gpu"}
    assert prof["set-resources"]["train"] == {"gpu_model": "a100", "slurm_partition": "gpu"}
    monkeypatch.delenv("GANBENCH_SLURM_GPU_PARTITION")
    prof = load_profile(PROFILE)
    assert prof["set-resources"]["train"]["slurm_partition"] == "cpu"


# The only keys in which the CI profile may differ, and why (see its header).
CI_DIFFERENCES = {
    "jobs": "2 CPUs",
    "latency-wait": "one file system",
    "local-cores": "same value, but allowed to shrink",
    "software-deployment-method": "no conda on the CI machine",
    "slurm-status-command": "no accounting database: squeue, not sacct",
    "slurm-init-seconds-before-status-checks": "short jobs",
    "slurm-keep-successful-logs": "CI keeps logs",
}


def test_ci_profile_differs_from_production_only_where_the_test_cluster_needs_it(no_site_vars):
    prod, ci = load_profile(PROFILE), load_profile(PROFILE_CI)
    for key in sorted((prod.keys() | ci.keys()) - CI_DIFFERENCES.keys() - {"default-resources", "set-resources"}):
        assert prod.get(key) == ci.get(key), f"profiles/slurm-ci differs from profiles/slurm in {key!r}"
    assert ci["slurm-status-command"] == "squeue"
    assert int(ci["slurm-init-seconds-before-status-checks"]) <= 5
    assert "software-deployment-method" not in ci
    ci_defaults = dict(ci["default-resources"])
    assert ci_defaults.pop("slurm_partition") == "debug"  # the partition of scripts/slurm_local.sh
    assert ci_defaults == prod["default-resources"]
    # the same rules are named, and train; on the test cluster they ask for no GPU (train: one CPU,
    # not the 4 per GPU of rules/train.smk, on a 2-CPU node)
    assert set(ci["set-resources"]) == set(prod["set-resources"]) | {"train"}
    for rule, res in ci["set-resources"].items():
        assert res == ({"gpu": "0", "cpus_per_task": "1"} if rule == "train" else {"gpu": "0"}), rule


def test_profile_rules_exist_and_gpu_rules_use_the_gpu_env():
    """Every rule a profile names exists; every rule in the GPU conda env asks for a GPU."""
    rules = {}
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, flags=re.M):
            env = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", m[2])
            rules[m[1]] = env[1] if env else None
    prod = load_profile(PROFILE)
    assert set(prod["set-resources"]) <= rules.keys(), "profiles/slurm names a rule the workflow lacks"
    gpu_env_rules = {r for r, env in rules.items() if env and "gpu" in Path(env).stem}
    assert gpu_env_rules <= set(prod["set-resources"]) | {"train"}, "a rule in the GPU env asks for no GPU"


# --- a real cluster --------------------------------------------------------------------------------

def cluster_problem() -> str | None:
    """Why no job can be submitted here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch) on PATH"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
        parts = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%a %T"], capture_output=True, text=True,
                               timeout=30)
    except subprocess.TimeoutExpired:
        return "the SLURM controller did not answer within 30 s"
    if "UP" not in ping.stdout:
        return f"no SLURM controller answers ({(ping.stdout + ping.stderr).strip()})"
    if not re.search(r"^up (idle|mixed|allocated)", parts.stdout, flags=re.M):
        return f"partition 'debug' has no node taking jobs ({parts.stdout.strip() or parts.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        msg = f"{problem}; start the local cluster with `bash scripts/slurm_local.sh start` (root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests: {msg}")
        pytest.skip(msg)


def snakemake_env() -> dict[str, str]:
    """This environment for Snakemake and its jobs: the rules' `python` is this interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def workdir(tmp_path: Path, **sections) -> Path:
    """A copy of the repository with the tiny params, sections updated from ``sections``."""
    wd = copy_repo(tmp_path / "repo")
    params = tiny(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for name, values in sections.items():
        params[name].update(values)
    write_params(params, wd / "params.yaml")
    return wd


def snakemake(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm-ci", *args]


def slurm_jobs(wd: Path) -> list[dict[str, str]]:
    """This workflow's SLURM jobs (finished ones too: MinJobAge keeps them an hour)."""
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%Z|%k"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    jobs = []
    for line in out.splitlines():
        jobid, state, cwd, comment = line.split("|", 3)
        if Path(cwd).resolve() == wd.resolve():
            rule = comment.removeprefix("rule_").split("_wildcards_")[0]
            jobs.append({"id": jobid, "state": state, "rule": rule})
    return sorted(jobs, key=lambda j: int(j["id"]))


ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")


def cancel_leftovers(wd: Path) -> None:
    """Cancel this workflow's unfinished jobs, wait for them to leave the queue, and end every
    process still working in ``wd`` (a cancelled job's step can outlive the job's end)."""
    ids = [j["id"] for j in slurm_jobs(wd) if j["state"] in ACTIVE]
    if ids:
        subprocess.run(["scancel", *ids], check=False)
    deadline = time.monotonic() + 60
    while any(j["state"] in ACTIVE for j in slurm_jobs(wd)) and time.monotonic() < deadline:
        time.sleep(1)
    end_processes(wd)


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no output)"


@pytest.mark.slurm
def test_workflow_runs_on_the_slurm_cluster(cluster, tmp_path):
    wd = workdir(tmp_path)
    out = tmp_path / "snakemake.out"
    try:
        with open(out, "w") as fh:
            proc = subprocess.run(snakemake("results/gan/fid.json"), cwd=wd, env=snakemake_env(), stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=900)
    finally:
        cancel_leftovers(wd)
    assert proc.returncode == 0, tail(out)
    fid = json.loads((wd / "results/gan/fid.json").read_text())
    assert math.isfinite(fid["value"])

    jobs = slurm_jobs(wd)
    by_rule = {j["rule"]: j["state"] for j in jobs}
    # every compute rule went through SLURM and completed there ...
    assert by_rule == {"train": "COMPLETED", "sample": "COMPLETED", "reference": "COMPLETED",
                       "evaluate": "COMPLETED"}, jobs
    # ... the localrules (the download and the aggregation) ran on the submitting host
    log = out.read_text()
    assert re.search(r"^localrule data:", log, flags=re.M) and re.search(r"^localrule aggregate:", log, flags=re.M)


@pytest.mark.slurm
def test_cancelled_training_job_is_retried_and_resumes_from_its_checkpoint(cluster, tmp_path):
    steps, every = 400, 20
    wd = workdir(tmp_path, train={"steps": steps, "checkpoint_every": every, "log_every": every})
    run_dir = wd / "results/gan/seed0"
    partial = run_dir / "checkpoint.partial.pt"
    out = tmp_path / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(snakemake("results/gan/seed0/checkpoint.pt"), cwd=wd, env=snakemake_env(),
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        # Wait for the training job's first partial checkpoint, then cancel the job as a preemption would.
        deadline = time.monotonic() + 300
        while not partial.exists():
            assert proc.poll() is None, f"Snakemake ended before training checkpointed:\n{tail(out)}"
            assert time.monotonic() < deadline, f"no {partial.name} after 300 s:\n{tail(out)}"
            time.sleep(0.1)
        running = [j for j in slurm_jobs(wd) if j["rule"] == "train" and j["state"] == "RUNNING"]
        assert len(running) == 1, slurm_jobs(wd)
        cancelled = running[0]["id"]
        subprocess.run(["scancel", cancelled], check=True, timeout=30)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        cancel_leftovers(wd)
    assert proc.returncode == 0, tail(out)

    trains = [j for j in slurm_jobs(wd) if j["rule"] == "train"]
    assert [(j["id"] == cancelled, j["state"]) for j in trains] == [(True, "CANCELLED"), (False, "COMPLETED")], trains
    # The retry (attempt 2) started from the partial checkpoint, not from step 0 ...
    train_log = (wd / "logs/train/gan_seed0.log").read_text()
    resumed = re.search(r"^train: resumed gan from step (\d+)", train_log, flags=re.M)
    assert resumed, train_log
    assert every <= int(resumed[1]) < steps and int(resumed[1]) % every == 0
    # ... and finished the run: all steps, a log row every `every` steps, no partial file left.
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == steps
    logged = [int(line.split(",")[0]) for line in (run_dir / "train_log.csv").read_text().splitlines()[1:]]
    assert logged == list(range(every, steps + 1, every))
    assert not partial.exists()
