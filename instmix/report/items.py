"""Per-item evidence and paired bootstrap draws: the noise floor of every delta.

Each evaluation stage logs its items: eval_nlp one row per document (samples.jsonl), eval_code
one row per completion (samples.jsonl), judge one row per FLASK instance (judgments.jsonl).
Every delta compares settings on the same items, so the draws here are *paired*: one
resampling of each item set (documents per NLP task, HumanEval problems, FLASK instances) is
shared by every model, and a metric is recomputed from it exactly as its stage computes it
(MMLU over all its documents; pass@k per problem from its n samples; a FLASK skill as the mean
over the instances annotated with it, the average over the 8 skills). With several seeds of a
setting, each draw also resamples its seeds (hierarchical: seeds, then items).

A resample is a row of multinomial counts over the items, so a metric's draws are one matrix
product (B x items) @ (items,), not a Python loop.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instmix.align.scoring import metric_key
from instmix.core.files import read_records
from instmix.core.vocab import SKILLS, TASKS

Items = dict[str, dict[Any, Any]]
"""{unit: {item id: value}}: unit is an NLP task, "code" or "align"; value a score, a list of
booleans (HumanEval samples) or {skill: score} (FLASK)."""
NLP_KEYS = (*TASKS, "nlp_avg")
CODE_KEYS = ("pass@1", "pass@10")
ALIGN_KEYS = (*SKILLS, "flask_avg")


def read_items(reports: Path, model: str, nlp_metric: str) -> Items:
    """The per-item files of one model id; a family without its file is simply absent."""
    items: Items = {}
    nlp = reports / "eval" / "nlp" / model / "samples.jsonl"
    if nlp.is_file():
        for row in read_records(nlp):
            unit = "mmlu" if row["task"].startswith("mmlu_") else row["task"]
            value = row.get(nlp_metric, row.get("acc"))  # MMLU has acc only
            items.setdefault(unit, {})[(row["task"], row["doc_id"])] = float(value)
    code = reports / "eval" / "code" / model / "samples.jsonl"
    if code.is_file():
        for row in read_records(code):
            items.setdefault("code", {}).setdefault(row["task_id"], []).append(bool(row["passed"]))
    align = reports / "eval" / "align" / model / "judgments.jsonl"
    if align.is_file():
        for row in read_records(align):
            scores = {metric_key(s): v for s, v in row["scores"].items() if isinstance(v, float)}
            items.setdefault("align", {})[row["idx"]] = scores
    return items


def pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class Resampler:
    """Paired bootstrap draws of every metric, from the items all the given runs share."""

    runs: Mapping[str, Sequence[Items]]
    """{setting: [the Items of each seed's model]}."""
    draws: int
    seed: int = 0
    common: dict[str, list[Any]] = field(init=False)
    weights: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    cache: dict[tuple[str, str], np.ndarray | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        units: dict[str, set[Any] | None] = {}
        for items in (i for seeds in self.runs.values() for i in seeds):
            for unit, values in items.items():
                units[unit] = set(values) if units.get(unit) is None else units[unit] & set(values)  # type: ignore[operator]
        self.common = {unit: sorted(ids, key=repr) for unit, ids in units.items() if ids}

    def counts(self, unit: str) -> np.ndarray:
        """(draws, items) multinomial counts: one resampling of the unit's items, shared by all runs."""
        if unit not in self.weights:
            n = len(self.common[unit])
            rng = np.random.default_rng([self.seed, zlib.crc32(unit.encode())])
            self.weights[unit] = rng.multinomial(n, np.full(n, 1 / n), size=self.draws).astype(float)
        return self.weights[unit]

    def per_model(self, items: Items, key: str) -> np.ndarray | None:
        """Draws of `key` for one model, or None when it lacks the items."""
        if key in TASKS:
            draws = self.mean_of(items, key, lambda v: v)
            return None if draws is None else draws * 100
        if key == "nlp_avg":
            tasks = [self.per_model(items, t) for t in TASKS]
            return None if any(t is None for t in tasks) else np.mean(tasks, axis=0)
        if key in CODE_KEYS:
            k = int(key.split("@")[1])
            if "code" not in items or any(len(v) < k for v in items["code"].values()):
                return None
            draws = self.mean_of(items, "code", lambda v: pass_at_k(len(v), sum(v), k))
            return None if draws is None else draws * 100
        if key in ALIGN_KEYS:
            return self.flask(items, key)
        return None

    def mean_of(self, items: Items, unit: str, score: Any) -> np.ndarray | None:
        if unit not in items or unit not in self.common:
            return None
        values = np.array([score(items[unit][i]) for i in self.common[unit]])
        return self.counts(unit) @ values / len(values)

    def flask(self, items: Items, key: str) -> np.ndarray | None:
        """A skill: the mean over the resampled instances scored on it, x 20; the avg: over the 8."""
        if "align" not in items or "align" not in self.common:
            return None
        ids = self.common["align"]
        scores = np.array([[items["align"][i].get(s, np.nan) for s in SKILLS] for i in ids])
        mask = ~np.isnan(scores)
        counts = self.counts("align")
        with np.errstate(invalid="ignore", divide="ignore"):
            per_skill = (counts @ np.where(mask, scores, 0.0)) / (counts @ mask) * 20  # (draws, 8)
        if key != "flask_avg":
            return per_skill[:, SKILLS.index(key)]
        scored = mask.any(axis=0)
        return per_skill[:, scored].mean(axis=1) if scored.any() else None

    def __call__(self, setting: str, key: str) -> np.ndarray | None:
        """Draws of a setting's mean over seeds: seeds resampled per draw, items shared."""
        if (setting, key) not in self.cache:
            self.cache[setting, key] = self.draw(setting, key)
        return self.cache[setting, key]

    def draw(self, setting: str, key: str) -> np.ndarray | None:
        seeds = [d for items in self.runs.get(setting, []) if (d := self.per_model(items, key)) is not None]
        if not seeds or len(seeds) != len(self.runs[setting]):
            return None
        stacked = np.stack(seeds)  # (seeds, draws)
        if len(seeds) == 1:
            return stacked[0]
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{setting}\x1f{key}".encode())])
        pick = rng.integers(0, len(seeds), size=(len(seeds), self.draws))
        return stacked[pick, np.arange(self.draws)].mean(axis=0)


def units_of(key: str) -> tuple[str, ...]:
    """The item sets a metric is computed from."""
    if key in TASKS:
        return (key,)
    return TASKS if key == "nlp_avg" else ("code",) if key in CODE_KEYS else ("align",) if key in ALIGN_KEYS else ()


def by_setting(runs: Iterable[Any]) -> dict[str, list[Items]]:
    """{setting: [items of each seed]} for the runs (instmix.report.runs.Run) that have items."""
    out: dict[str, list[Items]] = {}
    for run in sorted(runs, key=lambda r: (r.setting, -1 if r.seed is None else r.seed)):
        if run.items:
            out.setdefault(run.setting, []).append(run.items)
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: b items right only for model 1, c only for model 2."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)
