"""The first run on a GPU: every trained run's CUDA path, briefly, and its speed, in one command.

    python3 benchmarks/gpu_check.py [--steps 100] [--methods gan biggan] [--out gpu_check]
    bash scripts/gpu_check.sh      # on a lent GPU machine: installs what its image lacks, then this

What no machine of this project's CI can check: each trained run of the study goes through the
train stage on the GPU at its ``train.precision`` (``auto``: bf16 autocast on CUDA), twice from
seed 0, and the two final checkpoints must hold the same weights to the bit (cuDNN's deterministic
algorithms without autotuning, pipeline/context.py); then ``benchmarks/train_speed.py`` gives every
run's img/s and efficiency against the device's matmul rate at that precision, again in fp32, and
on a GPU also at batch 256 in both (what larger per-GPU batches of the papers' studies would get).
The data is scikit-learn's bundled digits at the study's resolution (offline; a step's cost depends
on the images' shape, not on which images); icgan's features, neighbours and centres are random
stand-ins, as train_speed.py's (no faiss). NCCL and SyncBatchNorm need two GPUs or
more (one process per GPU): on a one-GPU machine the check says so instead. Prints one row per run,
writes the table to ``--out``/gpu_check.md, and exits 1 when any run failed or repeated other bits.
On a CPU it checks the same things, slowly (the tests run it so).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.train_speed import FEATURE_DIM  # noqa: E402
from pipeline import catalogue, checkpoint, config, machine  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.knn_io import write_centres, write_neighbours  # noqa: E402
from pipeline.trainer import FINAL  # noqa: E402


def study(params_path: Path, out: Path, steps: int) -> Path:
    """params.yaml on the digits at the study's resolution, ``steps`` steps, no evaluation while training."""
    params = config.load(params_path)
    params["dataset"].update(name="digits", max_images=None)
    params["train"].update(steps=steps, checkpoint_every=max(1, steps // 2), log_every=max(1, steps // 10),
                           eval_every=0, gpus=1, nodes=1)
    path = out / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def instance_inputs(params: dict, n: int, out: Path) -> dict[str, Path]:
    """Random stand-ins as benchmarks/train_speed.py draws them (a step's cost ignores their values), as
    files: unit features, k random neighbours other than the instance itself, random centres."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n, FEATURE_DIM)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    k = params["knn"]["k"]
    idx = (np.arange(n)[:, None] + rng.integers(1, n, (n, k))) % n
    paths = {"features": out / "features.npy", "neighbours": out / "neighbours.parquet", "centres": out / "centres.parquet"}
    np.save(paths["features"], features)
    write_neighbours(paths["neighbours"], idx, np.ones((n, k), np.float32))
    centres = rng.choice(n, min(params["knn"]["centres"], n), replace=False)
    write_centres(paths["centres"], centres, np.ones(len(centres), np.float32), np.ones(len(centres), np.int64))
    return paths


TAIL = 30  # lines of a failed command's error output kept in the report: one run must show the cause


def failure(proc: subprocess.CompletedProcess) -> str:
    """'' when ``proc`` succeeded, else its exit status and the last TAIL lines of its error output."""
    if proc.returncode == 0:
        return ""
    return "\n".join([f"exit {proc.returncode}:", *proc.stderr.strip().splitlines()[-TAIL:]])


def train(params: Path, run: str, data: Path, out: Path, inputs: dict[str, Path]) -> tuple[float, str]:
    """Seconds the train stage took, and its failure ('' when it succeeded)."""
    cmd = [sys.executable, "-m", "pipeline.stages.train", "--params", str(params), "--method", run, "--seed", "0",
           "--data", str(data), "--out", str(out), *[a for k, p in inputs.items() for a in (f"--{k}", str(p))]]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t, failure(proc)


def same_weights(a: Path, b: Path) -> bool:
    x, y = checkpoint.load(a / FINAL), checkpoint.load(b / FINAL)
    return x["nets"].keys() == y["nets"].keys() and all(torch.equal(x["nets"][k], y["nets"][k]) for k in x["nets"])


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--methods", nargs="+", help="runs under params.yaml methods: (default: the study's trained runs)")
    parser.add_argument("--steps", type=int, default=100, help="training steps of each run (default: %(default)s)")
    parser.add_argument("--speed-steps", type=int, default=50, help="timed steps of train_speed.py (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="working folder (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    params_path = study(args.params, args.out, args.steps)
    params = config.load(params_path)
    runs = args.methods or catalogue.own_trainings(params, catalogue.trained_runs(params))
    if unknown := [r for r in runs if r not in params["methods"]]:
        parser.error(f"no run {', '.join(unknown)} under {args.params} methods: (runs: {', '.join(params['methods'])})")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(machine.describe(dev))
    gpus = torch.cuda.device_count()
    data = args.out / "data"
    proc = subprocess.run([sys.executable, "-m", "pipeline.stages.data", "--params", str(params_path), "--out", str(data)],
                          cwd=ROOT, capture_output=True, text=True)
    if error := failure(proc):
        sys.exit(f"gpu_check: the data stage failed, {error}")
    n = len(np.load(data / "labels.npy"))
    rows, failures, failed = [], [], False
    stand_ins = instance_inputs(params, n, args.out) if any(catalogue.run_needs(params, r) for r in runs) else {}
    for run in runs:
        inputs = {k: v for k, v in stand_ins.items() if k in catalogue.run_needs(params, run)}
        seconds, error = train(params_path, run, data, args.out / run / "a", inputs)
        if not error:
            _, error = train(params_path, run, data, args.out / run / "b", inputs)
        repeat = "" if error else ("same bits" if same_weights(args.out / run / "a", args.out / run / "b") else "DIFFERENT")
        failed |= bool(error) or repeat == "DIFFERENT"
        rows.append(f"| {run} | {seconds:.1f} | {repeat or 'not run'} | {'failed (below)' if error else 'ok'} |")
        print(rows[-1], flush=True)
        if error:
            failures += [f"{run}: {error}", ""]
            print(failures[-2], flush=True)
    table = ["| run | seconds (first training, start included) | second training | outcome |", "| --- | --- | --- | --- |", *rows]
    ddp = (f"{gpus} GPUs: run the DDP tests (tests/test_distributed.py) with NCCL" if gpus > 1 else
           "NCCL and SyncBatchNorm: not checked (they need two GPUs; this machine has "
           f"{gpus or 'no'} GPU{'s' if gpus != 1 else ''})")
    speed = []
    grid = [["--grid", "--precisions", "bf16", "fp32", "--batch-sizes", "32", "256"]] if dev.type == "cuda" else []
    for options in [["--precision", params["train"]["precision"]], ["--precision", "fp32"], *grid]:
        proc = subprocess.run([sys.executable, "benchmarks/train_speed.py", "--params", str(params_path), "--data",
                               str(data), "--steps", str(args.speed_steps), "--repeats", "2", *options,
                               "--methods", *runs], cwd=ROOT, capture_output=True, text=True)
        failed |= proc.returncode != 0
        speed += [f"train_speed.py {' '.join(options)}:", "\n".join(filter(None, [proc.stdout.strip(), failure(proc)])), ""]
        print(*speed[-3:-1], sep="\n", flush=True)
    report = [f"{machine.describe(dev)}; {args.steps} steps per training", "", *table, "", *failures, ddp, "", *speed]
    (args.out / "gpu_check.md").write_text("\n".join(report) + "\n")
    print(ddp)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
