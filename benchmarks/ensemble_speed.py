"""Would a batched ensemble train seeds faster? k models of the default `gan` run's networks (G, D,
D's linear head, at params.yaml's width, z_dim, batch size and resolution; one channel, like the
default dataset), each one forward and backward pass: D's non-saturating loss on a real and a
generated batch, differentiated with respect to every weight (G's too). Timed two ways in one run:

- ``loop``: the k models one after another, as k separate jobs run them;
- ``vmap``: one call of ``torch.func.vmap(torch.func.grad(loss))`` over the models' stacked weights
  (``torch.func.stack_module_state``), so every operation is k times larger: the batched-ensemble
  design of issue 21.

    .venv/bin/python benchmarks/ensemble_speed.py [--models 10] [--repeats 5] [--threads 1]

Both variants' BatchNorm layers normalise by batch statistics without running averages (vmap cannot
update per-model running buffers in place), so the two do the same arithmetic; spectral norm (its
power iteration updates buffers in place) is not batched by vmap and is left out. The loop's and
vmap's best times of ``--repeats`` alternating repeats, images per second and their ratio are
printed; a ratio below 1 means the ensemble is slower than training the seeds one by one.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.func import functional_call, grad, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import config, losses  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.nets import Discriminator, Generator  # noqa: E402


def build(train: dict, resolution: int, channels: int) -> nn.ModuleDict:
    g = Generator(train["z_dim"], train["width"], resolution, channels)
    d = Discriminator(channels, train["width"], resolution)
    for bn in (m for m in [*g.modules(), *d.modules()] if isinstance(m, nn.BatchNorm2d)):
        bn.track_running_stats, bn.running_mean, bn.running_var, bn.num_batches_tracked = False, None, None, None
    return nn.ModuleDict({"G": g, "D": d, "head": nn.Linear(d.feat_dim, 1)})


def d_loss(call, z: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """D's non-saturating loss (pipeline/losses.py); ``call(name, x)`` runs one of the nets."""
    score = lambda x: call("head", call("D", x))  # noqa: E731
    return losses.d_loss("ns", score(real), score(call("G", z)))


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/ensemble_speed.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--models", type=int, default=10, help="ensemble size k (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed repeats (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    torch.set_num_threads(args.threads)
    train, k = params["train"], args.models
    resolution, channels, batch = params["dataset"]["resolution"], 1, train["batch_size"]
    torch.manual_seed(0)
    models = [build(train, resolution, channels) for _ in range(k)]
    z = torch.randn(k, batch, train["z_dim"])
    real = torch.rand(k, batch, channels, resolution, resolution) * 2 - 1

    def loop() -> None:
        for i, model in enumerate(models):
            model.zero_grad(set_to_none=True)
            d_loss(lambda name, x: model[name](x), z[i], real[i]).backward()

    weights, _ = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def one(w: dict, z1: torch.Tensor, real1: torch.Tensor) -> torch.Tensor:
        def call(name: str, x: torch.Tensor) -> torch.Tensor:
            own = {key.split(".", 1)[1]: v for key, v in w.items() if key.split(".", 1)[0] == name}
            return functional_call(skeleton[name], own, (x,))
        return d_loss(call, z1, real1)

    batched = vmap(grad(one))
    grads = {}

    def ensemble() -> None:
        grads.update(batched(weights, z, real))

    best = {}
    for _ in range(args.repeats):
        for name, step in (("loop", loop), ("vmap", ensemble)):
            step()  # warm-up (first call) or a repeat's untimed lead-in
            start = time.perf_counter()
            step()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    rate = {name: k * batch / seconds for name, seconds in best.items()}
    differ = max((grads[key][i] - p.grad).abs().max().item()  # the same work: the loop's last gradients
                 for i, model in enumerate(models) for key, p in model.named_parameters())
    print(f"ensemble_speed: {k} gan models, batch {batch}, width {train['width']}, {resolution} px, "
          f"{args.threads} thread(s); one D step's forward and backward per model")
    for name in ("loop", "vmap"):
        print(f"{name:5s} {best[name] * 1000:8.1f} ms  {rate[name]:7.0f} img/s")
    print(f"vmap / loop: x{rate['vmap'] / rate['loop']:.2f}; largest gradient difference {differ:.1e}")


if __name__ == "__main__":
    main()
