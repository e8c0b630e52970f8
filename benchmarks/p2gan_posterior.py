"""P2GAN ablation: does G use the posterior it is styled by? FD of a trained p2gan run's samples
when G's style input z is (1) a sample of D's posterior of a real image, as trained and as the
sample stage does, (2) the same samples with their dimensions shuffled independently per image
(same values, structure broken), (3) drawn from the real prior Pb, (4) drawn from G's prior Pc.
The noise input is the same in every variant. A variant whose FD equals (1)'s would mean G
ignores that part of the posterior. Also printed: the spread of mu across images against the mean
sigma, i.e. how much of a posterior sample is the image's and how much noise.

    .venv/bin/python benchmarks/p2gan_posterior.py --run results/p2gan/seed0 [--method p2gan] [--n 5000]

Needs the run's checkpoint, data/ and results/reference/backbone (``snakemake results/reference/backbone``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import config, context  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.images import to_uint8  # noqa: E402
from pipeline.metrics import fid  # noqa: E402
from pipeline.stages.evaluate import EvalContext  # noqa: E402


def fd(params: dict, images: np.ndarray, reference: Path) -> float:
    ctx = EvalContext(params, images, np.full(len(images), -1), reference, 0)
    return fid.compute(ctx)["value"]


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/p2gan_posterior.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--run", type=Path, required=True, help="a trained p2gan run folder, e.g. results/p2gan/seed0")
    parser.add_argument("--method", default="p2gan", help="its run name in params.yaml (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--reference", type=Path, default=Path("results/reference"))
    parser.add_argument("--n", type=int, default=5000, help="samples per variant (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    m, state = context.restore(params, args.method, args.run, args.data, {})
    torch.manual_seed(state["seed"])
    with torch.no_grad():
        idx = torch.randint(len(m.data.images), (args.n,))
        mu, sigma = torch.cat([torch.cat(m.posterior(m.data.real(i).to(m.device)), 1)
                               for i in idx.split(500)]).chunk(2, 1)
        eps, noise = torch.randn_like(mu), m.noise(args.n)
        post = mu + eps * sigma
        shuffled = torch.gather(post, 1, torch.argsort(torch.rand_like(post), 1))
        variants = {"posterior of a real image (trained)": post, "posterior, dimensions shuffled": shuffled}
        for which, label in (("b", "real prior Pb"), ("c", "G's prior Pc")):
            mean, std = m.prior(which)
            variants[f"{label} N({mean:g}, {std:g}^2)"] = mean + eps * std
        print(f"{args.run}: step {state['step']}; mu spread across images {mu.std(0).mean():.4f}, "
              f"mean sigma {sigma.mean():.4f} (reals)")
        base = None
        for name, z in variants.items():
            images = np.concatenate([to_uint8(m.nets["G"](e, s)) for e, s in zip(noise.split(500), z.split(500))])
            value = fd(params, images, args.reference)
            base = base or value
            print(f"  {name:<40} FD {value:8.3f}  ratio {value / base:.3f}", flush=True)


if __name__ == "__main__":
    main()
