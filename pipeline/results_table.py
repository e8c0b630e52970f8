"""The study's results as one table: a row per run and seed, a column per metric value and field.

The report stage reads each run's aggregated files (results/<run>/<metric>.json, the aggregate
stage's) into this table after checking that they can be compared; the claims (pipeline/claims.py),
the figures and DVC's metrics are all computed from it. Column ``<metric>`` is a metric's value,
``<metric>.<field>`` its other measurements and its protocol (name, backbone or net, sizes).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import catalogue
from pipeline.errors import PipelineError
from pipeline.io import is_number, load_json_object


NOT_COLUMNS = {"metric", "method", "dataset", "value", "std", "n_seeds", "mean", "stdev", "per_seed"}


def load_results(params: dict, results: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for method in params["study"]["methods"]:
        for name in catalogue.results(params, method):
            path = results / method / f"{name}.json"
            if not path.exists():
                raise PipelineError(f"report: missing {path}; run `snakemake {path}`")
            out[method, name] = load_json_object(path, ())
    check_results(params, results, out)
    return out


# fields of one metric that every run's file must share: its feature space and sample counts
SHARED_PROTOCOL = ("name", "backbone", "net", "weights", "input_size", "resize", "n_real", "n_fake", "space", "whiten",
                   "n_bins", "k", "subsets", "n_subset", "splits", "calibrated", "n_train", "n_test")


def finite(v: object) -> bool:
    return is_number(v) and math.isfinite(v)


def check_results(params: dict, root: Path, results: dict[tuple[str, str], dict]) -> None:
    """Every aggregated file is of this study's dataset, holds finite numbers (None only where the
    metric does not apply, e.g. per-condition LPIPS of an unconditional run) per seed, and shares its
    metric's protocol with every other run's; PipelineError naming the file otherwise."""
    dataset, first = params["dataset"]["name"], {}
    for (method, name), r in results.items():
        path = root / method / f"{name}.json"
        rerun = f"; rerun `snakemake {path}`"
        if r.get("dataset") != dataset:
            raise PipelineError(f"report: {path} is of dataset {r.get('dataset')!r}, this study's is {dataset!r}{rerun}")
        if not finite(r.get("value")):
            raise PipelineError(f"report: {path}: value {r.get('value')!r} is not a finite number{rerun}")
        seeds = r.get("per_seed")
        if not isinstance(seeds, dict) or not seeds or not all(isinstance(v, dict) for v in seeds.values()):
            raise PipelineError(f"report: {path} has no per-seed values (per_seed: {{seed: {{field: number}}}}){rerun}")
        for seed, values in seeds.items():
            if not str(seed).isdigit():
                raise PipelineError(f"report: {path}: per_seed key {seed!r} is not a seed{rerun}")
            if bad := [f"{k}={v!r}" for k, v in values.items() if not (finite(v) or v is None and k != "value")]:
                raise PipelineError(f"report: {path}: seed {seed} has {', '.join(bad)}, not finite numbers{rerun}")
        for key in SHARED_PROTOCOL:
            if key in r:
                seen = first.setdefault((name, key), (r[key], path))
                if seen[0] != r[key]:
                    raise PipelineError(f"report: {path} has {key} {r[key]!r} but {seen[1]} has {seen[0]!r}: runs "
                                        f"scored under different settings cannot be compared{rerun} and the other")


def column(metric: str, field: str) -> str:
    return metric if field == "value" else f"{metric}.{field}"


def metrics_table(results: dict[tuple[str, str], dict]) -> tuple[pd.DataFrame, list[str]]:
    """One row per method and seed; and the measured (not protocol) columns."""
    rows: dict[tuple[str, int], dict] = {}
    measured: list[str] = []
    for (method, metric), r in results.items():
        for seed, values in r["per_seed"].items():
            row = rows.setdefault((method, int(seed)), {"method": method, "seed": int(seed), "dataset": r["dataset"]})
            for field, v in values.items():
                row[column(metric, field)] = v
                if column(metric, field) not in measured:
                    measured.append(column(metric, field))
            row.update({f"{metric}.{k}": v for k, v in r.items() if k not in NOT_COLUMNS})
    return pd.DataFrame(list(rows.values())), measured


def protocol_name(df: pd.DataFrame, col: str) -> str:
    """A column by its metric's protocol name: ``fid`` -> ``FD_efficientnet_lite0``, ``ndb.jsd`` -> ``NDB.jsd``."""
    metric, _, field = col.partition(".")
    names = df[f"{metric}.name"].dropna() if f"{metric}.name" in df else []
    name = str(names.iloc[0]) if len(names) else metric
    return f"{name}.{field}" if field else name


def header(df: pd.DataFrame, col: str) -> str:
    """A value column with the metric's name, e.g. ``fid (FD_efficientnet_lite0)``."""
    name = protocol_name(df, col)
    return col if name == col else f"{col} ({name})"


def fmt(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def mean_std(values: np.ndarray) -> str:
    if len(values) == 0:
        return "n/a"
    if len(values) == 1:
        return f"{fmt(values[0])} (1 seed)"
    return f"{fmt(values.mean())} ± {fmt(values.std(ddof=1))}"


def seed_series(df: pd.DataFrame, method: str, col: str) -> pd.Series:
    """The method's per-seed values of ``col``, indexed by seed."""
    if col not in df:
        return pd.Series(dtype=float)
    rows = df.loc[df["method"] == method]
    return rows.set_index("seed")[col].dropna().astype(float)


def seed_values(df: pd.DataFrame, method: str, col: str) -> np.ndarray:
    return seed_series(df, method, col).to_numpy(float)


def run_seeds(df: pd.DataFrame, run: str) -> list[int]:
    """The seeds the results hold for ``run``, in their order (none for a run not in them): the seeds of
    its figures, as of its tables."""
    return df.loc[df["method"] == run, "seed"].tolist()
