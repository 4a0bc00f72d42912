"""The paper's claims on its sweeps (Figure 2): the ratio curve dips then peaks, at 1.5; the
instance-count curve plateaus beyond 10K per type. Each is a delta claim over the sweep's points
where it can be written as one, so it gets the same paired interval and marks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instmix.report.claims import ClaimResult, DeltaClaim, Draws, evaluate_delta_claim, seeds_detail
from instmix.report.items import Resampler
from instmix.report.params import ReportParams
from instmix.report.stats import Replicates, Values, percentile_interval
from instmix.report.sweeps import Point, dips_then_peaks

CURVE_METRICS = {"nlp_avg": "NLP avg", "pass@1": "HumanEval pass@1"}


def evaluate_curve_claim(
    metric: str, points: Sequence[Point], reps: Replicates, params: ReportParams, resampler: Resampler | None = None
) -> ClaimResult:
    label = CURVE_METRICS[metric]
    result = ClaimResult(
        f"ratio_dips_then_peaks_{metric.replace('@', '')}",
        f"{label} first dips, then peaks as the specialised/general ratio grows",
        f"{label} vs ratio: y[1] - y[0] < 0 and argmax after argmin",
        "not enough points",
        decimals=2,
        sign=-1,  # the claimed first step is a fall
    )
    present = [p for p in points if reps.get(p.setting, {}).get(metric)]
    result.paper = {"7b": "holds (Figure 2: peak at 1.5, dip at 2.0)", "13b": "not run"}
    if len(present) < 3:
        result.detail = f"{len(present)} point(s) with {label}; needs >= 3"
        return result
    point = Values(reps)
    ys = [point(p.setting, metric) for p in present]
    holds, low, high = dips_then_peaks(ys)
    result.delta = ys[1] - ys[0]
    shape = f"lowest at {present[low].x:g}, highest at {present[high].x:g}"
    if high < len(present) - 1:
        shape += f", then down to {ys[-1]:.2f} at {present[-1].x:g}"
    result.detail = f"{shape}; {seeds_detail(point.used)}"
    result.mark = "holds" if holds else "does not hold"
    boot = Draws(reps, resampler, params)
    ys_draws = [boot(p.setting, metric) for p in present] if holds else []
    if holds and (boot.item_level or any(n > 1 for n in point.used.values())):
        fall = percentile_interval(ys_draws[1] - ys_draws[0], params.confidence)
        rise = percentile_interval(ys_draws[high] - ys_draws[low], params.confidence)
        result.interval = fall
        result.detail += f"; rise {ys[high] - ys[low]:+.2f} [{rise[0]:+.2f}, {rise[1]:+.2f}]"
        if fall[0] <= 0 <= fall[1] or rise[0] <= 0 <= rise[1]:
            result.mark = "within noise"
            result.detail += "; point estimate holds"
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
                      f"y(1.5) - max over the other ratio points, {label} (pp)", +1, delta, 2)  # fmt: skip


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
