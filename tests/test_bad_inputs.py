"""A battery of bad inputs, one edit each, against a small finished study (digits at 8 px).

Every case runs one stage's command line in this process on a copy of the study with one thing
broken, and asserts what the README promises: exit status 1, exactly one line on stderr, starting
``error:`` and naming the cause, and no new or changed file anywhere in the copy. The signal and
kill cases run the train stage as a process.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import yaml

from conftest import PYTHON, ROOT, tiny, write_params
from pipeline import checkpoint, results_table
from pipeline.errors import PipelineError, check_stop, run_cli, say
from pipeline.stages import aggregate, data, encoder_probe, evaluate, knn, real, reference, report, sample, train
from pipeline.trainer import PARTIAL

STAGES = {"data": data, "train": train, "sample": sample, "evaluate": evaluate, "reference": reference,
          "aggregate": aggregate, "report": report, "knn": knn, "encoder_probe": encoder_probe, "real": real}
RUN = "results/gan/seed0"
ARGS = {  # each stage's command line in the study, as the rules give it
    "data": ["--params", "params.yaml", "--out", "data"],
    "train": ["--params", "params.yaml", "--method", "gan", "--seed", "0", "--data", "data", "--out", RUN],
    "train_cgan": ["--params", "params.yaml", "--method", "cgan", "--seed", "0", "--data", "data", "--out",
                   "results/cgan/seed0"],
    "sample": ["--params", "params.yaml", "--method", "gan", "--run", RUN, "--data", "data"],
    "evaluate": ["--params", "params.yaml", "--metric", "fid", "--run", RUN, "--data", "data"],
    "reference": ["--params", "params.yaml", "--name", "backbone", "--data", "data", "--out",
                  "results/reference/backbone"],
    "aggregate": [f"{RUN}/fid.json", "--out", "results/gan/fid.json"],
    "report": ["--params", "params.yaml", "--results", "results"],
    "knn": ["--params", "params.yaml", "--features", "results/features/features.npy", "--data", "data",
            "--out", "results/knn"],
    "encoder_probe": ["--params", "params.yaml", "--method", "gan", "--run", RUN, "--data", "data"],
    "real": ["--params", "params.yaml", "--seed", "0", "--data", "data", "--out", "results/real/seed0"],
    "train_unknown": ["--params", "params.yaml", "--method", "nosuch", "--seed", "0", "--out", "results/x/seed0"],
    "sample_cgan": ["--params", "params.yaml", "--method", "cgan", "--run", "results/cgan/seed0"],
    "evaluate_lpips": ["--params", "params.yaml", "--metric", "lpips", "--run", RUN],
    "evaluate_kid": ["--params", "params.yaml", "--metric", "kid", "--run", RUN],
    "evaluate_prdc": ["--params", "params.yaml", "--metric", "prdc", "--run", RUN],
    "evaluate_fd_infinity": ["--params", "params.yaml", "--metric", "fd_infinity", "--run", RUN],
    "reference_classifier": ["--params", "params.yaml", "--name", "classifier", "--out", "results/reference/classifier"],
    "aggregate_twice": [f"{RUN}/fid.json", f"{RUN}/fid.json", "--out", "results/gan/fid.json"],
    "aggregate_mixed": [f"{RUN}/fid.json", f"{RUN}/ndb.json", "--out", "results/gan/fid.json"],
    "aggregate_pair": [f"{RUN}/fid.json", "results/gan/seed1/fid.json", "--out", "results/gan/fid.json"],
    "train_monitored": ["--params", "params.yaml", "--method", "gan", "--seed", "0", "--data", "data", "--out", RUN,
                        "--reference", "results/reference/backbone"],
}
STAGE_OF = {"train_cgan": "train", "train_unknown": "train", "sample_cgan": "sample", "evaluate_lpips": "evaluate",
            "evaluate_kid": "evaluate", "evaluate_prdc": "evaluate", "evaluate_fd_infinity": "evaluate",
            "reference_classifier": "reference", "aggregate_twice": "aggregate",
            "aggregate_mixed": "aggregate", "aggregate_pair": "aggregate",
            "train_monitored": "train"}  # command -> its stage


def study_params(default: dict) -> dict:
    p = tiny(default)
    p["dataset"]["resolution"] = 8
    p["study"]["methods"] = ["gan"]
    p["train"].update(steps=20, checkpoint_every=10, log_every=10)
    p["evaluate"].update(classifier_steps=5)
    return p


@pytest.fixture(scope="module")
def study(tmp_path_factory, default_params) -> Path:
    """data/, a trained and sampled gan (seed 0), the backbone reference, fid per seed and aggregated."""
    root = tmp_path_factory.mktemp("bad_inputs") / "study"
    root.mkdir()
    write_params(study_params(default_params), root / "params.yaml")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("data", "train", "sample", "reference", "evaluate", "aggregate"):
            STAGES[stage].main(ARGS[stage])
        features = np.random.default_rng(0).normal(size=(len(np.load("data/labels.npy")), 16)).astype(np.float32)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        Path("results/features").mkdir(parents=True)
        np.save("results/features/features.npy", features)
    finally:
        os.chdir(cwd)
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- edits: each breaks one thing in the copy (cwd) -----------------------------------------------

def set_params(**changes: Callable[[dict], None]) -> Callable[[], None]:
    def edit() -> None:
        p = yaml.safe_load(Path("params.yaml").read_text())
        for change in changes.values():
            change(p)
        write_params(p, Path("params.yaml"))
    return edit


def param(path: str, value) -> Callable[[], None]:
    """Set params.yaml's ``a.b.c`` to ``value``."""
    *parents, key = path.split(".")

    def change(p: dict) -> None:
        for k in parents:
            p = p[k]
        p[key] = value
    return set_params(change=change)


