"""The paper's claims on its sweeps (Figure 2): the ratio curve dips then peaks, at 1.5; the
instance-count curve plateaus beyond 10K per type. Each is a delta claim over the sweep's points
where it can be written as one, so it gets the same paired interval and marks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instmix.report import proxies
from instmix.report.claims import ClaimResult, DeltaClaim, evaluate_delta_claim
from instmix.report.continuous import LABELS, TWIN, lower_is_better
from instmix.report.items import Resampler
from instmix.report.params import ReportParams
from instmix.report.stats import Replicates
from instmix.report.sweeps import Point
from instmix.report.tables import fmt_interval

CURVE_METRICS = {"nlp_avg": "NLP avg", "pass@1": "HumanEval pass@1"}


def evaluate_curve_claim(
    metric: str, points: Sequence[Point], reps: Replicates, params: ReportParams, resampler: Resampler | None = None,
    proxy: bool = False,
) -> ClaimResult:  # fmt: skip
    """Dips then peaks, as two differences each with its interval: the fall y[1] - y[0] < 0, and
    the peak above the start max(y[2:]) - y[0] > 0. Holds when both hold; reversed when either
    interval excludes 0 on the other side; within noise (or too few items) otherwise. `proxy`: the
    same on the metric's continuous proxy (instmix.report.proxies.twin; a lower-is-better proxy's
    dip is a rise)."""
    label = CURVE_METRICS[metric]
    key, decimals = (TWIN[metric], 3 if lower_is_better(TWIN[metric]) else 2) if proxy else (metric, 2)
    shown = LABELS[key] if proxy else label
    result = ClaimResult(
        f"ratio_dips_then_peaks_{metric.replace('@', '')}" + "_proxy" * proxy,
        f"{label} first dips, then peaks as the specialised/general ratio grows" + " (proxy)" * proxy,
        f"{shown} vs ratio: fall y[1] - y[0] < 0 (shown), then a peak above the start max(y[2:]) - y[0] > 0"
        + ("; lower is better, so the signs flip" if lower_is_better(key) else ""),
        "not enough points",
        decimals=decimals,
        sign=1 if lower_is_better(key) else -1,  # the claimed first step is a fall in quality
    )
    present = [p for p in points if reps.get(p.setting, {}).get(key)]
    result.paper = {"7b": "holds (Figure 2: peak at 1.5, dip at 2.0)", "13b": "not run"}
    if len(present) < 3:
        result.detail = f"{len(present)} point(s) with {shown}; needs >= 3"
        return result
    first, second, rest = present[0].setting, present[1].setting, [p.setting for p in present[2:]]

    def peak(v: Callable[[str, str], Any]) -> Any:
        return np.max(np.stack(np.broadcast_arrays(*(v(s, metric) for s in rest))), axis=0) - v(first, metric)

    fall, rise = (
        DeltaClaim("fall", "", "", -1, lambda v: v(second, metric) - v(first, metric), 2),
        DeltaClaim("peak", "", "", +1, peak, 2, True),
    )
    if proxy:
        fall, rise = (proxies.twin(c) or c for c in (fall, rise))
    fall, rise = (evaluate_delta_claim(c, reps, params, resampler) for c in (fall, rise))
    marks = {fall.mark, rise.mark}
    result.mark = (
        "holds" if marks == {"holds"}
        else "reversed" if "reversed" in marks
        else "does not hold" if "does not hold" in marks
        else "too few items" if "too few items" in marks
        else "within noise"
    )  # fmt: skip
    result.delta, result.interval = fall.delta, fall.interval
    peak_text = f"{rise.delta:+.{decimals}f}" + (
        "" if rise.interval is None else f" {fmt_interval(*rise.interval, decimals)}"
    )
    result.detail = f"fall: {fall.mark}; peak above the start {peak_text}: {rise.mark}; {fall.detail}"
    return result


PAPER_POINTS = {"ratio": (0.0, 0.5, 1.0, 1.5, 2.0), "count": (0.0, 5000.0, 10000.0, 15000.0, 20000.0)}
"""Figure 2's x ticks (the count ticks inferred: paper.md section 1.5)."""
FIGURE2 = {"7b": "holds (Figure 2)", "13b": "not run"}
SWEEP_CLAIMS = {"ratio": ("ratio_peaks_at_1.5", "{label} peaks at ratio 1.5, dips at 2.0"),
                "count": ("count_plateau", "{label} plateaus beyond 10K per type")}  # fmt: skip


