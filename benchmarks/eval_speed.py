"""Evaluation speed and memory, printed in one run (``python -m benchmarks.eval_speed --help``).

(a) FID of N generated images: this pipeline (reference statistics cached by the reference stage,
    images read from one array, streaming statistics) against pytorch-fid's own file-based path
    (``compute_statistics_of_path`` on two PNG folders, both sets from scratch, as its command line
    does), with the same efficientnet_lite0 backbone passed to both; times, ratio, agreement.
(b) NDB on N samples: bins fitted with faiss K-means against scikit-learn KMeans as the reference
    code uses it (n_init 10, 100 iterations), and with one start (faiss' amount of work); times,
    ratios and the NDB values each gives.
(c) Peak memory of evaluating the FID of M samples with streaming statistics: the process's peak
    resident set (Linux VmHWM, reset through /proc/self/clear_refs just before) and tracemalloc's
    peak of numpy/Python allocations.
(d) EfficientNet-Lite0 features per second at 32 and 64 px: the PyPI model as shipped, with its
    "same" paddings folded into the convolutions, and as this pipeline loads it (batch
    norms folded too, ReLU6 in place); ratios and the largest feature difference.
(e) The cost of FID in the default study: features per second of the evaluation backbone as
    configured (efficientnet_lite0 at evaluate.input_size) and of the FID Inception at 299 px (the
    offline weights unless pytorch-fid's file is present), on the same real images, each through
    its resize; and the images the study embeds (every run and the floor, every seed, n_fake each,
    plus n_real once), so the CPU time of each space.

Real images: the reference stage's fixed subset of data/images.npy. "Generated" images: a random
N training images with Gaussian pixel noise (std 24), so that the distances are not zero. Run it
from the repository root.
"""
from __future__ import annotations

import copy
import os
import re
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from pytorch_fid import fid_score
from sklearn.cluster import KMeans
from tqdm import tqdm

from pipeline import backbones, config
from pipeline.errors import CommandLine
from pipeline.io import load_npy
from pipeline.metrics import fid, ndb
from pipeline.stages.evaluate import EvalContext
from pipeline.stages import reference
from pipeline.subsets import real_subset


class PytorchFidModel(nn.Module):
    """A backbone in pytorch-fid's model contract: [0, 1] RGB batch in, [features (B, D, 1, 1)] out."""

    def __init__(self, backbone: backbones.Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.backbone(x * 2 - 1)[:, :, None, None]]


