"""End to end on digits with a tiny budget, in a temporary git repository: Snakemake, then DVC."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_repo, write_params

pytestmark = pytest.mark.workflow
BIN = Path(sys.executable).parent


def sh(repo: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory, default_params):
    from conftest import tiny

    repo = copy_repo(tmp_path_factory.mktemp("workflow") / "repo")
    write_params(tiny(default_params), repo / "params.yaml")
    sh(repo, "python", "-m", "pipeline.dvcgen")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny study")
    return repo


def test_snakemake_builds_exactly_the_chain(repo):
    plan = sh(repo, "snakemake", "results/gan/fid.json", "--cores", "2", "-n", "--quiet", "rules")
    for rule in ("data", "reference", "train", "sample", "evaluate", "aggregate"):
        assert rule in plan
    assert "features" not in plan and "knn" not in plan
    sh(repo, "snakemake", "--cores", "2", "results/gan/fid.json")
    fid = json.loads((repo / "results/gan/fid.json").read_text())
    assert fid["name"] == "FD_efficientnet_lite0" and fid["n_seeds"] == 1
    assert fid["value"] > 0 and fid["n_real"] == fid["n_fake"] == 1300
    for log in ("data.log", "train/gan_seed0.log", "sample/gan_seed0.log", "evaluate/gan_seed0.log"):
        assert (repo / "logs" / log).exists(), log
    assert (repo / "results/gan/seed0/samples.png").stat().st_size > 0
    # every job's seconds and peak memory, from Snakemake's benchmark: directive
    assert (repo / "logs/benchmark/train/gan_seed0.tsv").exists()
    times = sh(repo, "python", str(ROOT / "benchmarks/rule_times.py"))
    assert "from logs/benchmark/" in times and re.search(r"^\| train \| 1 \| \d+ \| \d+ \| \d+ \|$", times, flags=re.M)
    assert re.search(r"^\| data \| 1 \| \d+ \| \d+ \| \d+ \|$", times, flags=re.M)  # logs/benchmark/data.tsv


def planned_jobs(repo: Path, target: str) -> dict[str, int]:
    """rule -> jobs of a dry run (empty when nothing is to be done)."""
    out = sh(repo, "snakemake", target, "--cores", "2", "-n", "--quiet", "rules")
    rows = re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


@pytest.mark.parametrize("cmd, target", [(["snakemake"], "results/gann/fid.json"),
                                         (["python", "-m", "snakemake"], "results/gan/fidd.json")])
def test_a_target_no_stage_makes_is_refused_in_one_line_that_lists_runs_and_metrics(repo, cmd, target):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([*cmd, "-n", "--cores", "1", target], cwd=repo, env=env, capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "MissingRuleException" not in proc.stderr
    assert last.startswith(f"error: no stage makes {target}; ") and "<run> one of gan (study.methods)" in last and "<metric> one of fid" in last


def test_the_workflow_loaded_through_the_api_ignores_its_host_programs_arguments(repo, monkeypatch):
    """Inside pytest (``python -m pytest -p no:cacheprovider``) argv is pytest's: no target to refuse."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    monkeypatch.setattr(sys, "argv", [str(Path(pytest.__file__).parent / "__main__.py"), "-p", "no:cacheprovider"])
    monkeypatch.chdir(repo)
    with SnakemakeApi() as api:
        wf = api.workflow(resource_settings=ResourceSettings(), snakefile=repo / "Snakefile", workdir=repo,
                          config_settings=ConfigSettings())._workflow
    assert wf.is_rule("train")


