"""cgan: class-conditional DCGAN, the baseline of MSGAN's CIFAR-10 experiment (HelenMao/MSGAN).

As in the MSGAN code: G's input is z concatenated with the one-hot label; D's input is the image
concatenated with the one-hot label tiled over the pixels (C + K input channels). The fakes of a
training batch take the real images' labels. Evaluation samples cycle through the classes, so each
class gets n/K of them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.errors import PipelineError
from pipeline.methods.gan import GAN


class CGAN(GAN):
    name = "cgan"

    def build(self):
        empty = torch.nonzero(torch.bincount(self.data.labels.cpu(), minlength=self.data.n_classes) == 0).flatten()
        if len(empty):
            raise PipelineError(f"{self.name}: class(es) {empty.tolist()} have no training image; a class-conditional "
                                f"method needs at least one image of each of the {self.data.n_classes} classes")
        return super().build()

    def extra_inputs(self):
        return self.data.n_classes

    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.data.n_classes).float()

    def conditions(self, batch):
        return batch["label"]

    def fake(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](torch.cat([z, self.onehot(labels)], 1))

    def generate(self, n, cond):
        return self.fake(self.noise(n), cond)

    def score(self, x, cond):
        tiled = self.onehot(cond)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return super().score(torch.cat([x, tiled.to(x.dtype)], 1), None)

    def sample_conditions(self, n):
        k = self.data.n_classes
        labels = torch.arange(n, device=self.device) % k
        return labels, {"conditioning": f"class labels, cycling through the {k} classes (n/{k} per class)"}
