"""report.claims, report.verdicts and report.sweeps: claim deltas, marks and intervals; the sweep points."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from instmix.core.vocab import BASE_ROW
from instmix.report.claims import DELTA_CLAIMS
from instmix.report.layout import TABLE1_ROWS
from instmix.report.params import ReportParams
from instmix.report.runs import read_paper
from instmix.report.sweeps import sweep_points
from instmix.report.verdicts import claims_json, evaluate_claims
from tests.test_report import PAPER_FILE

PARAMS = ReportParams(bootstrap_samples=2000)


def paper_as_ours(size: str) -> dict[str, dict[str, list[float]]]:
    """The paper's published rows written as one run per setting of ours."""
    paper = read_paper(PAPER_FILE)
    return {
        row: {k: [v] for k, v in {**paper["table1"][size][row], **paper["table2"][size].get(row, {})}.items()}
        for row in TABLE1_ROWS
    }


def test_claims_computed_on_the_paper_tables_all_hold() -> None:
    """The paper's own numbers as our metrics make every table claim hold with the paper's deltas."""
    paper = read_paper(PAPER_FILE)
    results = {r.id: r for r in evaluate_claims(paper_as_ours("7b"), {}, paper, PARAMS)}
    expected = {
        "p_best_nlp": "+1.24", "c_best_code": "+2.74", "c_best_code10": "+7.32", "p_lowers_alignment": "-2.4",
        "c_raises_alignment": "+0.6", "a_best_alignment": "+3.2", "a_best_race": "+1.05",
        "a_best_hellaswag": "+0.13", "p_best_arc": "+1.79", "p_best_winogrande": "+1.97", "ac_above_c_code": "+1.28",
    }  # fmt: skip
    for claim_id, value in expected.items():
        r = results[claim_id]
        assert f"{r.delta:+.{r.decimals}f}" == value and r.mark == "holds"
        assert r.detail == "single run; no interval (one seed, no per-item files)"
        assert r.paper["7b"] == f"{value} (holds)" and r.interval is None
    assert results["p_lowers_alignment"].paper["13b"] == "-3.8 (holds)"  # 13B, as the paper says
    assert results["c_raises_alignment"].paper["13b"] == "+1.6 (holds)"
    assert results["ac_above_c_code"].paper["13b"] == "-0.80 (does not hold)"  # "at 7B", the paper says
    # The paper reports no FLASK scores for the base model: that claim has nothing to compare.
    assert (
        results["all_raise_alignment"].mark == "not evaluable"
        and "none FLASK avg" in results["all_raise_alignment"].detail
    )
    assert set(expected) | {"all_raise_alignment"} == {c.id for c in DELTA_CLAIMS}
    assert results["ratio_dips_then_peaks_nlp_avg"].mark == "not enough points"
    summary = claims_json(list(results.values()))["claims"]
    assert summary["p_best_nlp"] == {"holds": True, "evaluable": True, "delta": pytest.approx(1.24)}
    assert summary["ratio_dips_then_peaks_pass1"] == {"holds": False, "evaluable": False}


def test_a_claim_with_a_missing_setting_is_not_evaluable() -> None:
    reps = {s: {"nlp_avg": [30.0]} for s in ("A", "P")}
    results = {r.id: r for r in evaluate_claims(reps, {}, read_paper(PAPER_FILE), PARAMS)}
    assert results["p_best_nlp"].mark == "not evaluable" and results["p_best_nlp"].detail == "missing: C NLP avg"
    assert results["p_best_nlp"].delta is None


def test_seed_spread_makes_a_small_delta_within_noise() -> None:
    reps = {"A": {"nlp_avg": [30.0, 30.0, 30.0]}, "C": {"nlp_avg": [30.0, 30.0, 30.0]}}
    reps["P"] = {"nlp_avg": [28.2, 30.2, 32.4]}
    result = next(r for r in evaluate_claims(reps, {}, read_paper(PAPER_FILE), PARAMS) if r.id == "p_best_nlp")
    assert result.mark == "within noise"
    assert result.detail == (
        "3 seeds per setting; pooled seed variance (t); bias-corrected (a max or min of noisy values);"
        " point estimate holds"
    )
    assert result.interval is not None and result.interval[0] < 0 < result.interval[1]


def test_sweep_points_use_mix_metrics_and_table_anchors() -> None:
    mix: dict[str, Mapping[str, object]] = {"ratio": {"ratio": 1.0}, "ratio-0.5": {"ratio": 0.5}}
    mix |= {"ratio-2.0": {"ratio": 2.0}, "ratio-x": {}, "count-4": {"per_type": 4}}
    mix |= {"ACP": {"records_per_source": {"alpaca": 16, "codealpaca": 16, "p3": 16}}}
    settings = {"A", "ACP", BASE_ROW, "ratio", "ratio-0.5", "ratio-2.0", "ratio-x", "count-4"}
    points, notes = sweep_points("ratio", settings, mix)
    assert [(p.x, p.setting) for p in points] == [(0.0, "A"), (0.5, "ratio-0.5"), (1.0, "ratio"), (2.0, "ratio-2.0")]
    assert any("ratio-x: no `ratio`" in n for n in notes)
    points, _ = sweep_points("count", settings, mix)
    assert [(p.x, p.setting) for p in points] == [(0.0, BASE_ROW), (4.0, "count-4"), (16.0, "ACP")]
    mix |= {"count": {"per_type": 16, "records_digest": "d1"}, "ACP": {**mix["ACP"], "records_digest": "d1"}}
    points, notes = sweep_points("count", settings | {"count"}, mix)
    assert (16.0, "count") in [(p.x, p.setting) for p in points]
    assert notes == [
        "count holds exactly ACP's records in another order: a data-order replicate of ACP, not a new mixture"
        " (leave it out of `settings` to save its training and evaluation)"
    ]
