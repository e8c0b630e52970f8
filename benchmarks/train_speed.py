"""Training speed: images per second of each method through the trainer and through a bare PyTorch
loop over the same networks, losses and optimisers; their ratio is the trainer's overhead. Also per
method: the FLOPs of one step (every matmul and convolution, forward and backward, counted by
``torch.utils.flop_counter.FlopCounterMode``) and the efficiency: counted FLOPs per second of the
trainer over the matmul throughput (1024^3 on CPU, 4096^3 on CUDA) measured in the same run at the same thread count and
precision (``train.precision``: ``auto`` is fp32 on CPU and bf16 autocast on CUDA).

    .venv/bin/python benchmarks/train_speed.py [--methods gan msgan] [--steps 30] [--backbone resnet] [--width 16] [--threads 1]
    .venv/bin/python benchmarks/train_speed.py --precision bf16 [--batch-size 320]
    .venv/bin/python benchmarks/train_speed.py --grid --precisions fp32 bf16 --batch-sizes 32 320
    .venv/bin/python benchmarks/train_speed.py --against HEAD~1     # before (a git revision) and after, in one run

``--methods`` names runs of params.yaml's ``methods:`` (default: every run). Train settings (batch
size, backbone, width, z_dim, n_dis, checkpoint and log intervals, threads) come from params.yaml
unless overridden, each run's recipe (EMA included) from its settings; images from data/ (the data stage). icgan's features, neighbours and
centres are random stand-ins of the shapes the features and knn stages write by default (64-d
features, k = 5, 1000 centres): a step's cost does not depend on their values. Each method is timed
after two warm-up steps, ``--repeats`` times alternating the bare loop and the trainer (which also
writes its log and final checkpoint), each on a freshly built method with the same seed; the best
of the repeats is reported, as timeit does, since other load on the machine only ever slows a run.

``--grid`` measures what a precision or larger operations buy: the bare loop's img/s of each run at
every combination of ``--precisions`` and ``--batch-sizes``, the combinations alternating repeat by
repeat, each with its ratio to the first and its efficiency against the matmul peak at its precision.
A batched ensemble of k seeds (one process, vmap or grouped convolutions) makes every operation about
k times larger, as batch k x 32 does, so the batch ratio bounds what such an ensemble could gain.

``--against REV`` measures a code change: it exports git revision REV to a temporary folder and,
method by method and repeat by repeat, alternates that revision's copy of this script with the
working tree's (each one repeat, same data, same options), then prints both trainers' img/s and
their ratio (after / before).
"""
from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import config, context  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.methods import Method, TrainData  # noqa: E402
from pipeline.trainer import Trainer, update_ema  # noqa: E402

FEATURE_DIM, K, CENTRES = 64, 5, 1000
NAME = len("p2gan_posterior")  # width of the run column: the default study's longest run name
ROOT = Path(__file__).resolve().parents[1]


def with_instance_inputs(data: TrainData) -> TrainData:
    n, dev, g = len(data.images), data.images.device, torch.Generator().manual_seed(0)
    data.features = F.normalize(torch.randn(n, FEATURE_DIM, generator=g), dim=1).to(dev)
    data.neighbours = torch.randint(n, (n, K), generator=g).to(dev)
    data.centres = torch.randperm(n, generator=g)[:CENTRES].to(dev)
    return data


