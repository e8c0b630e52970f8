"""Tuning hygiene: a pair's settings chosen by one search, on seeds no verdict uses, alike for both sides.

    .venv/bin/python benchmarks/tune.py --comparison p2gan --seeds 200 201 202 \\
        --shared '[{sn: false}, {sn: true}]' \\
        --method-options '[{sigma_b: 0.1}, {sigma_b: 1.0}]' \\
        --baseline-options '[{a: -1.0, b: 1.0, c: 0.0}, {a: 0.0, b: 1.0, c: 1.0}]'

The rules it enforces, so that a search cannot favour the method:

- ``--seeds`` are disjoint from ``train.seeds`` and from the stability set (benchmarks/verdict_stability.py,
  ``--offset`` .. ``--offset`` + len(train.seeds) - 1): no verdict is judged on a seed that chose a setting.
- ``--shared`` options set recipe keys the pair must hold equal (keys outside the comparison's
  ``differs_in``): both runs are trained at every shared option, and the option is chosen by the pair's
  mean score (method and baseline weigh alike).
- ``--method-options`` and ``--baseline-options`` set each side's own keys (in ``differs_in``); the two
  lists have the same length (the same search for both) or are both empty (none for either). Given the
  shared option, each side takes its own best.
- The score is the comparison's first primary metric (its claim's direction), per run and seed, by the
  study's own training, sampling and evaluation; each option's score is its mean over ``--seeds``.

Snakemake trains the variants in ``--workdir`` (a git worktree of HEAD, as verdict_stability.py makes;
its data, features and references are reused) as extra runs ``tune_<run>_<i>`` defined in a
``--configfile``, so params.yaml is untouched. The table of every option's per-seed scores and the
choice goes to ``--out`` and stdout, with the commit and the machine's default training img/s.
Applying the choice to params.yaml is left to the user, who states it in the README.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import train_speed  # noqa: E402
from benchmarks.verdict_stability import prepare, snakemake  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def options(text: str) -> list[dict]:
    """A YAML list of option mappings (argparse type)."""
    value = yaml.safe_load(text)
    if not isinstance(value, list) or not all(isinstance(v, dict) and v for v in value):
        raise argparse.ArgumentTypeError(f"expected a YAML list of non-empty mappings, e.g. '[{{sn: false}}, {{sn: true}}]', got {text!r}")
    return value


def verdict_seeds(params: dict, offset: int) -> set[int]:
    """The seeds a verdict is judged on: ``train.seeds`` and the stability set from ``offset``."""
    seeds = params["train"]["seeds"]
    return {*seeds, *range(offset, offset + len(seeds))}


def check(params: dict, name: str, seeds: list[int], forbidden: set[int], shared: list[dict],
          own: dict[str, list[dict]]) -> None:
    """The search rules of the module docstring; SystemExit with one line naming the broken one."""
    comp = params["comparisons"].get(name)
    if comp is None:
        raise SystemExit(f"error: no comparison {name!r} in params.yaml (known: {', '.join(params['comparisons'])})")
    if clash := sorted(set(seeds) & forbidden):
        raise SystemExit(f"error: tuning seeds {clash} are verdict or stability seeds; choose seeds outside {sorted(forbidden)}")
    differs = set(comp["differs_in"])
    for opt in shared:
        if bad := sorted(set(opt) & differs):
            raise SystemExit(f"error: --shared keys {bad} are in comparisons.{name}.differs_in: give them as "
                             "--method-options / --baseline-options")
    lengths = {side: len(opts) for side, opts in own.items()}
    if len(set(lengths.values())) > 1:
        raise SystemExit(f"error: the method and the baseline must get the same search ({lengths}), or none for either")
    for side, opts in own.items():
        run = comp[side]
        for opt in opts:
            if bad := sorted(set(opt) - differs):
                raise SystemExit(f"error: {side} options {bad} are not in comparisons.{name}.differs_in; shared recipe "
                                 "keys go in --shared")
            if missing := sorted(set(opt) - set(params["methods"][run])):
                raise SystemExit(f"error: run {run!r} has no settings {missing} (methods.{run} in params.yaml)")
    for opt in shared:
        if missing := sorted(set(opt) - set(params["methods"][comp["method"]])):
            raise SystemExit(f"error: --shared settings {missing} are not settings of the pair's runs")


def variants(params: dict, comp: dict, shared: list[dict], own: dict[str, list[dict]]) -> dict[str, tuple]:
    """Run name -> (side, shared index, own index, settings) for every option the search trains."""
    out = {}
    for side in ("method", "baseline"):
        run = comp[side]
        for k, (s, o) in enumerate(itertools.product(range(len(shared) or 1), range(len(own[side]) or 1))):
            settings = {**params["methods"][run], **(shared[s] if shared else {}), **(own[side][o] if own[side] else {})}
            out[f"tune_{run}_{k}"] = (side, s, o, settings)
    return out


def metric_value(folder: Path, metric: str) -> float:
    """A claim's metric (a column such as fid or lpips.per_condition) from ``folder``'s metric file."""
    name, _, key = metric.partition(".")
    record = json.loads((folder / f"{name}.json").read_text())
    return float(record[key] if key else record["value"])


def score(workdir: Path, run: str, seed: int, metric: str) -> float:
    """A run's metric at a seed, from its metric file."""
    return metric_value(workdir / "results" / run / f"seed{seed}", metric)