@pytest.mark.parametrize("how", ["--config", "--configfile"])
def test_overrides_reach_the_stages(repo, tmp_path, how):
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    (tmp_path / "o.yaml").write_text("train: {steps: 9}\n")
    args = ["--config", "train={steps: 9}"] if how == "--config" else ["--configfile", str(tmp_path / "o.yaml")]
    sh(copy, "snakemake", "--cores", "1", "results/gan/seed0/checkpoint.pt", *args)
    log = (copy / "results/gan/seed0/train_log.csv").read_text().splitlines()
    assert log[-1].startswith("9,")  # the last logged step: params.yaml says 6
    bad = subprocess.run(["snakemake", "-n", "--cores", "1", "--config", "train={steps: many}"], cwd=copy,
                         capture_output=True, text=True, env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert bad.returncode != 0 and "error: --config: train.steps: 'many' is not of type 'integer'" in bad.stderr


@pytest.mark.parametrize("args, cause", [(["--config", "train.steps=7"], "Invalid config definition"),
                                         (["--configfile", "nosuch.yaml"], "No such file or directory: 'nosuch.yaml'")])
def test_mistakes_snakemakes_own_parser_catches_end_on_a_line_naming_the_cause(repo, args, cause):
    """As docs/configuration.md says: these fail before the Snakefile runs (no stage can word them)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["snakemake", "-n", "--cores", "1", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and cause in (proc.stdout + proc.stderr).strip().splitlines()[-1]  # Snakemake: stdout
    assert "train={steps: 7}" in (ROOT / "docs/configuration.md").read_text()


def test_a_dry_run_beside_a_workflow_leaves_the_configuration_its_jobs_read_alone(repo, tmp_path):
    """Each invocation's stages read a file named by the resolved configuration's content."""
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    plan = sh(copy, "snakemake", "-n", "-p", "--forceall", "--cores", "1", "results/gan/seed0/samples.npy",
              "--config", "sample={n: 1300}")
    path = copy / re.search(r"pipeline\.stages\.sample --params (\S+)", plan).group(1)
    before = path.read_text()
    sh(copy, "snakemake", "-n", "--cores", "1", "--config", "sample={n: 7}")  # another invocation, other settings
    assert path.read_text() == before and yaml.safe_load(before)["sample"]["n"] == 1300


@pytest.mark.parametrize("edit, expected", [
    (lambda p: None, {}),
    (lambda p: p["train"].update(log_every=3, checkpoint_every=4, threads=2), {}),
    (lambda p: p["train"].update(seeds=[0, 1]), {"train": 1, "sample": 1, "evaluate": 1, "aggregate": 1}),
    (lambda p: p["evaluate"].update(lpips_pairs=7, ndb_alpha=0.01), {}),  # metrics not measured: fid only
    (lambda p: p["evaluate"].update(n_real=1200), {"reference": 1, "evaluate": 1, "aggregate": 1}),
    (lambda p: p["methods"]["gan"].update(lr_g=0.001), {"train": 1, "sample": 1, "evaluate": 1, "aggregate": 1}),
    (lambda p: p["methods"]["icgan"].update(lr_g=0.001), {}),  # another run's settings
    (lambda p: p["train"].update(eval_every=3, eval_samples=1300),  # FD during training: a train output
     {"train": 1, "sample": 1, "evaluate": 1, "aggregate": 1}),
])
def test_a_change_reruns_exactly_what_reads_it(repo, tmp_path, edit, expected):
    """On a copy of the finished tiny study (params triggers from catalogue.STAGE_KEYS)."""
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    edit(params)
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, "results/gan/fid.json") == expected
    assert "Nothing to be done" in sh(repo, "snakemake", "--cores", "2", "results/gan/fid.json")


def test_another_feature_extractor_reruns_the_features_stage(repo, tmp_path):
    """SimCLR adds encoder.pt, an output with no Snakemake record (which turns the params check off):
    the main target asks for it, so the stage reruns rather than keeping the other extractor's features."""
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["study"]["methods"] = ["biggan", "icgan"]
    params["features"]["extractor"] = "pixels"
    write_params(params, copy / "params.yaml")
    sh(copy, "snakemake", "--cores", "2", "results/features/features.npy")
    params["features"]["extractor"] = "simclr"
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, "all").get("features") == 1


def test_fd_during_training_reads_the_backbone_reference(repo, tmp_path):
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["train"].update(eval_every=3, eval_samples=1300)
    write_params(params, copy / "params.yaml")
    sh(copy, "snakemake", "--cores", "2", "results/gan/seed0/checkpoint.pt")
    log = (copy / "results/gan/seed0/train_log.csv").read_text().splitlines()
    assert log[0].endswith(",fd,kid") and [row.split(",")[0] for row in log[1:] if not row.endswith(",,")] == ["3", "6"]
    params["evaluate"]["resize"] = "clean"  # the monitor's backbone protocol: training reads it now
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, "results/gan/seed0/checkpoint.pt") == {"reference": 1, "train": 1}


