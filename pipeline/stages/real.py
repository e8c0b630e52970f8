"""real stage: held-out real images written as a run's samples, the floor of every comparison.

The run named ``real`` (list it in ``study.methods``; it has no ``methods:`` entry) is evaluated by
every metric exactly as a method is. Its "samples" are ``sample.n`` training images drawn with the
seed from those outside the ``backbone`` reference's real subset (the ``evaluate.n_real`` images
whose features FD, KID and PRDC compare against), so the floor is not flattered by scoring images
against themselves; its conditions are their class labels (per-class LPIPS of real data). The NDB
bins and the classifier are fitted on training images that may include them (``ndb_n_train: null``
uses every training image). Writes samples.npy, conditions.npy, samples.json and samples.png in
``--out`` like the sample stage.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import config
from pipeline.catalogue import REAL
from pipeline.context import read_data
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.images import condition_columns, save_grid
from pipeline.io import all_or_nothing, save_json, save_npy
from pipeline.subsets import real_subset_indices


def held_out(n_images: int, n_real: int, n: int, seed: int) -> np.ndarray:
    """``n`` indices (sorted), drawn with ``seed``, outside the reference's subset of ``n_real``."""
    pool = np.setdiff1d(np.arange(n_images), real_subset_indices(n_images, n_real))
    if len(pool) < n:
        raise PipelineError(f"real: {n_images} images leave {len(pool)} outside the reference's evaluate.n_real "
                            f"({n_real}), fewer than sample.n ({n}); lower one of them or leave real out of study.methods")
    return np.sort(np.random.default_rng(seed).choice(pool, n, replace=False))


def run(params: dict, seed: int, data_dir: Path, out: Path) -> dict:
    images, labels, _ = read_data(data_dir)
    n = params["sample"]["n"]
    idx = held_out(len(images), params["evaluate"]["n_real"], n, seed)
    info = {"method": REAL, "method_class": REAL, "seed": seed, "n": n, "generator": "none",
            "conditioning": "class labels of held-out training images",
            "held_out": f"sample.n training images drawn with the seed outside the backbone reference's "
                        f"evaluate.n_real ({params['evaluate']['n_real']}) images"}
    with all_or_nothing():
        save_npy(out / "samples.npy", images[idx])
        save_npy(out / "conditions.npy", labels[idx].astype(np.int64))
        save_grid(*condition_columns(images[idx], labels[idx], params["sample"]["grid"]), path=out / "samples.png")
        save_json(out / "samples.json", info)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.real", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--seed", type=int, required=True, help="which held-out draw")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="e.g. results/real/seed0")
    args = parser.parse_args(argv)
    info = run(config.load(args.params), args.seed, args.data, args.out)
    print(f"real: {info['n']} held-out real images (seed {args.seed}) -> {args.out}/samples.npy")


if __name__ == "__main__":
    run_cli(main)
