"""Build a method and its training data from the stage files, or restore a trained one (train, sample, encoder_probe)."""
from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
import torch

from pipeline import checkpoint
from pipeline.catalogue import SAMPLING_KEYS, training_settings
from pipeline.errors import PipelineError
from pipeline.io import load_json_object, load_npy
from pipeline.methods import REGISTRY, Method, TrainData
from pipeline.methods.base import hold


def limit_threads(threads: int) -> None:
    """At most ``threads`` CPU threads for torch and for numpy's and scipy's BLAS (the job's share)."""
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so oneDNN runs bf16 kernels."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def uses_bf16(precision: str, dev: torch.device) -> bool:
    """``train.precision`` on ``dev``: ``auto`` is bf16 on CUDA and fp32 on the CPU."""
    return precision == "bf16" or (precision == "auto" and dev.type == "cuda")


def autocast(precision: str, dev: torch.device) -> AbstractContextManager:
    """The training steps' autocast for ``train.precision``: bf16 (on the CPU only where it is native)
    or none. Parameters, optimiser states and checkpoints stay fp32 throughout."""
    if not uses_bf16(precision, dev):
        return nullcontext()
    if dev.type == "cpu" and not native_bf16():
        raise PipelineError("train.precision: bf16 needs a GPU or a CPU with native bf16 (AVX512-BF16 or AMX), "
                            "and this CPU has neither; use auto or fp32")
    return torch.autocast(dev.type, dtype=torch.bfloat16)


def device(threads: int, local_rank: int = 0) -> torch.device:
    """This process's GPU (``local_rank``: its index on the node), else the CPU with ``threads`` threads.

    On CUDA, cuDNN's autotuning is off and its deterministic algorithms on, and cuBLAS gets the
    fixed workspace its deterministic mode needs (set before its first use): autotuning picks
    kernels by their timing, so the same seed could end in other weights on a rerun on the same GPU.
    cuDNN's TF32 convolutions are off, as cuBLAS's matmuls are by default: ``train.precision: fp32``
    is fp32 throughout (bf16 autocast does not use TF32)."""
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.allow_tf32 = False
        return torch.device("cuda", local_rank)
    limit_threads(threads)
    return torch.device("cpu")


def method_class(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PipelineError(f"unknown method {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


def read_data(data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """data/'s images, labels and meta.json, checked against each other."""
    if not data_dir.is_dir():
        raise PipelineError(f"{data_dir}: no such data folder; run the data stage (snakemake data/images.npy)")
    meta = load_json_object(data_dir / "meta.json", ("shape", "classes", "count", "dataset"))
    images = load_npy(data_dir / "images.npy", mmap=True)
    labels = load_npy(data_dir / "labels.npy")
    check_data(images, labels, meta, data_dir)
    return images, labels, meta


def load_data(data_dir: Path, inputs: dict[str, Path], needs: tuple[str, ...], dev: torch.device,
              budget_mb: float | None = None) -> TrainData:
    """Load data/ (and the extra inputs a method needs) onto ``dev``: the images too when they take at
    most ``budget_mb`` (``train.data_budget_mb``; None: always), else they stay memory-mapped and
    each batch's rows are read from the file (:class:`MappedImages`), with the same results."""
    images, labels, meta = read_data(data_dir)
    extra: dict[str, Any] = {}
    for need in needs:
        if need not in inputs:
            raise PipelineError(f"this method needs --{need} (see rules/train.smk)")
        from pipeline import knn_io  # only instance-conditioned methods need the kNN outputs

        extra[need] = knn_io.load(need, inputs[need], n=len(images))
    return TrainData(
        images=hold(images, dev, budget_mb),
        labels=torch.from_numpy(labels).to(dev),
        n_classes=len(meta["classes"]),
        **{k: v.to(dev) for k, v in extra.items()},
    )


def check_data(images: np.ndarray, labels: np.ndarray, meta: dict, data_dir: Path) -> None:
    """images.npy and labels.npy against meta.json: dtype, shape, count and label range."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise PipelineError(f"{data_dir}/images.npy: {images.dtype} of shape {images.shape}, expected uint8 N,H,W,C; "
                            f"rerun the data stage")
    if list(images.shape[1:]) != list(meta["shape"]) or len(images) != meta["count"]:
        raise PipelineError(f"{data_dir}/images.npy: {len(images)} images of {list(images.shape[1:])}, but meta.json "
                            f"says {meta['count']} of {meta['shape']}; rerun the data stage")
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise PipelineError(f"{data_dir}/labels.npy: expected {len(images)} integer labels, found {labels.dtype} "
                            f"{labels.shape}; rerun the data stage")
    k = len(meta["classes"])
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise PipelineError(f"{data_dir}/labels.npy: labels {labels.min()}..{labels.max()} outside the {k} classes "
                            f"0..{k - 1} of meta.json; rerun the data stage")


def build(hp: dict, train: dict, data: TrainData, dev: torch.device, seed: int) -> Method:
    """The method class ``hp["method"]`` with a run's settings ``hp``, its networks initialised and its
    random streams seeded from ``seed``."""
    return method_class(hp["method"])(hp, data, train["z_dim"], train["width"], dev, train["backbone"], seed)


def restore(params: dict, run: str, run_dir: Path, data_dir: Path,
            inputs: dict[str, Path]) -> tuple[Method, dict[str, Any]]:
    """The trained run of ``run_dir``/checkpoint.pt in eval mode (EMA generator if kept), and its state.
    The checkpoint may be another run's trained alike (catalogue.trained_as: the same settings but the
    sampling keys); the networks are sampled with ``run``'s own ``SAMPLING_KEYS`` from ``params``."""
    if run not in params["methods"]:
        raise PipelineError(f"no run {run!r} under methods: (runs: {', '.join(params['methods'])})")
    state = checkpoint.load(run_dir / "checkpoint.pt", ("run", "hp", "train", "seed"))
    mine = params["methods"][run]
    if state.get("run") != run and training_settings(state["hp"]) != training_settings(mine):
        raise PipelineError(f"{run_dir}/checkpoint.pt holds run {state.get('run')!r}, not {run!r}; retrain it")
    dev = device(params["train"]["threads"])
    hp = {**state["hp"], **{k: v for k, v in mine.items() if k in SAMPLING_KEYS}}
    data = load_data(data_dir, inputs, method_class(hp["method"]).needs, dev, params["train"].get("data_budget_mb"))
    m = build(hp, state["train"], data, dev, state["seed"])
    try:
        m.nets.load_state_dict(state["nets"])
        if state["ema"] is not None:
            m.nets["G"].load_state_dict(state["ema"])
    except RuntimeError:  # parameter shapes differ: other data shape or backbone
        raise PipelineError(f"{run_dir}/checkpoint.pt: its networks do not fit the data of {data_dir} "
                            f"({list(data.images.shape[1:])} images); retrain on this data") from None
    m.nets.eval()
    return m, state
