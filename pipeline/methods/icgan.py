"""icgan: instance-conditioned GAN (Casanova et al., NeurIPS 2021; facebookresearch/ic_gan, BigGAN_PyTorch).

Training (as train_fns.py and datasets_common.py): a real sample draws an instance i uniformly and
shows D a uniformly random member of i's neighbourhood A_i (the knn stage; self excluded),
conditioned on i's feature vector h_i (the features stage, L2-normalised); the fakes of the same
step are generated from separately drawn instances j, h_j. At the same seed, the instances i are
the draw that gives the unconditional baseline its real images (pipeline/streams.py), so the two
runs' reals differ only by IC-GAN's neighbour step; the neighbour positions and the instances j
come from streams of their own. G embeds h with a linear layer
(``embed_dim``; SN with ``g_sn``, as ``shared_feat``); with ``hier_z`` (the official G) block k's
conditional BatchNorm gets ``[embed(h), z_k]`` and z's first chunk is G's input; without it every
norm gets ``embed(h)``. D is the backbone's D body with a projection head on h; ``loss``: hinge
in the official code. EMA of G, spectral norm in G and horizontal flips of the real images are
the run's recipe keys (base.Method), shared with the matched unconditional baseline.

Evaluation conditions (``sampling``): ``centres``, the instances nearest the k-means centres of the
features, cycled in order (the official ImageNet protocol draws them uniformly with replacement:
this is its stratified form, every centre equally often); ``instances``, distinct uniformly drawn
training instances (the official protocol for COCO-Stuff and ImageNet-LT, small sets: the data's
own mix; officially drawn with replacement). Condition ids are instance indices.

Departures:
- the flipped-feature augmentation (``feature_augmentation``: h of the flipped image with
  probability 1/2) of the 64 px and COCO configs is not done;
- the EMA decay and start are scaled to this budget (official: 0.9999 from step 20,000);
- G's embedding of h is ``embed_dim`` wide (default 128; official ``shared_dim_feat`` 512 of
  2048-d features); the conditional norms' linear maps have biases;
- no self-attention block (official ``G_attn``/``D_attn`` "32" at 64 px): the shared backbones
  (pipeline/nets.py) have none, so the unconditional baseline lacks it alike;
- learning rates and Adam's epsilon are the run's recipe, shared with the baseline: the default
  2e-4 for G and D at batch 32 (official 64 px config: 1e-4 at batch 256) and torch's eps 1e-8
  (BigGAN_PyTorch: 1e-6).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.methods.gan import GAN
from pipeline.nets import Projection, linear


class InstanceGenerator(nn.Module):
    """(z, h) -> image: h embedded linearly, the embedding shared by every conditional norm."""

    def __init__(self, net: nn.Module, h_dim: int, embed_dim: int):
        super().__init__()
        self.embed = linear(h_dim, embed_dim)
        self.net = net  # called as net(z, shared): a HierGenerator or a generator with conditional norms

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.net(z, self.embed(h))


class ICGAN(GAN):
    name = "icgan"
    needs = ("features", "neighbours", "centres")

    def build(self):
        h_dim, embed = self.data.features.shape[1], self.hp["embed_dim"]
        d = self.discriminator(self.hp["sn"])
        return {
            "G": self.seeded("G.embed", InstanceGenerator, self.generator(shared_dim=embed), h_dim, embed),
            "D": d,
            "D_head": self.seeded("D_head", Projection, d.feat_dim, h_dim, sn=self.hp["sn"]),
        }

    def draw(self, batch_size):
        d = self.data
        dev = d.neighbours.device

        def randint(high: int, what: str) -> torch.Tensor:
            g = self.rng(what, dev)
            return self.shard(lambda k: torch.randint(high, (k,), device=dev, generator=g), batch_size)

        inst = self.real_indices(batch_size).to(dev)  # the baseline's real batch indices, as instances
        nb = d.neighbours[inst, randint(d.neighbours.shape[1], "neighbour")]
        other = randint(len(d.neighbours), "condition")
        return {"real": self.augment(d.real(nb).to(self.device)), "instance": inst.to(self.device),
                "fake_instance": other.to(self.device)}

    def h(self, instances: torch.Tensor) -> torch.Tensor:
        return self.data.features[instances].to(self.device)

    def conditions(self, batch):
        return batch["instance"]

    def fake_conditions(self, batch):
        return batch["fake_instance"]

    def generate(self, n, cond):
        return self.nets["G"](self.noise(n), self.h(cond))

    def score(self, x, cond):
        return self.nets["D_head"](self.nets["D"](x), self.h(cond))

    def sample_conditions(self, n):
        if self.hp["sampling"] == "instances":
            total = len(self.data.features)
            g = self.rng("condition")
            ids = (torch.randperm(total, device=self.device, generator=g)[:n] if n <= total
                   else torch.randint(total, (n,), device=self.device, generator=g))
            return ids, {"conditioning": "instance features of distinct uniformly drawn training instances",
                         "sampling": "instances"}
        centres = self.data.centres.to(self.device)
        ids = centres[torch.arange(n, device=self.device) % len(centres)]
        return ids, {"conditioning": f"instance features of the {len(centres)} instances nearest the k-means "
                                     "centres of the features, cycled in order", "sampling": "centres"}
