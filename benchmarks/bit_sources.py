"""Which library switches change a seed's weights: the same short training run under each environment
setting, its weights hashed and compared with the run under none, and with other machines' records.

    .venv/bin/python benchmarks/bit_sources.py [--methods cgan gan] [--steps 50]
    .venv/bin/python benchmarks/bit_sources.py --record benchmarks/bits/<machine>.json
    .venv/bin/python benchmarks/bit_sources.py --compare benchmarks/bits/*.json

Each setting runs in its own process (the libraries read these variables once, at start):
oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``), MKL's conditional numerical reproducibility
branch (``MKL_CBWR``), ATen's own kernels' instruction set (``ATEN_CPU_CAPABILITY``), and two pins
of both: oneDNN at AVX2 (an instruction set every x86-64 machine of the last decade has) with MKL's
AVX2 branch (documented for Intel processors; elsewhere MKL falls back to AUTO) or its COMPATIBLE
branch (SSE2, the one branch MKL documents for non-Intel processors as well). A setting whose weights
equal the default's does not pick this machine's bits; one that changes them shows where another
kind of machine would part ways with this one (docs/results.md, "What reproduces where"). oneDNN
still reads the processor's L1 and L2 sizes when it blocks some AVX2 convolutions (its brgemm
convolutions' input-channel and kernel-row blocks, which set the order of their sums), so no pin is
portable by construction: only records from two kinds of machine show whether one is.

``--record`` writes the hashes with the machine, libraries, data and step count they came from;
``--compare`` reads records made on other kinds of machine and says, per setting, whether this
machine trains every run to the recorded bits. A setting under which two kinds agree on every run
is the candidate for one set of bits across them. Runs on the data stage's images (data/), one
thread, seed 0; the default is every run of the study that trains itself (not one `trained_as` another).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = ("ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "ATEN_CPU_CAPABILITY")
SETTINGS = [{}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
            {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"MKL_CBWR": "AUTO"}, {"MKL_CBWR": "AVX2"},
            {"MKL_CBWR": "COMPATIBLE"}, {"ATEN_CPU_CAPABILITY": "avx2"},
            {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}]
FORMAT = 1
sys.path.insert(0, str(ROOT))

from pipeline.errors import CommandLine  # noqa: E402


def label(setting: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "(none)"


def weights_hash(method: str, steps: int, params: Path, data: Path) -> str:
    """sha256 (16 hex digits) of the run's network weights after ``steps`` training steps from seed 0."""
    import torch

    from benchmarks.train_speed import bare_loop, setup
    from pipeline import config, context

    p = config.load(params)
    train, hp = {**p["train"], "threads": 1}, p["methods"][method]
    dev, loaded = setup(argparse.Namespace(data=data), train)
    torch.manual_seed(0)
    m = context.build(hp, train, loaded, dev, 0)
    bare_loop(m, steps, train["batch_size"], train["n_dis"])
    h = hashlib.sha256()
    for _, tensor in sorted(m.nets.state_dict().items()):
        h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def provenance(params: dict, data: Path) -> dict:
    """The machine line and commit, and what the hashes depend on: the data stage's arrays, the training settings."""
    import torch

    from pipeline import machine

    torch.set_num_threads(1)
    files = {name: hashlib.sha256((data / name).read_bytes()).hexdigest()[:16] for name in ("images.npy", "labels.npy")}
    settings = json.dumps({"train": params["train"], "methods": params["methods"]}, sort_keys=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"machine": machine.describe(torch.device("cpu")), "commit": commit.stdout.strip() or "unknown",
            "data": files, "settings_sha256": hashlib.sha256(settings.encode()).hexdigest()[:16]}


