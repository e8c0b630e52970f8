"""Common random numbers: one random stream per (seed, purpose).

Every random draw of training and sampling comes from its own ``torch.Generator``, seeded from the
run's seed and the draw's purpose: ``<phase>/<what>``, the phase being the D step (``d``), the G
step (``g``) or sampling (``sample``), and ``what`` one of ``data`` (which real images), ``flip``,
``z``, ``eps`` (reparameterised noise), ``condition`` and ``neighbour``. Each network is initialised
from its own seed, derived from (seed, ``init/<name>``). So a method and its baseline at the same
seed consume identical draws for everything they share, whatever extra draws one of them makes, and
start from the same weights wherever their networks coincide: their difference at a seed is the
method's, which is what makes the report's paired analysis valid.

Seeds are the first 8 bytes of sha256("ganbench/<seed>/<purpose>"), so streams are independent in
practice and do not depend on the order in which a method first asks for them.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import torch


def derive(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` under the run's ``seed``."""
    digest = hashlib.sha256(f"ganbench/{seed}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Streams:
    """The run's generators by purpose and device, created on first use."""

    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def __call__(self, purpose: str, device: torch.device | str) -> torch.Generator:
        key = f"{purpose}@{torch.device(device)}"
        if key not in self._generators:
            self._generators[key] = torch.Generator(torch.device(device)).manual_seed(derive(self.seed, purpose))
        return self._generators[key]

    def state(self) -> dict[str, torch.Tensor]:
        """Every stream's state (for a checkpoint)."""
        return {key: g.get_state() for key, g in self._generators.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the streams of ``state()``."""
        for key, value in state.items():
            purpose, _, device = key.rpartition("@")
            self(purpose, device).set_state(value)


@contextmanager
def seeded(seed: int, purpose: str) -> Iterator[None]:
    """PyTorch's global CPU generator seeded from (``seed``, ``purpose``) inside, restored after: networks
    are built (initialised) on the CPU inside it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(seed, purpose))
        yield
