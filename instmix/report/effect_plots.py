"""Plots of effects with their intervals: the claims as a forest plot (each claim's delta and paired
interval, turned so that right of 0 is the direction the paper claims, the paper's own 7B and 13B
deltas as markers) and the factorial attribution (each source's Shapley value per metric family)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instmix.core.vocab import BASE_ROW
from instmix.report import factorial
from instmix.report.claims import ClaimResult
from instmix.report.continuous import HELDOUT, LABELS
from instmix.report.layout import SIZE_LABEL, TABLE1_ROWS
from instmix.report.plot_style import PAPER_STYLE, finish
from instmix.report.stats import Stat
from instmix.report.tables import FACTORIAL_METRICS

MARK_COLORS = {"holds": "#2ca02c", "reversed": "#d62728"}  # anything else (within noise, ...): grey
HOLLOW = {"linestyle": "none", "markersize": 6, "markerfacecolor": "none"}
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?")


def paper_value(text: str) -> float | None:
    """The number a paper cell starts with ('+0.60 (holds)'), or None ('holds (Figure 2)', '—')."""
    found = NUMBER.match(text)
    return float(found[0]) if found else None


def plot_forest(results: Sequence[ClaimResult], sizes: Sequence[str], path: Path) -> str | None:
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.delta is not None]
    if not shown:
        return "no claim could be evaluated"
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(shown) + 1.6))
    ys = list(range(len(shown)))[::-1]
    for y, r in zip(ys, shown, strict=True):
        color = MARK_COLORS.get(r.mark, "#7f7f7f")
        x = r.sign * r.delta
        if r.interval is not None:
            low, high = sorted(r.sign * v for v in r.interval)
            ax.plot([low, high], [y, y], color=color, linewidth=2.2)
        ax.plot([x], [y], marker="o", color=color, markersize=6)
        for size in sizes:
            if (value := paper_value(r.paper.get(size, ""))) is not None:
                ax.plot([r.sign * value], [y], **HOLLOW, **PAPER_STYLE[size])
    for size in sizes:  # legend entries once
        ax.plot([], [], label=f"paper {SIZE_LABEL[size]}", **HOLLOW, **PAPER_STYLE[size])
    for mark, color in (*MARK_COLORS.items(), ("another mark (in brackets)", "#7f7f7f")):
        ax.plot([], [], color=color, marker="o", label=f"this run: {mark}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [f"{r.text} [{r.mark}]" for r in shown], fontsize=8)
    ax.set_xlabel("delta in the direction the paper claims (each claim in its own units, see results.md)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("The paper's claims on this run: delta and paired interval", fontsize=10)
    finish(fig, path)
    return None


def plot_factorial(
    stats: Mapping[str, Mapping[str, Stat]], draws: Callable[[str, str], Any] | None, confidence: float, path: Path
) -> str | None:
    """Per metric family: each source's Shapley value (they sum to ACP - none) with its interval."""
    import matplotlib.pyplot as plt

    metrics = [m for m in FACTORIAL_METRICS if factorial.complete(stats, m)]
    if not metrics:
        return f"not all of {', '.join(factorial.SETTINGS)} have NLP avg, pass@1 or FLASK avg"
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    x = np.arange(len(factorial.FACTORS))
    for ax, metric in zip(axes.flat, metrics, strict=True):
        point = factorial.attribution(lambda s, m=metric: stats[s][m].mean)
        drawn = factorial.intervals(metric, draws, confidence)
        keys = [f"Shapley {f}" for f in factorial.FACTORS]
        heights = [point[k] for k in keys]
        yerr = None
        if drawn is not None:
            bounds = [drawn[k] for k in keys]
            yerr = [[max(0.0, h - lo) for h, (lo, _) in zip(heights, bounds, strict=True)],
                    [max(0.0, hi - h) for h, (_, hi) in zip(heights, bounds, strict=True)]]  # fmt: skip
        ax.bar(x, heights, yerr=yerr, capsize=3, color=["#1f77b4", "#ff7f0e", "#2ca02c"])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, list(factorial.FACTORS))
        total = sum(heights)
        ax.set_title(f"{FACTORIAL_METRICS[metric]}: ACP - none = {total:+.2f}", fontsize=10)
        ax.set_ylabel("Shapley value", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    note = f"error bars: {confidence:.0%} paired bootstrap interval" if draws is not None else "no intervals"
    fig.suptitle(f"Each source's contribution (exact Shapley values over none … ACP; {note})", fontsize=11)
    finish(fig, path)
    return None


def plot_heldout(stats: Mapping[str, Mapping[str, Stat]], path: Path) -> str | None:
    """Held-out bits per byte, models x sources, coloured by the change from the base model."""
    import matplotlib.pyplot as plt

    keys = [k for k in HELDOUT.values() if any(k in stats.get(r, {}) for r in TABLE1_ROWS)]
    rows = [r for r in TABLE1_ROWS if any(k in stats.get(r, {}) for k in keys)]
    if not keys or BASE_ROW not in rows:
        return "no held-out losses (eval_lik) for the base model and the settings"
    value = np.array([[stats[r][k].mean if k in stats[r] else np.nan for k in keys] for r in rows])
    change = value - value[rows.index(BASE_ROW)]
    limit = float(np.nanmax(np.abs(change))) or 1.0
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 2.5, 0.45 * len(rows) + 1.6))
    image = ax.imshow(change, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i, j in np.ndindex(change.shape):
        if np.isfinite(value[i, j]):
            colour = "white" if abs(change[i, j]) > limit / 2 else "black"  # readable on the dark cells
            ax.text(
                j, i, f"{value[i, j]:.3f}\n({change[i, j]:+.3f})", ha="center", va="center", fontsize=7, color=colour
            )
    ax.set_xticks(range(len(keys)), [LABELS[k].removesuffix(" bpb") for k in keys], fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    fig.colorbar(image, ax=ax, label=f"bits per byte minus {BASE_ROW}'s (blue: lower loss)")
    ax.set_title("Held-out bits per byte per source (model x source)", fontsize=10)
    finish(fig, path)
    return None