def child(method: str, args: argparse.Namespace, setting: dict) -> str:
    """The weights hash of ``method`` under ``setting``, from a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    out = subprocess.run([sys.executable, __file__, "--child", method, "--steps", str(args.steps),
                          "--params", str(args.params), "--data", str(args.data)], env={**env, **setting},
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"bit_sources: {method} under {label(setting)} failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout.split()[-1]


def load_record(path: Path, steps: int, prov: dict) -> dict:
    """A record made by ``--record``, checked to describe the same experiment."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"bit_sources: {path}: not a readable record ({err})")
    if rec.get("format") != FORMAT or not isinstance(rec.get("hashes"), dict):
        sys.exit(f"bit_sources: {path}: not a bit_sources record (format {FORMAT}); make one with --record")
    if rec.get("steps") != steps:
        sys.exit(f"bit_sources: {path} hashed {rec.get('steps')} steps; rerun with --steps {rec.get('steps')}")
    if rec.get("data") != prov["data"]:
        sys.exit(f"bit_sources: {path} was trained on other data ({rec.get('data')}); its hashes cannot match")
    if rec.get("settings_sha256") != prov["settings_sha256"]:
        sys.exit(f"bit_sources: {path} was made with other train: or methods: settings (at {rec.get('commit')}); "
                 f"rerun with that commit's params.yaml")
    return rec


def compare(hashes: dict, rec: dict, methods: list[str]) -> tuple[list[str], list[str]]:
    """Per setting recorded for every method: a table cell per method; and the settings matching on all."""
    rows, agreeing = [], []
    for setting, theirs in rec["hashes"].items():
        ours = hashes.get(setting, {})
        shared = [m for m in methods if m in ours and m in theirs]
        if not shared:
            continue
        cells = ["same" if ours[m] == theirs[m] else "DIFFERENT" for m in shared]
        rows.append(f"| {setting} | " + " | ".join(cells) + f" | {cells.count('same')} of {len(shared)} |")
        if all(c == "same" for c in cells) and len(shared) == len(methods):
            agreeing.append(setting)
    return rows, agreeing


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/bit_sources.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--methods", nargs="+",
                        help="runs under params.yaml methods: (default: the study's runs that train themselves)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--record", type=Path, help="write this machine's hashes to this JSON file")
    parser.add_argument("--compare", type=Path, nargs="+", default=[], help="records from other machines")
    parser.add_argument("--child", dest="method_", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.method_:
        print(weights_hash(args.method_, args.steps, args.params, args.data))
        return
    from pipeline import catalogue, config
    from pipeline.io import save_json

    params = config.load(args.params)
    methods = args.methods or catalogue.own_trainings(params, catalogue.trained_runs(params))
    prov = provenance(params, args.data)
    records = [(path, load_record(path, args.steps, prov)) for path in args.compare]
    print(f"{args.steps} steps from seed 0, one thread, on {prov['machine']}")
    print(f"| setting | {' | '.join(methods)} | against no setting |")
    print("| --- " * (len(methods) + 2) + "|")
    hashes: dict[str, dict[str, str]] = {}
    for setting in SETTINGS:
        row = hashes[label(setting)] = {method: child(method, args, setting) for method in methods}
        same = [row[m] == hashes["(none)"][m] for m in methods]
        print(f"| {label(setting)} | " + " | ".join(row[m][:8] for m in methods) +
              f" | {'same' if all(same) else f'DIFFERENT ({sum(same)} of {len(methods)} same)'} |", flush=True)
    for path, rec in records:
        rows, agreeing = compare(hashes, rec, methods)
        print(f"\nAgainst {path} ({rec['machine']}, commit {rec['commit']}):")
        print(f"| setting | {' | '.join(methods)} | runs with the recorded bits |")
        print("| --- " * (len(methods) + 2) + "|")
        print("\n".join(rows))
        print(f"settings under which every run trains to the recorded bits: {', '.join(agreeing) or 'none'}")
    if args.record:
        save_json(args.record, {"format": FORMAT, **prov, "steps": args.steps, "hashes": hashes})
        print(f"recorded: {args.record}")


if __name__ == "__main__":
    main()
