"""features stage: embed every image with ``features.extractor``; writes features.npy and probe.json in --out.

features.npy is float32 N,D, L2-normalised, row i for image i of data/images.npy;
features_flip.npy the same for the horizontally flipped images when ``features.hflip`` is on (as
IC-GAN stores them); encoder.pt the trained encoder when the extractor is ``simclr``. probe.json
holds the linear-probe and kNN accuracy of the features on a fixed train/held-out split, and the
same scores of the baselines (SimCLR's encoder with its initial random weights; raw pixels).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch.nn as nn

from pipeline import config, context
from pipeline.errors import CommandLine, run_cli
from pipeline.features import REGISTRY, Setup, embed
from pipeline.features import probe
from pipeline.io import all_or_nothing, save_json, save_npy


def run(params: dict, data_dir: Path, out: Path) -> tuple[np.ndarray, dict]:
    """Write the stage's outputs in ``out``; return the features and the probe report."""
    cfg = params["features"]
    images, labels, _ = context.read_data(data_dir)
    dev = context.device(params["train"]["threads"])
    name, bs = cfg["extractor"], cfg["batch_size"]
    start = time.perf_counter()
    extractor = REGISTRY[name](Setup(images, cfg, dev, out, params["train"].get("data_budget_mb")))
    feats = embed(extractor.net, images, bs, dev, name)
    flipped = embed(lambda x: extractor.net(x.flip(-1)), images, bs, dev, f"{name} flipped") if cfg["hflip"] else None
    seconds = time.perf_counter() - start

    pc = cfg["probe"]
    train, test = probe.split(len(images), pc["n_train"], pc["n_test"], cfg["seed"])
    report = {"extractor": name, "n": len(feats), "dim": feats.shape[1], "seconds": round(seconds, 1),
              "n_train": len(train), "n_test": len(test), "knn_k": min(pc["k"], len(train)), "seed": cfg["seed"],
              **probe.scores(feats, labels, train, test, pc["k"]), **extractor.info}
    baselines = dict(extractor.baselines, **({} if name == "pixels" else {"pixels": nn.Flatten()}))
    report["baselines"] = {base: probe.net_scores(net, images, labels, train, test, pc["k"], bs, dev, base)
                           for base, net in baselines.items()}
    save_npy(out / "features.npy", feats)
    if flipped is not None:
        save_npy(out / "features_flip.npy", flipped)
    save_json(out / "probe.json", report)
    return feats, report


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.features", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/features"), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    with all_or_nothing():  # features, probe report and encoder describe one run: all of them or none
        feats, report = run(params, args.data, args.out)
    lines = [f"{k}: linear {v['linear_probe_accuracy']:.4f}, kNN {v['knn_accuracy']:.4f}" for k, v in report["baselines"].items()]
    print(f"features: {report['extractor']} {feats.shape} in {report['seconds']} s; linear probe "
          f"{report['linear_probe_accuracy']:.4f}, kNN {report['knn_accuracy']:.4f} (baselines: {'; '.join(lines) or 'none'})")


if __name__ == "__main__":
    run_cli(main)
