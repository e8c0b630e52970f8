"""The method contract: what one GAN variant states, and nothing the trainer does for all.

A method builds its networks (``nets``: G, D and any others), says which of them each optimiser
updates, draws a training batch, computes its D and G losses, and samples. The trainer
(``pipeline.trainer``) owns the loop, optimisers, EMA, checkpoints and logging.

``hp`` is a run's settings (``methods.<run>`` in params.yaml). Every run has the recipe keys that
a fair comparison must hold equal: ``sn`` (spectral norm in D instead of BatchNorm), ``g_sn``
(spectral norm on every layer of G, as BigGAN), ``ema``/``ema_start`` (EMA of G, read by the
trainer), ``hflip`` (each real image flipped horizontally with probability 1/2) and the Adam
settings. ``hier_z`` (methods with a plain noise input): BigGAN's hierarchical latent, one chunk
of z per G block (:class:`pipeline.nets.HierGenerator`).

Randomness (pipeline/streams.py): every network is built by ``seeded(name, ...)`` (or the
``generator``/``discriminator`` helpers, which are), and every draw takes its generator from
``rng(what)``, a stream of (seed, ``phase``/what); the trainer sets ``phase`` to ``d`` or ``g``
for each step, sampling leaves it at ``sample``. A method draws its extras (neighbour positions,
reparameterisation noise) from purposes its baseline does not use, so the draws both share stay
identical at the same seed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from pipeline import nets, streams
from pipeline.images import to_float, to_uint8


class MappedImages:
    """uint8 N,H,W,C images left in a memory-mapped data/images.npy (too large for the device): indexing
    with a tensor of indices gathers those rows, sorted by index for locality and put back in the
    order given, split among ``THREADS`` background threads when there are at least
    ``2 x ROWS_PER_THREAD`` (so reads of uncached pages overlap), then moves them to ``device``
    (through pinned memory, asynchronously, on CUDA). ``device`` is where the images would be held,
    so indices are drawn there from the same random stream as in memory. The indices are those the
    method draws, when it draws them: the next batch cannot be read ahead without drawing its
    indices early, which would change every later random number."""

    THREADS = 4
    ROWS_PER_THREAD = 256

    def __init__(self, array: np.ndarray, device: torch.device):
        self.array, self.device, self.shape = array, torch.device(device), tuple(array.shape)
        self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="gather")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        flat = idx.reshape(-1).cpu().numpy()
        order = np.argsort(flat, kind="stable")
        rows = flat[order]
        out = torch.empty((len(flat), *self.shape[1:]), dtype=torch.uint8, pin_memory=self.device.type == "cuda")
        buf = out.numpy()

        def gather(part: np.ndarray) -> None:
            buf[order[part]] = self.array[rows[part]]

        parts = np.array_split(np.arange(len(flat)), max(1, min(self.THREADS, len(flat) // self.ROWS_PER_THREAD)))
        if len(parts) == 1:  # a small batch: a thread's hand-off would cost more than the reads
            gather(parts[0])
        else:
            for done in [self._pool.submit(gather, part) for part in parts]:
                done.result()
        return out.reshape(*idx.shape, *self.shape[1:]).to(self.device, non_blocking=True)


def hold(images: np.ndarray, device: torch.device, budget_mb: float | None) -> torch.Tensor | MappedImages:
    """uint8 N,H,W,C ``images`` (a memory map of data/images.npy) copied onto ``device`` when they take at
    most ``budget_mb`` (``train.data_budget_mb``; None: always), else left in the memory map."""
    if budget_mb is None or images.nbytes <= budget_mb * 2**20:
        return torch.from_numpy(np.array(images)).to(device)
    return MappedImages(images, device)


@dataclass
class TrainData:
    """Training data on the training device (the images memory-mapped instead when they exceed
    ``train.data_budget_mb``); features and neighbours only for instance methods."""

    images: torch.Tensor | MappedImages  # uint8 N,H,W,C
    labels: torch.Tensor  # int64 N
    n_classes: int
    features: torch.Tensor | None = None  # float32 N,D, L2-normalised
    neighbours: torch.Tensor | None = None  # int64 N,k
    centres: torch.Tensor | None = None  # int64 instance indices used as sampling conditions

    @property
    def shape(self) -> tuple[int, int, int]:
        n, h, w, c = self.images.shape
        return h, w, c

    def real(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` as floats in [-1, 1], converted where they are held (no round trip through the host)."""
        return to_float(self.images[idx], self.images.device)

    def images_numpy(self) -> np.ndarray:
        """The images as a numpy array (the memory map itself when they are not held in memory)."""
        return self.images.array if isinstance(self.images, MappedImages) else self.images.cpu().numpy()


