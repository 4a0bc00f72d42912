"""What every report plot shares: colours per setting, the legend above the panels, and a
byte-identical PNG written atomically."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instmix.core.files import atomic_open
from instmix.core.vocab import SWEEP_SETTINGS
from instmix.report.layout import TABLE1_ROWS, setting_order, sweep_kind

# Fixed colours for the base row and the table settings, in TABLE1_ROWS order.
SETTING_COLORS = dict(
    zip(
        TABLE1_ROWS,
        ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"),
        strict=True,
    )
)
SWEEP_CMAPS = dict(zip(SWEEP_SETTINGS, ("Blues", "Oranges"), strict=True))
PAPER_STYLE = {"7b": {"marker": "D", "color": "black"}, "13b": {"marker": "^", "color": "#555555"}}


@dataclass
class Figures:
    """The plots drawn, and why each other one was not."""

    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def palette(settings: Iterable[str]) -> dict[str, Any]:
    """Fixed colours for the table settings; sweep settings in shades of one colour per sweep,
    darker for larger x; anything else from tab10."""
    import matplotlib

    ordered = sorted(set(settings), key=setting_order)
    colors: dict[str, Any] = {s: SETTING_COLORS[s] for s in ordered if s in SETTING_COLORS}
    for kind, cmap in SWEEP_CMAPS.items():
        members = [s for s in ordered if sweep_kind(s) == kind]
        members.sort(key=lambda s: setting_order(s)[2] if s != kind else math.inf)  # plain `ratio` darkest
        for i, s in enumerate(members):
            shade = 0.8 if len(members) == 1 else 0.5 + 0.45 * i / (len(members) - 1)
            colors[s] = matplotlib.colormaps[cmap](shade)
    rest = [s for s in ordered if s not in colors]
    colors |= {s: matplotlib.colormaps["tab10"](i % 10) for i, s in enumerate(rest)}
    return colors


def save_png(fig: Any, path: Path) -> None:
    """Byte-identical for the same data: no software/version stamp, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
    with atomic_open(path) as handle:  # a text handle; its binary buffer takes the PNG bytes
        handle.buffer.write(buffer.getvalue())


def finish(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def top_legend(fig: Any, ax: Any, errors: str) -> None:
    """One legend above all panels: a grey patch for our bars (coloured by setting), the paper's markers.
    `errors`: what the error bars show ('' when there are none)."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    ours = "this run (bar colour = setting" + (f", error bar = {errors})" if errors else ")")
    handles, labels = [Patch(facecolor="#bbbbbb", edgecolor="#555555"), *handles], [ours, *labels]
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False
    )
