"""Write the README's results section from a finished study, so that no number in it is typed by hand.

    .venv/bin/python scripts/readme_results.py                                   # results/ of this checkout
    .venv/bin/python scripts/readme_results.py --results .stability/results --stability results/verdict_stability.md

Reads the report stage's outputs under ``--results`` (comparisons/<paper>.csv, metrics.parquet, and
summary.txt's provenance line: commit, configuration hash, data checksums), measures the default
``gan`` run's training img/s on this machine (benchmarks/train_speed.py on the study's data, so that
quoted times can be scaled to another machine), and replaces the text between the markers
``<!-- results: begin -->`` and ``<!-- results: end -->`` in ``--readme`` with: the run's provenance and
settings, the floor (held-out real images), and one row per claim with both runs' mean ± std over
seeds, the difference with its 95% interval and design, the primaries' detectable difference, and the
verdict. With ``--stability`` (the table benchmarks/verdict_stability.py wrote) or ``--tuning`` (the
tables benchmarks/tune.py wrote: settings chosen on seeds no verdict uses), those tables go between
the same markers in ``--details`` (docs/results.md), and the README says in one line whether the
primary verdicts agreed across the two seed sets.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import rule_times, train_speed  # noqa: E402
from pipeline.claims import difference_text  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.results_table import fmt  # noqa: E402
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"


def mean_std(mean, std) -> str:
    return fmt(mean) + (f" ± {fmt(std)}" if pd.notna(std) else "")


def claims(results: Path, papers: list[str]) -> list[str]:
    lines = ["| paper | claim | role | method | baseline | difference [95% interval] | detectable (80% power) | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for paper in papers:
        for r in pd.read_csv(results / "comparisons" / f"{paper}.csv").to_dict("records"):
            verdict = str(r["verdict"])
            if r["role"] == "primary" and verdict.split(" (")[0] in ("supported", "contradicted"):
                verdict = f"**{verdict}**"
            needed = f"; observed needs {int(r['seeds_needed'])} seeds" if pd.notna(r["seeds_needed"]) else ""
            lines.append(f"| {paper} | {r['metric']} {r['direction']} | {r['role']} | {r['method']} "
                         f"{mean_std(r['method_mean'], r['method_std'])} | {r['baseline']} "
                         f"{mean_std(r['baseline_mean'], r['baseline_std'])} | {difference_text(r)} | "
                         f"{fmt(r['detectable'])}{needed} | {verdict} |")
    return lines


def floor(results: Path) -> str:
    """The held-out real images' scores (mean ± std over seeds), or a note that the study had none."""
    df = pd.read_parquet(results / "metrics.parquet")
    real = df[df["method"] == "real"]
    if real.empty:
        return "The study did not score held-out real images (add `real` to `study.methods`)."
    cols = [c for c in ("fid", "kid", "ndb", "ndb.jsd", "lpips.per_condition") if c in real and real[c].notna().any()]
    names = {c: str(real[f"{c.split('.')[0]}.name"].dropna().iloc[0]) + (f".{c.split('.', 1)[1]}" if "." in c else "")
             if f"{c.split('.')[0]}.name" in real else c for c in cols}
    return "The floor, held-out real images scored as samples: " + ", ".join(
        f"{names[c]} {mean_std(real[c].mean(), real[c].std(ddof=1))}" for c in cols) + "."


def study_time(study: Path) -> str:
    """The study's last Snakemake invocation that ran jobs: its wall time and cores (from its log), and the
    job-seconds of training and evaluation (Snakemake's benchmark files, benchmarks/rule_times.py) when
    they time every training the study holds."""
    found = rule_times.last_run(study / ".snakemake" / "log")
    if found is None:
        return "Its time was not recorded (no Snakemake log of its jobs in .snakemake/log/)."
    _, lines, per_rule, wall = found
    cores = next((line.split(":")[1].strip() for line in lines if line.startswith("Provided cores:")), "?")
    text = (f"Its last Snakemake invocation ran {sum(map(len, per_rule.values()))} jobs in {wall / 60:.1f} min "
            f"on {cores} cores")
    measured = rule_times.benchmarked(study / "logs" / "benchmark")
    seconds = {rule: sum(s for s, _ in jobs) for rule, jobs in measured.items()}
    held = len(list((study / "results").glob("*/seed*/checkpoint.pt")))  # trained, or copied by shared_training
    if seconds.get("train") and len(measured["train"]) + len(measured.get("shared_training", [])) < held:  # a study updated in parts: no whole-study total
        text += (f"; its job-seconds are not quoted: the benchmark files time {len(measured['train'])} of the "
                 f"{held} trainings it holds (the study was updated in parts, not run whole)")
    elif seconds.get("train"):
        text += (f"; job-seconds: train {seconds['train']:,.0f}, evaluate {seconds.get('evaluate', 0):,.0f} "
                 f"({seconds.get('evaluate', 0) / seconds['train']:.0%} of training), all rules {sum(seconds.values()):,.0f}")
    return text + "."


def img_per_s(study: Path) -> str:
    """The default `gan` run's training img/s here, on ``study``'s data."""
    measured = train_speed.measured_img_per_s(study)
    if measured is None:
        raise SystemExit(f"error: benchmarks/train_speed.py could not run on {study}/data (see above)")
    return measured


