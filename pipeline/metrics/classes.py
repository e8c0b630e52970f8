"""classes: which classes the samples cover, and how far their class histogram is from the real one.

A small CNN classifier (reference ``classifier``: results/reference/classifier/weights.pt, a state
dict) is trained on the labelled training images except a held-out fraction
(``evaluate.classifier_holdout``, seed 0) on which its accuracy is measured and recorded. Per
method it labels every sample:

- ``value``: classes covered, i.e. predicted for at least one sample (out of ``n_classes``);
- ``kl``: KL(generated || real) = sum_c g_c ln(g_c / r_c), with g the predicted class proportions of
  the samples and r the label proportions of the training images. No smoothing is needed in this
  direction: every class has real images (checked when the classifier is built) and an empty
  generated class contributes 0 ln 0 = 0. It is 0 for a matching histogram, and ln 2 when every
  sample falls in one of two balanced classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.images import to_float
from pipeline.io import atomic_path, load_json

reference = "classifier"
MIN_HELD_OUT = 100  # images on each side of the split: an accuracy from fewer is too coarse to report
WIDTH = 16
LR = 3e-3  # Adam, cosine-annealed to 0 over evaluate.classifier_steps
SEED = 0


class Classifier(nn.Sequential):
    """Three stride-2 conv-BN-ReLU stages and a linear layer on global average pooling."""

    def __init__(self, channels: int, n_classes: int, width: int = WIDTH):
        layers: list[nn.Module] = []
        c = channels
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))


def class_probabilities(model: nn.Module, images: np.ndarray, batch_size: int,
                        device: torch.device | str) -> np.ndarray:
    """The classifier's softmax (N, K, float64) for uint8 images."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="classify", disable=None, leave=False):
            logits = model(to_float(images[start:start + batch_size], device))
            out.append(torch.softmax(logits.double(), 1).cpu().numpy())
    return np.concatenate(out)


def predict(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device | str) -> np.ndarray:
    return class_probabilities(model, images, batch_size, device).argmax(1)


def sample_probabilities(ctx) -> tuple[np.ndarray, dict]:
    """The real-data classifier's softmax on the run's samples (computed once per evaluation, shared
    with the inception_score metric), and the classifier's reference.json."""
    if "classifier" not in ctx.cache:
        ref = ctx.reference_dir("classifier")
        meta = load_json(ref / "reference.json")
        if ctx.samples.shape[-1] != meta["channels"]:
            raise PipelineError(f"classes: samples have {ctx.samples.shape[-1]} channels but the classifier "
                                f"{meta['channels']}; rebuild results/reference/classifier for this dataset")
        model = Classifier(meta["channels"], meta["n_classes"], meta["width"]).to(ctx.device)
        weights = ref / "weights.pt"
        try:
            model.load_state_dict(torch.load(weights, map_location=ctx.device, weights_only=True))
        except Exception as err:  # a truncated or foreign file (text gives torch.load a KeyError): report it
            raise PipelineError(f"{weights}: unreadable classifier weights ({type(err).__name__}); rebuild the "
                                f"classifier reference (snakemake -f {ref})") from None
        probs = class_probabilities(model, ctx.samples, ctx.params["evaluate"]["batch_size"], ctx.device)
        ctx.cache["classifier"] = probs, meta
    return ctx.cache["classifier"]


def class_stats(predicted: np.ndarray, real_proportions: np.ndarray) -> dict:
    """Classes covered and KL(generated || real) of predicted labels (natural log)."""
    g = np.bincount(predicted, minlength=len(real_proportions)) / len(predicted)
    pos = g > 0
    return {"value": int(pos.sum()), "kl": float(np.sum(g[pos] * np.log(g[pos] / real_proportions[pos])))}


def build_reference(params: dict, images: np.ndarray, labels: np.ndarray, out: Path) -> dict:
    ev = params["evaluate"]
    counts = np.bincount(labels)
    if (counts == 0).any():
        raise PipelineError(f"classifier: classes {np.flatnonzero(counts == 0).tolist()} have no images; "
                            f"KL against the real class histogram is undefined")
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(images))
    n_test = round(ev["classifier_holdout"] * len(images))
    if n_test < MIN_HELD_OUT or len(images) - n_test < MIN_HELD_OUT:
        raise PipelineError(f"classifier: evaluate.classifier_holdout {ev['classifier_holdout']} of {len(images)} images "
                            f"holds out {n_test} and trains on {len(images) - n_test}; each needs at least "
                            f"{MIN_HELD_OUT}")
    test, train = order[:n_test], order[n_test:]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(SEED)
    model = Classifier(images.shape[-1], len(counts)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ev["classifier_steps"])
    model.train()
    for _ in tqdm(range(ev["classifier_steps"]), desc="classifier", disable=None, leave=False):
        idx = train[rng.integers(0, len(train), ev["classifier_batch_size"])]
        loss = F.cross_entropy(model(to_float(images[idx], dev)), torch.as_tensor(labels[idx], device=dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    accuracy = float((predict(model, images[test], ev["batch_size"], dev) == labels[test]).mean())
    with atomic_path(out / "weights.pt") as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
    return {"n_classes": len(counts), "channels": images.shape[-1], "width": WIDTH, "steps": ev["classifier_steps"],
            "n_train": len(train), "n_test": n_test, "test_accuracy": accuracy,
            "real_proportions": (counts / counts.sum()).tolist()}


def compute(ctx) -> dict:
    probs, meta = sample_probabilities(ctx)
    stats = class_stats(probs.argmax(1), np.asarray(meta["real_proportions"]))
    return {"name": "classes_covered", **stats, "n_classes": meta["n_classes"],
            "classifier_accuracy": meta["test_accuracy"], "n_fake": len(probs)}
