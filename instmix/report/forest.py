"""The claims as a forest plot: each claim's delta and paired interval, turned so that right of 0
is the direction the paper claims, with the paper's own 7B and 13B deltas as markers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from instmix.report.claims import ClaimResult
from instmix.report.layout import SIZE_LABEL
from instmix.report.plot_style import PAPER_STYLE, finish

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
                ax.plot(
                    [r.sign * value], [y], linestyle="none", markersize=6, markerfacecolor="none", **PAPER_STYLE[size]
                )
    for size in sizes:  # legend entries once
        ax.plot(
            [], [], linestyle="none", markerfacecolor="none", label=f"paper {SIZE_LABEL[size]}", **PAPER_STYLE[size]
        )
    for mark, color in (*MARK_COLORS.items(), ("within noise / no interval", "#7f7f7f")):
        ax.plot([], [], color=color, marker="o", label=f"this run: {mark}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [f"{r.text} [{r.mark}]" for r in shown], fontsize=8)
    ax.set_xlabel("delta in the direction the paper claims (each claim in its own units, see results.md)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("The paper's claims on this run: delta and paired interval", fontsize=10)
    finish(fig, path)
    return None
