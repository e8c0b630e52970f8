"""inception_score: exp(E_x KL(p(y|x) || p(y))) of the samples, as Salimans et al. (2016) define it.

The samples are split into ``evaluate.is_splits`` (10) equal parts; in each, p(y) is the mean of
p(y|x) over the part and the score is exp of the mean KL; ``value`` is the mean over the parts and
``std`` their standard deviation (as the original code and torch-fidelity report them).

p(y|x) here is the real-data classifier's softmax (reference ``classifier``, the one the classes
metric uses, its outputs shared): the score is reported as ``IS_classifier``, never as IS, since
the Inception Score proper uses the ImageNet Inception network's 1,008 logits. That variant is not
built: its weights cannot be obtained here (see the README). A uniform mix of confident
predictions over K classes scores K; samples that all look like one class score 1.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.metrics.classes import sample_probabilities

reference = "classifier"


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


def compute(ctx) -> dict:
    splits = ctx.params["evaluate"]["is_splits"]
    probs, meta = sample_probabilities(ctx)
    mean, std = inception_score(probs, splits)
    return {"name": "IS_classifier", "value": mean, "split_std": std, "splits": splits, "net": "classifier",
            "n_classes": meta["n_classes"], "n_fake": len(probs)}