def drop_param(path: str) -> Callable[[], None]:
    *parents, key = path.split(".")

    def change(p: dict) -> None:
        for k in parents:
            p = p[k]
        del p[key]
    return set_params(change=change)


def text_edit(old: str, new: str, path: str = "params.yaml") -> Callable[[], None]:
    def edit() -> None:
        text = Path(path).read_text()
        assert old in text, old
        Path(path).write_text(text.replace(old, new, 1))
    return edit


def truncate(path: str, keep: float = 0.5) -> Callable[[], None]:
    def edit() -> None:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[:int(len(data) * keep)])
    return edit


def write_bytes(path: str, content: bytes) -> Callable[[], None]:
    return lambda: Path(path).write_bytes(content)


def remove(path: str) -> Callable[[], None]:
    def edit() -> None:
        p = Path(path)
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return edit


def save_array(path: str, make: Callable[[np.ndarray], np.ndarray], source: str | None = None) -> Callable[[], None]:
    """Replace ``path`` with ``make`` of the array in ``source`` (default: ``path`` itself)."""
    def edit() -> None:
        array = make(np.load(source or path))
        with open(path, "wb") as fh:
            np.save(fh, array, allow_pickle=array.dtype == object)
    return edit


def json_edit(path: str, change: Callable[[dict], object]) -> Callable[[], None]:
    """Rewrite the JSON object in ``path`` after ``change`` mutated it."""
    def edit() -> None:
        obj = json.loads(Path(path).read_text())
        change(obj)
        Path(path).write_text(json.dumps(obj))
    return edit


def seed1(**changes) -> Callable[[], None]:
    """results/gan/seed1/fid.json: seed 0's with ``changes`` (another protocol)."""
    def edit() -> None:
        Path("results/gan/seed1").mkdir(exist_ok=True)
        obj = {**json.loads(Path(f"{RUN}/fid.json").read_text()), "seed": 1, **changes}
        Path("results/gan/seed1/fid.json").write_text(json.dumps(obj))
    return edit


def torch_save(path: str, obj) -> Callable[[], None]:
    return lambda: torch.save(obj, path)


def both(*edits: Callable[[], None]) -> Callable[[], None]:
    def edit() -> None:
        for e in edits:
            e()
    return edit


def relabel_meta(**changes) -> Callable[[], None]:
    return json_edit("data/meta.json", lambda m: m.update(changes))


def data_subset(rows: slice | np.ndarray) -> Callable[[], None]:
    """Keep some images (labels and meta.json's count follow)."""
    def edit() -> None:
        images, labels = np.load("data/images.npy")[rows], np.load("data/labels.npy")[rows]
        np.save("data/images.npy", images)
        np.save("data/labels.npy", labels)
        json_edit("data/meta.json", lambda m: m.update(count=len(images)))()
    return edit


def upscale_data(edit_meta: bool) -> Callable[[], None]:
    def edit() -> None:
        images = np.load("data/images.npy").repeat(2, axis=1).repeat(2, axis=2)
        np.save("data/images.npy", images)
        if edit_meta:
            json_edit("data/meta.json", lambda m: m.update(shape=list(images.shape[1:])))()
    return edit