def test_a_run_trained_as_another_copies_its_training_with_the_same_bits(repo, tmp_path):
    """p2gan_posterior (trained_as: p2gan) copies p2gan's checkpoint and samples what its own training
    would give; its sampling key then resamples it alone, a training key of both retrains once."""
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["study"]["methods"] = ["p2gan_posterior", "p2gan"]
    write_params(params, copy / "params.yaml")
    targets = [f"results/{run}/seed0/samples.npy" for run in ("p2gan", "p2gan_posterior")]
    plan = planned_jobs(copy, targets[1])
    assert (plan["train"], plan["shared_training"], plan["sample"]) == (1, 1, 1)  # p2gan's training, copied
    sh(copy, "snakemake", "--cores", "2", *targets)
    assert "p2gan_posterior seed 0 is p2gan seed 0" in (copy / "logs/shared_training/p2gan_posterior_seed0.log").read_text()
    shared = copy / "results/p2gan_posterior/seed0"
    assert (shared / "checkpoint.pt").read_bytes() == (copy / "results/p2gan/seed0/checkpoint.pt").read_bytes()
    assert json.loads((shared / "samples.json").read_text())["sampling"] == "posterior"
    alone = copy / "alone"  # the same run trained by itself, through the stages
    resolved = next((copy / ".snakemake/ganbench").glob("params*.yaml"))
    for stage, where in (("train", ["--out", str(alone)]), ("sample", ["--run", str(alone)])):
        sh(copy, "python", "-m", f"pipeline.stages.{stage}", "--params", str(resolved), "--method", "p2gan_posterior",
           *(["--seed", "0"] if stage == "train" else []), "--data", "data", *where)
    for name in ("samples.npy", "conditions.npy"):
        assert (alone / name).read_bytes() == (shared / name).read_bytes(), name
    params["methods"]["p2gan_posterior"]["sampling"] = "prior"
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, targets[1]) == {"sample": 1}
    for run in ("p2gan", "p2gan_posterior"):
        params["methods"][run]["lr_d"] = 1e-3
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, targets[1]) == {"train": 1, "shared_training": 1, "sample": 1}
    del params["methods"]["p2gan_posterior"]["trained_as"]  # now trained by itself
    write_params(params, copy / "params.yaml")
    assert planned_jobs(copy, targets[1]) == {"train": 1, "sample": 1}


def test_the_main_command_leaves_a_copied_training_up_to_date_for_both_tools(repo, tmp_path):
    """DVC's cache hardlinks the copy and its original (the same bytes): the inode keeps the original's
    time, which must leave neither tool anything to redo (pipeline/dvcgen.py orders the stages so)."""
    copy = Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["study"]["methods"] = ["p2gan", "p2gan_posterior"]
    write_params(params, copy / "params.yaml")
    sh(copy, "python", "-m", "pipeline.dvcgen")
    (copy / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    sh(copy, "bash", "scripts/run.sh")
    files = [copy / f"results/{run}/seed0/checkpoint.pt" for run in ("p2gan", "p2gan_posterior")]
    assert files[0].stat().st_ino == files[1].stat().st_ino  # one cache object
    assert "Nothing to be done" in sh(copy, "snakemake", "--cores", "2", "-n")
    assert "Data and pipelines are up to date" in sh(copy, "dvc", "status")


def test_dvc_shares_the_main_commands_state_then_experiment(repo):
    """scripts/run.sh (the README's main command) leaves DVC in step; an experiment reruns what it changes."""
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)  # set-up finds it in place
    out = sh(repo, "bash", "scripts/run.sh")
    assert "dvc.lock" not in out and "gan" in (repo / "results/summary.txt").read_text()
    html = repo / "results/report.html"  # Snakemake's report: comparisons, samples, curves
    assert f"report: {html}" in out and html.stat().st_size > 100_000
    text = html.read_text(errors="replace")
    assert "curves_gan.png" in text and "samples.png" in text and "msgan.png" in text and "nearest_gan.png" in text
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")
    # dvc commit kept every output's mtime (hardlinked cache): Snakemake too finds nothing to do
    assert "Nothing to be done" in sh(repo, "snakemake", "--cores", "2", "-n")
    out = sh(repo, "dvc", "repro")  # nothing to run: no stage reruns, whatever the machine's load
    assert "Running stage" not in out and "Data and pipelines are up to date" in out
    shown = sh(repo, "dvc", "metrics", "show")  # run means only, not per-seed values and settings
    assert "results/metrics.json" in shown and "gan.fid" in shown and "per_seed" not in shown and "n_real" not in shown
    plots = json.loads(sh(repo, "dvc", "plots", "show", "--json"))  # the training curves, as declared
    curve = plots["data"]["gan g_loss"][0]  # one plot per run and curve, a line per seed
    assert curve["type"] == "vega" and "gan: G loss, one line per seed" in json.dumps(curve["content"])
    sh(repo, "git", "add", "dvc.lock")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline")

    out = sh(repo, "dvc", "exp", "run", "-S", "train.steps=9")
    assert "Stage 'data' didn't change, skipping" in out
    assert "Stage 'reference_backbone' didn't change, skipping" in out
    for stage in ("train@gan-0", "sample@gan-0", "evaluate@gan-0", "aggregate@gan-fid", "report"):
        assert f"Running stage '{stage}'" in out
    assert (repo / "results/gan/seed0/train_log.csv").read_text().splitlines()[-1].startswith("9,")

    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json"))
    change = diff["results/metrics.json"]["gan.fid"]
    assert change["old"] != change["new"] and change["diff"] == pytest.approx(change["new"] - change["old"])


