"""The settings in which a comparison's method and baseline runs differ, computed from params.

A comparison is fair when its pair differs only in the settings its paper contributes
(``comparisons.<paper>.differs_in``); everything else (the ``train:`` section, the data, the
metrics) is shared by construction. The report prints the differences on every comparison page
and flags an undeclared one; tests/test_pairs.py checks that the default study has none.
"""
from __future__ import annotations

from typing import Any

from pipeline.catalogue import TRAINED_AS

ABSENT = "(absent)"


def differences(method: dict[str, Any], baseline: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Setting -> (method's value, baseline's value) for every key whose values differ or that one side lacks
    (``trained_as`` is not a setting: it names the run whose training is copied)."""
    keys = [k for k in dict.fromkeys([*method, *baseline]) if k != TRAINED_AS]
    return {k: (method.get(k, ABSENT), baseline.get(k, ABSENT)) for k in keys
            if method.get(k, ABSENT) != baseline.get(k, ABSENT)}


def claim_runs(spec: dict) -> list[str]:
    """The runs that make ``spec``'s claims against its baseline: its method first, then any claim's ``run``."""
    return list(dict.fromkeys([spec["method"], *(c["run"] for c in spec["claims"] if "run" in c)]))


def undeclared(params: dict, spec: dict, claiming: list[str] | None = None) -> list[str]:
    """The settings in which a claiming run of ``spec`` (of ``claiming``, default all of them) and its
    baseline differ but which its ``differs_in`` does not declare."""
    runs = params["methods"]
    diff = [k for run in claiming or claim_runs(spec) for k in differences(runs[run], runs[spec["baseline"]])]
    return [k for k in dict.fromkeys(diff) if k not in spec["differs_in"]]
