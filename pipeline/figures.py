"""The report's figures: the metric bars, one screen per paper comparison, each run's training curves
and nearest training images.

``bars_figure``: one panel per column, a bar per run (mean over seeds, error bar the std).

``comparison_figure``: the sample grids of the method, its baseline and (when it ran) the real-data
run, each of the first seed in its run's results (named above it), side by side; below, one panel per
claimed column with every seed's value as a point and the mean with its 95% t interval (over seeds)
for each of them, titled with the metric's protocol name, which way is better and the claim's verdict;
below each, the difference the verdict rests on (method minus baseline) with its 95% interval against
0, the claimed side shaded.
``curves_figure``: every column of a run's train_log.csv against the step, one line per seed
(D and G losses and the method's own terms: MSGAN's mode-seeking ratio, P2GAN's posterior terms...).
``nearest_figure``: samples in the top row, each above its nearest training images (pipeline/nearest.py),
each labelled with its distance and, when the nearer orientation was the image's mirror, "mirror".
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

from pipeline.io import atomic_path

COLOURS = {"method": "tab:blue", "baseline": "tab:orange", "real": "tab:green"}


def _panels(n: int, width: float, height: float) -> tuple[Figure, list]:
    """A figure with ``n`` panels in rows of at most four (spare cells blank)."""
    ncol = min(4, max(n, 1))
    fig = Figure(figsize=(width * ncol, height * math.ceil(max(n, 1) / ncol)))
    axes = list(fig.subplots(math.ceil(max(n, 1) / ncol), ncol, squeeze=False).flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def _save(fig: Figure, target: Path) -> None:
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def interval(values: np.ndarray) -> float:
    """Half-width of the 95% t interval of the mean (0 with fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def comparison_figure(roles: dict[str, str], grids: dict[str, Path], panels: list[dict],
                      name: Callable[[str], str], target: Path) -> None:
    """``roles``: run -> method | baseline | real; ``grids``: run -> its samples.png; ``panels``: per
    column, {"column", "title", "values": {run: per-seed values}}."""
    ncol = max(len(grids), len(panels), 1)
    fig = Figure(figsize=(3.3 * ncol, 8.2))
    axes = fig.subplots(3, ncol, squeeze=False, height_ratios=[3, 3, 1.2])
    for ax, (run, path) in zip(axes[0], grids.items()):
        ax.imshow(np.asarray(Image.open(path).convert("RGB")))
        ax.set_title(f"{run} ({roles[run]}, {path.parent.name})", fontsize=9)
        ax.axis("off")
    for ax, panel in zip(axes[1], panels):
        for x, (run, values) in enumerate(panel["values"].items()):
            colour = COLOURS[roles[run]]
            if len(values):
                ax.scatter(np.full(len(values), x) + np.linspace(-0.12, 0.12, len(values)), values, s=14,
                           color=colour, alpha=0.7)
                ax.errorbar(x + 0.3, values.mean(), yerr=interval(values), fmt="o", color=colour, capsize=4)
        ax.set_xticks(range(len(panel["values"])), list(panel["values"]), fontsize=8)
        ax.set_ylabel(name(panel["column"]), fontsize=8)
        ax.set_title(f"{name(panel['column'])} ({panel['direction']} is better)\n{panel['title']}", fontsize=8)
    for ax, panel in zip(axes[2], panels):
        _difference(ax, panel)
    for ax in list(axes[0][len(grids):]) + list(axes[1][len(panels):]) + list(axes[2][len(panels):]):
        ax.axis("off")
    _save(fig, target)


def _difference(ax, panel: dict) -> None:
    """The claim's difference and 95% interval on a line through 0, the claimed side shaded."""
    diff, low, high = panel.get("difference", (None, None, None))
    if diff is None or not np.isfinite(diff):
        ax.axis("off")
        return
    ends = [v for v in (diff, low, high, 0.0) if v is not None and np.isfinite(v)]
    span = max(abs(v) for v in ends) * 1.25 or 1.0
    better = -1 if panel["direction"] == "lower" else 1
    ax.axvspan(0, better * span, color="tab:green", alpha=0.08)
    ax.axvline(0, color="grey", linewidth=0.8)
    if low is not None and np.isfinite(low):
        ax.errorbar(diff, 0, xerr=[[diff - low], [high - diff]], fmt="o", color="black", capsize=4)
    else:
        ax.plot(diff, 0, "o", color="black")
    ax.set_xlim(-span, span)
    ax.set_yticks([])
    ax.set_xlabel("method − baseline, 95% interval\n(shaded: the claimed side)", fontsize=7)
    ax.tick_params(labelsize=7)


def bars_figure(df: pd.DataFrame, columns: list[str], title: Callable[[str], str], target: Path) -> None:
    """A bar per run (``df``'s method column) for each column: mean over seeds, error bar the std."""
    fig, axes = _panels(len(columns), 3.2, 2.6)
    grouped = df.groupby("method", sort=False)
    for ax, c in zip(axes, columns):
        mean, std = grouped[c].mean(), grouped[c].std(ddof=1)
        ax.bar(mean.index, mean.to_numpy(), yerr=std.fillna(0).to_numpy(), capsize=3, color="tab:blue")
        ax.set_title(title(c), fontsize=8)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    _save(fig, target)


def curves_figure(run: str, logs: dict[int, pd.DataFrame], target: Path) -> None:
    """Every logged column of a run against the step, one line per seed."""
    columns = list(dict.fromkeys(c for log in logs.values() for c in log.columns if c not in ("step", "seconds")))
    fig, axes = _panels(len(columns), 3.2, 2.5)
    for ax, column in zip(axes, columns):
        for seed, log in logs.items():
            if column in log:  # fd and kid are only on the train.eval_every rows
                points = log[["step", column]].dropna()
                ax.plot(points["step"], points[column], label=f"seed {seed}", linewidth=1,
                        marker="o" if len(points) < len(log) else None, markersize=2)
        ax.set_title(f"{run}: {column}", fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=7)
    if axes:
        axes[0].legend(fontsize=7)
    _save(fig, target)


def nearest_figure(samples: np.ndarray, neighbours: np.ndarray, distances: np.ndarray, mirrored: np.ndarray,
                   title: str, target: Path) -> None:
    """A column per uint8 H,W,C sample (``samples``: n of them) above its neighbours (n, k, H, W, C), each
    labelled with its distance (n, k) and, where ``mirrored`` (n, k), "mirror"."""
    n, k = distances.shape
    fig = Figure(figsize=(1.1 * n, 1.2 * (k + 1) + 0.5))
    axes = fig.subplots(k + 1, n, squeeze=False)
    for col in range(n):
        _image(axes[0][col], samples[col])
        for row in range(k):
            _image(axes[row + 1][col], neighbours[col, row])
            axes[row + 1][col].set_xlabel(f"{distances[col, row]:.4g}" + (" mirror" if mirrored[col, row] else ""),
                                          fontsize=7)
    fig.suptitle(title, fontsize=8)
    _save(fig, target)


def _image(ax, image: np.ndarray) -> None:
    """A uint8 H,W,C image at its pixels, without ticks."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
