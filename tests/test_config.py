"""params.yaml validation: every mistake stops with one line naming the key and what is allowed."""
from __future__ import annotations

import copy

import pytest

from conftest import run_stage, write_params
from pipeline import config
from pipeline.errors import PipelineError


def test_default_params_are_valid(default_params):
    assert config.validate(copy.deepcopy(default_params))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda p: p["train"].update(stepz=3), "train: unknown key 'stepz' (allowed: backbone, batch_size"),
        (lambda p: p["train"].update(steps="many"), "train.steps: 'many' is not of type 'integer'"),
        (lambda p: p["train"].update(steps=0), "train.steps: 0 is less than the minimum of 1"),
        (lambda p: p["study"].update(methods=["gan", "vae"]), "study.methods names vae but methods: has no settings"),
        (lambda p: p["methods"]["gan"].update(method="vae"), "methods.gan.method: 'vae' is not allowed (allowed: gan"),
        (lambda p: p["methods"]["icgan"].update(sampling="all"), "methods.icgan.sampling: 'all' is not allowed"),
        (lambda p: p["methods"]["msgan"].update(embed_dim=3), "methods.msgan: Unevaluated properties are not allowed "
                                                              "('embed_dim' was unexpected)"),
        (lambda p: p["methods"]["p2gan"].pop("ema"), "methods.p2gan: 'ema' is a required property"),
        (lambda p: p["methods"].update({"My-Run": p["methods"]["gan"]}), "methods: 'My-Run' does not match"),
        (lambda p: p["comparisons"]["msgan"].update(baseline="dcgan"), "comparisons.msgan names run 'dcgan', which"),
        (lambda p: p["comparisons"]["msgan"]["primary"].update(metrics=["lpips"]),
         "comparisons.msgan.primary names 'lpips', which is not the metric of one of its claims"),
        (lambda p: p["comparisons"]["icgan"]["primary"].update(metrics=["fid", "kid", "ndb"]),
         "comparisons.icgan.primary.metrics: ['fid', 'kid', 'ndb'] is too long"),
        (lambda p: p["comparisons"]["p2gan"].pop("paired"), "comparisons.p2gan: 'paired' is a required property"),
        (lambda p: p["dataset"].update(name="cifar"), "dataset.name: 'cifar' is not allowed (allowed: fashion_mnist"),
        (lambda p: p.update(extra={}), "(top level): unknown key 'extra'"),
        (lambda p: p["evaluate"].update(backbone="clip"), "evaluate.backbone: 'clip' is not allowed"),
        (lambda p: p["train"].update(seeds=[0, 2**64]),  # past torch.manual_seed's range
         "train.seeds.1: 18446744073709551616 is greater than the maximum of 2147483647"),
        (lambda p: p["knn"].update(seed=2**32),  # past faiss's (a C int)
         "knn.seed: 4294967296 is greater than the maximum of 2147483647"),
        (lambda p: p["methods"]["p2gan"].update(lr_d=1e-3),  # p2gan_posterior would copy other weights
         "methods.p2gan_posterior.trained_as: p2gan, but the two differ in lr_d, which training reads; give both"),
        (lambda p: p["methods"]["p2gan_posterior"].update(trained_as="p2gann"),
         "methods.p2gan_posterior.trained_as: p2gann is not another run under methods: that trains itself"),
        (lambda p: p["methods"]["p2gan"].update(trained_as="p2gan_posterior"),  # a chain, or a loop
         "methods.p2gan.trained_as: p2gan_posterior is not another run under methods: that trains itself"),
        (lambda p: p["methods"]["lsgan"].update(trained_as="p2gan"),
         "methods.lsgan.trained_as: p2gan, but the two differ in method, a, b, c, posterior_dim"),
    ],
)
def test_bad_params_name_the_key(default_params, edit, expected):
    params = copy.deepcopy(default_params)
    edit(params)
    with pytest.raises(PipelineError) as err:
        config.validate(params)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_study_method_needs_settings(default_params):
    params = copy.deepcopy(default_params)
    del params["methods"]["cgan"]
    with pytest.raises(PipelineError, match="add a methods.cgan section"):
        config.validate(params)


def test_params_file_that_is_not_utf8_is_named(tmp_path, default_params):
    path = write_params(default_params, tmp_path / "params.yaml")
    path.write_bytes(b"# caf\xe9, saved as Latin-1\n" + path.read_bytes())
    with pytest.raises(PipelineError) as err:
        config.load(path)
    assert str(err.value) == f"{path}: not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8"


def test_stage_exits_nonzero_with_one_line(tmp_path, tiny_params):
    tiny_params["train"]["batch_size"] = "64"
    params = write_params(tiny_params, tmp_path / "params.yaml")
    proc = run_stage("data", "--params", params, "--out", tmp_path / "data", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {params}: train.batch_size: '64' is not of type 'integer'"
    assert not (tmp_path / "data").exists()


def test_snakefile_validates_at_parse_time(tmp_path, tiny_params):
    import subprocess
    import sys

    from conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    tiny_params["study"]["methods"] = ["nosuch"]
    write_params(tiny_params, repo / "params.yaml")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "error: params.yaml: study.methods names nosuch but methods: has no settings" in proc.stderr + proc.stdout


def test_workflow_config_is_typed_validated_with_its_source_and_written(tmp_path, default_params):
    params = copy.deepcopy(default_params)
    out = tmp_path / "resolved"
    fixed = config.resolve_workflow(params, {"train": {"steps": "7", "seeds": "[0, 4]"}, "sample": "{n: 3000}"}, [], out)
    assert params["train"]["steps"] == 7 and params["train"]["seeds"] == [0, 4] and params["sample"]["n"] == 3000
    assert config.load(fixed) == config.load(out / "params.yaml") == params
    # another invocation's configuration goes to another file: the first one's stages read theirs unchanged
    before = fixed.read_text()
    other_fixed = config.resolve_workflow(copy.deepcopy(default_params), {"sample": "{n: 7}"}, [], out)
    assert other_fixed != fixed and fixed.read_text() == before and config.load(other_fixed)["sample"]["n"] == 7
    assert config.resolve_workflow(copy.deepcopy(default_params), {"sample": "{n: 7}"}, [], out) == other_fixed
    other = tmp_path / "o.yaml"
    write_params({"train": {"batch_size": "x"}}, other)
    bad = copy.deepcopy(default_params)
    bad["train"]["batch_size"] = "x"
    with pytest.raises(PipelineError, match=r"^--configfile .*o.yaml: train.batch_size: 'x' is not of type"):
        config.resolve_workflow(bad, {"train": {"steps": "7"}}, [other], out)
    with pytest.raises(PipelineError, match=r"^--config: train.width: 'wide' is not of type"):
        config.resolve_workflow(copy.deepcopy(default_params), {"train": {"width": "wide"}}, [other], out)
