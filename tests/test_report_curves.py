"""report.curves: the sweep claims (Figure 2) — the ratio curve's shape and peak, the count plateau."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from instmix.core.vocab import TABLE_SETTINGS
from instmix.report.curves import evaluate_curve_claim, peak_claim, plateau_claim, size_claim, sweep_claim
from instmix.report.params import ReportParams
from instmix.report.sweeps import Point

PARAMS = ReportParams(bootstrap_samples=2000)
Reps = dict[str, dict[str, list[float]]]


def curve(ys: Sequence[float], xs: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0), kind: str = "ratio",
          spread: float = 0.0) -> tuple[list[Point], Reps]:  # fmt: skip
    """One point per x; with `spread`, three seeds per point at y - spread, y, y + spread."""
    points = [Point(x, f"{kind}-{x:g}", "sweep") for x in xs[: len(ys)]]
    seeds = [-spread, 0.0, spread] if spread else [0.0]
    return points, {p.setting: {"nlp_avg": [y + d for d in seeds]} for p, y in zip(points, ys, strict=True)}


def test_too_few_points_are_not_enough() -> None:
    two = [Point(0.0, "A", "anchor: A"), Point(1.0, "ratio", "sweep")]
    result = evaluate_curve_claim("nlp_avg", two, {"A": {"nlp_avg": [1.0]}, "ratio": {"nlp_avg": [0.5]}}, PARAMS)
    assert result.mark == "not enough points"


def test_curve_claim_tests_the_fall_and_the_peak_above_the_start() -> None:
    result = evaluate_curve_claim("nlp_avg", *curve([30.0, 28.0, 31.0, 33.0, 32.0], spread=0.1), PARAMS)
    assert result.mark == "holds" and np.isclose(result.delta, -2.0)
    assert result.interval is not None and result.interval[1] < 0
    assert result.detail.startswith("fall: holds; peak above the start +3.00 [") and ": holds; 3 seeds" in result.detail
    # rises first: the fall's interval is above 0
    assert evaluate_curve_claim("nlp_avg", *curve([30.0, 32.0, 33.0], spread=0.1), PARAMS).mark == "reversed"
    # dips but never climbs back above the start
    assert evaluate_curve_claim("nlp_avg", *curve([40.0, 28.0, 31.0], spread=0.1), PARAMS).mark == "reversed"
    # without anything to resample only the points speak
    assert evaluate_curve_claim("nlp_avg", *curve([30.0, 28.0, 31.0]), PARAMS).mark == "holds"
    assert evaluate_curve_claim("nlp_avg", *curve([40.0, 28.0, 31.0]), PARAMS).mark == "does not hold"
    assert set(TABLE_SETTINGS) >= {"A", "ACP"}  # the anchors are table settings


def test_the_proxy_curve_reads_bits_per_byte_with_the_signs_flipped() -> None:
    """pass@1's proxy is the solution's bits per byte: the claimed dip in quality is a rise in bpb."""
    points, reps = curve([0.0] * 5, spread=0.01)
    for point, bpb in zip(points, (0.80, 0.85, 0.79, 0.75, 0.77), strict=True):
        reps[point.setting] = {"bpb:code": [bpb - 0.01, bpb, bpb + 0.01]}
    result = evaluate_curve_claim("pass@1", points, reps, PARAMS, proxy=True)
    assert result.id == "ratio_dips_then_peaks_pass1_proxy" and "solution" in result.measure.lower()
    assert result.mark == "holds" and np.isclose(result.delta, 0.05) and result.sign == +1
    assert result.interval is not None and result.interval[0] > 0
    assert result.detail.startswith("fall: holds; peak above the start -0.050 [")
    reps[points[1].setting]["bpb:code"] = [0.74, 0.75, 0.76]  # the first step improves: reversed
    assert evaluate_curve_claim("pass@1", points, reps, PARAMS, proxy=True).mark == "reversed"


def test_a_flat_curve_is_within_noise_not_a_failed_shape() -> None:
    """The demo's case: every point equals the base model's, so each difference is 0 in every draw."""
    result = evaluate_curve_claim("nlp_avg", *curve([30.0] * 5, spread=0.5), PARAMS)
    assert result.mark == "within noise" and result.delta == 0.0
    noisy = evaluate_curve_claim("nlp_avg", *curve([30.0, 29.8, 30.1, 30.3, 30.0], spread=1.0), PARAMS)
    assert noisy.mark == "within noise"


def peak(ys: Sequence[float], spread: float = 0.1) -> tuple[str, float | None]:
    points, reps = curve(ys, spread=spread)
    result = sweep_claim(peak_claim("nlp_avg", points), "ratio", "nlp_avg", reps, PARAMS, None)
    return result.mark, result.delta


def test_the_peak_at_1_5_is_tested_against_every_other_point() -> None:
    assert peak([30.0, 28.0, 31.0, 33.0, 32.0]) == ("holds", 1.0)  # 33 at 1.5 against 32 at 2.0
    assert peak([30.0, 28.0, 34.0, 33.0, 32.0]) == ("reversed", -1.0)  # the peak is at 1.0
    assert peak([30.0, 28.0, 31.0, 33.0, 32.9], spread=1.0)[0] == "within noise"  # 1.5 vs 2.0 inside the seeds'


def test_a_sweep_claim_names_the_points_not_run() -> None:
    points, reps = curve([30.0, 31.0, 32.0], xs=(0.0, 1.0, 2.0))
    result = sweep_claim(peak_claim("nlp_avg", points), "ratio", "nlp_avg", reps, PARAMS, None)
    assert result.mark == "not evaluable" and result.id == "ratio_peaks_at_1.5_nlp_avg"
    assert result.detail == "missing Figure 2 ratio points: 0.5, 1.5 (mix.sweep: ratio-0.5, ratio-1.5)"
    points, reps = curve([54.0, 57.0], xs=(0.0, 20000.0), kind="count")
    built = plateau_claim("nlp_avg", points)
    hint = "(mix.sweep: count-5000, count-10000, count-15000)"
    assert built == f"missing Figure 2 count points: 5000, 10000, 15000 {hint}"


def test_the_plateau_compares_the_gain_per_1k_before_and_after_10k() -> None:
    xs = (0.0, 5000.0, 10000.0, 15000.0, 20000.0)
    flat = curve([54.64, 56.0, 57.0, 57.05, 57.07], xs, "count", spread=0.05)
    result = sweep_claim(plateau_claim("nlp_avg", flat[0]), "count", "nlp_avg", flat[1], PARAMS, None)
    assert result.mark == "holds" and np.isclose(result.delta, (57.0 - 54.64) / 10 - (57.07 - 57.0) / 10)
    assert result.measure.startswith("gain per 1K from 0 to 10K minus gain per 1K from 10K to 20000")
    linear = curve([50.0, 52.5, 55.0, 57.5, 60.0], xs, "count", spread=0.5)
    result = sweep_claim(plateau_claim("nlp_avg", linear[0]), "count", "nlp_avg", linear[1], PARAMS, None)
    assert result.mark == "within noise" and np.isclose(result.delta, 0.0)  # a straight line: no plateau


def test_the_size_effect_needs_both_sizes() -> None:
    result = size_claim()
    assert result.mark == "not evaluable" and "both model sizes" in result.detail
    assert result.paper == {"7b": "AC (Table 1)", "13b": "ACP (Table 1)"}