def test_a_failed_dvc_command_deletes_no_output(repo):
    """DVC removes a stage's outputs just before running it: the check stage, upstream of every other,
    fails first on a bad params.yaml, so results stay. A failed `dvc exp run -S` leaves its value in
    params.yaml (DVC writes -S values into the workspace before running); the error names it."""
    kept = sorted(p for p in (repo / "results").rglob("*") if p.is_file() and p.name != "params.ok")
    good = (repo / "params.yaml").read_text()

    def fails(*cmd: str) -> str:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        assert proc.returncode != 0, proc.stdout[-2000:]
        assert all(p.exists() for p in kept), [str(p) for p in kept if not p.exists()]
        return proc.stdout + proc.stderr

    p = yaml.safe_load(good)
    p["study"]["methods"].append("nosuch")
    write_params(p, repo / "params.yaml")
    assert "study.methods names nosuch but methods: has no settings for it" in fails("dvc", "repro")
    p = yaml.safe_load(good)
    p["train"]["seeds"] = [0, 1]
    write_params(p, repo / "params.yaml")
    assert "dvc.yaml was generated from other params" in fails("dvc", "repro")
    (repo / "params.yaml").write_text(good)
    for value, message in (("abc", "train.steps: 'abc' is not of type 'integer'"),
                           ("20.0", "train.steps: 20.0 is not of type 'integer'")):
        assert message in fails("dvc", "exp", "run", "-S", f"train.steps={value}")
        assert f"steps: {value}" in (repo / "params.yaml").read_text()
        (repo / "params.yaml").write_text(good)
    assert "train.steps: 'abc' is not of type 'integer'" in fails("dvc", "exp", "run", "--temp", "-S", "train.steps=abc")
    assert (repo / "params.yaml").read_text() == good  # --temp: a copy ran it
    out = sh(repo, "dvc", "repro")  # the failed check removed its own output only, restored from the run cache
    assert re.findall(r"Running stage '([^']+)'", out) in ([], ["check"]), out
    assert "Stage 'data' didn't change, skipping" in out and "Stage 'report' didn't change, skipping" in out


def test_the_main_command_leaves_nothing_to_do_when_runs_write_identical_files(tmp_path, default_params):
    """Two unconditional runs of two seeds write four identical conditions.npy (all -1). Cached by
    DVC, they would become hardlinks to one file with one mtime, older than the later runs'
    checkpoints, and Snakemake would resample those runs after the main command."""
    from conftest import tiny

    repo = copy_repo(tmp_path / "repo")
    p = tiny(default_params)
    p["study"]["methods"], p["train"]["seeds"] = ["gan", "lsgan"], [0, 1]
    write_params(p, repo / "params.yaml")
    sh(repo, "python", "-m", "pipeline.dvcgen")
    sh(repo, "git", "init", "-q")
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    sh(repo, "bash", "scripts/run.sh")
    conditions = sorted(repo.glob("results/*/seed*/conditions.npy"))
    assert len(conditions) == 4 and len({c.read_bytes() for c in conditions}) == 1
    assert len({c.stat().st_ino for c in conditions}) == 4  # not linked to one cache file
    assert "Nothing to be done" in sh(repo, "snakemake", "--cores", "2", "-n")
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")


def test_dvc_push_and_pull_through_the_local_remote(repo):
    remote = repo.parent / "ganbench-dvc-store"  # the default remote: a folder beside the repository
    sh(repo, "dvc", "push")
    assert remote.is_dir() and any(remote.rglob("*"))
    checkpoint = repo / "results/gan/seed0/checkpoint.pt"
    before = checkpoint.read_bytes()
    checkpoint.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")  # only the remote has it now
    sh(repo, "dvc", "pull")
    assert checkpoint.read_bytes() == before



def test_jobs_run_with_the_interpreter_of_snakemake_when_its_environment_is_not_activated(tmp_path, default_params):
    from conftest import tiny

    repo = copy_repo(tmp_path / "repo")
    write_params(tiny(default_params), repo / "params.yaml")
    bare = {**os.environ, "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                  if Path(p).resolve() != BIN.resolve())}
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "data/meta.json"], cwd=repo, env=bare,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + (repo / "logs" / "data.log").read_text()
    assert json.loads((repo / "data" / "meta.json").read_text())["dataset"] == "digits"