class Method(ABC):
    """Base class: an unconditional method with one G and one D and Adam optimisers."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # extra inputs: "features", "neighbours", "centres"
    g_nets: ClassVar[tuple[str, ...]] = ("G",)
    d_nets: ClassVar[tuple[str, ...]] = ("D",)

    def __init__(self, hp: dict[str, Any], data: TrainData, z_dim: int, width: int, device: torch.device,
                 backbone: str = "dcgan", seed: int = 0):
        self.hp, self.data, self.z_dim, self.width, self.device = hp, data, z_dim, width, device
        self.backbone = backbone
        self.streams, self.phase = streams.Streams(seed), "sample"
        self.rank, self.world = 0, 1  # this process's share of each random draw (pipeline/distributed.py)
        self.resolution, _, self.channels = data.shape
        # channels_last: faster convolutions on CPU (about 15% per step, measured) and CUDA; real
        # batches are already in that layout (to_float permutes N,H,W,C)
        built = self.build()
        if hp["g_sn"]:
            self.seeded("G.spectral_norm", nets.spectral_normalise, built["G"])
        self.nets = nn.ModuleDict(built).to(device, memory_format=torch.channels_last)

    # --- what a method defines -------------------------------------------------------------
    @abstractmethod
    def build(self) -> dict[str, nn.Module]:
        """The method's networks by name (G and D at least)."""

    @abstractmethod
    def d_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """D's loss on a batch, and the values to log."""

    @abstractmethod
    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """G's loss on a batch (the nets in ``g_nets`` are updated), and the values to log."""

    def generate(self, n: int, cond: torch.Tensor | None) -> torch.Tensor:
        """n images in [-1, 1] from G for the given conditions (None for unconditional methods)."""
        return self.nets["G"](self.noise(n))

    def sample_images(self, n: int, cond: torch.Tensor | None, batch_size: int, desc: str = "sample") -> np.ndarray:
        """uint8 N,H,W,C: ``n`` images from :meth:`generate`, ``batch_size`` at a time, for the condition
        ids ``cond`` (None: unconditional)."""
        out = np.empty((n, *self.data.shape), np.uint8)
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc=desc, disable=None, leave=False):
                c = None if cond is None else cond[start:start + batch_size]
                out[start:start + batch_size] = to_uint8(self.generate(min(batch_size, n - start), c))
        return out

    # --- randomness ------------------------------------------------------------------------
    def seeded(self, name: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``make(*args, **kwargs)`` with PyTorch's generator seeded for network ``name``: networks of the
        same name and shape start from the same weights in every method at the same seed."""
        with streams.seeded(self.streams.seed, f"init/{name}"):
            return make(*args, **kwargs)

    def rng(self, what: str, device: torch.device | None = None) -> torch.Generator:
        """The stream of draws ``what`` in the current phase, on ``device`` (default: the method's)."""
        return self.streams(f"{self.phase}/{what}", self.device if device is None else device)

    # --- shared defaults -------------------------------------------------------------------
    def generator(self, shared_dim: int = 0, extra_in: int = 0, name: str = "G") -> nn.Module:
        """The ``train.backbone`` generator at the run's width and the data's shape, called as
        ``G(z, shared)``: z (B, z_dim + extra_in) and, when ``shared_dim``, a condition for every
        conditional norm. With ``hier_z`` it is BigGAN's hierarchical latent (``z_dim`` becomes a
        multiple of its chunk count; ``extra_in`` is not supported)."""
        make = nets.BACKBONES[self.backbone][0]
        if self.hp.get("hier_z"):
            if extra_in:
                raise ValueError("hier_z takes no extra input channels")
            g = self.seeded(name, nets.HierGenerator, make, self.z_dim, shared_dim, self.width, self.resolution,
                            self.channels)
            self.z_dim = g.z_dim
            return g
        return self.seeded(name, make, self.z_dim + extra_in, self.width, self.resolution, self.channels, shared_dim)

    def discriminator(self, sn: bool, extra_channels: int = 0, name: str = "D") -> nn.Module:
        """The ``train.backbone`` discriminator body (flat features, ``feat_dim`` wide)."""
        return self.seeded(name, nets.BACKBONES[self.backbone][1], self.channels + extra_channels, self.width,
                           self.resolution, sn)


    def shard(self, draw: Callable[[int], torch.Tensor], n: int) -> torch.Tensor:
        """``draw(n)``; with several processes, this rank's n rows of ``draw(n x world)`` from the random
        stream every rank shares, so that the processes together draw what one process would."""
        if self.world == 1:
            return draw(n)
        return draw(n * self.world)[self.rank * n:(self.rank + 1) * n]

    def gaussian_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped as the batch ``x`` (reparameterised sampling)."""
        g = self.rng("eps", x.device)
        return self.shard(lambda k: torch.randn(k, *x.shape[1:], device=x.device, dtype=x.dtype, generator=g), len(x))

    def noise(self, n: int) -> torch.Tensor:
        g = self.rng("z")
        return self.shard(lambda k: torch.randn(k, self.z_dim, device=self.device, generator=g), n)

    def real_indices(self, batch_size: int) -> torch.Tensor:
        """Uniformly random training image indices: the draw every method's real batch starts from."""
        dev = self.data.images.device
        g = self.rng("data", dev)
        return self.shard(lambda k: torch.randint(len(self.data.images), (k,), device=dev, generator=g), batch_size)

    def draw(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A training batch: uniformly random real images with their labels."""
        idx = self.real_indices(batch_size)
        return {"real": self.augment(self.data.real(idx).to(self.device)), "label": self.data.labels[idx].to(self.device)}

    def augment(self, real: torch.Tensor) -> torch.Tensor:
        """With ``hflip``, each real image (B, C, H, W) flipped horizontally with probability 1/2."""
        if not self.hp["hflip"]:
            return real
        g = self.rng("flip", real.device)
        flip = self.shard(lambda k: torch.rand(k, device=real.device, generator=g), len(real)) < 0.5
        return torch.where(flip[:, None, None, None], real.flip(3), real)

    def sample_conditions(self, n: int) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """Condition ids for n evaluation samples (int64: class labels, instance or real-image indices;
        None when unconditional) and a description for samples.json. The sample stage stores the ids
        in conditions.npy (metrics such as per-condition LPIPS group by them) and passes slices of
        them to ``generate``."""
        return None, {"conditioning": "none (z ~ N(0, I))"}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hp
        betas = (hp["beta1"], hp["beta2"])
        wd = hp.get("weight_decay", 0.0)
        params = lambda names: [p for n in names for p in self.nets[n].parameters()]  # noqa: E731
        return {
            "d": torch.optim.Adam(params(self.d_nets), lr=hp["lr_d"], betas=betas, weight_decay=wd),
            "g": torch.optim.Adam(params(self.g_nets), lr=hp["lr_g"], betas=betas, weight_decay=wd),
        }
