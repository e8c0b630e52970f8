"""Training compute of a study, counted: FLOPs per training step of each run, per run and in all.

    .venv/bin/python benchmarks/study_cost.py studies/icgan-imagenet64.yaml [more studies] [--peak-tflops 312]
    .venv/bin/python benchmarks/study_cost.py --peak-tflops 0.2   # the default study (params.yaml alone)

The study file is merged over params.yaml as Snakemake merges a ``--configfile`` and validated. For each
trained run of ``study.methods`` the method is built at the study's settings (backbone, width, z_dim,
resolution, the run's own settings) on random stand-in data of the study's shape, and PyTorch's
FlopCounterMode counts the floating-point operations (matrix multiplies and convolutions, forward
and backward) of one training step: ``train.n_dis`` D steps and one G step. It counts at two small
batches and extrapolates linearly to ``train.batch_size`` (these layers' FLOPs are affine in the
batch), then multiplies by ``train.steps`` and the number of seeds.

The hours are a floor, not a measurement: the study's training FLOPs at a device's peak
(``--peak-tflops``: default 312, an A100's dense bf16; 989 for an H100 SXM; for a CPU, the matmul
GFLOP/s that ``benchmarks/train_speed.py`` prints, times its cores, over 1,000). Nothing trains these
networks at its peak, so the hours a study takes are a multiple of the floor; measure the real rate with
``benchmarks/train_speed.py`` on the GPU (docs/configuration.md, "Per-paper studies"). Sampling and evaluation
are not counted.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from pipeline import config, context  # noqa: E402
from pipeline.catalogue import trained_as, trained_runs  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.methods import TrainData  # noqa: E402
from train_speed import bare_loop  # noqa: E402  (the trainer's D and G steps, nothing else)

ROOT = Path(__file__).resolve().parents[1]
COUNT_BATCHES = (4, 8)  # the step is counted at these batches and extrapolated to train.batch_size
STANDIN_IMAGES = 64
CLASSES = {"fashion_mnist": 10, "digits": 10, "cifar10": 10, "cifar100": 100, "stl10": 10}
CHANNELS = {"fashion_mnist": 1, "digits": 1}


def study_params(path: Path | None) -> dict:
    """params.yaml with the study (if any) merged over it, validated."""
    params = config.read_yaml(ROOT / config.DEFAULT_PARAMS)
    if path is not None:
        config._merge(params, config.read_yaml(path) or {})
    return config.validate(params, str(path or config.DEFAULT_PARAMS))


def feature_dim(params: dict, resolution: int, channels: int) -> int:
    """The width of the features the features stage writes (icgan's conditioning)."""
    feats = params["features"]
    return {"swav": 2048, "efficientnet_lite0": 1280, "simclr": 4 * feats["simclr"]["width"],
            "pixels": resolution * resolution * channels}[feats["extractor"]]


def standin_data(params: dict, classes: int) -> TrainData:
    """Random images, labels and instance inputs of the study's shapes (a step's FLOPs ignore values)."""
    ds, knn = params["dataset"], params["knn"]
    res, channels = ds["resolution"], CHANNELS.get(ds["name"], 3)
    g = torch.Generator().manual_seed(0)
    n = max(STANDIN_IMAGES, knn["k"] + 1)
    return TrainData(
        images=torch.randint(0, 256, (n, res, res, channels), generator=g, dtype=torch.uint8),
        labels=torch.arange(n) % classes,
        n_classes=classes,
        features=F.normalize(torch.randn(n, feature_dim(params, res, channels), generator=g), dim=1),
        neighbours=torch.randint(n, (n, knn["k"]), generator=g),
        centres=torch.randperm(n, generator=g)[: min(knn["centres"], n)],
    )


def step_flops(params: dict, run: str, data: TrainData, batch: int) -> int:
    """FLOPs of one training step of ``run`` (n_dis D updates and one G update) at ``batch``."""
    m = context.build(params["methods"][run], params["train"], data, torch.device("cpu"), seed=0)
    counter = FlopCounterMode(display=False)
    with counter:
        bare_loop(m, 1, batch, params["train"]["n_dis"])
    return counter.get_total_flops()


def run_flops(params: dict, run: str, data: TrainData) -> float:
    """FLOPs of one step at train.batch_size, extrapolated from the two counted batches."""
    (b1, b2), batch = COUNT_BATCHES, params["train"]["batch_size"]
    f1, f2 = (step_flops(params, run, data, b) for b in COUNT_BATCHES)
    return f1 + (f2 - f1) / (b2 - b1) * (batch - b1)


def report(path: Path | None, peak_tflops: float, classes: int | None) -> float:
    """Print the study's table; return its total training FLOPs."""
    params = study_params(path)
    train = params["train"]
    name = params["dataset"]["name"]
    data = standin_data(params, classes or CLASSES.get(name, 1))
    seeds, steps, batch = len(train["seeds"]), train["steps"], train["batch_size"]
    print(f"{path.name if path else 'params.yaml'}: {name} at {params['dataset']['resolution']} px, {train['backbone']} width {train['width']}, "
          f"batch {batch}, {steps:,} steps, {seeds} seeds")
    print(f"  {'run':<16} {'GFLOP/step':>12} {'PFLOP/run':>11} {'floor h/run':>12}")
    total = 0.0
    for run in trained_runs(params):
        if (owner := trained_as(params, run)) != run:
            print(f"  {run:<16} {'trained once as ' + owner:>37}")
            continue
        per_step = run_flops(params, run, copy.copy(data))
        per_run = per_step * steps
        total += per_run * seeds
        print(f"  {run:<16} {per_step / 1e9:>12,.3g} {per_run / 1e15:>11,.3g} "
              f"{per_run / (peak_tflops * 1e12) / 3600:>12,.3g}")
    hours = total / (peak_tflops * 1e12) / 3600
    print(f"  all runs x {seeds} seeds: {total / 1e18:,.3g} EFLOP; at {peak_tflops:g} TFLOP/s at least "
          f"{hours:,.3g} hours ({hours * 60:,.3g} min)")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/study_cost.py", description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", type=Path, help="study files (studies/*.yaml; none: params.yaml's study)")
    parser.add_argument("--peak-tflops", type=float, default=312.0,
                        help="peak of the device(s), TFLOP/s (default: %(default)s, an A100's dense bf16)")
    parser.add_argument("--classes", type=int, help="classes of an image_folder dataset (class-conditional runs)")
    args = parser.parse_args(argv)
    for path in args.studies or [None]:
        report(path, args.peak_tflops, args.classes)


if __name__ == "__main__":
    main()
