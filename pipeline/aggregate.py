"""aggregate stage: a method's per-seed metric jsons -> results/<method>/<metric>.json.

Measured numbers get mean, std (sample std, null with one seed) and per-seed values (settings such
as sample counts, ``k`` or ``input_size`` are not averaged); ``value`` and
``std`` at the top level are the headline metric's, so ``dvc metrics show`` reads well. Fields
that are the same for every seed (name, backbone, sample counts) are copied.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError, run_cli
from pipeline.io import load_json, save_json


PROTOCOL = {"seed", "input_size", "k", "alpha", "sqrtm_offset"}  # and every n_* count: settings, not measurements


def is_measurement(key: str, value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and key not in PROTOCOL and not key.startswith("n_"))


def aggregate(per_seed: list[dict]) -> dict:
    if not per_seed:
        raise PipelineError("aggregate: no per-seed results given")
    numeric = [k for k, v in per_seed[0].items() if is_measurement(k, v)]
    constant = {k: v for k, v in per_seed[0].items()
                if k not in numeric and k != "seed" and all(r.get(k) == v for r in per_seed)}
    mean = {k: float(np.mean([r[k] for r in per_seed])) for k in numeric}
    std = {k: float(np.std([r[k] for r in per_seed], ddof=1)) if len(per_seed) > 1 else None for k in numeric}
    return {
        **constant,
        "value": mean.get("value"),
        "std": std.get("value"),
        "n_seeds": len(per_seed),
        "mean": mean,
        "stdev": std,
        "per_seed": {str(r["seed"]): {k: r[k] for k in numeric} for r in per_seed},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="per-seed jsons, e.g. results/gan/seed0/fid.json")
    parser.add_argument("--out", type=Path, required=True, help="e.g. results/gan/fid.json")
    args = parser.parse_args(argv)
    result = aggregate([load_json(p) for p in args.inputs])
    save_json(args.out, result)
    print(f"aggregate: {args.out}: {result.get('name', '')} {result['value']} over {result['n_seeds']} seed(s)")


if __name__ == "__main__":
    run_cli(main)
