"""reference stage: real-data artefacts computed once per dataset and reused by every method.

``--name backbone``: features of ``evaluate.n_real`` training images (a fixed random subset,
seed 0) in the evaluation backbone; their mean and covariance (stats.npz: mu, sigma, n and the
factor of sigma that FD uses), read by fid, kid and prdc; and what kid and prdc need of the real
features alone (real_terms.npz: KID's within-real subset sums, PRDC's real radii, for those of the
two in ``evaluate.metrics``; computed once here instead of in every evaluation). ``--name ndb``:
the NDB bins (pipeline.metrics.ndb); ``--name classifier``: the real-data classifier of the
classes metric (pipeline.metrics.classes); ``--name spaces``: each of ``evaluate.spaces``' real
statistics (pipeline.metrics.fd_spaces). Every folder gets a reference.json recording what it was
computed from; an evaluation checks its ``settings`` (catalogue.reference_settings) before reading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline import backbones, catalogue, config, context
from pipeline.errors import CommandLine, run_cli
from pipeline.io import all_or_nothing, save_json, save_npy, save_npz
from pipeline.metrics import classes, fd_spaces, kid, ndb, prdc
from pipeline.metrics.fid import RunningStats, live_features, save_real
from pipeline.metrics.gram import REAL_TERMS, Products
from pipeline.subsets import SUBSET_SEED, real_rows


def build_backbone(params: dict, images: np.ndarray, labels: np.ndarray, out: Path) -> dict:
    ev = params["evaluate"]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = backbones.load(ev["backbone"], ev["input_size"], dev, ev["resize"])
    real = real_rows(images, ev["n_real"], "evaluate.n_real")  # FD needs more than the feature dimension: fid checks
    stats = RunningStats(backbone.dim)
    feats = np.empty((len(real), backbone.dim), np.float32)
    start = 0
    for batch in backbones.feature_batches(backbone, real, ev["batch_size"], dev, desc="reference features"):
        stats.update(batch)
        feats[start:start + len(batch)] = batch
        start += len(batch)
    mu, sigma = stats.result()
    live = live_features(sigma, f"{backbone.name} at {backbone.input_size} px", "raise evaluate.input_size")
    real = Products(feats, np.empty((0, backbone.dim), np.float32))
    terms, settings = {}, {}  # only for the metrics measured: at 50,000 real rows each costs hours of CPU
    if "kid" in ev["metrics"]:
        terms["kid_within"] = kid.real_within(real, ev["n_fake"], ev["kid_subsets"], ev["kid_subset_size"])
        settings["kid_within"] = {"kid_subsets": ev["kid_subsets"], "kid_subset_size": ev["kid_subset_size"],
                                  "n_fake": ev["n_fake"]}
    if "prdc" in ev["metrics"]:
        terms["prdc_radii"] = prdc.real_radii(real, ev["prdc_k"])
        settings["prdc_radii"] = {"prdc_k": ev["prdc_k"]}
    save_npy(out / "features.npy", feats)
    save_real(out / "stats.npz", mu, sigma, stats.n)
    save_npz(out / REAL_TERMS, **terms)
    return {"backbone": backbone.name, "input_size": backbone.input_size, "resize": backbone.resize, "n_real": stats.n,
            "dim": backbone.dim, "live_features": live, "real_terms": settings}


BUILDERS: dict[str, Callable[[dict, np.ndarray, np.ndarray, Path], dict]] = {
    "backbone": build_backbone, "ndb": ndb.build_reference, "classifier": classes.build_reference,
    "spaces": fd_spaces.build_reference}


def build(params: dict, name: str, images: np.ndarray, labels: np.ndarray, out: Path, **extra) -> dict:
    """Reference ``name`` in ``out``: its files and the reference.json that describes them (what it was
    built from, checked by every evaluation that reads it), all of them or none; returns that record."""
    with all_or_nothing():
        meta = BUILDERS[name](params, images, labels, out, **extra)
        meta = {"name": name, "dataset": params["dataset"]["name"], "subset_seed": SUBSET_SEED,
                "settings": catalogue.reference_settings(params, name), **meta}
        save_json(out / "reference.json", meta)
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.reference", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--name", required=True, choices=sorted(BUILDERS))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, required=True, help="e.g. results/reference/backbone")
    parser.add_argument("--encoder", type=Path, help="spaces: the features stage's SimCLR encoder (simclr space)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    context.limit_threads(params["train"]["threads"])
    images, labels, _ = context.read_data(args.data)  # images memory-mapped: read as used, subsets and batches
    extra = {"encoder": args.encoder} if args.name == "spaces" else {}
    meta = build(params, args.name, images, labels, args.out, **extra)
    print(f"reference: {args.name} -> {args.out} {meta}")


if __name__ == "__main__":
    run_cli(main)
