"""dvc.yaml agrees with params.yaml and the Snakefile: current, same rules, same paths; lint clean."""
from __future__ import annotations

import re
import resource
import subprocess
import sys

import pytest
import yaml

from conftest import PYTHON, ROOT
from pipeline import config, dvcgen
from pipeline.errors import run_cli


def snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True)


def test_dvc_yaml_is_generated_from_params():
    assert (ROOT / "dvc.yaml").read_text() == dvcgen.render(config.load(ROOT / "params.yaml")), \
        "dvc.yaml is stale: run python -m pipeline.dvcgen"


def test_dvc_yaml_is_replaced_whole_or_not_at_all(tmp_path):
    """A write that fails (here: past the file-size limit) leaves the previous dvc.yaml and no temporary file."""
    out = tmp_path / "dvc.yaml"
    out.write_text("old\n")
    limit = len(dvcgen.render(config.load(ROOT / "params.yaml"))) // 2
    proc = subprocess.run([PYTHON, "-m", "pipeline.dvcgen", "--out", out], cwd=ROOT, capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["dvc.yaml"]
    dvcgen.main(["--params", str(ROOT / "params.yaml"), "--out", str(out)])
    assert out.read_text() == dvcgen.render(config.load(ROOT / "params.yaml"))


def test_check_of_an_out_file_that_is_not_utf8_fails_with_one_line(tmp_path, capsys):
    out, ok = tmp_path / "dvc.yaml", tmp_path / "params.ok"
    out.write_bytes(b"stages: \xff\n")
    with pytest.raises(SystemExit) as exit_:
        run_cli(dvcgen.main, ["--params", str(ROOT / "params.yaml"), "--out", str(out), "--check", str(ok)])
    assert exit_.value.code == 1 and not ok.exists()
    assert capsys.readouterr().err == (f"error: {out} is not UTF-8 text, so not a dvc.yaml that dvcgen generated: "
                                       "run `python -m pipeline.dvcgen`, then `dvc repro`\n")


def test_fd_during_training_makes_train_stages_depend_on_the_backbone_reference():
    params = config.load(ROOT / "params.yaml")
    params["train"]["eval_every"] = 100
    params["evaluate"]["metrics"] = ["lpips"]  # no metric of its own needs the backbone reference
    stages = yaml.safe_load(dvcgen.render(params))["stages"]
    assert "reference_backbone" in stages
    for name in ("train", "train_instance"):
        assert "results/reference/backbone" in stages[name]["deps"]
        assert {"train.eval_every", "evaluate.backbone", "evaluate.kid_subsets"} <= set(stages[name]["params"])


def test_dvc_plots_give_each_run_one_plot_per_curve_with_a_line_per_seed():
    params = config.load(ROOT / "params.yaml")
    params["train"]["eval_every"] = 100  # FD during training becomes a curve too
    plots = {name: spec for entry in yaml.safe_load(dvcgen.render(params))["plots"] for name, spec in entry.items()}
    runs = [r for r in params["study"]["methods"] if r != "real"]
    assert set(plots) == {f"{run} {curve}" for run in runs for curve in ("g_loss", "d_loss", "fd")}
    msgan = plots["msgan fd"]
    assert msgan["y"] == {f"results/msgan/seed{s}/train_log.csv": "fd" for s in params["train"]["seeds"]}
    assert msgan["x"] == "step" and msgan["x_label"] == "training step" and msgan["y_label"].startswith("FD during")


def expand(stage: dict) -> list[dict]:
    """The stage's matrix items with ${item.x} substituted in cmd and outs."""
    import itertools

    matrix = stage.get("matrix", {})
    keys = list(matrix)
    items = [dict(zip(keys, values)) for values in itertools.product(*matrix.values())] or [{}]
    out = []
    for item in items:
        text = yaml.safe_dump({k: stage[k] for k in ("cmd", "outs", "metrics") if k in stage})
        for k, v in item.items():
            text = text.replace(f"${{item.{k}}}", str(v))
        out.append(yaml.safe_load(text))
    return out


def planned_rules(targets: list[str]) -> dict[str, str]:
    """Output path -> the Snakemake rule that makes it, from one dry run of every target."""
    plan = snakemake("-n", "--forceall", "--cores", "1", "--", *targets)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    made, rule = {}, None
    for line in plan.stdout.splitlines():
        words = line.strip().split()
        if line.startswith(("rule ", "localrule ")):
            rule = words[1].rstrip(":")
        elif words[:1] == ["output:"] and rule:
            made.update({path.rstrip(","): rule for path in words[1:]})
    return made


def test_every_stage_runs_its_rule_on_that_rules_outputs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    expected = {}
    assert stages.pop("check")["cmd"] == "python -m pipeline.dvcgen --check results/params.ok"  # DVC's own gate
    for name, stage in stages.items():
        for item in expand(stage):
            cmd = item["cmd"].split()
            rule = cmd[cmd.index("--allowed-rules") + 1]
            paths = [p if isinstance(p, str) else next(iter(p)) for p in item.get("outs", []) + item.get("metrics", [])]
            assert set(cmd[cmd.index("--") + 1:]) <= set(paths), f"{name}: targets are not the stage's outputs"
            expected.update({path: rule for path in paths})
    made = planned_rules(sorted(expected))
    assert {p: made.get(p) for p in expected} == expected


def test_snakemake_lint_is_clean():
    """Clean but for one deliberate pattern: every shell command reads the Snakefile's RESOLVED (the
    configuration file of this invocation). As a rule param its path, which changes with any key,
    would rerun every job; the keys each rule reads are its params instead (``settings``)."""
    proc = snakemake("--lint")
    out = proc.stdout + proc.stderr
    lints = re.findall(r"^    \* (.+)$", out, flags=re.M)
    assert set(lints) <= {"Shell command directly uses variable RESOLVED from outside of the rule:"}, out
    assert proc.returncode == (1 if lints else 0) and out.count("Lints for rule") == len(lints), out
