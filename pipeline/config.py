"""Load and validate params.yaml against pipeline/schema.yaml; resolve the workflow's configuration.

Validation runs when the Snakefile is parsed and when any stage starts, so a misspelt key, a wrong
type or an unknown method stops before any work, with one line naming the key and what is allowed.
Stricter than YAML and JSON Schema: a key given twice in one mapping is refused (YAML keeps the
last silently), an integer setting must be written as an integer (``32``, not ``32.0``), and NaN or
infinity is refused wherever a number is meant.

The Snakefile merges params.yaml with ``--configfile`` files and ``--config`` values, as Snakemake
does, gives ``--config`` values their YAML types back (Snakemake parses nested ones as strings),
validates the result, naming the source of a bad value, and writes it to ``RESOLVED``: every rule
passes that file to its stage, so the stages run with what Snakemake resolved.
"""
from __future__ import annotations

import argparse
import hashlib
import math
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jsonschema
import yaml

from pipeline.catalogue import REAL, TRAINED_AS, metric_reference, training_settings
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.pairs import differences

DEFAULT_PARAMS = "params.yaml"
# The configuration Snakemake resolved: the stages read params-<sha256 of its text>.yaml, a file per content
# that no other invocation changes (a dry run beside a running workflow cannot alter what its jobs read);
# params.yaml beside it is the latest, for people (e.g. to make a merged study the params.yaml of DVC).
RESOLVED_DIR = Path(".snakemake/ganbench")
RESOLVED = RESOLVED_DIR / "params.yaml"


@cache
def schema() -> dict[str, Any]:
    return yaml.safe_load(files("pipeline").joinpath("schema.yaml").read_text())


def _strict_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """A YAML file, with duplicate keys refused; errors name the file."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such params file; run from the repository root (where params.yaml is) or "
                            "pass --params PATH") from None
    except UnicodeDecodeError as err:
        line = err.object[:err.start].count(b"\n") + 1
        raise PipelineError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} on line {line}); "
                            "save it as UTF-8") from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PipelineError(f"{path}: not valid YAML ({' '.join(problem.split())})") from None


def _non_finite(tree: Any, path: tuple = ()) -> tuple | None:
    """The key path of the first NaN or infinite number in ``tree``, if any."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return path
    items = tree.items() if isinstance(tree, Mapping) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        found = _non_finite(value, (*path, key))
        if found is not None:
            return found
    return None


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


SPLITS = {"cifar10": ("train", "test", "all"), "cifar100": ("train", "test", "all"),
          "stl10": ("train", "test", "unlabeled", "train+unlabeled")}  # dataset.split's values per archive


