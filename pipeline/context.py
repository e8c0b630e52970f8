"""Build a method and its training data from the stage files, or restore a trained one (train, sample, encoder_probe)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
import torch

from pipeline import checkpoint
from pipeline.errors import PipelineError
from pipeline.io import load_json, load_npy
from pipeline.methods import REGISTRY, Method, TrainData


def limit_threads(threads: int) -> None:
    """At most ``threads`` CPU threads for torch and for numpy's and scipy's BLAS (the job's share)."""
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)


def device(threads: int) -> torch.device:
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        return torch.device("cuda")
    limit_threads(threads)
    return torch.device("cpu")


def method_class(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PipelineError(f"unknown method {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


def load_data(data_dir: Path, inputs: dict[str, Path], needs: tuple[str, ...], dev: torch.device) -> TrainData:
    """Load data/ (and the extra inputs a method needs) onto ``dev``."""
    images = load_npy(data_dir / "images.npy")
    labels = load_npy(data_dir / "labels.npy")
    meta = load_json(data_dir / "meta.json")
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise PipelineError(f"{data_dir}: images.npy must be uint8 N,H,W,C with one label each")
    extra: dict[str, Any] = {}
    for need in needs:
        if need not in inputs:
            raise PipelineError(f"this method needs --{need} (see rules/train.smk)")
        from pipeline import knn_io  # only instance-conditioned methods need the kNN outputs

        extra[need] = knn_io.load(need, inputs[need], n=len(images))
    return TrainData(
        images=torch.from_numpy(images).to(dev),
        labels=torch.from_numpy(labels).to(dev),
        n_classes=len(meta["classes"]),
        **{k: v.to(dev) for k, v in extra.items()},
    )


def build(hp: dict, train: dict, data: TrainData, dev: torch.device) -> Method:
    """The method class ``hp["method"]`` with a run's settings ``hp``."""
    return method_class(hp["method"])(hp, data, train["z_dim"], train["width"], dev, train["backbone"])


def restore(params: dict, run: str, run_dir: Path, data_dir: Path,
            inputs: dict[str, Path]) -> tuple[Method, dict[str, Any]]:
    """The trained run of ``run_dir``/checkpoint.pt in eval mode (EMA generator if kept), and its state."""
    state = checkpoint.load(run_dir / "checkpoint.pt")
    if state.get("run") != run:
        raise PipelineError(f"{run_dir}/checkpoint.pt holds run {state.get('run')!r}, not {run!r}; retrain it")
    dev = device(params["train"]["threads"])
    data = load_data(data_dir, inputs, method_class(state["hp"]["method"]).needs, dev)
    m = build(state["hp"], state["train"], data, dev)
    m.nets.load_state_dict(state["nets"])
    if state["ema"] is not None:
        m.nets["G"].load_state_dict(state["ema"])
    m.nets.eval()
    return m, state
