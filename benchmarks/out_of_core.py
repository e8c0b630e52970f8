"""Out-of-core training: img/s of the trainer with the images held in memory and read from the
memory-mapped data/images.npy (``train.data_budget_mb`` below their size), in one run.

    .venv/bin/python benchmarks/out_of_core.py [--methods gan biggan] [--steps 30] [--repeats 3] [--cold]

For each run (params.yaml's settings, images from ``--data``) the two paths alternate ``--repeats``
times, each on a freshly built method with the same seed; the best of each is reported (other load
on the machine only ever slows a run), with the ratio mapped / memory. Before that, the cost of
gathering one batch of real images (``TrainData.real``) on each path. ``--cold`` evicts
images.npy from the page cache (``posix_fadvise DONTNEED``) before each memory-mapped repeat, so
its reads start from the disk; without it the file is in the page cache, as on a machine whose RAM
holds it.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import config, context  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.methods import TrainData  # noqa: E402
from pipeline.trainer import Trainer  # noqa: E402

PATHS = {"memory": None, "mapped": 0}  # train.data_budget_mb of each path


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def gather_us(data: TrainData, batch: int, n: int = 200) -> float:
    """Microseconds to draw and gather one batch of real images."""
    start = time.perf_counter()
    for _ in range(n):
        data.real(torch.randint(len(data.images), (batch,)))
    return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/out_of_core.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=["gan", "biggan"], help="runs of params.yaml (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repeat (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per path; the best counts (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--cold", action="store_true", help="evict images.npy from the page cache before mapped repeats")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    train = {**params["train"], **({"batch_size": args.batch_size} if args.batch_size else {})}
    dev = context.device(train["threads"])
    bs = train["batch_size"]
    data = {path: context.load_data(args.data, {}, (), dev, budget) for path, budget in PATHS.items()}
    print(f"device {dev} (threads {torch.get_num_threads()}), {os.cpu_count()} CPUs; images {data['memory'].images.shape} "
          f"({data['memory'].images.numel() / 2**20:.0f} MB); batch {bs}, {train['backbone']} width {train['width']}, "
          f"{args.steps} steps x {args.repeats} repeats{', cold page cache' if args.cold else ''}")
    print("gather one batch: " + ", ".join(f"{path} {gather_us(d, bs):.0f} us" for path, d in data.items()))
    print(f"{'method':<10} {'memory img/s':>13} {'mapped img/s':>13} {'mapped/memory':>14}")
    for name in args.methods:
        hp = params["methods"][name]
        best = dict.fromkeys(PATHS, float("inf"))
        for _ in range(args.repeats):
            for path in PATHS:
                if path == "mapped" and args.cold:
                    evict(args.data / "images.npy")
                m = context.build(hp, train, data[path], dev, seed=0)
                with tempfile.TemporaryDirectory() as tmp:
                    t = Trainer(m, Path(tmp), steps=args.steps, batch_size=bs, n_dis=train["n_dis"], ema=hp["ema"],
                                ema_start=0, checkpoint_every=args.steps, log_every=train["log_every"],
                                fingerprint="benchmark", meta={"run": name})
                    start = time.perf_counter()
                    t.fit()
                    best[path] = min(best[path], time.perf_counter() - start)
        imgs = args.steps * bs
        print(f"{name:<10} {imgs / best['memory']:>13.0f} {imgs / best['mapped']:>13.0f} "
              f"{best['memory'] / best['mapped']:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