CASES = [
    # --- params.yaml, validated by every stage before any work (run here through data and train)
    ("params-unknown-top-key", "data", param("colour", "red"), "unknown key 'colour'"),
    ("params-misspelt-key", "train", text_edit("  steps: 20", "  stpes: 20"), "stpes"),
    ("params-string-for-int", "train", param("train.steps", "many"), "train.steps: 'many' is not of type 'integer'"),
    ("params-bool-for-int", "train", param("train.steps", True), "train.steps: True is not of type 'integer'"),
    ("params-whole-float-batch", "train", param("train.batch_size", 16.0), "train.batch_size: 16.0 is not of type 'integer'"),
    ("train-fd-during-training-without-reference", "train", param("train.eval_every", 2),
     "train.eval_every needs --reference, the backbone reference folder"),
    ("train-monitor-reference-of-another-width", "train_monitored", both(
        param("train.eval_every", 2), save_array("results/reference/backbone/features.npy", lambda a: a[:, :16])),
     "features.npy (per image): shape (16,), not the efficientnet_lite0 backbone's 1280-d features"),
    ("params-batch-not-shared-evenly", "train", param("train.gpus", 3),
     "train.batch_size 16 is the global batch and must divide evenly among train.gpus x train.nodes = 3"),
    ("params-whole-float-width", "train", param("train.width", 8.0), "train.width: 8.0 is not of type 'integer'"),
    ("params-whole-float-sample-n", "sample", param("sample.n", 1300.0), "sample.n: 1300.0 is not of type 'integer'"),
    ("params-nan-lr", "train", text_edit("lr_g: 0.0002", "lr_g: .nan"), "lr_g: nan is not a finite number"),
    ("params-inf-lr", "train", text_edit("lr_d: 0.0002", "lr_d: .inf"), "lr_d: inf is not a finite number"),
    ("params-duplicate-key", "train", text_edit("  steps: 20\n", "  steps: 20\n  steps: 7\n"), "'steps' appears twice"),
    ("params-duplicate-section", "data", lambda: Path("params.yaml").write_text(
        Path("params.yaml").read_text() + "knn:\n  k: 3\n"), "'knn' appears twice"),
    ("params-negative-steps", "train", param("train.steps", -5), "train.steps: -5 is less than the minimum"),
    ("params-unknown-method-class", "train", param("methods.gan.method", "wgan"), "methods.gan"),
    ("params-cifar10-has-no-unlabeled-split", "data", set_params(
        a=lambda p: p["dataset"].update(name="cifar10", split="unlabeled")),
     "dataset.split 'unlabeled' is not a split of cifar10 (train, test, all)"),
    ("params-split-of-a-dataset-without-splits", "data", param("dataset.split", "test"),
     "dataset.split 'test' is not a split of digits (it has none: remove the key)"),
    ("params-study-names-undefined-run", "data", param("study.methods", ["gan", "nosuch"]), "nosuch"),
    ("params-comparison-names-undefined-run", "data", param("comparisons.msgan.baseline", "nosuch"), "nosuch"),
    ("params-other-class-key", "train", param("methods.gan.lambda_ms", 1.0), "lambda_ms"),
    ("params-missing-key", "train", drop_param("train.n_dis"), "'n_dis' is a required property"),
    ("params-bad-enum", "data", param("knn.index", "hnsw"), "'hnsw' is not allowed"),
    ("params-unknown-metric", "data", param("evaluate.metrics", ["fid", "is"]), "evaluate.metrics"),
    ("params-invalid-yaml", "data", lambda: Path("params.yaml").write_text("train: [steps: 1\n"), "not valid YAML"),
    ("params-file-missing", "data", remove("params.yaml"), "params.yaml: no such params file"),
    ("params-unknown-dataset", "data", param("dataset.name", "imagenet"), "'imagenet' is not allowed"),
    # --- train: data/ against meta.json, counts, labels
    ("train-no-data-folder", "train", remove("data"), "data: no such data folder"),
    ("train-images-truncated", "train", truncate("data/images.npy"), "data/images.npy: unreadable .npy"),
    ("train-images-object-dtype", "train", save_array("data/images.npy", lambda a: a.astype(object)),
     "data/images.npy: unreadable .npy"),
    ("train-images-float", "train", save_array("data/images.npy", lambda a: a.astype(np.float32)),
     "images.npy: float32"),
    ("train-images-not-meta-shape", "train", upscale_data(edit_meta=False), "meta.json says"),
    ("train-images-not-meta-count", "train", relabel_meta(count=5), "meta.json says 5"),
    ("train-images-missing", "train", remove("data/images.npy"), "data/images.npy: no such file"),
    ("train-labels-count", "train", save_array("data/labels.npy", lambda a: a[:-3]), "labels.npy: expected"),
    ("train-labels-99", "train_cgan", save_array("data/labels.npy", lambda a: np.where(a == 3, 99, a)),
     "labels 0..99 outside the 10 classes"),
    ("train-labels-negative", "train_cgan", save_array("data/labels.npy", lambda a: np.where(a == 3, -1, a)),
     "labels -1..9 outside"),
    ("train-labels-float", "train", save_array("data/labels.npy", lambda a: a.astype(np.float64)),
     "labels.npy: expected"),
    ("train-meta-missing", "train", remove("data/meta.json"), "data/meta.json: no such file"),
    ("train-meta-invalid", "train", write_bytes("data/meta.json", b"{not json"), "data/meta.json: unreadable JSON"),
    ("train-meta-lacks-keys", "train", json_edit("data/meta.json", lambda m: m.pop("shape")), "lacks shape"),
    ("train-meta-not-object", "train", write_bytes("data/meta.json", b"[1, 2]"), "expected a JSON object"),
    ("train-one-image", "train", data_subset(slice(0, 1)), "1 training images"),
    ("train-fewer-than-a-batch", "train", data_subset(slice(0, 10)), "at least train.batch_size (16)"),
    ("train-cgan-empty-classes", "train_cgan", lambda: data_subset(np.flatnonzero(np.load("data/labels.npy") < 4))(),
     "class(es) [4, 5, 6, 7, 8, 9] have no training image"),
    ("train-unknown-run", "train_unknown", lambda: None, "no run 'nosuch' under methods:"),
    # --- sample: checkpoints
    ("sample-no-checkpoint", "sample", remove(f"{RUN}/checkpoint.pt"), "no checkpoint; run the train stage"),
    ("sample-truncated-checkpoint", "sample", truncate(f"{RUN}/checkpoint.pt"), "unreadable checkpoint"),
    ("sample-text-checkpoint", "sample", write_bytes(f"{RUN}/checkpoint.pt", b"hello"), "unreadable checkpoint"),
    ("sample-checkpoint-without-keys", "sample", torch_save(f"{RUN}/checkpoint.pt", {"format": checkpoint.FORMAT}),
     "checkpoint lacks method, fingerprint"),
    ("sample-checkpoint-other-format", "sample", torch_save(f"{RUN}/checkpoint.pt", {"weights": torch.zeros(2)}),
     "not a ganbench checkpoint"),
    ("sample-checkpoint-other-run", "sample_cgan", lambda: shutil.copytree(RUN, "results/cgan/seed0"),
     "holds run 'gan', not 'cgan'"),
    ("sample-checkpoint-other-resolution", "sample", upscale_data(edit_meta=True), "do not fit the data"),
    # --- evaluate: samples, conditions, references
    ("evaluate-samples-missing", "evaluate", remove(f"{RUN}/samples.npy"), "samples.npy: no such file"),
    ("evaluate-samples-truncated", "evaluate", truncate(f"{RUN}/samples.npy"), "samples.npy: unreadable .npy"),
    ("evaluate-samples-object", "evaluate", save_array(f"{RUN}/samples.npy", lambda a: a.astype(object)),
     "samples.npy: unreadable .npy"),
    ("evaluate-samples-wrong-shape", "evaluate",
     save_array(f"{RUN}/samples.npy", lambda a: a.repeat(2, axis=1).repeat(2, axis=2)), "samples.npy"),
    ("evaluate-too-few-samples", "evaluate", save_array(f"{RUN}/samples.npy", lambda a: a[:100]),
     "has 100 samples but evaluate.n_fake is 1300"),
    ("evaluate-conditions-short", "evaluate", lambda: np.save(f"{RUN}/conditions.npy", np.zeros(15, np.int64)),
     "conditions.npy"),
    ("evaluate-samples-json-missing", "evaluate", remove(f"{RUN}/samples.json"), "samples.json: no such file"),
    ("evaluate-samples-json-invalid", "evaluate", write_bytes(f"{RUN}/samples.json", b"{"), "samples.json: unreadable JSON"),
    ("evaluate-samples-json-lacks-seed", "evaluate", json_edit(f"{RUN}/samples.json", lambda m: m.pop("seed")),
     "lacks seed"),
    ("evaluate-samples-json-seed-string", "evaluate", json_edit(f"{RUN}/samples.json", lambda m: m.update(seed="abc")),
     "samples.json: seed 'abc' is not a non-negative integer"),
    ("evaluate-samples-json-seed-null", "evaluate_lpips", json_edit(f"{RUN}/samples.json", lambda m: m.update(seed=None)),
     "samples.json: seed None is not a non-negative integer"),
    ("evaluate-reference-missing", "evaluate", remove("results/reference/backbone"), "missing reference"),
    ("evaluate-stats-truncated", "evaluate", truncate("results/reference/backbone/stats.npz"),
     "stats.npz: unreadable .npz"),
    ("evaluate-stats-lacks-mu", "evaluate",
     lambda: np.savez("results/reference/backbone/stats.npz", sigma=np.eye(2), n=np.array(5)), "stats.npz: unreadable"),
    ("evaluate-kid-without-its-real-terms", "evaluate_kid", lambda: None,  # the study measures fid only
     "no kid_within (built while evaluate.metrics lacked its metric); rebuild the backbone reference"),
    ("evaluate-prdc-without-its-real-terms", "evaluate_prdc", lambda: None,
     "no prdc_radii (built while evaluate.metrics lacked its metric); rebuild the backbone reference"),
    ("evaluate-fd-infinity-no-range", "evaluate_fd_infinity", param("evaluate.fd_infinity_min_n", 1300),
     "fd_infinity: counts from evaluate.fd_infinity_min_n (1300) to the 1300 samples need fd_infinity_min_n below"),
    ("evaluate-lpips-too-few-pairs", "evaluate_lpips", both(
        save_array(f"{RUN}/samples.npy", lambda a: a[:40]), save_array(f"{RUN}/conditions.npy", lambda a: a[:40]),
        param("evaluate.n_fake", 40)),
     "40 samples have 780 distinct pairs, fewer than evaluate.lpips_pairs (1000)"),
    ("evaluate-data-meta-missing", "evaluate", remove("data/meta.json"), "data/meta.json: no such file"),
    # --- reference
    ("reference-no-data", "reference", remove("data"), "data: no such data folder"),
    ("reference-float-labels", "reference_classifier", save_array("data/labels.npy", lambda a: a.astype(np.float64)),
     "labels.npy: expected 1797 integer labels, found float64"),
    ("reference-negative-label", "reference_classifier", save_array("data/labels.npy", lambda a: np.where(a == 3, -1, a)),
     "labels.npy: labels -1..9 outside the 10 classes"),
    ("reference-holdout-too-large", "reference_classifier", param("evaluate.classifier_holdout", 0.9999),
     "trains on 0; each needs at least 100"),
    ("reference-images-truncated", "reference", truncate("data/images.npy"), "images.npy: unreadable .npy"),
    # --- aggregate
    ("aggregate-mixed-metrics", "aggregate_mixed", lambda: Path(f"{RUN}/ndb.json").write_text(
        json.dumps({**json.loads(Path(f"{RUN}/fid.json").read_text()), "metric": "ndb", "seed": 1})),
     "mix metrics fid, ndb"),
    ("aggregate-same-seed-twice", "aggregate_twice", lambda: None, "both seed 0"),
    ("aggregate-malformed-json", "aggregate", write_bytes(f"{RUN}/fid.json", b'{"value": 1,'), "unreadable JSON"),
    ("aggregate-nan-token", "aggregate", text_edit('"value": ', '"value": NaN, "x": ', f"{RUN}/fid.json"),
     "NaN is not JSON"),
    ("aggregate-lacks-value", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.pop("value")), "lacks value"),
    ("aggregate-input-missing", "aggregate", remove(f"{RUN}/fid.json"), "fid.json: no such file"),
    ("aggregate-value-not-number", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(value="12")),
     "value '12' is not a finite number"),
    ("aggregate-value-true", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(value=True)),
     "value True is not a finite number"),
    ("aggregate-seed-a-list", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(seed=[0])),
     "fid.json: seed [0] is not a non-negative integer"),
    ("aggregate-seed-true", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(seed=True)),
     "fid.json: seed True is not a non-negative integer"),
    ("aggregate-metric-an-object", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(metric={"fid": 1})),
     "fid.json: metric {'fid': 1} is not a name"),
    ("aggregate-method-a-list", "aggregate", json_edit(f"{RUN}/fid.json", lambda m: m.update(method=["gan"])),
     "fid.json: method ['gan'] is not a name"),
    ("aggregate-seeds-on-two-backbones", "aggregate_pair", seed1(backbone="inception", input_size=299),
     "has backbone 'inception' but results/gan/seed0/fid.json has 'efficientnet_lite0'"),
    ("aggregate-seeds-with-two-sample-counts", "aggregate_pair", seed1(n_fake=13), "has n_fake 13 but"),
    ("aggregate-seeds-of-two-datasets", "aggregate_pair", seed1(dataset="cifar10"), "has dataset 'cifar10' but"),
    # --- report
    ("report-seed-value-true", "report", json_edit("results/gan/fid.json", lambda m: m["per_seed"]["0"].update(value=True)),
     "seed 0 has value=True, not finite numbers"),
    ("report-no-per-seed-values", "report", json_edit("results/gan/fid.json", lambda m: m.pop("per_seed")),
     "has no per-seed values"),
    ("report-per-seed-list", "report", json_edit("results/gan/fid.json", lambda m: m.update(per_seed=[1.0])),
     "has no per-seed values"),
    ("report-per-seed-key-not-a-seed", "report",
     json_edit("results/gan/fid.json", lambda m: m.update(per_seed={"x": m["per_seed"]["0"]})), "per_seed key 'x' is not a seed"),
    ("report-null-value", "report", json_edit("results/gan/fid.json", lambda m: m.update(value=None)),
     "value None is not a finite number"),
    ("report-string-value", "report", json_edit("results/gan/fid.json", lambda m: m.update(value="12")),
     "value '12' is not a finite number"),
    ("report-other-dataset", "report", json_edit("results/gan/fid.json", lambda m: m.update(dataset="cifar10")),
     "is of dataset 'cifar10', this study's is 'digits'"),
    ("report-empty-object", "report", write_bytes("results/gan/fid.json", b"{}"), "is of dataset None"),
    ("report-result-not-an-object", "report", write_bytes("results/gan/fid.json", b"[null, null]"),
     "expected a JSON object, found list"),
    ("report-malformed-result", "report", write_bytes("results/gan/fid.json", b"[}"), "unreadable JSON"),
    ("report-nan-result", "report", text_edit('"value": ', '"value": NaN, "y": ', "results/gan/fid.json"),
     "NaN is not JSON"),
    ("report-empty-train-log", "report", write_bytes(f"{RUN}/train_log.csv", b""), "train_log.csv: unreadable CSV"),
    ("report-malformed-train-log", "report", write_bytes(f"{RUN}/train_log.csv", b"step,d_loss\n10,1.2\n20,1,2,3\n"),
     "train_log.csv: unreadable CSV"),
    ("report-binary-train-log", "report", write_bytes(f"{RUN}/train_log.csv", b"\x89PNG\r\n\x1a\n\x00\xff"),
     "train_log.csv: unreadable CSV"),
    ("report-train-log-without-steps", "report", write_bytes(f"{RUN}/train_log.csv", b"hello\n"),
     "train_log.csv: no step column"),
    ("report-trained-on-a-number", "report", json_edit(f"{RUN}/samples.json", lambda m: m.update(trained_on=5)),
     "samples.json: trained_on 5 is not a list of machine kinds"),
    ("report-samples-json-a-list", "report", write_bytes(f"{RUN}/samples.json", b"[1]"),
     "samples.json: expected a JSON object, found list"),
    ("report-data-checksums-a-list", "report", relabel_meta(checksums_sha256=[1]),
     "data/meta.json: checksums_sha256 [1] is not"),
    # --- knn
    ("knn-features-missing", "knn", remove("results/features/features.npy"), "features.npy"),
    ("knn-k-too-large", "knn", param("knn.k", 5000), "knn.k = 5000 must be less than"),
    ("knn-centres-too-many", "knn", param("knn.centres", 5000), "knn.centres = 5000 is more than"),
    ("knn-features-wrong-rows", "knn", save_array("results/features/features.npy", lambda a: a[:-1]), "features"),
    ("knn-negative-label", "knn", save_array("data/labels.npy", lambda a: np.where(a == 3, -1, a)),
     "labels.npy: labels -1..9 outside the 10 classes"),
    ("knn-images-of-another-shape", "knn", save_array("data/images.npy", lambda a: a[:, :4]),
     "but meta.json says"),
    # --- real
    ("real-too-few-held-out-images", "real", lambda: None, "leave 497 outside the reference's evaluate.n_real (1300)"),
    ("real-labels-out-of-range", "real", save_array("data/labels.npy", lambda a: np.where(a == 3, 10, a)),
     "outside the 10 classes"),
    ("real-run-defined-under-methods", "real", set_params(change=lambda p: p["methods"].update(real=p["methods"]["gan"])),
     "the name 'real' is the held-out real-data run"),
    # --- encoder_probe
    ("encoder-probe-no-encoder", "encoder_probe", lambda: None, "has no encoder to probe"),
]