def choose(scores: dict[str, np.ndarray], runs: dict[str, tuple], sign: float) -> tuple[int, dict[str, str]]:
    """The shared option by the pair's mean of each side's best own option, then each side's best."""
    def best(side: str, s: int) -> tuple[float, str]:
        return min((sign * scores[r].mean(), r) for r, v in runs.items() if v[0] == side and v[1] == s)

    n_shared = 1 + max(v[1] for v in runs.values())
    s = min(range(n_shared), key=lambda s: best("method", s)[0] + best("baseline", s)[0])
    return s, {side: best(side, s)[1] for side in ("method", "baseline")}


def table(comp: dict, runs: dict, scores: dict, chosen: dict, shared: list, own: dict, seeds: list[int],
          metric: str, direction: str) -> list[str]:
    rows = [f"| side | run | shared | own | {' | '.join(f'seed {k}' for k in seeds)} | mean | chosen |",
            "| --- | --- | --- | --- | " + "--- | " * len(seeds) + "--- | --- |"]
    for run, (side, s, o, _) in runs.items():
        flow = lambda d: yaml.safe_dump(d, default_flow_style=True).strip() if d else "-"  # noqa: E731
        values = " | ".join(f"{v:.4g}" for v in scores[run])
        rows.append(f"| {side} ({comp[side]}) | {run} | {flow(shared[s] if shared else {})} | "
                    f"{flow(own[side][o] if own[side] else {})} | {values} | {scores[run].mean():.4g} | "
                    f"{'yes' if chosen[side] == run else ''} |")
    return [f"Score: {metric} ({direction} is better), mean over seeds {seeds}.", "", *rows]


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/tune.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--comparison", required=True, help="a key of comparisons: in params.yaml, e.g. p2gan")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="tuning seeds (no verdict or stability seed)")
    parser.add_argument("--shared", type=options, default=[], help="YAML list of shared recipe options, both sides")
    parser.add_argument("--method-options", type=options, default=[], help="YAML list of the method's own options")
    parser.add_argument("--baseline-options", type=options, default=[], help="YAML list of the baseline's own options")
    parser.add_argument("--offset", type=int, default=100, help="first seed of the stability set (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="Snakemake --cores (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".stability", help="copy of the repository where it trains")
    parser.add_argument("--out", type=Path, help="markdown table (default: results/tuning/<comparison>.md)")
    args = parser.parse_args(argv)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    forbidden = verdict_seeds(params, args.offset)
    own = {"method": args.method_options, "baseline": args.baseline_options}
    check(params, args.comparison, args.seeds, forbidden, args.shared, own)
    comp = params["comparisons"][args.comparison]
    metric = comp["primary"]["metrics"][0]
    claim = next(c for c in comp["claims"] if c["metric"] == metric and "run" not in c)
    runs = variants(params, comp, args.shared, own)

    commit = prepare(args.workdir)
    extra = args.workdir / ".snakemake" / "ganbench" / f"tune-{args.comparison}.yaml"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text(yaml.safe_dump({"methods": {r: v[3] for r, v in runs.items()},
                                     "evaluate": {"metrics": [metric.partition(".")[0]]}}, sort_keys=False))
    targets = [f"results/{r}/seed{k}/{metric.partition('.')[0]}.json" for r in runs for k in args.seeds]
    snakemake(args.workdir, args.cores, "--configfile", str(extra), "--", *targets)

    scores = {r: np.array([score(args.workdir, r, k, metric) for k in args.seeds]) for r in runs}
    s, chosen = choose(scores, runs, 1.0 if claim["direction"] == "lower" else -1.0)
    current = {side: params["methods"][comp[side]] for side in ("method", "baseline")}
    lines = [f"Tuning of comparison {args.comparison}: commit {commit}, {time.strftime('%Y-%m-%d')}, seeds {args.seeds}; "
             f"default gan training {train_speed.measured_img_per_s(args.workdir) or 'not measured'} img/s on this machine.",
             "", *table(comp, runs, scores, chosen, args.shared, own, args.seeds, metric, claim["direction"]), ""]
    for side in ("method", "baseline"):
        picked = {k: v for k, v in runs[chosen[side]][3].items() if current[side].get(k) != v}
        lines.append(f"- {side} {comp[side]}: " + (f"change {yaml.safe_dump(picked, default_flow_style=True).strip()} "
                                                  "in params.yaml" if picked else "params.yaml already holds the choice"))
    args.out = args.out or ROOT / "results" / "tuning" / f"{args.comparison}.md"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
