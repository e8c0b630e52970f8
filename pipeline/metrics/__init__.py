"""Metric registry: one module per metric, each with ``compute(ctx) -> dict`` and ``reference``.

``reference`` names the folder under results/reference/ the metric reads (built once per dataset
by ``python -m pipeline.stages.reference``), or is None. ``compute`` gets a
:class:`pipeline.stages.evaluate.EvalContext` and returns a dict with at least ``name`` and ``value``.
"""
from __future__ import annotations

from types import ModuleType

from pipeline.metrics import classes, fd_infinity, fd_spaces, fid, inception_score, kid, lpips, ndb, prdc

REGISTRY: dict[str, ModuleType] = {"fid": fid, "kid": kid, "lpips": lpips, "ndb": ndb, "prdc": prdc, "classes": classes,
                                   "inception_score": inception_score, "fd_spaces": fd_spaces,
                                   "fd_infinity": fd_infinity}