def missing_points(kind: str, points: Sequence[Point], needed: Sequence[float]) -> str:
    have = {p.x for p in points}
    absent = [x for x in needed if x not in have]
    hint = ", ".join(f"{kind}-{x:g}" for x in absent if 0 < x < max(PAPER_POINTS[kind]))
    points_text = ", ".join(f"{x:g}" for x in absent)
    return f"missing Figure 2 {kind} points: {points_text}" + (f" (mix.sweep: {hint})" if hint else "")


def peak_claim(metric: str, points: Sequence[Point]) -> DeltaClaim | str:
    """The ratio curve peaks at 1.5 (above every other ratio point, 2.0 included), or why it cannot be measured."""
    at = {p.x: p.setting for p in points}
    if 1.5 not in at or len(at) < 3:
        return missing_points("ratio", points, PAPER_POINTS["ratio"])
    others = [s for x, s in at.items() if x != 1.5]

    def delta(v: Callable[[str, str], Any]) -> Any:
        rest = np.broadcast_arrays(*(v(s, metric) for s in others))
        return v(at[1.5], metric) - np.max(np.stack(rest), axis=0)

    label = CURVE_METRICS[metric]
    claim_id, text = SWEEP_CLAIMS["ratio"]
    return DeltaClaim(f"{claim_id}_{metric.replace('@', '')}", text.format(label=label),
                      f"y(1.5) - max over the other ratio points, {label} (pp)", +1, delta, 2, True)  # fmt: skip


def plateau_claim(metric: str, points: Sequence[Point]) -> DeltaClaim | str:
    """Beyond 10K per type the curve flattens, made testable: the gain per 1K instances from 10K to
    the largest count is below the gain per 1K up to 10K (from the smallest count, 0 = base)."""
    at = {p.x: p.setting for p in points}
    below, above = [x for x in at if x < 10000], [x for x in at if x > 10000]
    if 10000 not in at or not below or not above:
        return missing_points("count", points, PAPER_POINTS["count"])
    x0, x1 = min(below), max(above)

    def delta(v: Callable[[str, str], Any]) -> Any:
        y0, y10, y1 = (v(at[x], metric) for x in (x0, 10000, x1))
        return (y10 - y0) / ((10000 - x0) / 1000) - (y1 - y10) / ((x1 - 10000) / 1000)

    label = CURVE_METRICS[metric]
    claim_id, text = SWEEP_CLAIMS["count"]
    measure = f"gain per 1K from {x0:g} to 10K minus gain per 1K from 10K to {x1:g}, {label} (pp)"
    return DeltaClaim(f"{claim_id}_{metric.replace('@', '')}", text.format(label=label), measure, +1, delta, 3)


def sweep_claim(
    built: DeltaClaim | str, kind: str, metric: str, reps: Replicates, params: ReportParams, resampler: Resampler | None
) -> ClaimResult:
    if isinstance(built, DeltaClaim):
        result = evaluate_delta_claim(built, reps, params, resampler)
    else:
        claim_id, text = SWEEP_CLAIMS[kind]
        result = ClaimResult(f"{claim_id}_{metric.replace('@', '')}", text.format(label=CURVE_METRICS[metric]),
                             f"see the {kind} sweep", "not evaluable", detail=built)  # fmt: skip
    result.paper = FIGURE2
    return result


def size_claim() -> ClaimResult:
    """Needs a 7B and a 13B run in one report; a report covers one base model."""
    return ClaimResult(
        "size_best_code", "The best code model is ACP at 13B and AC at 7B", "argmax pass@1 over A ... ACP per size",
        "not evaluable", detail="needs both model sizes; this report covers one base model (compare a paper and a "
        "paper-13b run's Table 1)", paper={"7b": "AC (Table 1)", "13b": "ACP (Table 1)"},
    )  # fmt: skip
