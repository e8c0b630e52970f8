"""inception_score: exp(E_x KL(p(y|x) || p(y))) of the samples, as Salimans et al. (2016) define it.

The samples are split into ``evaluate.is_splits`` (10) equal parts; in each, p(y) is the mean of
p(y|x) over the part and the score is exp of the mean KL; ``value`` is the mean over the parts and
``std`` their standard deviation (as the original code and torch-fidelity report them).

p(y|x) comes from ``evaluate.is_net``:

- ``inception``: the Inception Score proper, reported as ``IS``: the softmax over the 1,008 logits
  of the FID Inception network (pytorch-fid's weights, sha256-checked; never downloaded here),
  computed from its pool3 features with the final layer's weights and no bias, torch-fidelity's and
  torchmetrics' ``logits_unbiased``. Images are resized to 299 by ``evaluate.resize`` as for FID;
  with ``evaluate.backbone: inception`` the features are the ones fid already computed.
- ``classifier`` (offline default): the real-data classifier's softmax (reference ``classifier``,
  the one the classes metric uses, its outputs shared), reported as ``IS_classifier``, never as
  IS: a score in that classifier's K classes, comparable only within one dataset.

A uniform mix of confident predictions over K classes scores K; samples that all look like one
class score 1.
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from pipeline import backbones
from pipeline.errors import PipelineError
from pipeline.metrics.classes import sample_probabilities

reference = "classifier"  # with is_net: classifier (catalogue.metric_references)


def inception_score(probs: np.ndarray, splits: int) -> tuple[float, float]:
    """Mean and std over ``splits`` parts of exp(mean KL(p(y|x) || p(y))), from softmax rows."""
    if len(probs) < splits:
        raise PipelineError(f"inception_score: {len(probs)} samples for {splits} splits (evaluate.is_splits)")
    scores = []
    for part in np.array_split(probs.astype(np.float64), splits):
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_probabilities(ctx) -> np.ndarray:
    """The FID Inception's softmax over its 1,008 classes, from pool3 features and unbiased logits."""
    ev = ctx.params["evaluate"]
    if ev["backbone"] == "inception":
        features = ctx.sample_features()
    else:
        net = backbones.load("inception", 299, ctx.device, ev["resize"])
        features = backbones.features(net, ctx.samples, ev["batch_size"], ctx.device, desc="inception")
    weight = backbones.fid_inception_state()["fc.weight"].double().numpy()
    return softmax(features @ weight.T, axis=1)


def compute(ctx) -> dict:
    ev = ctx.params["evaluate"]
    if ev["is_net"] == "inception":
        probs = inception_probabilities(ctx)
        name, net = "IS", {"net": "inception", "logits": "unbiased (no final bias)", "resize": ev["resize"]}
    else:
        probs, meta = sample_probabilities(ctx)
        name, net = "IS_classifier", {"net": "classifier"}
    mean, std = inception_score(probs, ev["is_splits"])
    return {"name": name, "value": mean, "split_std": std, "splits": ev["is_splits"], **net,
            "n_classes": probs.shape[1], "n_fake": len(probs)}