def peak_rss_mb(reset: bool = False) -> float:
    """Peak resident set of this process (VmHWM); ``reset`` first lowers it to the current RSS."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def disturbed(images: np.ndarray, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 24, images.shape)
    return np.clip(images + noise, 0, 255).round().astype(np.uint8)


def write_pngs(images: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(tqdm(images, desc=f"png {folder.name}", disable=None, leave=False)):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i:06d}.png")


def context(params: dict, samples: np.ndarray, reference_root: Path) -> EvalContext:
    return EvalContext(params, samples, np.full(len(samples), -1), reference_root, 0, torch.device("cpu"))


def memory(params: dict, images: np.ndarray, ref_root: Path) -> None:
    ctx = context(params, images, ref_root)
    ctx.backbone()  # load the network before measuring
    before = peak_rss_mb(reset=True)
    tracemalloc.start()
    t = time.perf_counter()
    result = fid.compute(ctx)
    elapsed = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dim = ctx.backbone().dim
    after = peak_rss_mb()
    print(f"(c) memory: FID of {len(images)} samples ({images.nbytes / 2**20:.0f} MB of uint8 samples) in "
          f"{elapsed:.1f} s: peak RSS {before:.0f} MB at the start -> {after:.0f} MB (+{after - before:.0f} MB); "
          f"tracemalloc peak {peak / 2**20:.1f} MB; holding all features instead would take "
          f"{len(images) * dim * 8 / 2**20:.0f} MB (float64); {result['name']} {result['value']:.4f}")


def backbone_reference(params: dict, images: np.ndarray, ref_root: Path) -> float:
    """Build the backbone reference as the reference stage does; its seconds."""
    t = time.perf_counter()
    reference.build(params, "backbone", images, np.zeros(len(images), np.int64), ref_root / "backbone")
    return time.perf_counter() - t


def fid_speed(params: dict, images: np.ndarray, fake: np.ndarray, ref_root: Path, work: Path, workers: int) -> None:
    ev = params["evaluate"]
    cache_s = backbone_reference(params, images, ref_root)
    real = real_subset(images, len(fake), "--n")
    ctx = context(params, fake, ref_root)
    ctx.backbone()  # pytorch-fid is given a loaded network too
    t = time.perf_counter()
    ours = fid.compute(ctx)["value"]
    ours_s = time.perf_counter() - t

    write_pngs(real, work / "real")
    write_pngs(fake, work / "fake")
    model = PytorchFidModel(ctx.backbone())
    dim = ctx.backbone().dim
    t = time.perf_counter()
    stats = [fid_score.compute_statistics_of_path(str(work / name), model, ev["batch_size"], dim, "cpu", workers)
             for name in ("real", "fake")]
    theirs = fid_score.calculate_frechet_distance(*stats[0], *stats[1])
    theirs_s = time.perf_counter() - t
    rel = abs(ours - theirs) / abs(theirs)
    print(f"(a) FID of {len(fake)} generated images, backbone {ctx.backbone().name} at {ev['input_size']}px, "
          f"batch {ev['batch_size']}:")
    print(f"    pipeline (cached reference stats, one array): {ours_s:.1f} s   [one-off reference stats of "
          f"{len(real)} real images: {cache_s:.1f} s]")
    print(f"    pytorch-fid compute_statistics_of_path on PNG folders, both sets, {workers} workers: {theirs_s:.1f} s")
    print(f"    ratio pytorch-fid / pipeline: {theirs_s / ours_s:.2f}x (per image: {1000 * ours_s / len(fake):.1f} vs "
          f"{1000 * theirs_s / (2 * len(fake)):.1f} ms);  FID {ours:.6f} vs {theirs:.6f}, relative difference "
          f"{rel:.2e} ({'agree' if rel < 1e-3 else 'DISAGREE'} to 1e-3)")


def ndb_speed(params: dict, train: np.ndarray, fake: np.ndarray) -> None:
    ev = params["evaluate"]
    k, alpha = ev["ndb_bins"], ev["ndb_alpha"]
    x, y = ndb.flatten(train), ndb.flatten(fake)

    def sklearn_kmeans(n_init: int):
        def cluster(data: np.ndarray, n: int, seed: int) -> np.ndarray:
            return KMeans(n_clusters=n, max_iter=ndb.ITERATIONS, n_init=n_init, random_state=seed).fit(data).labels_
        return cluster

    print(f"(b) NDB, K={k}: bins fitted on {len(x)} training images ({x.shape[1]} pixels, "
          f"{len(ndb.used_dims(x.shape[1], ndb.SEED))} used), {len(y)} generated samples scored:")
    timings = {}
    for label, cluster in (("faiss K-means (pipeline)", ndb.faiss_kmeans),
                           ("sklearn KMeans n_init=10 (reference)", sklearn_kmeans(10)),
                           ("sklearn KMeans n_init=1", sklearn_kmeans(1))):
        t = time.perf_counter()
        bins = ndb.fit(x, k, ev["ndb_whiten"], cluster=cluster)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        got = ndb.score(bins, y, alpha, k)
        timings[label] = fit_s
        print(f"    {label:38s} fit {fit_s:6.2f} s, score {time.perf_counter() - t:.2f} s: NDB {got['value']} "
              f"(NDB/K {got['ndb_k']:.2f}), JSD {got['jsd']:.4f}")
    base = timings["faiss K-means (pipeline)"]
    print("    fit time ratio vs faiss: " + ", ".join(f"{label.split(' (')[0]} {s / base:.1f}x"
                                                     for label, s in list(timings.items())[1:]))


def net_speed(batch: int = 250, repeats: int = 4) -> None:
    """EfficientNet-Lite0 as shipped, with its pads folded, and as the pipeline loads it."""
    loaded = backbones.efficientnet_lite0_net().requires_grad_(False)
    shipped = backbones.efficientnet_lite_net(0, as_shipped=True).requires_grad_(False)
    pads_only = backbones.efficientnet_lite_net(0, as_shipped=True).requires_grad_(False)
    backbones.fold_padding(pads_only)
    nets = {"as shipped": shipped, "pads folded": pads_only, "as loaded": loaded}
    print(f"(d) EfficientNet-Lite0 features, batch {batch}, {repeats} batches; as loaded = pads and batch norms "
          f"folded into the convolutions, ReLU6 in place:")
    for size in (32, 64):
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        times = {}
        with torch.no_grad():
            diff = (loaded.extract_features(x) - shipped.extract_features(x)).abs().max().item()
            for label, net in list(nets.items()) * 2:
                t = time.perf_counter()
                for _ in range(repeats):
                    net.extract_features(x)
                times[label] = min(times.get(label, float("inf")), time.perf_counter() - t)
        rates = {label: batch * repeats / s for label, s in times.items()}
        print(f"    {size} px: " + ", ".join(f"{label} {rate:.0f} img/s ({rate / rates['as shipped']:.2f}x)"
                                        for label, rate in rates.items())
              + f"; largest difference as loaded vs as shipped {diff:.1e}")


def backbone_cost(params: dict, images: np.ndarray, n: int = 200) -> None:
    ev, study = params["evaluate"], params["study"]["methods"]
    embedded = len(study) * len(params["train"]["seeds"]) * ev["n_fake"] + ev["n_real"]
    print(f"(e) features per second, {n} real images, batch {ev['batch_size']}; the default study embeds "
          f"{embedded:,} images ({len(study)} runs x {len(params['train']['seeds'])} seeds x {ev['n_fake']:,} + "
          f"{ev['n_real']:,} real)")
    rates = {}
    for name, size in ((ev["backbone"], ev["input_size"]), ("inception", 299)):
        net = backbones.load(name, size, "cpu", ev["resize"])
        backbones.features(net, images[:ev["batch_size"]], ev["batch_size"])  # warm-up
        t = time.perf_counter()
        backbones.features(net, images[:n], ev["batch_size"])
        rates[name] = n / (time.perf_counter() - t)
        print(f"    {name} at {net.input_size} px ({net.weights}): {rates[name]:.0f} img/s, "
              f"{1000 / rates[name]:.2f} ms/img; the study's embeddings: {embedded / rates[name] / 3600:.2f} CPU-hours")
    first, inception = rates[ev["backbone"]], rates["inception"]
    print(f"    Inception / {ev['backbone']} time per image: {first / inception:.0f}x")


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/eval_speed.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--n", type=int, default=10_000, help="generated images in (a) and (b)")
    parser.add_argument("--n-memory", type=int, default=50_000, help="samples in (c)")
    parser.add_argument("--threads", type=int, help="torch threads (default: train.threads)")
    parser.add_argument("--parts", default="abcde", help="which parts to run (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    threads = args.threads or params["train"]["threads"]
    torch.set_num_threads(threads)
    workers = min(len(os.sched_getaffinity(0)), 8)  # pytorch-fid's command-line default
    images = load_npy(args.data / "images.npy")
    fake = disturbed(images[np.random.default_rng(1).permutation(len(images))[:args.n]])
    print(f"eval_speed: {params['dataset']['name']} {images.shape[1:]}, {threads} torch thread(s), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if "d" in args.parts:
        net_speed()
    real_n = copy.deepcopy(params)  # (a) and (c) read a backbone reference of --n real images
    real_n["evaluate"]["n_real"] = args.n
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "a" in args.parts:
            fid_speed(real_n, images, fake, work / "reference", work, workers)
        if "b" in args.parts:
            ndb_speed(params, real_subset(images, args.n, "--n"), fake)
        if "c" in args.parts:
            if "a" not in args.parts:
                backbone_reference(real_n, images, work / "reference")
            memory(real_n, images[:args.n_memory], work / "reference")
    if "e" in args.parts:
        backbone_cost(params, images)


if __name__ == "__main__":
    main()
