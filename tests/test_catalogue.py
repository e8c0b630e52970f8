"""The torch-free catalogue the workflow reads agrees with the method and metric registries."""
from __future__ import annotations

import copy

import pytest

from pipeline import catalogue
from pipeline.methods import REGISTRY as METHODS
from pipeline.metrics import REGISTRY as METRICS


def test_methods_and_their_inputs():
    assert catalogue.METHOD_NEEDS == {name: cls.needs for name, cls in METHODS.items()}


def test_encoders_are_the_methods_that_encode():
    assert set(catalogue.ENCODERS) == {name for name, cls in METHODS.items() if hasattr(cls, "encode")}


def test_metrics_and_their_references():
    assert catalogue.METRIC_REFERENCE == {name: module.reference for name, module in METRICS.items()}


def test_every_declared_stage_key_exists_in_the_default_params(default_params):
    from pipeline.metrics import REGISTRY as METRICS

    assert set(catalogue.METRIC_KEYS) == set(METRICS)
    for stage in catalogue.STAGE_KEYS:
        got = catalogue.stage_params(default_params, stage, "icgan")
        assert got and all(v is not None or k.endswith("n_train") or k.endswith("max_images") for k, v in got.items())
    assert "train.threads" not in catalogue.stage_keys("train", "icgan") and "methods.icgan" in catalogue.stage_keys(
        "train", "icgan")


def test_the_backbone_reference_reads_kids_and_prdcs_keys_only_for_them(default_params):
    """It computes KID's and PRDC's real terms only when they are measured, so only then do their keys rerun it."""
    keys = lambda metrics: catalogue.stage_keys("reference_backbone", metrics=metrics)  # noqa: E731
    assert not {"evaluate.kid_subsets", "evaluate.n_fake", "evaluate.prdc_k"} & set(keys(["fid", "ndb"]))
    assert keys(["fid", "kid"])[-3:] == ["evaluate.n_fake", "evaluate.kid_subsets", "evaluate.kid_subset_size"]
    assert keys(default_params["evaluate"]["metrics"])[-4:] == [  # the default study's list, as before
        "evaluate.n_fake", "evaluate.kid_subsets", "evaluate.kid_subset_size", "evaluate.prdc_k"]


def test_the_inception_score_proper_needs_no_classifier_reference_and_no_labels(default_params):
    from pipeline import config

    p = copy.deepcopy(default_params)
    assert "classifier" in catalogue.metric_references(p)
    p["evaluate"].update(metrics=["fid", "inception_score"], is_net="inception")
    assert catalogue.metric_references(p) == ["backbone"]
    p["evaluate"]["metrics"].append("classes")
    assert catalogue.metric_references(p) == ["backbone", "classifier"]
    p["train"]["eval_every"] = 10
    p["evaluate"]["metrics"] = ["lpips"]
    assert catalogue.metric_references(p) == ["backbone"]  # FD during training
    p["dataset"].update(name="stl10", split="unlabeled")
    p["study"]["methods"] = ["gan"]
    p["evaluate"].update(metrics=["fid", "inception_score"], is_net="inception")
    config.validate(p)  # IS from the Inception logits reads no labels
    p["evaluate"]["is_net"] = "classifier"
    with pytest.raises(config.PipelineError, match="metric inception_score needs them"):
        config.validate(p)


def test_a_run_trained_as_another_shares_its_training(default_params):
    p = copy.deepcopy(default_params)
    assert catalogue.trained_as(p, "p2gan_posterior") == "p2gan" and catalogue.trained_as(p, "p2gan") == "p2gan"
    assert catalogue.trained_as(p, "cgan") == "cgan" and catalogue.trained_as(p, "msgan") == "msgan"
    assert catalogue.shared_trainings(p, catalogue.trained_runs(p)) == {"p2gan": ["p2gan_posterior"]}
    trains = catalogue.own_trainings(p, catalogue.trained_runs(p))
    assert "p2gan" in trains and "p2gan_posterior" not in trains and len(trains) == len(catalogue.trained_runs(p)) - 1
    p["study"]["methods"] = ["p2gan_posterior", "p2gan"]  # declared, so the order does not matter
    assert catalogue.shared_trainings(p, catalogue.trained_runs(p)) == {"p2gan": ["p2gan_posterior"]}
    assert catalogue.own_trainings(p, catalogue.trained_runs(p)) == ["p2gan"]


def test_the_sampling_keys_are_the_sample_stages_not_trainings(default_params):
    train = catalogue.stage_params(default_params, "train", "icgan")
    assert "sampling" not in train["methods.icgan"] and train["methods.icgan"]["embed_dim"] == 128
    assert catalogue.stage_params(default_params, "sample", "icgan")["methods.icgan.sampling"] == "instances"
    assert catalogue.stage_params(default_params, "sample", "cgan") == {"sample": default_params["sample"]}
    monitored = copy.deepcopy(default_params)
    monitored["train"]["eval_every"] = 100  # FD during training samples the run: its train_log reads sampling
    assert catalogue.stage_params(monitored, "train", "icgan")["methods.icgan"]["sampling"] == "instances"
    assert "trained_as" not in catalogue.stage_params(monitored, "train", "p2gan_posterior")["methods.p2gan_posterior"]
