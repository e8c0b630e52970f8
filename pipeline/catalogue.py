"""What the workflow needs to know of each method and metric, without importing torch.

The Snakefile and dvcgen read this on every parse (each DVC stage and SLURM job parses the
Snakefile again); importing the method and metric registries would cost seconds of torch import
each time. tests/test_catalogue.py checks that it agrees with the registries.
"""
from __future__ import annotations

# method -> the extra inputs it trains and samples from (TrainData fields; see rules/common.smk)
METHOD_NEEDS: dict[str, tuple[str, ...]] = {
    "gan": (),
    "lsgan": (),
    "cgan": (),
    "msgan": (),
    "icgan": ("features", "neighbours", "centres"),
    "p2gan": (),
    "bigbigan": (),
}
# method classes with an encoder: the encoder_probe stage scores it
ENCODERS: tuple[str, ...] = ("bigbigan",)
# metric -> the results/reference/ folder it reads, if any
METRIC_REFERENCE: dict[str, str | None] = {
    "fid": "backbone",
    "lpips": None,
    "ndb": "ndb",
    "prdc": "backbone",
    "classes": "classifier",
}


def run_needs(params: dict, run: str) -> tuple[str, ...]:
    """The extra inputs of a run (a key of params' ``methods:``), from its method class."""
    return METHOD_NEEDS[params["methods"][run]["method"]]


def has_encoder(params: dict, run: str) -> bool:
    return params["methods"][run]["method"] in ENCODERS


def results(params: dict, run: str) -> list[str]:
    """The aggregated results/<run>/<name>.json the report reads: the metrics, and probe for encoders."""
    return [*params["evaluate"]["metrics"], *(["probe"] if has_encoder(params, run) else [])]
