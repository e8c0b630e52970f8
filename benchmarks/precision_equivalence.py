"""Does bf16 training change what the study concludes? Per-seed scores of the same runs trained in
fp32 and in bf16, and an equivalence test of their difference.

    .venv/bin/python benchmarks/precision_equivalence.py --fp32 results --bf16 ../bf16/results --runs cgan biggan

Both folders are finished studies (``results/<run>/<metric>.json`` with ``per_seed`` values, as the
aggregate stage writes them) that differ only in ``train.precision``. The design, fixed before either
was run:

- **paired by seed**: a seed draws the same initial weights, batches and noise in both precisions
  (pipeline/streams.py), so the per-seed difference bf16 - fp32 is the unit;
- **equivalence margin**: 10% of the run's fp32 mean (``--margin 0.1``). At ten seeds the study's
  primary FD claims detect differences of about 15% of the baseline's FD (the README's detectable
  column), so a precision effect inside 10% is smaller than anything a verdict can see;
- **test**: two one-sided t tests at 5% (TOST): the 90% interval of the mean paired difference lies
  inside (-margin, +margin): "equivalent"; an interval that excludes 0 is also reported as a
  difference, since bf16 might shift scores consistently while staying inside the margin.

Prints a markdown table (and writes ``--out``): per run, both precisions' mean ± sd over seeds, the
difference with its 90% interval, the margin and the outcome.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import CommandLine  # noqa: E402

MARGIN = 0.1
LEVEL = 0.90  # two one-sided tests at 5%


def per_seed(results: Path, run: str, metric: str) -> dict[int, float]:
    path = results / run / f"{metric}.json"
    if not path.is_file():
        raise SystemExit(f"error: {path}: missing; run the study's aggregate stage for {run} first")
    values = json.loads(path.read_text()).get("per_seed")
    if not isinstance(values, dict):
        raise SystemExit(f"error: {path}: no per_seed values (not an aggregate stage output)")
    return {int(seed): float(v["value"] if isinstance(v, dict) else v) for seed, v in values.items()}


def equivalence(fp32: dict[int, float], bf16: dict[int, float], margin: float) -> dict:
    """The paired comparison of ``bf16`` against ``fp32`` (seed -> score) with margin ``margin`` x fp32 mean."""
    seeds = sorted(set(fp32) & set(bf16))
    if len(seeds) < 2:
        raise SystemExit(f"error: {len(seeds)} seed(s) in both precisions; equivalence needs at least 2")
    a, b = np.array([fp32[s] for s in seeds]), np.array([bf16[s] for s in seeds])
    d = b - a
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(d) - 1) * sd / math.sqrt(len(d)))
    bound = margin * float(a.mean())
    low, high = mean - half, mean + half
    equivalent = -bound < low and high < bound
    shifted = low > 0 or high < 0
    outcome = ("equivalent" if equivalent else "not shown equivalent") + ("; the interval excludes 0" if shifted else "")
    return {"seeds": seeds, "fp32": (float(a.mean()), float(a.std(ddof=1))), "bf16": (float(b.mean()), float(b.std(ddof=1))),
            "difference": mean, "low": low, "high": high, "margin": bound, "outcome": outcome,
            "correlation": float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan}


def table(rows: dict[str, dict], metric: str, margin: float) -> str:
    lines = [f"| run | seeds | {metric} fp32 | {metric} bf16 | bf16 - fp32 [90% interval] | margin (±{margin:.0%} of fp32) "
             "| per-seed correlation | outcome |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run, r in rows.items():
        lines.append(f"| {run} | {len(r['seeds'])} | {r['fp32'][0]:.4g} ± {r['fp32'][1]:.3g} | {r['bf16'][0]:.4g} ± "
                     f"{r['bf16'][1]:.3g} | {r['difference']:.4g} [{r['low']:.4g}, {r['high']:.4g}] | "
                     f"±{r['margin']:.4g} | {r['correlation']:.2f} | {r['outcome']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/precision_equivalence.py", description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True, help="results/ of the study trained in fp32")
    parser.add_argument("--bf16", type=Path, required=True, help="results/ of the same study trained in bf16")
    parser.add_argument("--runs", nargs="+", required=True, help="runs to compare (names under study.methods)")
    parser.add_argument("--metric", default="fid", help="the aggregate json compared (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=MARGIN, help="equivalence margin, a fraction of the fp32 mean "
                        "(default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    rows = {run: equivalence(per_seed(args.fp32, run, args.metric), per_seed(args.bf16, run, args.metric), args.margin)
            for run in args.runs}
    text = table(rows, args.metric, args.margin)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    sys.exit(main())