def bare_loop(m: Method, steps: int, batch_size: int, n_dis: int, precision: str = "auto") -> None:
    """The same D and G steps and EMA as the trainer, with nothing else: no checks, logs or checkpoints."""
    opts = m.optimisers()
    g, decay = m.nets["G"], m.hp["ema"]
    ema = copy.deepcopy(g).requires_grad_(False) if decay else None
    def update(opt: torch.optim.Optimizer, loss_fn) -> None:
        with context.autocast(precision, m.device):
            loss, _ = loss_fn(m.draw(batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(steps):
        for _ in range(n_dis):
            update(opts["d"], m.d_loss)
        for name in m.d_nets:
            m.nets[name].requires_grad_(False)
        update(opts["g"], m.g_loss)
        for name in m.d_nets:
            m.nets[name].requires_grad_(True)
        if ema is not None:
            update_ema(ema, g, decay)


def timed(fn, dev: torch.device) -> float:
    t0 = time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def trainer_img_s(tree: Path, run: str, options: list[str]) -> float:
    """The trainer img/s that ``tree``'s copy of this script reports for one run (one repeat)."""
    out = subprocess.run([sys.executable, "benchmarks/train_speed.py", "--methods", run, "--repeats", "1", *options],
                         cwd=tree, capture_output=True, text=True, check=True).stdout
    return float(re.search(rf"^{re.escape(run)}\s+(\d+)", out, flags=re.M).group(1))


def against(rev: str, args: argparse.Namespace, runs: list[str]) -> None:
    """Print before (revision ``rev``) and after (the working tree) img/s per run, alternating. Each side
    reads its own tree's params file (the schema changes between revisions); the overrides apply to both."""
    options = ["--steps", str(args.steps), "--data", str(args.data.resolve())]
    options += [f"--{k.replace('_', '-')}={v}" for k in ("backbone", "width", "batch_size", "threads", "precision")
                if (v := getattr(args, k))]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        print(f"{rev} ({subprocess.run(['git', 'rev-parse', '--short', rev], cwd=ROOT, capture_output=True, text=True).stdout.strip()}) "
              f"against the working tree, {args.repeats} alternating repeats, {' '.join(options)}")
        print(f"{'method':<{NAME}} {'before img/s':>13} {'after img/s':>12} {'after/before':>13}")
        for run in runs:
            before = after = 0.0
            for _ in range(args.repeats):
                before = max(before, trainer_img_s(Path(tmp), run, options))
                after = max(after, trainer_img_s(ROOT, run, [*options, "--params", str(Path(args.params).resolve())]))
            print(f"{run:<{NAME}} {before:>13.0f} {after:>12.0f} {after / before:>13.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/train_speed.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", help="runs of params.yaml methods: (default: all)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per loop; the best counts (default: %(default)s)")
    parser.add_argument("--backbone", choices=["dcgan", "resnet"], help="override train.backbone")
    parser.add_argument("--width", type=int, help="override train.width")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--threads", type=int, help="override train.threads")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="override train.precision")
    parser.add_argument("--against", metavar="REV", help="compare with git revision REV (before) in one run")
    parser.add_argument("--grid", action="store_true", help="img/s at every --precisions x --batch-sizes")
    parser.add_argument("--precisions", nargs="+", choices=["auto", "fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 320])
    args = parser.parse_args(argv)
    params = config.load(args.params)
    runs = args.methods or list(params["methods"])
    unknown = [r for r in runs if r not in params["methods"]]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r} (runs: {', '.join(params['methods'])})")
    if args.against:
        return against(args.against, args, runs)
    if args.grid:
        return grid(args, params, runs)
    overrides = {"backbone": args.backbone, "width": args.width, "batch_size": args.batch_size, "threads": args.threads,
                 "precision": args.precision}
    train = {**params["train"], **{k: v for k, v in overrides.items() if v}}
    dev, data = setup(args, train)
    bs, n_dis, precision = train["batch_size"], train["n_dis"], train["precision"]
    threads = torch.get_num_threads() if dev.type == "cpu" else "-"
    print(f"device {dev} (threads {threads}), torch {torch.__version__}; batch {bs}, {train['backbone']} width {train['width']}, "
          f"n_dis {n_dis}, {args.steps} steps; images {tuple(data.images.shape)}")
    bf16 = context.uses_bf16(precision, dev)
    peak = matmul_gflops(dev, torch.bfloat16 if bf16 else torch.float32)
    print(f"precision {precision}: {'bf16' if bf16 else 'fp32'} matmul (same threads): {peak:.0f} GFLOP/s; "
          "efficiency = counted FLOPs x steps/s / that")
    print(f"{'method':<{NAME}} {'trainer img/s':>14} {'bare img/s':>11} {'trainer/bare':>13} {'GFLOP/step':>11} {'efficiency':>11}")

    def build(name: str) -> Method:
        return context.build(params["methods"][name], train, data, dev, seed=0)

    def trainer_run(name: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            m = build(name)
            t = Trainer(m, Path(tmp), steps=args.steps, batch_size=bs, n_dis=n_dis, ema=m.hp["ema"], ema_start=0,
                        checkpoint_every=train["checkpoint_every"], log_every=train["log_every"],
                        fingerprint="benchmark", meta={"run": name}, precision=precision)
            return timed(t.fit, dev)

    for name in runs:
        bare_loop(build(name), 2, bs, n_dis, precision)  # warm-up: kernel selection, allocator
        bare, full = float("inf"), float("inf")
        for _ in range(args.repeats):
            m = build(name)
            bare = min(bare, timed(lambda: bare_loop(m, args.steps, bs, n_dis, precision), dev))
            full = min(full, trainer_run(name))
        imgs = args.steps * bs
        counter = FlopCounterMode(display=False)
        with counter:
            bare_loop(build(name), 1, bs, n_dis, precision)
        gflop = counter.get_total_flops() / 1e9
        print(f"{name:<{NAME}} {imgs / full:>14.0f} {imgs / bare:>11.0f} {bare / full:>13.2f} {gflop:>11.2f} "
              f"{gflop * imgs / full / bs / peak:>11.2f}", flush=True)


def setup(args: argparse.Namespace, train: dict) -> tuple[torch.device, TrainData]:
    """The device at ``train``'s thread count and the data stage's images with instance stand-ins."""
    dev = context.device(train["threads"])
    return dev, with_instance_inputs(context.load_data(args.data, {}, (), dev))


def grid(args: argparse.Namespace, params: dict, runs: list[str]) -> None:
    """Print each run's bare-loop img/s at every precision x batch size (see the module docstring)."""
    overrides = {"backbone": args.backbone, "width": args.width, "threads": args.threads}
    train = {**params["train"], **{k: v for k, v in overrides.items() if v}}
    dev, data = setup(args, train)
    combos = [(p, b) for p in args.precisions for b in args.batch_sizes]
    peaks = {p: matmul_gflops(dev, torch.bfloat16 if context.uses_bf16(p, dev) else torch.float32) for p in args.precisions}
    print(f"device {dev} (threads {torch.get_num_threads()}), torch {torch.__version__}; {train['backbone']} width "
          f"{train['width']}, {args.steps} steps, best of {args.repeats}; matmul peak: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items()))
    print("img/s, ratio to the first column, efficiency against the peak at that precision")
    print(f"{'method':<{NAME}} " + " ".join(f"{f'{p} b{b}':>22}" for p, b in combos))

    def build(name: str, precision: str) -> Method:
        return context.build(params["methods"][name], {**train, "precision": precision}, data, dev, seed=0)

    for name in runs:
        n_dis = train["n_dis"]
        for p, b in combos:
            bare_loop(build(name, p), 2, b, n_dis, p)  # warm-up: kernel selection, allocator
        best = dict.fromkeys(combos, float("inf"))
        for _ in range(args.repeats):
            for p, b in combos:
                m = build(name, p)
                best[p, b] = min(best[p, b], timed(lambda: bare_loop(m, args.steps, b, n_dis, p), dev))
        counter = FlopCounterMode(display=False)
        with counter:
            bare_loop(build(name, "fp32"), 1, combos[0][1], n_dis, "fp32")
        gflop_per_image = counter.get_total_flops() / 1e9 / combos[0][1]
        rate = {(p, b): args.steps * b / best[p, b] for p, b in combos}
        cells = [f"{r:.0f} x{r / rate[combos[0]]:.2f} e{r * gflop_per_image / peaks[p]:.2f}" for (p, b), r in rate.items()]
        print(f"{name:<{NAME}} " + " ".join(f"{c:>22}" for c in cells), flush=True)


def measured_img_per_s(cwd: Path, run: str = "gan") -> str | None:
    """``run``'s trainer img/s on this machine: ``cwd``'s copy of this script (a study's worktree
    measures with its own code and params) in a fresh process on ``cwd``/data (the figure README numbers
    quote beside times); None, with the reason on stderr, when it cannot run."""
    out = subprocess.run([sys.executable, "benchmarks/train_speed.py", "--methods", run, "--steps", "30"], cwd=cwd,
                         capture_output=True, text=True)
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(f"{run} ")]
    if not rows:
        print(f"train_speed: no measurement in {cwd}: {out.stderr.strip()[-300:]}", file=sys.stderr)
    return rows[-1][1] if rows else None


def matmul_gflops(dev: torch.device, dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """The device's matmul throughput at the current thread count in ``dtype``, best of ``repeats``. On
    CUDA each timing holds 50 products of n = 4096 (one 1024^3 product is a few microseconds there,
    less than a launch and a synchronisation)."""
    n, per_timing = (4096, 50) if dev.type == "cuda" else (n, 1)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)

    def products() -> None:
        for _ in range(per_timing):
            a @ b

    products()  # warm-up
    return 2 * n ** 3 * per_timing / min(timed(products, dev) for _ in range(repeats)) / 1e9


if __name__ == "__main__":
    main()
