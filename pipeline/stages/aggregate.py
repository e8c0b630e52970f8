"""aggregate stage: a method's per-seed metric jsons -> results/<method>/<metric>.json.

Measured numbers get mean, std (sample std, null with one seed) and per-seed values (settings such
as sample counts, ``k`` or ``input_size`` are not averaged); ``value`` and
``std`` at the top level are the headline metric's. Fields
that are the same for every seed (name, backbone, sample counts) are copied. The inputs must be one
metric of one method, one file per seed (distinct seeds), under one protocol (every field that is not
a measurement equal in all of them), with finite measurements.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.io import is_number, is_seed, load_json_object, save_json


PROTOCOL = {"seed", "input_size", "k", "alpha"}  # and every n_* count: settings, not measurements ...
OUTCOMES = {"n_condition_pairs"}  # ... but this one depends on the seed's samples: kept per seed


def is_measurement(key: str, value: object) -> bool:
    return is_number(value) and key not in PROTOCOL and (not key.startswith("n_") or key in OUTCOMES)


def check_inputs(per_seed: list[dict], paths: list[Path]) -> None:
    """One metric of one method (names), distinct seeds (non-negative integers), one protocol (every field
    that is not a measurement equal across seeds: backbone, input size, sample counts, dataset, ...), finite
    measurements."""
    for r, path in zip(per_seed, paths):
        for key in ("metric", "method"):
            if not isinstance(r[key], str):
                raise PipelineError(f"aggregate: {path}: {key} {r[key]!r} is not a name; rerun its evaluation")
        if not is_seed(r["seed"]):
            raise PipelineError(f"aggregate: {path}: seed {r['seed']!r} is not a non-negative integer; rerun its "
                                "evaluation")
    for key in ("metric", "method"):
        found = {r[key] for r in per_seed}
        if len(found) > 1:
            raise PipelineError(f"aggregate: the inputs mix {key}s {', '.join(sorted(map(str, found)))}; give one "
                                f"{key}'s per-seed files")
    seen: dict = {}
    for r, path in zip(per_seed, paths):
        if r["seed"] in seen:
            raise PipelineError(f"aggregate: {path} and {seen[r['seed']]} are both seed {r['seed']}; give each seed once")
        seen[r["seed"]] = path
        for key, v in r.items():
            if key == "value" and not is_measurement(key, v) or is_measurement(key, v) and not np.isfinite(v):
                raise PipelineError(f"aggregate: {path}: {key} {v!r} is not a finite number; rerun its evaluation")
    first, where = per_seed[0], paths[0]
    for r, path in zip(per_seed[1:], paths[1:]):
        for key in sorted((set(first) | set(r)) - {"seed"}):
            a, b = first.get(key, "(absent)"), r.get(key, "(absent)")
            if not (is_measurement(key, a) and is_measurement(key, b)) and a != b:
                raise PipelineError(f"aggregate: {path} has {key} {b!r} but {where} has {a!r}: seeds evaluated under "
                                    "different settings cannot be averaged; rerun their evaluation with one configuration")


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
    parser = CommandLine(prog="python -m pipeline.stages.aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="per-seed jsons, e.g. results/gan/seed0/fid.json")
    parser.add_argument("--out", type=Path, required=True, help="e.g. results/gan/fid.json")
    args = parser.parse_args(argv)
    per_seed = [load_json_object(p, ("metric", "method", "seed", "value")) for p in args.inputs]
    check_inputs(per_seed, args.inputs)
    result = aggregate(per_seed)
    save_json(args.out, result)
    print(f"aggregate: {args.out}: {result.get('name', '')} {result['value']} over {result['n_seeds']} seed(s)")


if __name__ == "__main__":
    run_cli(main)
