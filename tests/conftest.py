"""Shared fixtures: tiny params on the digits dataset, prepared data, and repository copies."""
from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def tiny(params: dict) -> dict:
    """Shrink the default params to seconds of work on sklearn's digits at 16x16."""
    p = copy.deepcopy(params)
    p["dataset"].update(name="digits", resolution=16, max_images=None)
    p["study"]["methods"] = ["gan"]
    p["train"].update(seeds=[0], steps=6, batch_size=16, width=8, z_dim=16, checkpoint_every=2, log_every=2,
                      threads=1)
    p["sample"].update(n=1300, grid=16, batch_size=650)
    p["evaluate"].update(metrics=["fid"], n_real=1300, n_fake=1300, batch_size=650, input_size=32)
    p["features"]["simclr"]["steps"] = 300
    return p


def processes_in(folder: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every process, other than this one, working in ``folder`` or below it."""
    folder, found = Path(folder).resolve(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or another user's
            continue
        if cwd == folder or folder in cwd.parents:
            found.append((int(entry.name), cmd))
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_until_gone(pids: list[int], timeout: float = 15) -> list[int]:
    """Wait up to ``timeout`` s for the processes to end; those still alive."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def end_processes(folder: Path, grace: float = 30) -> list[tuple[int, str]]:
    """Wait up to ``grace`` s for the processes working in ``folder`` to end, then SIGKILL the rest;
    return those that had to be killed."""
    deadline = time.monotonic() + grace
    while (left := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_tests(tmp_path_factory):
    """At the end of the run no process started by a test still works in the tests' folders."""
    yield
    left = end_processes(tmp_path_factory.getbasetemp(), grace=10)
    assert not left, f"tests left processes running (now killed): {left}"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def tiny_params(default_params) -> dict:
    return tiny(default_params)


def write_params(params: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def params_file(tmp_path, tiny_params) -> Path:
    return write_params(tiny_params, tmp_path / "params.yaml")


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory, default_params) -> Path:
    """data/ of the tiny params, prepared once per session."""
    out = tmp_path_factory.mktemp("digits") / "data"
    params = write_params(tiny(default_params), out.parent / "params.yaml")
    run_stage("data", "--params", params, "--out", out)
    return out


def run_stage(stage: str, *args, check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python -m pipeline.stages.<stage>`` and return the completed process."""
    proc = subprocess.run([PYTHON, "-m", f"pipeline.stages.{stage}", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"pipeline.stages.{stage} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def copy_repo(dest: Path) -> Path:
    """Copy the repository's tracked and untracked-not-ignored files into ``dest`` (no outputs)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest
