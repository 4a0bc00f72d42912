"""Per-item evidence and paired bootstrap draws: the noise floor of every delta.

Each evaluation stage logs its items: eval_nlp one row per document (samples.jsonl), eval_code
one row per completion (samples.jsonl), judge one row per FLASK instance (judgments.jsonl).
Every delta compares settings on the same items, so the draws here are *paired*: one
resampling of each item set (documents per NLP task, HumanEval problems, FLASK instances) is
shared by every model, and a metric is recomputed from it exactly as its stage computes it
(MMLU over all its documents; pass@k per problem from its n samples; a FLASK skill as the mean
over the instances annotated with it, the average over the 8 skills).

Seeds: a setting's draws are the items' draws of its seeds' mean plus the seed term of
instmix.report.seeds (pooled seed variance, widened for few seeds where an interval is taken).
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
from instmix.report import continuous, seeds

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
            for proxy in (p for p in continuous.PROXIES if p in row):
                items.setdefault(f"{proxy}:{unit}", {})[(row["task"], row["doc_id"])] = float(row[proxy])
    code = reports / "eval" / "code" / model / "samples.jsonl"
    if code.is_file():
        for row in read_records(code):
            items.setdefault("code", {}).setdefault(row["task_id"], []).append(bool(row["passed"]))
    align = reports / "eval" / "align" / model / "judgments.jsonl"
    if align.is_file():
        for row in read_records(align):
            scores = {metric_key(s): v for s, v in row["scores"].items() if isinstance(v, float)}
            items.setdefault("align", {})[row["idx"]] = scores
    lik = reports / "eval" / "lik" / model / "items.jsonl"
    if lik.is_file():
        for row in read_records(lik):  # (bits, bytes): a set's bits per byte is a ratio of their sums
            items.setdefault(f"lik:{row['set']}", {})[row["id"]] = (row["nll"] / math.log(2), float(row["bytes"]))
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
    chunk: int = 500
    """Draws resampled at a time (bounds memory: chunk x items counts)."""
    common: dict[str, list[Any]] = field(init=False)
    sums: dict[str, tuple[np.ndarray, dict[tuple[str, int, str], int]]] = field(init=False, default_factory=dict)
    totals: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    """Each unit's column sums over its items as they are (no resampling): the point values."""
    cache: dict[tuple[str, str], np.ndarray | None] = field(init=False, default_factory=dict)
    spreads: dict[str, seeds.Spread] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        units: dict[str, set[Any] | None] = {}
        for items in (i for models in self.runs.values() for i in models):
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
        elif unit.startswith("lik:"):
            yield "sum:bits", [values[i][0] for i in ids]
            yield "count:bytes", [values[i][1] for i in ids]
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
        if key in ("p_gold:avg", "bpb_gold:avg", "bpb:heldout:avg"):  # over the sets evaluated
            parts = [self.per_model(setting, seed, f"{key.rpartition(':')[0]}:{u.rpartition(':')[2]}", point)
                     for u in continuous.units_of(key) if u in self.common]  # fmt: skip
            return None if not parts or any(p is None for p in parts) else np.mean(parts, axis=0)
        unit = continuous.unit_of(key)
        if unit is None:
            return None
        if unit.startswith("lik:"):
            bits, nbytes = (self.column(unit, setting, seed, name, point) for name in ("sum:bits", "count:bytes"))
            return None if bits is None or nbytes is None else bits / nbytes
        draws = self.column(unit, setting, seed, "score", point)
        return None if draws is None else draws * (100 if key.startswith("p_gold") else 1)

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
        models = [self.per_model(setting, i, key) for i in range(len(self.runs.get(setting, [])))]
        if not models or any(d is None for d in models):
            return None
        spread = self.spread(key)
        stream = [self.seed, setting, key]
        return np.mean(np.stack(models), axis=0) + seeds.term(spread, spread.seed, len(models), self.draws, stream)  # type: ignore[arg-type]

    def seed_only(self, setting: str, key: str) -> np.ndarray | float | None:
        """The setting's point plus its seed term at the `between` variance (instmix.report.seeds)."""
        values = self.seed_values(setting, key)
        if values is None:
            return None
        spread = self.spread(key)
        return float(np.mean(values)) + seeds.term(
            spread, spread.between, len(values), self.draws, [self.seed, setting, key]
        )

    def spread(self, key: str) -> seeds.Spread:
        if key not in self.spreads:
            self.spreads[key] = seeds.pooled({s: self.seed_values(s, key) for s in self.runs}, self.item_noise(key))
        return self.spreads[key]

    def item_noise(self, key: str) -> float:
        """Each model's own item noise (independent between seeds), pooled over the settings with
        several seeds. Under a shared resampling of the items, the variance of a seed's draws about
        the seeds' mean is (1 - 1/n) times that noise's variance, so summed over n seeds they
        estimate (n - 1) times it."""
        total, df = 0.0, 0
        for setting, models in self.runs.items():
            draws = [self.per_model(setting, i, key) for i in range(len(models))]
            if len(models) < 2 or any(d is None for d in draws):
                continue
            stacked = np.stack(draws)  # type: ignore[arg-type]
            total += float(np.nanvar(stacked - stacked.mean(axis=0), axis=1).sum())
            df += len(models) - 1
        return total / df if df else 0.0


def units_of(key: str) -> tuple[str, ...]:
    """The item sets a metric is computed from."""
    if key in TASKS:
        return (key,)
    if found := continuous.units_of(key):
        return found
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
