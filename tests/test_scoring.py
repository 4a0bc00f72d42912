"""scoring: reading judge outputs FLASK's way, matching them to skills, and aggregating per
skill, domain and difficulty."""

from __future__ import annotations

from typing import Any

import pytest

from instmix.align.scoring import NA, aggregate, assign, metric_key, normalise, parse_judgment, short_name

PAPER_SKILLS = [
    "Logical Correctness", "Factuality", "Commonsense Understanding", "Comprehension",
    "Completeness", "Insightfulness", "Readability", "Conciseness",
]  # fmt: skip

# ---------------------------------------------------------------------------- parsing

GPT4_STYLE = """Logical Correctness: The response multiplies 7 by 3 and takes 10% off, reaching 18.90 \
dollars, which matches the ground truth answer.
Score: 5

Conciseness: The response contains only the needed steps.
Score: 5

Readability: The steps are easy to follow, though the notation is terse.
Score: 4

{'Logical Correctness': 5, 'Conciseness': 5, 'Readability': 4}"""
SKILLS = ["Logical Correctness", "Conciseness", "Readability"]


@pytest.mark.parametrize(
    ("output", "expected", "how"),  # expected per skill: a score, NA, - (missing) or x (invalid)
    [
        (GPT4_STYLE, "5 5 4", "literal"),
        # FLASK lower-cases and turns "_" into " "; keys may also come as FLASK's short names
        ("{'logical_correctness': 3, 'CONCISENESS': '4', 'readability': 2.5}", "3 4 2.5", "literal"),
        ("Scores:\n{\n  'correctness': 2,\n  'conciseness': 3,\n  'readability': 1\n}", "2 3 1", "literal"),
        ('{"Logical Correctness": 4, "Conciseness": "N/A", "Readability": "not applicable"}', "4 NA NA", "literal"),
        ("{'Logical Correctness': 'NA', 'Conciseness': 'n/a', 'Readability': 3}", "NA NA 3", "literal"),
        # extra dicts: FLASK takes the last one
        ("As {'Logical Correctness': 1} would be wrong, I give:\n" + GPT4_STYLE, "5 5 4", "literal"),
        (GPT4_STYLE + "\n\n{'note': 'the answer is short'}", "- - -", "literal"),
        # out of range and non-numbers are invalid, not clipped
        ("{'Logical Correctness': 0, 'Conciseness': 6, 'Readability': 'good'}", "x x x", "literal"),
        ("{'Logical Correctness': 10, 'Conciseness': 5, 'Readability': [4]}", "x 5 x", "literal"),
        # malformed: unquoted names, N/A unquoted -- read leniently from the same block
        ("Final scores: {Logical Correctness: 4, Conciseness: N/A, Readability: 5}", "4 NA 5", "lenient"),
        ("{'Logical Correctness': 4, 'Conciseness': 3}", "4 3 -", "literal"),
        # no dict at all, an unclosed one, an empty one, nothing
        ("Logical Correctness: 4\nConciseness: 3\nReadability: 5", "- - -", "none"),
        ("{'Logical Correctness': 4, 'Conciseness': 3, 'Readab", "- - -", "none"),
        ("I cannot judge this. {}", "- - -", "none"),
        ("", "- - -", "none"),
    ],
)
def test_parsing_flask_style_judge_outputs(output: str, expected: str, how: str) -> None:
    parsed, read_as = parse_judgment(output)
    scores, status = assign(parsed, SKILLS)
    assert read_as == how
    names = {"NA": "na", "-": "missing", "x": "invalid"}
    assert [status[s] for s in SKILLS] == [names.get(e, "ok") for e in expected.split()]
    values = {"NA": NA, "-": None, "x": None}
    assert [scores[s] for s in SKILLS] == [values[e] if e in values else float(e) for e in expected.split()]


def test_booleans_are_not_scores() -> None:
    scores, status = assign({"readability": True, "conciseness": 5}, ["Readability", "Conciseness"])
    assert status == {"Readability": "invalid", "Conciseness": "ok"}
    assert scores == {"Readability": None, "Conciseness": 5.0}
    assert parse_judgment("{'Readability': True}") == (None, "none")  # lower-cased, `true` is no Python literal


def test_metric_keys_follow_the_contract() -> None:
    keys = [metric_key(skill) for skill in PAPER_SKILLS]
    assert keys == [
        "logical_correctness", "factuality", "commonsense", "comprehension",
        "completeness", "insightfulness", "readability", "conciseness",
    ]  # fmt: skip


def test_names_are_normalised_and_shortened_flask_style() -> None:
    assert normalise("  Logical_Correctness\n ") == "logical correctness"
    assert [short_name(n) for n in ("Logical Robustness", "Commonsense Understanding", "logical", "")] == [
        "robustness", "commonsense", "logical", "",
    ]  # fmt: skip


# ---------------------------------------------------------------------------- aggregation


def judged(idx: int, scores: dict[str, Any], domain: list[str], difficulty: str) -> dict[str, Any]:
    status = {s: "ok" if isinstance(v, float) else "na" if v == NA else "invalid" for s, v in scores.items()}
    failed = any(v == "invalid" for v in status.values())
    return {"idx": idx, "skills": list(scores), "scores": scores, "status": status, "failed": failed,
            "domain": domain, "difficulty": difficulty, "parsed_as": "literal"}  # fmt: skip


def test_aggregation_is_the_mean_per_skill_times_20_and_avg_is_the_mean_of_skills() -> None:
    rows = [
        judged(1, {"Logical Correctness": 4.0, "Readability": 5.0, "Conciseness": 3.0}, ["Math"], "easy"),
        judged(2, {"Logical Correctness": 2.0, "Readability": NA, "Factuality": 3.0}, ["Math", "History"], "hard"),
        judged(3, {"Factuality": None, "Readability": 4.0, "Conciseness": 1.0}, ["History"], "hard"),
    ]
    metrics, breakdown = aggregate(rows, "openai:x")
    align = metrics["align"]
    assert align["logical_correctness"] == 60.0  # (4 + 2) / 2 x 20
    assert align["readability"] == 90.0  # N/A left out: (5 + 4) / 2
    assert align["factuality"] == 60.0  # the invalid one left out
    assert align["conciseness"] == 40.0
    assert align["avg"] == pytest.approx((60 + 90 + 60 + 40) / 4)
    assert (align["instances"], align["parse_failures"], align["judge"]) == (3, 1, "openai:x")
    assert breakdown["skills"]["readability"] == {"score": 90.0, "mean_1to5": 4.5, "ok": 2, "na": 1,
                                                      "missing": 0, "invalid": 0}  # fmt: skip
    assert breakdown["domain"]["Math"] == {"score": pytest.approx(20 * 17 / 5), "instances": 2, "scores": 5}
    assert breakdown["domain"]["History"]["score"] == pytest.approx(20 * (2 + 3 + 4 + 1) / 4)
    assert breakdown["difficulty"]["hard"]["skills"]["readability"] == 80.0
    assert breakdown["difficulty"]["easy"] == {"instances": 1, "score": 80.0, "skills": {
        "conciseness": 60.0, "logical_correctness": 80.0, "readability": 100.0}}  # fmt: skip
    assert breakdown["parse"] == {"instances_failed": 1, "read_as": {"literal": 3}}


def test_a_skill_without_any_score_makes_avg_null() -> None:
    rows = [judged(1, {"Logical Correctness": 4.0, "Readability": NA}, ["Math"], "easy")]
    align = aggregate(rows, "hf:m")[0]["align"]
    assert align["readability"] is None and align["logical_correctness"] == 80.0 and align["avg"] is None
