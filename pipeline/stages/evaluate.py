"""evaluate stage: metrics of one run's samples, in one process; writes <run>/<metric>.json for each.

Embed once, score many: the samples are embedded by the backbone at most once, and every metric
in that feature space (fid, prdc) reads the same features. Each json holds the metric's values and
its protocol: name (FID only with pytorch-fid's Inception weights), backbone and input size,
sample counts, method and seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from pipeline import backbones, catalogue, config, context
from pipeline.errors import CommandLine, PipelineError, run_cli
from pipeline.images import check_images
from pipeline.io import all_or_nothing, is_seed, load_json_object, load_npy, load_npz, save_json
from pipeline.metrics import REGISTRY
from pipeline.metrics.gram import REAL_TERMS, Products


@dataclass
class EvalContext:
    """What a metric may use: params, the samples (and their condition ids), the reference folders."""

    params: dict
    samples: np.ndarray  # uint8 N,H,W,C, the first evaluate.n_fake samples
    conditions: np.ndarray  # int64 N: class, instance or image id of each sample; -1 when unconditional
    reference_root: Path
    seed: int
    device: torch.device = field(default_factory=lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cache: dict = field(default_factory=dict)  # what several metrics share, e.g. the classifier's outputs
    checked: set = field(default_factory=set)  # references whose settings were found to match

    def reference_dir(self, name: str) -> Path:
        """Reference ``name``'s folder, once its recorded settings are this evaluation's (checked once)."""
        path = self.reference_root / name
        if name in self.checked:
            return path
        if not (path / "reference.json").exists():
            raise PipelineError(f"{path}: missing reference; run `python -m pipeline.stages.reference --name {name}`")
        recorded = load_json_object(path / "reference.json", ("settings",))["settings"]
        for key, value in catalogue.reference_settings(self.params, name).items():
            if recorded.get(key, "(not recorded)") != value:
                raise PipelineError(f"{path}: built with {key} {recorded.get(key, '(not recorded)')!r}, this evaluation "
                                    f"uses {value!r}; rebuild it (snakemake -f {path})")
        self.checked.add(name)
        return path

    @cached_property
    def _backbone(self) -> backbones.Backbone:
        ev = self.params["evaluate"]
        return backbones.load(ev["backbone"], ev["input_size"], self.device, ev["resize"])

    def backbone(self) -> backbones.Backbone:
        return self._backbone

    @cached_property
    def _features(self) -> np.ndarray:
        return np.concatenate(list(backbones.feature_batches(
            self._backbone, self.samples, self.params["evaluate"]["batch_size"], self.device, desc="sample features")))

    def sample_features(self) -> np.ndarray:
        """The samples' backbone features (N, dim), computed on the first call and reused."""
        return self._features

    @cached_property
    def _real_features(self) -> np.ndarray:
        real = load_npy(self.reference_dir("backbone") / "features.npy")
        if real.ndim != 2 or real.shape[1] != self._backbone.dim:
            raise PipelineError(f"{self.reference_root}/backbone/features.npy: {real.shape} features, but "
                                f"{self._backbone.name} gives {self._backbone.dim}-d; rebuild the backbone reference")
        return real

    @cached_property
    def _products(self) -> Products:
        return Products(self._real_features, self._features)

    def products(self) -> Products:
        """Inner products of real and sample features (float64), shared by kid and prdc."""
        return self._products

    def real_terms(self, name: str, settings: dict) -> np.ndarray:
        """A term of the backbone reference's ``real_terms.npz`` (pipeline/stages/reference.py), after
        checking that it was computed with ``settings`` (what this evaluation uses)."""
        folder = self.reference_dir("backbone")
        recorded = load_json_object(folder / "reference.json", ("real_terms",))["real_terms"].get(name)
        fix = "; rebuild the backbone reference (snakemake results/reference/backbone)"
        if recorded is None:
            raise PipelineError(f"{folder}: no {name} (built while evaluate.metrics lacked its metric){fix}")
        for key, value in settings.items():
            if recorded.get(key) != value:
                raise PipelineError(f"{folder}: {name} was computed with {key} {recorded.get(key)}, this evaluation "
                                    f"uses {value}{fix}")
        return load_npz(folder / REAL_TERMS, (name,))[name]


def load_run(params: dict, run: Path, data_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    samples = load_npy(run / "samples.npy")
    check_images(samples, data_shape, f"{run}/samples.npy")
    n = params["evaluate"]["n_fake"]
    if len(samples) < n:
        raise PipelineError(f"{run}/samples.npy has {len(samples)} samples but evaluate.n_fake is {n}; "
                            f"raise sample.n or lower evaluate.n_fake")
    conditions = load_npy(run / "conditions.npy") if (run / "conditions.npy").exists() else np.full(len(samples), -1)
    if conditions.shape != (len(samples),) or conditions.dtype.kind not in "iu":
        raise PipelineError(f"{run}/conditions.npy: {conditions.dtype} {conditions.shape}, expected one integer "
                            f"per sample ({len(samples)}); rerun the sample stage")
    return samples[:n], conditions[:n]


def evaluate(params: dict, metrics: list[str], run: Path, data: Path, reference: Path) -> dict[str, dict]:
    """metric -> its result on the run's samples, all from one context (shared features)."""
    meta = load_json_object(data / "meta.json", ("shape", "dataset"))
    samples, conditions = load_run(params, run, tuple(meta["shape"]))
    run_meta = load_json_object(run / "samples.json", ("method", "seed"))
    seed = run_meta["seed"]
    if not is_seed(seed):
        raise PipelineError(f"{run}/samples.json: seed {seed!r} is not a non-negative integer; rerun the sample stage "
                            f"(snakemake -f {run}/samples.json)")
    ctx = EvalContext(params, samples, conditions, reference, seed)
    results = {}
    for metric in metrics:
        result = REGISTRY[metric].compute(ctx)
        if not np.isfinite(result["value"]):
            raise PipelineError(f"{metric}: {result['value']} on {run}/samples.npy (a failed measurement; "
                                f"look at the samples in {run}/samples.png); nothing written")
        results[metric] = {"metric": metric, **result, "method": run_meta["method"], "seed": seed,
                           "dataset": meta["dataset"]}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.evaluate", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--metric", required=True, nargs="+", choices=sorted(REGISTRY),
                        help="one or more metrics, computed in this order from shared features")
    parser.add_argument("--run", type=Path, required=True, help="run folder with samples.npy, e.g. results/gan/seed0")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--reference", type=Path, default=Path("results/reference"))
    args = parser.parse_args(argv)
    params = config.load(args.params)
    context.limit_threads(params["train"]["threads"])
    results = evaluate(params, list(dict.fromkeys(args.metric)), args.run, args.data, args.reference)
    with all_or_nothing():  # written only once every metric succeeded, and all together
        for metric, result in results.items():
            save_json(args.run / f"{metric}.json", result)
    for metric, result in results.items():
        print(f"evaluate: {args.run} {result['name']} = {result['value']:.4f}")


if __name__ == "__main__":
    run_cli(main)
