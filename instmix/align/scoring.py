"""Reading a judge's output FLASK's way, and aggregating the scores per skill, domain and level.

Parsing is FLASK's: the last {...} block of the output, lower-cased, "_" -> " ", read with
ast.literal_eval; 'na', 'n/a', 'not applicable' (and none, null) -> N/A, left out of the means.
Where that fails, a lenient reader takes "name: score" pairs from the same block (FLASK fixed
those by hand). An instance whose dict is missing, or lacks a valid 1-5 score (or N/A) for one
of its skills, counts as a parse failure; its other skills still count.
"""

from __future__ import annotations

import ast
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

NA = "N/A"
NA_WORDS = {"na", "n/a", "not applicable", "none", "null"}
FLASK_DICT = re.compile(r"{[^}]+}")  # FLASK's own pattern; the last match is the scores
LENIENT_PAIR = re.compile(
    r"""['"]?([a-z][a-z ]*?)['"]?\s*:\s*['"]?(\d+(?:\.\d+)?|n/a|na|not applicable|none|null)\b['"]?"""
)


def normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def short_name(name: str) -> str:
    """FLASK's aggregation key: the first word, or the second for 'logical ...'."""
    words = normalise(name).split()
    if not words:
        return ""
    return words[1] if words[0] == "logical" and len(words) > 1 else words[0]


def metric_key(skill: str) -> str:
    """The metrics key of a FLASK skill: logical_correctness, commonsense, readability, ..."""
    short = short_name(skill)
    return f"logical_{short}" if normalise(skill).startswith("logical ") else short


def parse_judgment(text: str) -> tuple[dict[str, Any] | None, str]:
    """The last {...} block of a judge output as {lower-case name: value}, and how it was read.

    how: `literal` (FLASK's way), `lenient` (name: score pairs), `none` (no usable dict).
    """
    blocks = FLASK_DICT.findall(text or "")
    if not blocks:
        return None, "none"
    block = blocks[-1].replace("\n", "").replace("_", " ").lower()
    try:
        value = ast.literal_eval(block)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if isinstance(value, dict) and value:
        return {normalise(str(k)): _score_value(v) for k, v in value.items()}, "literal"
    pairs = LENIENT_PAIR.findall(block)
    if pairs:
        return {normalise(k): _score_value(v) for k, v in pairs}, "lenient"
    return None, "none"


def _score_value(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in NA_WORDS:
            return NA
        try:
            return float(word)
        except ValueError:
            return value
    return value


def assign(parsed: dict[str, Any] | None, skills: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each annotated skill's score (float in [1, 5], N/A or None) and its status.

    status: ok | na | missing (no key for the skill) | invalid (not a number in [1, 5]).
    A key matches a skill by full name, else by FLASK's short name (first word, 'logical X' -> X).
    """
    scores: dict[str, Any] = {}
    status: dict[str, str] = {}
    parsed = parsed or {}
    for skill in skills:
        key = normalise(skill)
        if key not in parsed:
            key = next((k for k in parsed if short_name(k) == short_name(skill)), "")
        value = parsed.get(key)
        if not key:
            scores[skill], status[skill] = None, "missing"
        elif value == NA:
            scores[skill], status[skill] = NA, "na"
        elif isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 5:
            scores[skill], status[skill] = float(value), "ok"
        else:
            scores[skill], status[skill] = None, "invalid"
    return scores, status


# ---------------------------------------------------------------------------- aggregation


def _scaled(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values) * 20, 4) if values else None


def aggregate(judgments: Sequence[dict[str, Any]], judge: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics.json and the per-skill, per-domain and per-difficulty breakdown.

    A skill's score is the mean over the instances annotated with it and scored (N/A and
    failures left out), x 20: FLASK's 1-5 scale on 0-100, as the paper's Table 2.
    """
    per_skill: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"ok": 0, "na": 0, "missing": 0, "invalid": 0})
    per_domain: dict[str, list[float]] = defaultdict(list)
    domain_instances: dict[str, int] = defaultdict(int)
    per_level: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    level_instances: dict[str, int] = defaultdict(int)
    for row in judgments:
        for skill in row["skills"]:
            key, value = metric_key(skill), row["scores"].get(skill)
            counts[key][row["status"][skill]] += 1
            if isinstance(value, float):
                per_skill[key].append(value)
                per_level[row["difficulty"]][key].append(value)
                for domain in row["domain"]:
                    per_domain[domain].append(value)
        for domain in row["domain"]:
            domain_instances[domain] += 1
        level_instances[row["difficulty"]] += 1

    skills = {key: _scaled(per_skill[key]) for key in counts}
    complete = [v for v in skills.values() if v is not None]
    avg = round(statistics.fmean(complete), 4) if complete and len(complete) == len(skills) else None
    failures = sum(row["failed"] for row in judgments)
    metrics = {"align": {**skills, "avg": avg, "instances": len(judgments), "parse_failures": failures, "judge": judge}}

    how = defaultdict(int)
    for row in judgments:
        how[row["parsed_as"]] += 1
    breakdown = {
        "skills": {
            key: {"score": skills[key], "mean_1to5": _mean(per_skill[key]), **counts[key]} for key in sorted(counts)
        },
        "domain": {
            d: {"score": _scaled(per_domain[d]), "instances": domain_instances[d], "scores": len(per_domain[d])}
            for d in sorted(domain_instances)
        },
        "difficulty": {
            level: {
                "instances": level_instances[level],
                "score": _scaled([v for values in per_level[level].values() for v in values]),
                "skills": {key: _scaled(values) for key, values in sorted(per_level[level].items())},
            }
            for level in sorted(level_instances)
        },
        "parse": {"instances_failed": failures, "read_as": dict(sorted(how.items()))},
    }
    return metrics, breakdown


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None
