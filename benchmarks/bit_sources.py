"""Which library switches change a seed's weights on this machine: the same short training run under
each environment setting, its weights hashed and compared with the run under none.

    .venv/bin/python benchmarks/bit_sources.py [--method cgan] [--steps 50]

Each setting runs in its own process (the libraries read these variables once, at start):
oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``), MKL's conditional numerical reproducibility
branch (``MKL_CBWR``) and ATen's own kernels' instruction set (``ATEN_CPU_CAPABILITY``). A setting
whose weights equal the default's does not pick this machine's bits; one that changes them shows
where another kind of machine (another instruction set or MKL code path) would part ways with this
one (docs/results.md, "What reproduces where"). Runs on the data stage's images (data/), one thread.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [{}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
            {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"MKL_CBWR": "AUTO"}, {"MKL_CBWR": "AVX2"},
            {"MKL_CBWR": "COMPATIBLE"}, {"ATEN_CPU_CAPABILITY": "avx2"}]


def weights_hash(method: str, steps: int, params: Path, data: Path) -> str:
    """sha256 (16 hex digits) of the run's network weights after ``steps`` training steps from seed 0."""
    import torch

    sys.path.insert(0, str(ROOT))
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/bit_sources.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--method", default="cgan", help="a run under params.yaml methods: (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(weights_hash(args.method, args.steps, args.params, args.data))
        return
    print(f"{args.method}, {args.steps} steps from seed 0: weights' sha256 under each setting")
    print("| setting | weights | against no setting |")
    print("| --- | --- | --- |")
    default = None
    for setting in SETTINGS:
        env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "ATEN_CPU_CAPABILITY")}
        out = subprocess.run([sys.executable, __file__, "--child", "--method", args.method, "--steps", str(args.steps),
                              "--params", str(args.params), "--data", str(args.data)], env={**env, **setting},
                             capture_output=True, text=True, check=True).stdout.split()[-1]
        default = default or out
        label = " ".join(f"{k}={v}" for k, v in setting.items()) or "(none)"
        print(f"| {label} | {out} | {'same' if out == default else 'DIFFERENT'} |")


if __name__ == "__main__":
    main()
