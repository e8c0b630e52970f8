"""Data-parallel training over several processes with PyTorch's DistributedDataParallel.

The train rule launches ``python -m pipeline.stages.train`` through ``torchrun`` when ``train.gpus`` x
``train.nodes`` > 1 (``pipeline.catalogue.launcher``); torchrun sets RANK, LOCAL_RANK and WORLD_SIZE, and
:func:`start` joins the process group (NCCL on CUDA, one GPU per process; gloo on CPU).

What each process does (pipeline/trainer.py):

- ``train.batch_size`` is the global batch: every rank follows the seed's random stream, and each
  random draw of a step (real images, noise, flips, instances, reparameterisation noise) is drawn
  whole and sliced, each rank keeping its ``batch_size / world`` rows (``Method.shard``). The
  processes together see exactly the images and noise one process would, and DDP averages their
  gradients, so a run means the same at any GPU count.
- Every network (and each member of a network that is a ModuleDict, such as BigBiGAN's F and H) is
  wrapped in DDP. D's wrappers run their forward passes of the G step under ``no_sync`` (D is
  frozen there: no gradient to reduce). Weights start equal (DDP broadcasts rank 0's), stay equal
  (every process applies the same averaged gradient), and the EMA of G is updated by every process
  from those equal weights, so it stays in step without communication.
- BatchNorm: on CUDA every BatchNorm layer (those inside the conditional norms too) becomes
  SyncBatchNorm, so statistics are over the global batch, as BigGAN's cross-replica BatchNorm and
  as one process computes them. PyTorch's SyncBatchNorm runs on GPUs only: on CPU (gloo) the
  statistics are per process, over ``batch_size / world`` images, the one way a CPU multi-process
  run differs from a one-process run (tests/test_distributed.py measures both). After each step
  every rank takes rank 0's buffers (running statistics, spectral norm's vectors), so G's EMA,
  which averages G's running statistics too, stays identical on every rank.
- Rank 0 alone writes logs, checkpoints and the final checkpoint; a resumed run restores every
  rank's random state. Logged losses are the mean over ranks.
"""
from __future__ import annotations

import math
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.errors import PipelineError, die_with_parent, one_line


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def tensor(self, values: list[float]) -> torch.Tensor:
        """float64 values on the device the process group communicates from (NCCL: this rank's GPU)."""
        nccl = self.size > 1 and dist.get_backend() == "nccl"
        return torch.tensor(values, dtype=torch.float64, device=f"cuda:{self.local_rank}" if nccl else "cpu")


def start(expected: int) -> World:
    """Join the process group torchrun set up (nothing for one process); check its size."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size != expected:
        raise PipelineError(f"train.gpus x train.nodes is {expected} but {size} process(es) were started; "
                            f"run the train rule (it launches torchrun --nproc-per-node train.gpus) or "
                            f"torchrun --nproc-per-node {expected} -m pipeline.stages.train ...")
    world = World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
    if size > 1:
        die_with_parent(os.getppid())  # a killed torchrun launcher takes its ranks with it
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend)
    return world


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(nets: nn.ModuleDict, world: World) -> None:
    """Replace each network of ``nets`` by its DDP wrapper (a ModuleDict network by a new ModuleDict of
    wrapped members: the ModuleDicts that hold the networks unwrapped, saved in checkpoints, are not changed)."""
    if world.size == 1:
        return
    cuda = torch.cuda.is_available()
    ids = [world.local_rank] if cuda else None
    if cuda:
        for name, net in list(nets.items()):
            nets[name] = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    for name, net in list(nets.items()):
        if isinstance(net, nn.ModuleDict):
            nets[name] = nn.ModuleDict({part: DistributedDataParallel(m, device_ids=ids) for part, m in net.items()})
        else:
            nets[name] = DistributedDataParallel(net, device_ids=ids)


@contextmanager
def no_sync(nets: list[nn.Module]) -> Iterator[None]:
    """Forward passes in this block prepare no gradient reduction for these networks."""
    if not dist.is_initialized():  # one process: nothing is wrapped
        yield
        return
    with ExitStack() as stack:
        for net in nets:
            for module in net.modules():
                if isinstance(module, DistributedDataParallel):
                    stack.enter_context(module.no_sync())
        yield


def sync_buffers(nets: nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (running statistics, spectral norm's vectors)."""
    if world.size > 1:
        for buffer in nets.buffers():
            dist.broadcast(buffer, 0)


def all_finite(value: float, world: World) -> bool:
    """Whether ``value`` is finite on every rank (so that all ranks stop together)."""
    if world.size == 1:
        return math.isfinite(value)
    finite = world.tensor([float(math.isfinite(value))])
    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def mean(values: dict[str, float], world: World) -> dict[str, float]:
    """The mean of each value over the ranks."""
    if world.size == 1 or not values:
        return values
    t = world.tensor(list(values.values()))
    dist.all_reduce(t)
    return dict(zip(values, (t / world.size).tolist()))


def gather(obj: object, world: World) -> list:
    """Every rank's ``obj``, in rank order."""
    if world.size == 1:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


@contextmanager
def peer_failures() -> Iterator[None]:
    """A collective that fails because another rank died (gloo's or NCCL's RuntimeError) becomes one
    line; the launcher (pipeline/launch.py) then names the rank that failed first."""
    try:
        yield
    except RuntimeError as err:
        lost = isinstance(err, dist.DistError) or any(s in str(err) for s in ("gloo", "NCCL", "Connection reset"))
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and lost:
            raise PipelineError(f"lost another training rank during a collective ({one_line(err)[:200]})") from None
        raise

