"""The README's commands stay valid: the two set-up commands, the stage table's modules, the targets,
every option a script command passes (there and in docs/results.md, which says how the README's
numbers are made), the profile, and the documentation links."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from conftest import PYTHON, ROOT

README = (ROOT / "README.md").read_text()
RESULTS_PAGE = (ROOT / "docs/results.md").read_text()


def commands(page: str = README) -> list[str]:
    """A page's indented command lines (continuations joined, comments dropped), not the tables'."""
    text = re.sub(r"\\\n\s+", " ", page)
    lines = [line[4:].split("  #")[0].strip() for line in text.splitlines() if line.startswith("    ")]
    return [line for line in lines if re.match(r"(bash|snakemake|dvc|git|\.venv/bin/python|\(cd) ", line)]


def test_the_readme_leads_with_the_two_commands_and_their_scripts_exist():
    assert commands()[:2] == ["bash scripts/run.sh", "bash scripts/test.sh"]
    assert (ROOT / "scripts/run.sh").is_file() and (ROOT / "scripts/test.sh").is_file()
    assert "bash scripts/test.sh" in (ROOT / ".ci/run").read_text()  # CI runs the README's test command


def test_every_stage_module_of_the_table_exists():
    modules = set(re.findall(r"`python -m (pipeline(?:\.\w+)+)`", README))
    assert len(modules) >= 10
    for module in modules:
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module


def test_every_target_names_a_run_and_a_metric_of_the_default_study(default_params):
    targets = re.findall(r"results/(\w+)/(\w+)\.json", " ".join(c for c in commands() if c.startswith("snakemake")))
    assert targets
    for run, metric in targets:
        assert run in default_params["study"]["methods"] and metric in default_params["evaluate"]["metrics"]
    assert all((ROOT / p).is_dir() for p in re.findall(r"--profile (\S+)", README))


@pytest.mark.parametrize("script", ["benchmarks/tune.py", "benchmarks/verdict_stability.py", "scripts/readme_results.py"])
def test_every_option_a_script_command_passes_is_one_it_takes(script):
    runs = [c for c in commands(README) + commands(RESULTS_PAGE) if script in c]
    assert runs, f"neither the README nor docs/results.md runs {script}"
    used = {flag for c in runs for flag in re.findall(r"(--[\w-]+)", c)}
    helptext = subprocess.run([PYTHON, script, "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert used <= set(re.findall(r"(--[\w-]+)", helptext)), f"{script}: {sorted(used)} against its --help"


def test_the_dvc_experiment_sets_a_key_of_params_yaml(default_params):
    keys = re.findall(r"-S ([\w.]+)=", README)
    assert keys
    for key in keys:
        value = default_params
        for part in key.split("."):
            assert isinstance(value, dict) and part in value, f"-S {key}: params.yaml has no {part!r} there"
            value = value[part]


def test_the_documentation_links_resolve():
    links = re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", README)
    assert "docs/extending.md" in links
    for link in links:
        assert (ROOT / link).is_file(), link
    assert all(shlex.split(c) for c in commands())  # every command line parses as a shell would


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.sh")))
def test_every_shell_script_answers_help_with_its_header_and_runs_nothing(tmp_path, script):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    done = subprocess.run(["bash", f"scripts/{script}", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=10, env={"PATH": "/usr/bin:/bin"})  # no .venv, no sudo: help installs nothing
    header = [line[2:] for line in (ROOT / "scripts" / script).read_text().splitlines()[1:3]]
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines()[:2] == header
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["scripts", script])
