"""train stage: train one run (a method with its settings) for one seed; writes checkpoint.pt and train_log.csv in --out.

Uses CUDA when present (bf16 autocast), else the CPU with ``train.threads`` threads. A rerun after
a kill resumes from the run folder's last partial checkpoint when the settings are unchanged. With
``train.gpus`` x ``train.nodes`` > 1 it runs as one of that many torchrun processes
(pipeline/distributed.py).
"""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline import checkpoint, config, context, distributed
from pipeline.catalogue import logged_settings
from pipeline.download import sha256_file
from pipeline.errors import CommandLine, fail, run_cli
from pipeline.io import load_json_object
from pipeline.trainer import Trainer


def run(params: dict, run_name: str, seed: int, data_dir: Path, out: Path, inputs: dict[str, Path],
        reference: Path | None = None) -> Trainer:
    world = distributed.start(params["train"]["gpus"] * params["train"]["nodes"])
    trainer = build(params, run_name, seed, data_dir, out, inputs, world, reference)
    try:
        trainer.fit()
    finally:
        distributed.stop(world)
    return trainer


def build(params: dict, run_name: str, seed: int, data_dir: Path, out: Path, inputs: dict[str, Path],
          world: distributed.World, reference: Path | None = None) -> Trainer:
    """The run's method on its data, in a trainer that has not started; with train.eval_every, one
    that scores FD and KID against the backbone reference in ``reference`` as it goes."""
    train, hp = params["train"], params["methods"][run_name]
    dev = context.device(train["threads"], world.local_rank)
    torch.manual_seed(seed)
    cls = context.method_class(hp["method"])
    data = context.load_data(data_dir, inputs, cls.needs, dev, train.get("data_budget_mb"))
    if len(data.images) < max(2, train["batch_size"]):
        fail(f"{data_dir}: {len(data.images)} training images; train needs at least train.batch_size "
             f"({train['batch_size']}) and 2")
    m = context.build(hp, train, data, dev, seed)
    m.rank, m.world = world.rank, world.size
    meta = load_json_object(data_dir / "meta.json", ("checksums_sha256", "count", "shape"))
    defining = {k: v for k, v in train.items() if k not in ("checkpoint_every", "log_every", "threads", "seeds", "data_budget_mb")}
    monitor = None
    if train["eval_every"] and world.main:
        if reference is None:
            fail("train.eval_every needs --reference, the backbone reference folder (results/reference/backbone)")
        from pipeline.monitor import QualityMonitor  # loads the backbone: only when asked for

        monitor = QualityMonitor(params, reference, dev)
    inputs_sha256 = {k: sha256_file(path) for k, path in sorted(inputs.items())}  # icgan's features and kNN graph
    return Trainer(
        m, out, steps=train["steps"], batch_size=train["batch_size"], n_dis=train["n_dis"],
        ema=hp["ema"], ema_start=hp["ema_start"],
        checkpoint_every=train["checkpoint_every"], log_every=train["log_every"],
        fingerprint=checkpoint.fingerprint(run_name, logged_settings(params, run_name), defining, seed, meta["checksums_sha256"], meta["count"],
                                           meta["shape"], dev.type, inputs_sha256),
        meta={"run": run_name, "hp": hp, "train": defining, "seed": seed, "device": dev.type}, world=world,
        monitor=monitor, eval_every=train["eval_every"], precision=train["precision"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.train", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--method", required=True, help="a run named in params.yaml methods: (its settings name its method)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="run folder, e.g. results/gan/seed0")
    for need in ("features", "neighbours", "centres"):
        parser.add_argument(f"--{need}", type=Path, help=f"{need} file (instance-conditioned methods)")
    parser.add_argument("--reference", type=Path, help="backbone reference folder (train.eval_every > 0)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    if args.method not in params["methods"]:
        fail(f"{args.params}: no run {args.method!r} under methods: (runs: {', '.join(params['methods'])})")
    inputs = {k: getattr(args, k) for k in ("features", "neighbours", "centres") if getattr(args, k)}
    with distributed.peer_failures():
        t = run(params, args.method, args.seed, args.data, args.out, inputs, args.reference)
    if t.world.main:
        print(f"train: {args.method} seed {args.seed}: {t.step} steps in {t.elapsed:.1f} s -> {args.out}")


if __name__ == "__main__":
    run_cli(main)
