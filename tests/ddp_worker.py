"""Run by tests/test_distributed.py under torchrun: train runs step by step in every process.

After every step each rank hashes its networks and EMA; the ranks must hold identical weights.
Rank 0 saves each run's final weights (``<out>/<run>.pt``), for comparison with other process
counts. ``--frozen-bn`` keeps every BatchNorm layer in eval mode (running statistics), which takes
away the one thing that differs with the process count on CPU: per-process batch statistics.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

from pipeline import config, distributed
from pipeline.catalogue import run_needs
from pipeline.errors import fail, run_cli
from pipeline.stages.train import build

INPUTS = {"features": "results/features/features.npy", "neighbours": "results/knn/neighbours.parquet",
          "centres": "results/knn/centres.parquet"}


def digest(trainer) -> str:
    h = hashlib.sha256()
    tensors = [*trainer.plain.state_dict().values(), *(trainer.ema.state_dict().values() if trainer.ema else [])]
    for t in tensors:
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frozen-bn", action="store_true")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    world = distributed.start(params["train"]["gpus"] * params["train"]["nodes"])
    try:
        for run in args.runs:
            inputs = {need: Path(INPUTS[need]) for need in run_needs(params, run)}
            trainer = build(params, run, 0, Path("data"), args.out / run, inputs, world)
            distributed.wrap(trainer.m.nets, world)
            trainer.m.nets.train()
            if args.frozen_bn:
                for module in trainer.m.nets.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
            for step in range(1, args.steps + 1):
                trainer.one_step()
                hashes = distributed.gather(digest(trainer), world)
                if len(set(hashes)) > 1:
                    fail(f"{run}: the ranks' weights differ after step {step}")
            if world.main:
                args.out.mkdir(parents=True, exist_ok=True)
                torch.save(trainer.plain.state_dict(), args.out / f"{run}.pt")
                print(f"ddp_worker: {run} {args.steps} steps on {world.size} process(es)", file=sys.stderr)
    finally:
        distributed.stop(world)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    run_cli(main)