BATTERY = CASES


@pytest.fixture
def copy(study, tmp_path, monkeypatch) -> Path:
    root = Path(shutil.copytree(study, tmp_path / "study"))
    monkeypatch.chdir(root)
    return root


def run_stage(command: str, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    module = STAGES[STAGE_OF.get(command, command)]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(module.main, ARGS[command])
        pytest.fail("the stage succeeded")
    lines = capsys.readouterr().err.splitlines()
    return exit_info.value.code, [line for line in lines if line.strip()]


@pytest.mark.parametrize("name, command, edit, expect", BATTERY, ids=[case[0] for case in BATTERY])
def test_bad_input_gives_one_error_line_and_no_output(copy, capsys, name, command, edit, expect):
    edit()
    before = snapshot(copy)
    code, lines = run_stage(command, capsys)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expect in lines[0], lines[0]
    assert snapshot(copy) == before, "the failed stage left new or changed files"


def test_the_battery_covers_every_stage_with_at_least_60_cases():
    assert len(BATTERY) >= 60 and len({c[0] for c in BATTERY}) == len(BATTERY)
    assert f"`tests/test_bad_inputs.py` runs {len(BATTERY)} such cases" in (ROOT / "docs" / "reliability.md").read_text()
    assert {STAGE_OF.get(c[1], c[1]) for c in BATTERY} == set(STAGES)


def test_an_os_error_is_one_line_naming_the_file(capsys):
    def full_disk(argv):
        raise OSError(28, "No space left on device", "results/gan/seed0/.checkpoint.pt.x.tmp")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(full_disk, [])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: results/gan/seed0/.checkpoint.pt.x.tmp: No space left on device\n"


def test_a_signal_whose_exception_was_swallowed_still_stops_the_stage(capsys):
    """The interpreter swallows an exception raised in a finaliser; the recorded signal is acted on."""
    reached = []

    def swallowing(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here
        except BaseException:
            pass  # as "Exception ignored in __del__" does
        reached.append("after")
        check_stop()
        reached.append("not reached")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(swallowing, [])
    assert exit_info.value.code == 143 and reached == ["after"]
    assert capsys.readouterr().err == "error: terminated (SIGTERM); rerun to resume\n"


def test_a_signal_during_a_progress_line_leaves_the_error_line_on_its_own(monkeypatch):
    """The handler runs as soon as the first write returns: the progress line is whole by then."""
    class SignalOnFirstWrite(io.StringIO):
        sent = False

        def write(self, text):
            written = super().write(text)
            if not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGTERM)
            return written

    stderr = SignalOnFirstWrite()
    monkeypatch.setattr(sys, "stderr", stderr)

    def progress(argv):
        say("train gan: step 20/100 d_loss=1.3716 (4940 img/s)")
        time.sleep(1)

    with pytest.raises(SystemExit) as exit_info:
        run_cli(progress, [])
    assert exit_info.value.code == 143
    assert stderr.getvalue().splitlines() == ["train gan: step 20/100 d_loss=1.3716 (4940 img/s)",
                                              "error: terminated (SIGTERM); rerun to resume"]


# --- downloads that end badly -----------------------------------------------------------------------

def test_a_server_that_closes_without_answering_is_one_error_line(copy, capsys):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def close_every_connection() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.close()

    threading.Thread(target=close_every_connection, daemon=True).start()
    param("dataset.name", "fashion_mnist")()
    before = snapshot(copy)
    port = listener.getsockname()[1]
    ARGS["data_remote"] = ARGS["data"] + ["--local-dir", str(copy / "none"), "--url", f"http://127.0.0.1:{port}/"]
    STAGE_OF["data_remote"] = "data"
    try:
        code, lines = run_stage("data_remote", capsys)
    finally:
        listener.close()
    assert code == 1 and len(lines) == 1 and "no valid answer (RemoteDisconnected" in lines[0], lines
    assert snapshot(copy) == before


# --- processes: signals, kills, leftovers --------------------------------------------------------------

def train_process(root: Path, steps: int) -> subprocess.Popen:
    param("train.steps", steps)()
    set_params(change=lambda p: p["train"].update(checkpoint_every=10, log_every=10))()
    return subprocess.Popen([PYTHON, "-m", "pipeline.stages.train", *ARGS["train"]], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                             (signal.SIGINT, 130, "interrupted (SIGINT)")])
