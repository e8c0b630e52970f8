"""Data-parallel training (pipeline/distributed.py) on CPU: gloo processes started by torchrun."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import PYTHON, ROOT, copy_repo, processes_in, run_stage, tiny, wait_until_gone, write_params
from pipeline import checkpoint
from pipeline.catalogue import launcher, train_resources, trained_runs
from pipeline.trainer import FINAL, PARTIAL

RUNS = ["gan", "cgan", "msgan", "lsgan", "p2gan", "biggan", "icgan", "bigbigan"]  # every method class


def torchrun(study: Path, processes: int, *args: str, **popen) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node",
           str(processes), *args]
    return subprocess.Popen(cmd, cwd=study, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{err[-4000:]}"
    return err


def study_params(default: dict, gpus: int, **train) -> dict:
    p = tiny(default)
    p["dataset"]["resolution"] = 8
    p["study"]["methods"] = RUNS
    p["train"].update(gpus=gpus, batch_size=8, **train)
    return p


@pytest.fixture(scope="module")
def study(tmp_path_factory, default_params) -> Path:
    """data/, random unit features and their kNN graph (for icgan) at 8 px."""
    root = tmp_path_factory.mktemp("ddp")
    params = write_params(study_params(default_params, 1), root / "params.yaml")
    run_stage("data", "--params", params, "--out", root / "data")
    features = np.random.default_rng(0).normal(size=(len(np.load(root / "data/labels.npy")), 16)).astype(np.float32)
    (root / "results/features").mkdir(parents=True)
    np.save(root / "results/features/features.npy", features / np.linalg.norm(features, axis=1, keepdims=True))
    run_stage("knn", "--params", params, "--data", root / "data", "--out", root / "results/knn", cwd=root)
    return root


def worker(study: Path, default_params, processes: int, out: str, runs: list[str], steps: int, *flags: str) -> None:
    write_params(study_params(default_params, processes), study / f"params{processes}.yaml")
    finish(torchrun(study, processes, str(ROOT / "tests/ddp_worker.py"), "--params", f"params{processes}.yaml",
                    "--runs", *runs, "--steps", str(steps), "--out", out, *flags))


def test_every_method_trains_in_two_processes_and_the_ranks_stay_identical(study, default_params):
    assert sorted(trained_runs(study_params(default_params, 2))) == sorted(RUNS)
    worker(study, default_params, 2, "every", RUNS, 3)  # the worker fails if the ranks' weights ever differ
    for run in RUNS:  # saved unwrapped: a checkpoint of two processes loads into one (bigbigan's F and H too)
        wrapped = [k for k in torch.load(study / "every" / f"{run}.pt", weights_only=True) if "module." in k]
        assert not wrapped, (run, wrapped[:3])


def test_two_processes_train_as_one_with_the_same_global_batch(study, default_params):
    """biggan (hinge, spectral-norm D without BatchNorm). With BatchNorm's statistics frozen, two
    processes (4 images each) and one process (8 images) see the same images and noise, so their
    weights agree up to the order of float additions. With live statistics, G's BatchNorm normalises
    over 4 images per process instead of 8 on CPU, and the runs differ measurably."""
    for flags in ([], ["--frozen-bn"]):
        for processes in (1, 2):
            worker(study, default_params, processes, f"eq{processes}{''.join(flags)}", ["biggan"], 4, *flags)
    load = lambda name: torch.load(study / name / "biggan.pt", weights_only=True)  # noqa: E731
    frozen = [load(f"eq{n}--frozen-bn") for n in (1, 2)]
    live = [load(f"eq{n}") for n in (1, 2)]
    worst = max((frozen[0][k] - frozen[1][k]).abs().max().item() for k in frozen[0] if frozen[0][k].is_floating_point())
    assert worst < 1e-5, worst
    g_live = max((live[0][k] - live[1][k]).abs().max().item() for k in live[0] if k.startswith("G."))
    assert g_live > 100 * max(worst, 1e-7), g_live


def train_cmd(params: str, out: str) -> list[str]:
    return ["-m", "pipeline.stages.train", "--params", params, "--method", "gan", "--seed", "0", "--data", "data",
            "--out", out]


def test_the_ranks_die_with_a_killed_launcher(study, default_params):
    """SIGKILL of torchrun alone (not its process group): the ranks end too and write nothing more."""
    write_params(study_params(default_params, 2, steps=100_000, checkpoint_every=5, log_every=5), study / "orphan.yaml")
    proc = torchrun(study, 2, *train_cmd("orphan.yaml", "orphan"))
    deadline = time.monotonic() + 120
    while not (study / "orphan" / PARTIAL).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    ranks = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(ranks) == 2, ranks
    proc.kill()
    proc.communicate()
    assert not wait_until_gone(ranks), "the ranks outlived their launcher"
    assert not (study / "orphan" / FINAL).exists() and not (study / "orphan" / "train_log.csv").exists()


def test_a_killed_two_process_run_resumes_to_the_weights_of_an_uninterrupted_one(study, default_params):
    write_params(study_params(default_params, 2, steps=200, checkpoint_every=5, log_every=5),
                 study / "resume.yaml")
    finish(torchrun(study, 2, *train_cmd("resume.yaml", "straight")))
    proc = torchrun(study, 2, *train_cmd("resume.yaml", "killed"))
    deadline = time.monotonic() + 120
    while not (study / "killed" / PARTIAL).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    for pid, _ in processes_in(study):  # torchrun and both workers (each in its own session), as a lost node
        os.kill(pid, signal.SIGKILL)
    proc.communicate()
    assert not (study / "killed" / FINAL).exists(), "run ended before the kill"
    err = finish(torchrun(study, 2, *train_cmd("resume.yaml", "killed")))
    assert err.count("resumed gan from step") == 1  # rank 0 alone reports
    a, b = checkpoint.load(study / "straight" / FINAL), checkpoint.load(study / "killed" / FINAL)
    assert a["step"] == b["step"] == 200
    for name, tensor in a["nets"].items():
        assert torch.equal(tensor, b["nets"][name]), name
    assert len(b["rng"]) == 2 and not (study / "killed" / PARTIAL).exists()


def launch(study: Path, *args: str) -> subprocess.Popen:
    """The train rule's launcher (pipeline/launch.py: torchrun in-process) with two processes."""
    return subprocess.Popen([PYTHON, "-m", "pipeline.launch", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
                             *args], cwd=study, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def started(study: Path, proc: subprocess.Popen, out: str) -> list[int]:
    """The pids of ``proc``'s two ranks, once the run has written its first checkpoint."""
    deadline = time.monotonic() + 120
    while not (study / out / PARTIAL).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    ranks = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(ranks) == 2, ranks
    return ranks


@pytest.mark.parametrize("how, code, last", [
    ("sigterm-launcher", 143, "error: terminated (SIGTERM); rerun to resume"),
    ("sigkill-rank", 137, "error: training rank {rank} was killed by SIGKILL; see the rule's log, then rerun to resume"),
    ("rank-error", 1, "error: fail.yaml: no run 'nosuch' under methods:"),
])
def test_a_failed_multi_process_run_ends_on_its_cause_with_its_exit_status(study, default_params, how, code, last):
    """No torchrun traceback: the last line is the failing rank's own, the status its cause's."""
    write_params(study_params(default_params, 2, steps=100_000, checkpoint_every=5, log_every=5), study / "fail.yaml")
    out = f"fail-{how}"
    cmd = train_cmd("fail.yaml", out)
    if how == "rank-error":
        cmd[cmd.index("gan")] = "nosuch"
    proc = launch(study, *cmd)
    if how != "rank-error":
        ranks = started(study, proc, out)
        if how == "sigterm-launcher":
            proc.send_signal(signal.SIGTERM)
        else:
            environ = dict(v.split("=", 1) for v in Path(f"/proc/{ranks[1]}/environ").read_text().split("\0") if "=" in v)
            last = last.format(rank=environ["RANK"])
            os.kill(ranks[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code and "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith(last), lines[-5:]
    assert not processes_in(study) or all(pid != proc.pid for pid, _ in processes_in(study))


def test_a_plain_start_of_a_multi_process_run_is_one_clear_error(study, default_params):
    write_params(study_params(default_params, 2), study / "plain.yaml")
    proc = run_stage("train", *train_cmd("plain.yaml", "plain")[2:], check=False, cwd=study)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: train.gpus x train.nodes is 2 but 1 process")
    assert not (study / "plain").exists()


class Resources(dict):
    __getattr__ = dict.get


@pytest.mark.parametrize("gpus, nodes, flags", [
    (1, 1, ["--gpus=1", "--cpus-per-task=4"]),
    (4, 1, ["--gpus=4", "--cpus-per-task=16"]),
    (4, 2, ["--nodes=2", "--gres=gpu:4", "--cpus-per-task=16"]),  # per node; one task per node
])
def test_the_sbatch_request_and_the_launcher_follow_gpus_and_nodes(gpus, nodes, flags):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    train = {"gpus": gpus, "nodes": nodes}
    job = SimpleNamespace(resources=Resources(runtime=240, **train_resources(train)), threads=1, name="train",
                          is_group=lambda: False)
    params = {"run_uuid": "u", "slurm_logfile": "log", "comment_str": "c", "account": "", "partition": "",
              "workdir": ""}
    sbatch = (get_submit_command(job, params) + set_gres_string(job)).split()
    assert set(flags) <= set(sbatch) and not [f for f in sbatch if f.startswith("--ntasks")], sbatch
    launch = launcher(train)
    if gpus * nodes == 1:
        assert launch == "python"
    elif nodes == 1:
        assert launch == "python -m pipeline.launch --standalone --nnodes 1 --nproc-per-node 4"
    else:
        assert launch.startswith("srun --nodes 2 --ntasks-per-node 1 ") and "--nnodes 2 --nproc-per-node 4" in launch


def test_snakemake_trains_a_two_process_run_and_plans_its_slurm_job(tmp_path, default_params):
    repo = copy_repo(tmp_path / "repo")
    write_params(study_params(default_params, 2), repo / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"}
    smk = lambda *args: subprocess.run(["snakemake", *args, "results/gan/seed0/checkpoint.pt"], cwd=repo, env=env,  # noqa: E731
                                       capture_output=True, text=True)
    profile = tmp_path / "slurm"  # profiles/slurm without conda, which this machine lacks
    profile.mkdir()
    (profile / "config.yaml").write_text("".join(
        line for line in (repo / "profiles/slurm/config.yaml").read_text().splitlines(keepends=True)
        if not line.startswith("software-deployment-method")))
    plan = smk("-n", "--profile", str(profile))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert re.search(r"runtime=240, cpus_per_task=8, gpu=2$", plan.stdout, flags=re.M) and "--nproc-per-node 2 -m pipeline.stages.train" in plan.stdout
    done = smk("--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    log = (repo / "logs/train/gan_seed0.log").read_text()
    assert log.count("train gan: step 6/6") == 1  # rank 0 alone logs
    assert checkpoint.load(repo / "results/gan/seed0/checkpoint.pt")["train"]["gpus"] == 2
