"""Method registry: the name used in params.yaml -> the class that implements it."""
from __future__ import annotations

from pipeline.methods.base import Method, TrainData
from pipeline.methods.bigbigan import BigBiGAN
from pipeline.methods.cgan import CGAN
from pipeline.methods.gan import GAN
from pipeline.methods.icgan import ICGAN
from pipeline.methods.lsgan import LSGAN
from pipeline.methods.msgan import MSGAN
from pipeline.methods.p2gan import P2GAN

REGISTRY: dict[str, type[Method]] = {cls.name: cls for cls in (GAN, LSGAN, CGAN, MSGAN, ICGAN, P2GAN, BigBiGAN)}

__all__ = ["Method", "TrainData", "REGISTRY"]
