"""sample stage: draw ``sample.n`` images from a trained method into its run folder.

samples.npy is uint8 N,H,W,C like data/images.npy; samples.png a grid of about ``sample.grid`` of them
(a class per column for class-conditional runs);
conditions.npy the int64 condition id of each sample (-1: unconditional); samples.json says how
the conditions were chosen (classes, instances, posteriors of real images).
The EMA generator is used when training kept one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import config, context, machine
from pipeline.errors import CommandLine, run_cli
from pipeline.images import condition_columns, save_grid
from pipeline.io import all_or_nothing, save_json, save_npy


def draw(params: dict, method: str, run_dir: Path, data_dir: Path, inputs: dict[str, Path],
         phase: str = "sample") -> tuple[np.ndarray, np.ndarray, dict]:
    """The run's samples, condition ids and samples.json record. The draws come from the seed's
    ``phase``/ streams (pipeline/streams.py): the study's set is ``sample``; another phase name draws
    another set, shared by every run at the seed (benchmarks/noise_sources.py)."""
    m, state = context.restore(params, method, run_dir, data_dir, inputs)
    m.phase = phase
    n, bs = params["sample"]["n"], params["sample"]["batch_size"]
    cond, how = m.sample_conditions(n)
    out = m.sample_images(n, cond, bs, desc=f"sample {method}")
    meta = {"method": method, "method_class": state["hp"]["method"], "seed": state["seed"], "n": n, "step": state["step"],
            "generator": "ema" if state["ema"] is not None else "raw", **how,
            "trained_on": state.get("machines", [machine.UNRECORDED])}
    ids = np.full(n, -1, np.int64) if cond is None else cond.cpu().numpy().astype(np.int64)
    return out, ids, meta


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.sample", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--method", required=True, help="a run named in params.yaml methods:")
    parser.add_argument("--run", type=Path, required=True, help="run folder with checkpoint.pt (outputs go there)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    for need in ("features", "neighbours", "centres"):
        parser.add_argument(f"--{need}", type=Path, help=f"{need} file (instance-conditioned methods)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    inputs = {k: getattr(args, k) for k in ("features", "neighbours", "centres") if getattr(args, k)}
    images, ids, meta = draw(params, args.method, args.run, args.data, inputs)
    with all_or_nothing():  # the four files together, or the previous ones kept
        save_npy(args.run / "samples.npy", images)
        save_npy(args.run / "conditions.npy", ids)
        save_grid(*condition_columns(images, ids, params["sample"]["grid"]), path=args.run / "samples.png")
        save_json(args.run / "samples.json", meta)
    print(f"sample: {len(images)} images from {args.method} seed {meta['seed']} -> {args.run}/samples.npy")


if __name__ == "__main__":
    run_cli(main)
