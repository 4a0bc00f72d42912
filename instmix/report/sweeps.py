"""The ratio and instance-count sweeps (the paper's Figure 2): their points, and the curve's shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from instmix.core.vocab import BASE_ROW, SOURCES
from instmix.report.layout import sweep_kind
from instmix.report.runs import number

SweepKind = Literal["ratio", "count"]
X_KEY = {"ratio": "ratio", "count": "per_type"}
"""The key of data/mix/<setting>.metrics.json that holds the sweep's x."""


@dataclass(frozen=True)
class Point:
    x: float
    setting: str
    role: str  # "sweep" or "anchor: <setting>" (a table setting that is this sweep's end point)


def sweep_points(
    kind: SweepKind, settings: Iterable[str], mix: Mapping[str, Mapping[str, Any]]
) -> tuple[list[Point], list[str]]:
    """The sweep's points, one per x, and notes on what was left out. x comes from the mixture's
    metrics (`ratio` or `per_type`). Sweep settings (`ratio`, `ratio-<r>`; `count`, `count-<k>`)
    take precedence; table settings fill in the ends: ratio 0 = A, ratio 2 = ACP (every record of
    each source), 0 instances = the base model, n per type = ACP."""
    settings = set(settings)
    key = X_KEY[kind]
    points: dict[float, Point] = {}
    notes = []
    named = sorted(s for s in settings if sweep_kind(s) == kind)
    for setting in sorted(named, key=lambda s: (s == kind, s)):  # `ratio-<r>` before plain `ratio`
        x = number(mix.get(setting, {}).get(key))
        if x is None:
            notes.append(f"{setting}: no `{key}` in data/mix/{setting}.metrics.json; left out of the {kind} sweep")
        elif x in points:
            notes.append(f"{setting}: same {kind} x = {x:g} as {points[x].setting}; {points[x].setting} is plotted")
        else:
            points[x] = Point(x, setting, "sweep")
    acp = mix.get("ACP", {}).get("records_per_source", {})
    equal = len(set(acp.values())) == 1 and len(acp) == len(SOURCES)  # ACP is a count point only if balanced
    acp_per_type = number(next(iter(acp.values()))) if equal else None
    anchors = [(0.0, "A"), (2.0, "ACP")] if kind == "ratio" else [(0.0, BASE_ROW), (acp_per_type, "ACP")]
    for x, setting in anchors:
        if x is not None and setting in settings and x not in points:
            points[x] = Point(x, setting, f"anchor: {setting}")
    digest = mix.get("ACP", {}).get("records_digest")
    for setting in named:
        if digest is not None and mix.get(setting, {}).get("records_digest") == digest:
            notes.append(
                f"{setting} holds exactly ACP's records in another order: a data-order replicate of ACP, not a"
                " new mixture (leave it out of `settings` to save its training and evaluation)"
            )
    return [points[x] for x in sorted(points)], notes
