"""Load and validate params.yaml against pipeline/schema.yaml.

Validation runs when the Snakefile is parsed and when any stage starts, so a misspelt key, a wrong
type or an unknown method stops before any work, with one line naming the key and what is allowed.
"""
from __future__ import annotations

import argparse
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.errors import PipelineError

DEFAULT_PARAMS = "params.yaml"


@cache
def schema() -> dict[str, Any]:
    return yaml.safe_load(files("pipeline").joinpath("schema.yaml").read_text())


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not allowed (allowed: {', '.join(map(str, error.validator_value))})"
    if error.validator == "unevaluatedProperties":
        return f"{where}: {error.message} (see the keys of this run's method in pipeline/schema.yaml)"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate(params: Any, source: str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return ``params`` if it satisfies the schema and cross-key rules, else raise PipelineError."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise PipelineError(f"{source}: {_describe(best)}")
    missing = [m for m in params["study"]["methods"] if m not in params["methods"]]
    if missing:
        raise PipelineError(
            f"{source}: study.methods names {', '.join(missing)} but methods: has no settings for it "
            f"(add a methods.{missing[0]} section)"
        )
    for paper, spec in params["comparisons"].items():
        unknown = [r for r in (*spec["methods"], spec["method"], spec["baseline"]) if r not in params["methods"]]
        if unknown:
            raise PipelineError(f"{source}: comparisons.{paper} names run {unknown[0]!r}, which methods: does not define")
        if not {spec["method"], spec["baseline"]} <= set(spec["methods"]):
            raise PipelineError(f"{source}: comparisons.{paper}.methods must list its method and its baseline")
    return params


def load(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read and validate a params file."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate(params, str(path))


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
