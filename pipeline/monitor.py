"""Quality during training: FD and KID of a fixed batch of samples every ``train.eval_every`` steps.

At each of those steps (and the last), the generator the sample stage would use (the EMA copy when
the run keeps one, in eval mode) draws ``train.eval_samples`` images from the same noise and
conditions every time (from the random streams of seed ``NOISE_SEED``, swapped in for the draw, so
training's streams are untouched and a run's weights do not depend on the monitor). Their features in the
evaluation backbone (``evaluate.backbone``, ``input_size``, ``resize``) are scored against the
reference stage's real statistics and features, by the metric code of pipeline/metrics: the
columns ``fd`` (fid's Frechet distance) and ``kid`` (kid's unbiased MMD, its subsets capped by the
sample count) of train_log.csv. Fewer samples than the final evaluation makes these values biased
upwards (FD most): they show a run's progress, they are not its result. Off (0) by default on the
CPU, where one evaluation of 2,000 samples takes as long as about 190 training steps of the
default `gan` (6.2 s at 970 img/s, one thread).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from pipeline import backbones
from pipeline.errors import PipelineError
from pipeline.io import load_npy
from pipeline.methods import Method
from pipeline.metrics import fid, kid
from pipeline.streams import Streams

NOISE_SEED = 20_240_101


class QualityMonitor:
    def __init__(self, params: dict, reference: Path, device: torch.device):
        ev, train = params["evaluate"], params["train"]
        self.n, self.batch_size = train["eval_samples"], ev["batch_size"]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # its init draws
            self.backbone = backbones.load(ev["backbone"], ev["input_size"], device, ev["resize"])
        fid.check_count(self.n, self.backbone.dim, "train.eval_samples")
        self.stats = fid.load_real(reference / "stats.npz")
        fid.check_count(int(self.stats["n"]), self.backbone.dim, "real (evaluate.n_real)")
        self.real = load_npy(reference / "features.npy")
        dim = self.backbone.dim
        shapes = {"stats.npz (mu)": (self.stats["mu"].shape, (dim,)),
                  "stats.npz (sigma)": (self.stats["sigma"].shape, (dim, dim)),
                  "features.npy (per image)": (self.real.shape[1:], (dim,))}
        for name, (shape, expected) in shapes.items():
            if shape != expected:
                raise PipelineError(f"{reference}/{name}: shape {tuple(shape)}, not the {ev['backbone']} backbone's "
                                    f"{dim}-d features; rebuild the reference (snakemake -f {reference})")
        self.kid_subsets, self.kid_size = ev["kid_subsets"], ev["kid_subset_size"]

    def samples(self, method: Method, plain: nn.ModuleDict, g: nn.Module) -> np.ndarray:
        """The fixed batch from generator ``g``, the method's other networks taken from ``plain`` (not
        DDP-wrapped: rank 0 draws alone), all in eval mode for the draw and restored after."""
        nets = nn.ModuleDict({**plain, "G": g})
        modes = {name: net.training for name, net in nets.items()}
        saved = method.nets, method.streams, method.phase
        # sample_images() reads its networks from method.nets and its draws from method.streams
        method.nets, method.streams, method.phase = nets, Streams(NOISE_SEED), "sample"
        nets.eval()
        try:
            cond, _ = method.sample_conditions(self.n)
            return method.sample_images(self.n, cond, self.batch_size, desc="monitor samples")
        finally:
            method.nets, method.streams, method.phase = saved
            for name, net in nets.items():
                net.train(modes[name])

    def __call__(self, method: Method, plain: nn.ModuleDict, g: nn.Module) -> dict[str, float]:
        images = self.samples(method, plain, g)
        features = np.concatenate(list(backbones.feature_batches(self.backbone, images, self.batch_size,
                                                                 method.device, desc="monitor")))
        stats = fid.RunningStats(features.shape[1])
        stats.update(features)
        fd = fid.frechet_distance(self.stats["mu"], self.stats["sigma"], *stats.result(), self.stats["root"])
        size = min(self.kid_size, len(features), len(self.real))
        value, _, _ = kid.kid(self.real, features, self.kid_subsets, size)
        return {"fd": round(fd, 6), "kid": round(value, 8)}
