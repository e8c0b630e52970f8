"""encoder_probe stage: the features stage's linear probe on a trained method's encoder; writes <run>/probe.json.

Representation learning is BigBiGAN's claim, so its encoder E is scored exactly as the features
stage scores an extractor (same probe, same train/held-out split from ``features.probe`` and
``features.seed``), and so is the same encoder with its random initial weights (drawn with the run's
seed), the no-learning reference. ``value`` is the linear-probe accuracy; ``knn`` the kNN accuracy;
``random_init`` and ``random_init_knn`` the same scores at initialisation.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline import config, context
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.features import probe
from pipeline.io import load_json, save_json


def run(params: dict, method: str, run_dir: Path, data_dir: Path) -> dict:
    m, state = context.restore(params, method, run_dir, data_dir, {})
    if not hasattr(m, "encode"):
        raise PipelineError(f"method {method!r} has no encoder to probe")
    torch.manual_seed(state["seed"])
    untrained = context.build(state["hp"], state["train"], m.data, m.device, state["seed"])  # the run's own initial weights
    untrained.nets.eval()
    images, labels = m.data.images_numpy(), m.data.labels.cpu().numpy()
    fc, pc = params["features"], params["features"]["probe"]
    train, test = probe.split(len(images), pc["n_train"], pc["n_test"], fc["seed"])
    args = (images, labels, train, test, pc["k"], fc["batch_size"], m.device)
    trained = probe.net_scores(m.encode, *args, f"{method} encoder")
    initial = probe.net_scores(untrained.encode, *args, f"{method} encoder at init")
    return {"metric": "probe", "name": "linear_probe_accuracy", "value": trained["linear_probe_accuracy"],
            "knn": trained["knn_accuracy"], "random_init": initial["linear_probe_accuracy"],
            "random_init_knn": initial["knn_accuracy"], "k": min(pc["k"], len(train)), "n_train": len(train), "n_test": len(test),
            "method": method, "seed": state["seed"], "dataset": load_json(data_dir / "meta.json")["dataset"]}


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.encoder_probe", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--method", required=True, help="a run whose method has an encoder (bigbigan)")
    parser.add_argument("--run", type=Path, required=True, help="run folder with checkpoint.pt (probe.json goes there)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data stage folder (default: %(default)s)")
    args = parser.parse_args(argv)
    result = run(config.load(args.params), args.method, args.run, args.data)
    save_json(args.run / "probe.json", result)
    print(f"encoder_probe: {args.run}: linear probe {result['value']:.4f} (random init {result['random_init']:.4f}), "
          f"kNN {result['knn']:.4f} (random init {result['random_init_knn']:.4f})")


if __name__ == "__main__":
    run_cli(main)
