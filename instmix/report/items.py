"""Per-item evidence and paired bootstrap draws: the noise floor of every delta.

Each evaluation stage logs its items: eval_nlp one row per document (samples.jsonl), eval_code
one row per completion (samples.jsonl), judge one row per FLASK instance (judgments.jsonl).
Every delta compares settings on the same items, so the draws here are *paired*: one
resampling of each item set (documents per NLP task, HumanEval problems, FLASK instances) is
shared by every model, and a metric is recomputed from it exactly as its stage computes it
(MMLU over all its documents; pass@k per problem from its n samples; a FLASK skill as the mean
over the instances annotated with it, the average over the 8 skills).

Seeds. A setting's value is the mean of its seeds' models, so its draws are the items' draws of
that mean plus a seed term: the seed-to-seed spread cannot be seen by resampling items (every
seed's model scores the same items). Resampling 2 or 3 seed values with replacement underestimates
that spread (86 % and 92 % coverage for a nominal 95 %), so instead the seed variance of a metric
is pooled over every setting with several seeds (s^2 with df = sum of (seeds - 1)), and each
setting's draws get an independent normal term of sd c x s / sqrt(its seeds), where
c = t_{df}(q) / z(q), q = (1 + confidence) / 2. A difference of two settings then has the interval
of a pooled two-sample t test on the seeds, widened by the items' own noise (bench/coverage.py
measures its coverage). With one seed everywhere the seed variance is unknown and no term is
added: intervals then speak about the trained models, not about other seeds of their settings.

A resample is a row of counts over the items, so every model's draws in one item set are one
matrix product (draws x items) @ (items x models), computed in chunks of draws.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from instmix.align.scoring import metric_key
from instmix.core.files import read_records
from instmix.core.vocab import SKILLS, TASKS

Items = dict[str, dict[Any, Any]]
"""{unit: {item id: value}}: unit is an NLP task, "code" or "align"; value a score, a list of
booleans (HumanEval samples) or {skill: score} (FLASK)."""
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
    confidence: float = 0.95
    """Sets the seed term's small-sample widening c (the module docstring)."""
    chunk: int = 500
    """Draws resampled at a time (bounds memory: chunk x items counts)."""
    common: dict[str, list[Any]] = field(init=False)
    sums: dict[str, tuple[np.ndarray, dict[tuple[str, int, str], int]]] = field(init=False, default_factory=dict)
    totals: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    """Each unit's column sums over its items as they are (no resampling): the point values."""
    cache: dict[tuple[str, str], np.ndarray | None] = field(init=False, default_factory=dict)
    spreads: dict[str, float] = field(init=False, default_factory=dict)
    """Per metric: the pooled, widened seed sd (pooled_seed_sd)."""

    def __post_init__(self) -> None:
        units: dict[str, set[Any] | None] = {}
        for items in (i for seeds in self.runs.values() for i in seeds):
            for unit, values in items.items():
                units[unit] = set(values) if units.get(unit) is None else units[unit] & set(values)  # type: ignore[operator]
        self.common = {unit: sorted(ids, key=repr) for unit, ids in units.items() if ids}

    def columns(self, unit: str, values: Mapping[Any, Any]) -> Iterable[tuple[str, list[float]]]:
        """A model's per-item vectors in one unit: what its metrics are sums of."""
        ids = self.common[unit]
        if unit == "code":
            for k in (1, 10):
                if all(len(values[i]) >= k for i in ids):
                    yield f"pass@{k}", [pass_at_k(len(values[i]), sum(values[i]), k) for i in ids]
        elif unit == "align":
            for skill in SKILLS:
                scores = [values[i].get(skill) for i in ids]
                if any(v is not None for v in scores):
                    yield f"sum:{skill}", [0.0 if v is None else v for v in scores]
                    yield f"count:{skill}", [0.0 if v is None else 1.0 for v in scores]
        else:
            yield "score", [values[i] for i in ids]

    def unit_sums(self, unit: str) -> tuple[np.ndarray, dict[tuple[str, int, str], int]]:
        """(draws, columns) resampled sums of every model's vectors in `unit`, and the column index.
        One resampling of the unit's items per draw, shared by every model: that is the pairing."""
        if unit not in self.sums:
            index: dict[tuple[str, int, str], int] = {}
            vectors = []
            for setting, seeds in self.runs.items():
                for i, items in enumerate(seeds):
                    for name, vector in self.columns(unit, items[unit]) if unit in items else ():
                        index[setting, i, name] = len(vectors)
                        vectors.append(vector)
            matrix = np.array(vectors, dtype=float).T  # (items, columns)
            self.totals[unit] = matrix.sum(axis=0)
            n = matrix.shape[0]
            rng = np.random.default_rng([self.seed, zlib.crc32(unit.encode())])
            out = np.empty((self.draws, matrix.shape[1]))
            for start in range(0, self.draws, self.chunk):
                rows = min(self.chunk, self.draws - start)
                picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
                counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
                out[start : start + rows] = counts @ matrix
            self.sums[unit] = (out, index)
        return self.sums[unit]

    def column(self, unit: str, setting: str, seed: int, name: str, point: bool = False) -> np.ndarray | None:
        """Resampled means of one model's vector (`point`: its mean over the items as they are, as a
        1-element array), or None when it lacks it."""
        if unit not in self.common:
            return None
        sums, index = self.unit_sums(unit)
        j = index.get((setting, seed, name))
        if j is None:
            return None
        return (self.totals[unit][j : j + 1] if point else sums[:, j]) / len(self.common[unit])

    def per_model(self, setting: str, seed: int, key: str, point: bool = False) -> np.ndarray | None:
        """Draws of `key` for one model (`point`: its value on the shared items), or None when it lacks the items."""
        if key in TASKS:
            draws = self.column(key, setting, seed, "score", point)
            return None if draws is None else draws * 100
        if key == "nlp_avg":  # over the tasks evaluated (eval.nlp.tasks), as eval_nlp's avg
            tasks = [self.per_model(setting, seed, t, point) for t in TASKS if t in self.common]
            return None if not tasks or any(t is None for t in tasks) else np.mean(tasks, axis=0)
        if key in CODE_KEYS:
            draws = self.column("code", setting, seed, key, point)
            return None if draws is None else draws * 100
        if key in ALIGN_KEYS:
            return self.flask(setting, seed, key, point)
        return None

    def mcnemar(self, setting: str, reference: str, task: str) -> float | None:
        """The exact McNemar p of two single-run settings' per-document accuracy on an NLP task
        (None where it does not apply: several seeds, non-binary scores, no shared documents)."""
        pair = [self.runs.get(setting, []), self.runs.get(reference, [])]
        if task not in TASKS or task not in self.common or any(len(seeds) != 1 for seeds in pair):
            return None
        if any(task not in seeds[0] for seeds in pair):
            return None
        first, second = ([seeds[0][task][i] for i in self.common[task]] for seeds in pair)
        if any(v not in (0.0, 1.0) for v in (*first, *second)):
            return None
        b = sum(x > y for x, y in zip(first, second, strict=True))
        c = sum(y > x for x, y in zip(first, second, strict=True))
        return mcnemar_exact(b, c)

    def flask(self, setting: str, seed: int, key: str, point: bool = False) -> np.ndarray | None:
        """A skill: the mean over the resampled instances scored on it, x 20; the avg: over the skills scored."""
        skills = [key] if key != "flask_avg" else list(SKILLS)
        per_skill = []
        for skill in skills:
            total, count = (
                self.column("align", setting, seed, f"sum:{skill}", point),
                self.column("align", setting, seed, f"count:{skill}", point),
            )
            if total is not None and count is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    per_skill.append(total / count * 20)
        if not per_skill:
            return None
        return per_skill[0] if key != "flask_avg" else np.mean(per_skill, axis=0)

    def __call__(self, setting: str, key: str) -> np.ndarray | None:
        """Draws of a setting's mean over seeds: items shared by every model, plus the seed term."""
        if (setting, key) not in self.cache:
            self.cache[setting, key] = self.draw(setting, key)
        return self.cache[setting, key]

    def seed_values(self, setting: str, key: str) -> list[float] | None:
        """Each seed's model's value on the shared items, or None when one lacks them."""
        values = [self.per_model(setting, i, key, point=True) for i in range(len(self.runs.get(setting, [])))]
        return None if not values or any(v is None for v in values) else [float(v[0]) for v in values]  # type: ignore[index]

    def draw(self, setting: str, key: str) -> np.ndarray | None:
        seeds = [self.per_model(setting, i, key) for i in range(len(self.runs.get(setting, [])))]
        if not seeds or any(d is None for d in seeds):
            return None
        mean = np.mean(np.stack(seeds), axis=0)  # type: ignore[arg-type]
        if key not in self.spreads:
            self.spreads[key] = pooled_seed_sd(
                {s: self.seed_values(s, key) for s in self.runs}, self.confidence, self.item_noise(key)
            )
        return mean + seed_term(self.spreads[key], len(seeds), self.draws, [self.seed, setting, key])

    def item_noise(self, key: str) -> float:
        """The part of the seeds' spread that the items' draws already carry: each model's own item
        noise (its Bernoulli or sampling noise on the items, independent between seeds), pooled over the
        settings with several seeds. Under a shared resampling of the items, the variance of a seed's
        draws about the seeds' mean is (1 - 1/n) times that noise's variance, so summed over n seeds
        they estimate (n - 1) times it."""
        total, df = 0.0, 0
        for setting, models in self.runs.items():
            if len(models) < 2:
                continue
            seeds = [self.per_model(setting, i, key) for i in range(len(models))]
            if any(d is None for d in seeds):
                continue
            stacked = np.stack(seeds)  # type: ignore[arg-type]
            deviations = stacked - stacked.mean(axis=0)
            total += float(np.nanvar(deviations, axis=1).sum())  # estimates (n - 1) x the noise variance
            df += len(models) - 1
        return total / df if df else 0.0


def pooled_seed_sd(values: Mapping[str, Sequence[float] | None], confidence: float, item_noise: float = 0.0) -> float:
    """c x s: the seed sd pooled over the settings with several seeds, less the items' own noise that
    the item draws carry already (`item_noise`, a variance: a random-effects ANOVA's correction),
    widened for its few degrees of freedom (the module docstring); 0 when no setting has two seeds."""
    groups = [np.asarray(v, dtype=float) for v in values.values() if v is not None and len(v) > 1]
    df = sum(len(g) - 1 for g in groups)
    if df == 0:
        return 0.0
    variance = max(0.0, sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / df - item_noise)
    q = (1 + confidence) / 2
    return float(stats.t.ppf(q, df) / stats.norm.ppf(q)) * math.sqrt(variance)


def seed_term(spread: float, seeds: int, draws: int, stream: Sequence[Any]) -> np.ndarray | float:
    """The seed term of one setting's draws: normal, sd spread / sqrt(seeds), its own stream."""
    if spread == 0:
        return 0.0
    key = "\x1f".join(str(s) for s in stream[1:])
    rng = np.random.default_rng([int(stream[0]), zlib.crc32(key.encode())])
    return rng.standard_normal(draws) * spread / math.sqrt(seeds)


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