def test_a_signal_stops_training_with_one_line_and_a_resumable_checkpoint(copy, sig, code, word):
    shutil.rmtree(RUN)
    proc = train_process(copy, steps=100_000)
    try:
        wait_for(copy / RUN / PARTIAL, proc)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"still running 60 s after {word}; its stderr ends: {proc.communicate()[1][-2000:]}")
    finally:
        proc.kill()
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == f"error: {word}; rerun to resume"
    left = sorted(p.name for p in (copy / RUN).iterdir())
    assert left == [PARTIAL], left  # no final outputs, no temporary files


def test_stale_temporary_files_of_a_killed_write_are_removed_on_the_next_run(copy):
    stale = [copy / RUN / f".{PARTIAL}.abc123.tmp", copy / RUN / ".checkpoint.pt.def456.tmp"]
    for path in stale:
        path.write_bytes(b"")
    (copy / RUN / "checkpoint.pt").unlink()
    proc = train_process(copy, steps=20)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert not any(p.exists() for p in stale)
    assert not list((copy / RUN).glob(".*.tmp"))


def test_an_unreadable_partial_checkpoint_is_set_aside_and_training_starts_afresh(copy):
    (copy / RUN / "checkpoint.pt").unlink()
    (copy / RUN / PARTIAL).write_bytes(b"\x80\x02truncated")
    proc = train_process(copy, steps=20)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    aside = copy / RUN / f"{PARTIAL}.unreadable"
    assert aside.read_bytes() == b"\x80\x02truncated"
    assert f"set aside as {RUN}/{PARTIAL}.unreadable, starting afresh" in err
    assert torch.load(copy / RUN / "checkpoint.pt", weights_only=True)["step"] == 20


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace(b"  steps: 2400\n", b"  steps: 2400\n  steps: 10\n", 1),
     "error: params.yaml: not valid YAML (key 'steps' appears twice in one mapping (line"),
    (lambda text: b"# caf\xe9 (Latin-1)\n" + text, "error: params.yaml: not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8"),
])
def test_snakemake_refuses_a_params_yaml_it_would_misread(tmp_path, edit, message):
    from conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    (repo / "params.yaml").write_bytes(edit((repo / "params.yaml").read_bytes()))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=repo, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_report_refuses_runs_scored_under_different_protocols(tmp_path):
    """Two runs' fid files in different feature spaces or sample counts cannot sit in one table."""
    def fid(**changes) -> dict:
        return {"metric": "fid", "dataset": "digits", "value": 3.0, "backbone": "efficientnet_lite0", "input_size": 32,
                "n_fake": 500, "per_seed": {"0": {"value": 3.0}}, **changes}

    params = {"dataset": {"name": "digits"}}
    results_table.check_results(params, tmp_path, {("gan", "fid"): fid(), ("cgan", "fid"): fid(value=2.0)})
    for change, message in (({"backbone": "inception"}, "has backbone 'inception' but"),
                            ({"n_fake": 13}, "has n_fake 13 but")):
        with pytest.raises(PipelineError, match=f"cgan/fid.json {message} {tmp_path}/gan/fid.json"):
            results_table.check_results(params, tmp_path, {("gan", "fid"): fid(), ("cgan", "fid"): fid(**change)})


