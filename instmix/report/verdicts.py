"""Every claim of the paper on this run, and claims.json (DVC metrics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from instmix.report import proxies
from instmix.report.claims import DELTA_CLAIMS, ClaimResult, DeltaClaim, evaluate_delta_claim, paper_delta
from instmix.report.curves import (
    CURVE_METRICS,
    evaluate_curve_claim,
    peak_claim,
    plateau_claim,
    size_claim,
    sweep_claim,
)
from instmix.report.items import Resampler
from instmix.report.params import ReportParams
from instmix.report.stats import Replicates
from instmix.report.sweeps import Point


def evaluate_claims(
    reps: Replicates,
    sweeps: Mapping[str, Sequence[Point]],
    paper: Mapping[str, Any],
    params: ReportParams,
    resampler: Resampler | None = None,
) -> list[ClaimResult]:
    """`sweeps`: the ratio and count points; `resampler`: paired item-level draws
    (instmix.report.items); None: over seeds only."""
    results = []
    for claim in DELTA_CLAIMS:
        result = evaluate_delta_claim(claim, reps, params, resampler)
        result.paper = {size: paper_delta(claim, paper, size) for size in ("7b", "13b")}
        results.append(result)
    ratio, count = sweeps.get("ratio", []), sweeps.get("count", [])
    results += [evaluate_curve_claim(metric, ratio, reps, params, resampler) for metric in CURVE_METRICS]
    results += [sweep_claim(peak_claim(m, ratio), "ratio", m, reps, params, resampler) for m in CURVE_METRICS]
    results += [sweep_claim(plateau_claim(m, count), "count", m, reps, params, resampler) for m in CURVE_METRICS]
    return [*results, size_claim()]


def evaluate_twins(
    reps: Replicates, sweeps: Mapping[str, Sequence[Point]], params: ReportParams, resampler: Resampler | None = None
) -> list[ClaimResult]:
    """The claims of `evaluate_claims` that read one benchmark, on its continuous proxy (instmix.report.proxies)."""
    ratio, count = sweeps.get("ratio", []), sweeps.get("count", [])
    built: list[tuple[DeltaClaim | str, str, str]] = [
        *((peak_claim(m, ratio), "ratio", m) for m in CURVE_METRICS),
        *((plateau_claim(m, count), "count", m) for m in CURVE_METRICS),
    ]
    claims = [*DELTA_CLAIMS, *(c for c, _, _ in built if isinstance(c, DeltaClaim))]
    results = [evaluate_delta_claim(c, reps, params, resampler) for c in proxies.twins(claims)]
    results += [evaluate_curve_claim(m, ratio, reps, params, resampler, proxy=True) for m in CURVE_METRICS]
    for missing, kind, metric in ((c, k, m) for c, k, m in built if isinstance(c, str)):
        result = sweep_claim(missing, kind, metric, reps, params, resampler)
        result.id, result.text = f"{result.id}_proxy", f"{result.text} (proxy)"
        results.append(result)
    return results


def claims_json(results: Sequence[ClaimResult]) -> dict[str, Any]:
    """claims.json's `claims`: each claim's verdict, delta and interval (DVC metrics)."""
    out: dict[str, Any] = {}
    for r in results:
        entry: dict[str, Any] = {"holds": r.mark == "holds", "evaluable": r.delta is not None}
        if r.delta is not None:
            entry["delta"] = round(r.delta, 6)
        if r.interval is not None:
            entry["ci_low"], entry["ci_high"] = round(r.interval[0], 6), round(r.interval[1], 6)
        out[r.id] = entry
    return {"claims": out}