def validate(params: Any, source: str | Callable[[tuple], str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return ``params`` if it satisfies the schema and cross-key rules, else raise PipelineError.

    ``source`` names where the values came from, or maps a key path to that name."""
    bad = _non_finite(params)
    if bad is not None:
        where = source(bad) if callable(source) else source
        raise PipelineError(f"{where}: {'.'.join(map(str, bad))}: {_get(params, bad)} is not a finite number")
    validator = _Validator(schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        where = source(tuple(best.absolute_path)) if callable(source) else source
        raise PipelineError(f"{where}: {_describe(best)}")
    source = source(()) if callable(source) else source
    if REAL in params["methods"]:
        raise PipelineError(f"{source}: methods.{REAL}: the name {REAL!r} is the held-out real-data run; rename this run")
    missing = [m for m in params["study"]["methods"] if m not in params["methods"] and m != REAL]
    if missing:
        raise PipelineError(
            f"{source}: study.methods names {', '.join(missing)} but methods: has no settings for it "
            f"(add a methods.{missing[0]} section)"
        )
    _check_labels_needed(params, source)
    _check_trained_as(params["methods"], source)
    ds = params["dataset"]
    splits = SPLITS.get(ds["name"])
    if "split" in ds and (splits is None or ds["split"] not in splits):
        raise PipelineError(f"{source}: dataset.split {ds['split']!r} is not a split of {ds['name']} "
                            f"({', '.join(splits) if splits else 'it has none: remove the key'})")
    ev = params["evaluate"]
    if "fd_spaces" in ev["metrics"] and "simclr" in ev["spaces"] and params["features"]["extractor"] != "simclr":
        raise PipelineError(f"{source}: evaluate.spaces has simclr, which embeds with the features stage's SimCLR "
                            f"encoder, but features.extractor is {params['features']['extractor']}; set it to "
                            "simclr or drop simclr from evaluate.spaces")
    if "fd_spaces" in ev["metrics"] and not ev["spaces"]:
        raise PipelineError(f"{source}: evaluate.metrics has fd_spaces but evaluate.spaces is empty")
    train = params["train"]
    if train["batch_size"] % (train["gpus"] * train["nodes"]):
        raise PipelineError(f"{source}: train.batch_size {train['batch_size']} is the global batch and must divide "
                            f"evenly among train.gpus x train.nodes = {train['gpus'] * train['nodes']} processes")
    for paper, spec in params["comparisons"].items():
        unknown = [r for r in (*spec["methods"], spec["method"], spec["baseline"]) if r not in params["methods"]]
        if unknown:
            raise PipelineError(f"{source}: comparisons.{paper} names run {unknown[0]!r}, which methods: does not define")
        if not {spec["method"], spec["baseline"]} <= set(spec["methods"]):
            raise PipelineError(f"{source}: comparisons.{paper}.methods must list its method and its baseline")
        strays = [c["run"] for c in spec["claims"] if c.get("run", spec["method"]) not in spec["methods"]]
        if strays:
            raise PipelineError(f"{source}: comparisons.{paper} has a claim by run {strays[0]!r}, which its methods: "
                                f"does not list")
        unclaimed = [m for m in spec["primary"]["metrics"] if m not in [c["metric"] for c in spec["claims"]]]
        if unclaimed:
            raise PipelineError(f"{source}: comparisons.{paper}.primary names {unclaimed[0]!r}, which is not the metric "
                                f"of one of its claims")
    return params


def _check_trained_as(runs: dict, source: str) -> None:
    """A run ``trained_as`` another names a run that trains itself, with the same settings but the sampling
    keys (so its copied checkpoint is the one its own training would write)."""
    for run, hp in runs.items():
        if TRAINED_AS not in hp:
            continue
        owner = hp[TRAINED_AS]
        where = f"{source}: methods.{run}.{TRAINED_AS}: {owner}"
        if owner not in runs or owner == run or TRAINED_AS in runs[owner]:
            raise PipelineError(f"{where} is not another run under methods: that trains itself (no {TRAINED_AS}); "
                                f"name one, or remove the key")
        apart = list(differences(training_settings(hp), training_settings(runs[owner])))
        if apart:
            raise PipelineError(f"{where}, but the two differ in {', '.join(apart)}, which training reads; give both "
                                f"the same values, or remove {TRAINED_AS} to train {run} itself")


LABELLED_METHODS = ("cgan", "msgan")  # class-conditional: trained on the labels


def _unlabelled(ds: dict) -> str | None:
    """Why the configured dataset has no labels, or None when it has them (or cannot be told yet)."""
    if ds["name"] == "stl10" and ds.get("split", "train") not in ("train", "test"):
        return f"stl10's {ds['split']} split has no labels"
    if ds["name"] == "celeba":
        return "celeba is read without its annotations, so its images have no labels"
    if ds["name"] == "image_folder" and ds.get("path") and Path(ds["path"]).exists():
        from pipeline.datasets.image_folder import labelled

        if not labelled(ds["path"]):
            return f"dataset.path {ds['path']} has no class subfolders, so its images have no labels"
    return None


def _check_labels_needed(params: dict, source: str) -> None:
    """A dataset without labels refuses what needs them, before any work."""
    reason = _unlabelled(params["dataset"])
    if reason is None:
        return
    runs = [r for r in params["study"]["methods"] if params["methods"].get(r, {}).get("method") in LABELLED_METHODS]
    # the metrics that score against a classifier trained on the labels
    metrics = [m for m in params["evaluate"]["metrics"] if metric_reference(params, m) == "classifier"]
    if runs or metrics:
        what = ", ".join([*(f"run {r}" for r in runs), *(f"metric {m}" for m in metrics)])
        raise PipelineError(f"{source}: {reason}, but {what} needs them; remove it or use labelled data")


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def typed(value: Any) -> Any:
    """A ``--config`` value with its YAML types: Snakemake reads nested values as strings."""
    if isinstance(value, Mapping):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _sets(tree: Any, path: tuple, prefix: tuple) -> bool:
    """Does ``tree`` give the value at ``path``: a value at ``path``, or a leaf at ``prefix`` replacing it?"""
    for part in prefix:
        if not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return prefix == path or not isinstance(tree, Mapping)


def resolve_workflow(config: dict, overrides: Mapping, configfiles: Sequence[Path],
                     folder: Path = RESOLVED_DIR) -> Path:
    """Re-type ``config``'s ``--config`` values in place, validate it, and write it to ``folder`` as
    params-<hash>.yaml (returned: the file the stages read) and as params.yaml (the latest).

    A validation error names the source of the bad value: ``--config``, a ``--configfile``, or params.yaml."""
    overrides = typed(dict(overrides))
    _merge(config, overrides)
    read_yaml(DEFAULT_PARAMS)  # Snakemake read it already, but keeps the last of a duplicated key
    files = [(Path(f), read_yaml(f) or {}) for f in configfiles]

    def source(path: tuple) -> str:
        for prefix in (path[:i] for i in range(len(path), 0, -1)):
            if _sets(overrides, path, prefix):
                return "--config"
            for name, tree in reversed(files):
                if _sets(tree, path, prefix):
                    return f"--configfile {name}"
        return "--config / --configfile / params.yaml" if overrides or files else DEFAULT_PARAMS

    validate(config, source)
    text = yaml.safe_dump(config, sort_keys=False)
    fixed = folder / f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    for out in (fixed, folder / RESOLVED.name):
        if not out.exists() or out.read_text() != text:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                tmp.write_text(text)
    return fixed


def _merge(base: dict, update: Mapping) -> None:
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def load(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read and validate a params file."""
    return validate(read_yaml(path), str(path))


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