@pytest.mark.parametrize("stage, argv, fail_at, outputs", [
    ("sample", ARGS["sample"], 3, [f"{RUN}/{n}" for n in ("samples.npy", "conditions.npy", "samples.png")]),
    ("evaluate", ["--params", "params.yaml", "--metric", "fid", "lpips", "--run", RUN, "--data", "data"], 2,
     [f"{RUN}/fid.json"]),
    ("report", ARGS["report"], 4, [f"results/{n}" for n in ("metrics.parquet", "metrics.csv", "plots/metrics.png")]),
    ("knn", ARGS["knn"], 2, [f"results/knn/{n}" for n in ("neighbours.parquet", "centres.parquet", "knn.json")]),
    ("reference", ARGS["reference"], 3, [f"results/reference/backbone/{n}" for n in ("features.npy", "stats.npz")]),
    ("data", ARGS["data"], 3, [f"data/{n}" for n in ("images.npy", "labels.npy")]),
])
def test_a_full_disk_midway_leaves_the_previous_outputs_whole(copy, capsys, monkeypatch, stage, argv, fail_at, outputs):
    """A stage's outputs appear together or not at all (pipeline/io.py all_or_nothing): the disk
    fills at its fail_at-th file, and the files written before it are still the previous run's."""
    import tempfile

    run_cli(STAGES[stage].main, argv)  # a complete previous set, lpips.json and the report's included
    for name in outputs:  # marked, since a rerun would write the same bytes
        Path(name).write_bytes(b"previous output\n")
    before = snapshot(copy)
    real, calls = tempfile.mkstemp, []

    def mkstemp(*args, **kwargs):
        calls.append(kwargs.get("prefix"))
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device", kwargs.get("dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(STAGES[stage].main, argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 1 and len(lines) == 1 and "No space left on device" in lines[0], lines
    assert len(calls) == fail_at and snapshot(copy) == before


def test_a_checkpoint_write_on_a_full_disk_is_one_line(copy, capsys, monkeypatch):
    """torch.save reports ENOSPC as a RuntimeError of its zip writer (as measured on a full disk)."""
    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    before = snapshot(copy)
    code, lines = run_stage("train", capsys)
    errors = [line for line in lines if line.startswith("error: ")]  # after the progress lines
    assert code == 1 and errors == lines[-1:], lines
    assert lines[-1].startswith(f"error: {RUN}/checkpoint.partial.pt: the checkpoint could not be written (")
    assert lines[-1].endswith("MiB free on its disk); free space and rerun to resume")
    assert snapshot(copy) == before


def test_aggregate_keeps_per_seed_outcome_counts_that_differ(tmp_path):
    """The number of within-condition LPIPS pairs depends on each seed's samples: it may differ across
    seeds (kept per seed), while sample counts may not."""
    seeds = [{"metric": "lpips", "method": "p2gan_posterior", "seed": s, "value": 4.0 + s, "n_fake": 500,
              "n_condition_pairs": 100 + s, "dataset": "digits"} for s in range(2)]
    paths = [tmp_path / f"seed{s}.json" for s in range(2)]
    aggregate.check_inputs(seeds, paths)
    result = aggregate.aggregate(seeds)
    assert result["per_seed"]["1"]["n_condition_pairs"] == 101 and result["n_fake"] == 500
    seeds[1]["n_fake"] = 400
    with pytest.raises(PipelineError, match="has n_fake 400 but"):
        aggregate.check_inputs(seeds, paths)


def _commands() -> list[Path]:
    """Every file of pipeline/, scripts/ and benchmarks/ that parses a command line."""
    files = (p for folder in ("pipeline", "scripts", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py")))
    return [p.relative_to(ROOT) for p in files if "CommandLine(" in p.read_text() and p.name != "errors.py"]


def test_every_command_line_is_parsed_by_the_shared_parser():
    plain = [str(p.relative_to(ROOT)) for folder in ("pipeline", "scripts", "benchmarks")
             for p in (ROOT / folder).rglob("*.py") if "argparse.ArgumentParser(" in p.read_text()]
    assert plain == [] and len(_commands()) >= 30


@pytest.mark.parametrize("path", _commands(), ids=str)
def test_a_command_line_mistake_is_one_line_naming_it(path, capsys):
    name = ".".join(path.with_suffix("").parts)
    prog = f"python -m {name}" if path.parts[0] == "pipeline" else str(path)
    with pytest.raises(SystemExit) as exit:
        importlib.import_module(name).main(["--no-such-option"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {prog}: ") and err.endswith(f"; see {prog} --help\n"), err
    assert "unrecognized arguments: --no-such-option" in err or "the following arguments are required" in err, err


def test_a_malformed_option_value_is_one_line_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit:
        train.main(["--seed", "one"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err == ("error: python -m pipeline.stages.train: argument --seed: invalid int "
                                            "value: 'one'; see python -m pipeline.stages.train --help\n")