def tuning_lines(table: str, params: dict) -> list[str]:
    """A tune.py table without its advice to the tuner ("change ... in params.yaml", true when it ran),
    followed by whether the study's params hold each chosen setting."""
    lines = [line for line in table.splitlines() if not line.startswith(("- method ", "- baseline "))]
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[-1] == "yes":
            run = cells[0].split("(")[-1].rstrip(")")
            chosen = {**yaml.safe_load(cells[2]), **yaml.safe_load(cells[3])}
            held = {k: params["methods"][run].get(k) for k in chosen}
            text = yaml.safe_dump(chosen, default_flow_style=True).strip()
            lines.append(f"- {run}: the study's params.yaml holds the choice {text}" if held == chosen else
                         f"- {run}: the study's params.yaml differs from the choice {text}: it holds "
                         f"{yaml.safe_dump(held, default_flow_style=True).strip()}")
    return lines


def section(results: Path, stability: Path | None) -> str:
    params = yaml.safe_load((results.parent / "params.yaml").read_text())
    summary = (results / "summary.txt").read_text().splitlines()
    provenance = next((line for line in summary if line.startswith("provenance:")), "provenance: not recorded")
    t, ds = params["train"], params["dataset"]
    seeds = sorted(set(pd.read_parquet(results / "metrics.parquet")["seed"]))  # as run (--config may override)
    date = time.strftime("%Y-%m-%d", time.gmtime((results / "summary.txt").stat().st_mtime))
    lines = [BEGIN, "<!-- written by scripts/readme_results.py from a finished study; do not edit by hand -->", "",
             f"Study of {date}; {provenance.removeprefix('provenance: ')}. Settings: {ds['name']} at "
             f"{ds['resolution']} px, {t['steps']:,} steps of batch {t['batch_size']}, `{t['backbone']}` width "
             f"{t['width']}, seeds {', '.join(map(str, seeds))}, {params['sample']['n']:,} samples per seed, "
             f"`{params['evaluate']['backbone']}` features. This machine trains the default `gan` run at "
             f"{img_per_s(results.parent)} img/s (benchmarks/train_speed.py, one thread): scale quoted times by it. "
             f"{study_time(results.parent)}",
             "", floor(results), "", *claims(results, list(params["comparisons"]))]
    if stability is not None:
        lines += ["", stability_line(stability.read_text())]
    return "\n".join([*lines, "", END])


def stability_line(table: str) -> str:
    """One sentence on the primary claims of a verdict_stability.py table: how many agree, and the rest."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith(("| paper", "| ---"))]
    primaries = [r for r in rows if r[2] == "primary"]
    others = [f"{r[0]} {r[1]} ({r[5]})" for r in primaries if r[5] != "agree"]
    head = table.splitlines()[0].split(";")[0].removeprefix("Verdict stability: ")
    return (f"On a second, disjoint set of seeds ({head}), {len(primaries) - len(others)} of {len(primaries)} "
            f"primary verdicts agree" + (f"; not: {'; '.join(others)}" if others else "") +
            ". Both sets side by side, and the tuning: [docs/results.md](docs/results.md).")


def details(stability: Path | None, tuning: list[Path], params: dict) -> str:
    """docs/results.md's generated part: the stability table and the tuning tables."""
    lines = [BEGIN, "<!-- written by scripts/readme_results.py; do not edit by hand -->"]
    if stability is not None:
        lines += ["", "## Two disjoint seed sets", "", *stability.read_text().splitlines()]
    for table in tuning:
        lines += ["", "## Settings chosen on tuning seeds", "", *tuning_lines(table.read_text(), params)]
    return "\n".join([*lines, "", END])


def marked(path: Path) -> str:
    """The text of ``path``, which must hold one pair of markers."""
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"error: {path} needs one {BEGIN} and one {END} line")
    return text


def replace_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path``, atomically; nothing outside them changes."""
    head, rest = marked(path).split(BEGIN)
    tail = rest.split(END, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(head + section + tail)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="scripts/readme_results.py", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="a finished study's results/ (default: %(default)s)")
    parser.add_argument("--stability", type=Path, help="benchmarks/verdict_stability.py's table to append")
    parser.add_argument("--tuning", type=Path, nargs="+", default=[], help="benchmarks/tune.py's tables to append")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--details", type=Path, default=ROOT / "docs" / "results.md",
                        help="where the stability and tuning tables go (default: %(default)s)")
    args = parser.parse_args(argv)
    results = args.results.resolve()
    writes_details = bool(args.stability or args.tuning)
    for path in (args.readme, args.details) if writes_details else (args.readme,):
        marked(path)  # both hold their markers before either is written
    readme = section(results, args.stability)  # measures img/s: before anything is written
    if writes_details:
        replace_section(args.details, details(args.stability, args.tuning,
                                              yaml.safe_load((results.parent / "params.yaml").read_text())))
    replace_section(args.readme, readme)
    print(f"readme_results: wrote the results section of {args.readme}"
          + (f" and of {args.details}" if writes_details else ""))


if __name__ == "__main__":
    main()
