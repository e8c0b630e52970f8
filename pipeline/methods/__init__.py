"""Method registry: the name used in params.yaml -> the class that implements it."""
from __future__ import annotations

from pipeline.methods.base import Method, TrainData
from pipeline.methods.gan import GAN

REGISTRY: dict[str, type[Method]] = {cls.name: cls for cls in (GAN,)}

__all__ = ["Method", "TrainData", "REGISTRY"]
