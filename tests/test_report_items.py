"""report.items: per-item evidence, paired and hierarchical bootstrap draws, McNemar, claim marks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from instmix.core.files import write_jsonl
from instmix.core.vocab import SKILLS, TASKS
from instmix.report import seeds
from instmix.report.claims import DELTA_CLAIMS, evaluate_delta_claim
from instmix.report.items import Resampler, mcnemar_exact, read_items
from instmix.report.params import ReportParams
from instmix.report.seeds import percentile_interval

PARAMS = ReportParams(bootstrap_samples=4000)
C_RAISES = next(c for c in DELTA_CLAIMS if c.id == "c_raises_alignment")


def nlp_items(scores: list[float]) -> dict:
    return {task: {(task, i): s for i, s in enumerate(scores)} for task in TASKS}


def flask_items(scores: np.ndarray) -> dict:
    """One FLASK instance per row, scored on every skill."""
    return {"align": {i: dict.fromkeys(SKILLS, float(v)) for i, v in enumerate(scores)}}


def test_mcnemar_is_the_exact_binomial_test() -> None:
    assert mcnemar_exact(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 2**10)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 12) == pytest.approx(2 / 2**12)


def test_a_paired_interval_covers_the_planted_delta() -> None:
    rng = np.random.default_rng(0)
    first = (rng.random(400) < 0.5).astype(float)
    second = first.copy()
    second[np.flatnonzero(first == 0)[:40]] = 1.0  # 40 of 400 documents turned right: +10 pp
    resampler = Resampler({"A": [nlp_items(list(first))], "P": [nlp_items(list(second))]}, 4000, seed=1)
    delta = resampler("P", "arc_challenge") - resampler("A", "arc_challenge")
    low, high = percentile_interval(delta, 0.95)
    assert low <= 10.0 <= high and low > 0  # covers the truth, excludes 0
    assert abs(np.mean(delta) - 10.0) < 0.5
    # Paired: the shared resampling cancels the items both models got right or wrong alike.
    unpaired = Resampler({"A": [nlp_items(list(first))]}, 4000, seed=2)("A", "arc_challenge")
    assert np.std(delta) < np.std(unpaired - resampler("A", "arc_challenge"))
    b, c = int(((second == 1) & (first == 0)).sum()), int(((first == 1) & (second == 0)).sum())
    assert (b, c) == (40, 0) and mcnemar_exact(b, c) < 1e-10


def test_mcnemar_beside_a_delta_is_exact_on_the_shared_documents() -> None:
    first = [1.0] * 10 + [0.0] * 10 + [1.0] * 5
    second = [0.0] * 8 + [1.0] * 2 + [0.0] * 8 + [1.0] * 2 + [1.0] * 5  # b = 8 right only in A, c = 2 only in P
    resampler = Resampler({"A": [nlp_items(first)], "P": [nlp_items(second)]}, 100)
    assert resampler.mcnemar("A", "P", "race") == pytest.approx(2 * (1 + 10 + 45) / 2**10)
    assert resampler.mcnemar("A", "P", "nlp_avg") is None  # an average of tasks: no exact test
    two_seeds = Resampler({"A": [nlp_items(first), nlp_items(first)], "P": [nlp_items(second)]}, 100)
    assert two_seeds.mcnemar("A", "P", "race") is None  # seeds: the bootstrap speaks alone
    graded = Resampler({"A": [nlp_items([0.5] * 25)], "P": [nlp_items(second)]}, 100)
    assert graded.mcnemar("A", "P", "race") is None  # not per-document accuracy


@pytest.mark.parametrize(("effect", "mark"), [(0.4, "holds"), (0.0, "within noise"), (-0.4, "reversed")])
def test_a_claim_flips_as_the_planted_effect_shrinks_and_turns(effect: float, mark: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(2, 4, size=300)
    ac = a + effect + rng.normal(0, 0.3, size=300)
    runs = {"A": [flask_items(a)], "AC": [flask_items(ac)]}
    reps = {"A": {"flask_avg": [20 * a.mean()]}, "AC": {"flask_avg": [20 * ac.mean()]}}
    result = evaluate_delta_claim(C_RAISES, reps, PARAMS, Resampler(runs, PARAMS.bootstrap_samples))
    assert result.mark == mark, (result.delta, result.interval)
    assert result.interval is not None and "paired bootstrap over items" in result.detail


def test_a_clear_effect_on_few_items_is_not_a_finding() -> None:
    a = np.linspace(2, 4, 10)
    runs = {"A": [flask_items(a)], "AC": [flask_items(a + 0.4)]}
    reps = {"A": {"flask_avg": [20 * a.mean()]}, "AC": {"flask_avg": [20 * (a.mean() + 0.4)]}}
    result = evaluate_delta_claim(C_RAISES, reps, PARAMS, Resampler(runs, PARAMS.bootstrap_samples))
    assert result.mark == "too few items" and result.interval is not None and result.interval[0] > 0
    assert "only 10 shared items (align) < report.min_items 30 (interval alone: holds)" in result.detail


def test_seeds_with_identical_items_add_no_spread() -> None:
    scores = list((np.random.default_rng(4).random(100) < 0.4).astype(float))
    one = Resampler({"A": [nlp_items(scores)]}, 2000)("A", "piqa")
    two = Resampler({"A": [nlp_items(scores), nlp_items(scores)]}, 2000)("A", "piqa")
    assert np.array_equal(one, two)


def test_the_seed_term_carries_the_seed_spread_when_items_carry_none() -> None:
    """Seeds at 100 % and 0 %: no item noise (each model's draws are constant), so the draws are
    their mean 50 plus a normal term of sd s / sqrt(2) = 50 (s = 70.7, the two seeds' sd); an
    interval on them is widened by t(1) / z (df 1) to +-t(1) x 50."""
    always, never = nlp_items([1.0] * 50), nlp_items([0.0] * 50)
    single = Resampler({"A": [always]}, 2000)("A", "piqa")
    sampler = Resampler({"A": [always, never]}, 20000)
    both = sampler("A", "piqa")
    assert np.ptp(single) == 0
    assert abs(both.mean() - 50.0) < 1.5 and abs(both.std() / 50.0 - 1) < 0.02
    assert sampler.spread("piqa") == seeds.Spread(5000.0, 0.0, 1)
    low, high = seeds.widened(lambda v: v("A", "piqa"), sampler, 0.95)
    assert abs((high - low) / 2 / (stats.t.ppf(0.975, 1) * 50.0) - 1) < 0.05


def test_item_noise_is_not_counted_twice() -> None:
    """Two seeds with independent coin flips on 400 items and no seed effect: the seeds' spread is
    all item noise, which the item draws carry already, so the seed variance proper is about 0."""
    rng = np.random.default_rng(3)
    models = [nlp_items(list((rng.random(400) < 0.5).astype(float))) for _ in range(2)]
    spread = Resampler({"A": models, "C": [nlp_items(list((rng.random(400) < 0.5).astype(float))) for _ in range(2)]},
                       4000).spread("piqa")  # fmt: skip
    assert spread.df == 2 and spread.noise == pytest.approx(0.25 / 400 * 1e4, rel=0.2)
    assert spread.seed < spread.between


def test_pass_at_k_and_flask_follow_their_stages(tmp_path: Path) -> None:
    model = tmp_path / "eval"
    write_jsonl(model / "code/A-42/samples.jsonl", [
        {"task_id": f"HumanEval/{p}", "sample": s, "passed": s < p} for p in range(3) for s in range(10)
    ])  # fmt: skip
    write_jsonl(model / "align/A-42/judgments.jsonl", [
        {"idx": 1, "scores": {"Logical Correctness": 4.0, "Readability": 2.0}},
        {"idx": 2, "scores": {"Logical Correctness": 2.0, "Readability": "N/A"}},
    ])  # fmt: skip
    write_jsonl(model / "nlp/A-42/samples.jsonl", [
        {"task": "mmlu_anatomy", "doc_id": 0, "acc": 1.0}, {"task": "mmlu_nutrition", "doc_id": 0, "acc": 0.0},
    ])  # fmt: skip
    items = read_items(tmp_path, "A-42", "acc")
    assert set(items["mmlu"]) == {("mmlu_anatomy", 0), ("mmlu_nutrition", 0)}  # one unit, pooled
    resampler = Resampler({"A": [items]}, 3000)
    pass1 = np.mean(resampler("A", "pass@1"))
    assert pass1 == pytest.approx(100 * (0 + 0.1 + 0.2) / 3, abs=1.0)
    exact10 = 100 * sum(1 - math.comb(10 - c, 10) / math.comb(10, 10) if c else 0 for c in (0, 1, 2)) / 3
    assert np.mean(resampler("A", "pass@10")) == pytest.approx(exact10, abs=3.0)
    readability = resampler("A", "readability")  # one scored instance (N/A left out, as the judge stage does)
    assert np.nanmin(readability) == np.nanmax(readability) == 40.0  # NaN: draws without that instance
    assert resampler("A", "flask_avg") is not None and resampler("A", "mmlu") is not None
    assert resampler("A", "arc_challenge") is None and resampler("C", "pass@1") is None


def test_the_nlp_average_is_over_the_tasks_evaluated() -> None:
    two = {t: {(t, i): float(i % 2) for i in range(40)} for t in ("arc_challenge", "winogrande")}  # eval.nlp.tasks
    draws = Resampler({"A": [two]}, 2000)("A", "nlp_avg")
    assert draws is not None and abs(np.mean(draws) - 50.0) < 2.0
