"""icgan: instance-conditioned GAN (Casanova et al., NeurIPS 2021; facebookresearch/ic_gan).

A training sample draws an instance i uniformly; the conditioning is its feature vector h_i (the
features stage) and the real image shown to D is a uniformly random member of i's neighbourhood
A_i (the knn stage; self excluded). G embeds h_i with a learned linear layer (``embed_dim``) and
feeds it, concatenated with z as in the official code, to conditional BatchNorm in every block.
D is the spectral-norm D body with a projection head on h_i; hinge loss. Evaluation samples
cycle through the instances nearest the k-means centres of the features (the centres input).
Condition ids are instance indices.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.methods.gan import GAN
from pipeline.nets import Projection, linear


class InstanceGenerator(nn.Module):
    """(z, h) -> image: h embedded linearly, then [embed(h), z] drives every conditional norm."""

    def __init__(self, net: nn.Module, h_dim: int, embed_dim: int):
        super().__init__()
        self.embed = linear(h_dim, embed_dim)
        self.net = net  # a generator whose cond_dim is embed_dim + z_dim

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.net(z, torch.cat([self.embed(h), z], 1))


class ICGAN(GAN):
    name = "icgan"
    needs = ("features", "neighbours", "centres")
    loss_kind = "hinge"

    def build(self):
        h_dim = self.data.features.shape[1]
        d, embed = self.discriminator(sn=True), self.hp["embed_dim"]
        return {
            "G": InstanceGenerator(self.generator(self.z_dim, cond_dim=embed + self.z_dim), h_dim, embed),
            "D": d,
            "D_head": Projection(d.feat_dim, h_dim),
        }

    def draw(self, batch_size):
        d = self.data
        dev = d.neighbours.device
        inst = torch.randint(len(d.neighbours), (batch_size,), device=dev)
        nb = d.neighbours[inst, torch.randint(d.neighbours.shape[1], (batch_size,), device=dev)]
        return {"real": d.real(nb).to(self.device), "instance": inst.to(self.device)}

    def h(self, instances: torch.Tensor) -> torch.Tensor:
        return self.data.features[instances].to(self.device)

    def conditions(self, batch):
        return batch["instance"]

    def generate(self, n, cond):
        return self.nets["G"](self.noise(n), self.h(cond))

    def score(self, x, cond):
        return self.nets["D_head"](self.nets["D"](x), self.h(cond))

    def sample_conditions(self, n):
        centres = self.data.centres.to(self.device)
        ids = centres[torch.arange(n, device=self.device) % len(centres)]
        return ids, {"conditioning": f"instance features of the {len(centres)} instances nearest the k-means "
                                     "centres of the features, cycled in order"}
