"""report.proxies and report.continuous: the continuous twins of the claims, the positive controls,
and the continuous metrics read from per-item files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from instmix.core.files import write_jsonl
from instmix.report.claims import DELTA_CLAIMS, evaluate_delta_claim
from instmix.report.continuous import units_of
from instmix.report.items import Resampler, read_items
from instmix.report.params import ReportParams
from instmix.report.proxies import controls, metrics_of, twins

PARAMS = ReportParams(bootstrap_samples=2000)
CLAIMS = {c.id: c for c in DELTA_CLAIMS}


def test_each_benchmark_claim_gets_one_twin_on_its_proxy() -> None:
    found = {t.id: t for t in twins(DELTA_CLAIMS)}
    assert metrics_of(found["p_best_nlp_proxy"]) == {"p_gold:avg"} and found["p_best_nlp_proxy"].sign == +1
    code = found["c_best_code_proxy"]
    assert metrics_of(code) == {"bpb:code"} and code.sign == -1 and code.extreme  # lower is better: flipped
    assert "c_best_code10_proxy" not in found  # pass@10's twin would compute pass@1's again
    assert metrics_of(found["all_raise_alignment_proxy"]) == {"bpb:align"}
    assert len(found) == len(DELTA_CLAIMS) - 1


def test_a_twin_on_bits_per_byte_holds_when_its_source_is_lowest() -> None:
    code = next(t for t in twins(DELTA_CLAIMS) if t.id == "c_best_code_proxy")
    reps = {"A": {"bpb:code": [0.90]}, "C": {"bpb:code": [0.70]}, "P": {"bpb:code": [0.95]}}
    result = evaluate_delta_claim(code, reps, PARAMS)
    assert math.isclose(result.delta, 0.70 - 0.90) and result.mark == "holds"  # C - min(A, P) < 0
    reps["C"]["bpb:code"] = [0.99]
    assert evaluate_delta_claim(code, reps, PARAMS).mark == "does not hold"


def write_lik(path: Path, source: str, bits_per_byte: float, rng: np.random.Generator, n: int = 40) -> None:
    nbytes = 50 + rng.integers(0, 100, n)
    bits = bits_per_byte * nbytes * (1 + rng.normal(0, 0.02, n))
    rows = [{"set": f"heldout:{source}", "id": str(i), "nll": float(bits[i] * math.log(2)),
             "tokens": int(nbytes[i] // 4), "bytes": int(nbytes[i])} for i in range(n)]  # fmt: skip
    write_jsonl(path / "items.jsonl", rows)


def test_held_out_bits_per_byte_are_a_ratio_of_sums_and_the_controls_read_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    planted = {"none": 1.0, "A": 0.8, "C": 0.95, "P": 0.97}
    runs = {}
    for setting, value in planted.items():
        model = tmp_path / "eval/lik" / setting
        write_lik(model, "alpaca", value, rng)
        runs[setting] = [read_items(tmp_path, setting, "acc")]
    rows = [r for r in (tmp_path / "eval/lik/A/items.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and units_of("bpb:heldout:alpaca") == ("lik:heldout:alpaca",)
    sampler = Resampler(runs, 2000)
    values = runs["A"][0]["lik:heldout:alpaca"].values()
    by_hand = sum(b for b, _ in values) / sum(n for _, n in values)
    assert math.isclose(float(sampler.per_model("A", 0, "bpb:heldout:alpaca", point=True)[0]), by_hand)
    reps = {s: {"bpb:heldout:alpaca": [float(sampler.seed_values(s, "bpb:heldout:alpaca")[0])]} for s in planted}
    found = {c.id: evaluate_delta_claim(c, reps, PARAMS, sampler) for c in controls()[:2]}
    own, diagonal = found["control_A_beats_base"], found["control_A_diagonal"]
    assert own.mark == "holds" and abs(own.delta + 0.2) < 0.02 and own.interval[1] < 0
    assert diagonal.mark == "holds" and abs(diagonal.delta + 0.15) < 0.02
    assert "bias-corrected" in diagonal.detail


def test_p_gold_and_bpb_gold_are_read_per_document(tmp_path: Path) -> None:
    rows = [{"task": "arc_challenge", "doc_id": i, "acc": 1.0, "p_gold": 0.25 * (i + 1), "bpb_gold": 1.0 + i}
            for i in range(3)]  # fmt: skip
    write_jsonl(tmp_path / "eval/nlp/A/samples.jsonl", rows)
    items = read_items(tmp_path, "A", "acc")
    sampler = Resampler({"A": [items]}, 100)
    assert math.isclose(float(sampler.per_model("A", 0, "p_gold:arc_challenge", point=True)[0]), 50.0)  # in %
    assert math.isclose(float(sampler.per_model("A", 0, "bpb_gold:arc_challenge", point=True)[0]), 2.0)
    assert math.isclose(float(sampler.per_model("A", 0, "p_gold:avg", point=True)[0]), 50.0)  # over the tasks run
