"""The paper's claims between settings: their definitions, and each one's delta, interval and mark on this run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instmix.core.vocab import TABLE_SETTINGS
from instmix.report import seeds
from instmix.report.items import Resampler, units_of
from instmix.report.layout import DASH, setting_order
from instmix.report.params import ReportParams
from instmix.report.stats import Replicates, Values


@dataclass(frozen=True)
class DeltaClaim:
    id: str
    text: str
    measure: str
    sign: int  # +1: the claim says the delta is positive; -1: negative
    delta: Callable[[Callable[[str, str], Any]], Any]
    decimals: int
    extreme: bool = False
    """The delta takes a max or min over noisy values (best_single, lowest_gain, the peak): its
    estimate is biased, so its interval is bias-corrected (correct_bias)."""


SINGLE = TABLE_SETTINGS[:3]  # A, C, P
TRAINED = TABLE_SETTINGS


def best_single(source: str, metric: str) -> Callable[[Callable[[str, str], Any]], Any]:
    """`source` minus the best other single source on `metric`."""
    a, b = (s for s in SINGLE if s != source)
    return lambda v: v(source, metric) - np.maximum(v(a, metric), v(b, metric))


def correct_bias(draws: np.ndarray, point: float) -> np.ndarray:
    """Draws recentred for a biased estimate. The max of two noisy values is biased up, so when
    they are close P - max(A, C) reads low; its bootstrap draws repeat that bias (their mean sits
    below the point by about as much as the point sits below the truth), so a plain percentile
    interval is off by twice the bias, towards reversed. Moving the draws by -2 x (mean of the
    draws - point) centres them on the bias-corrected estimate (point - bias): the basic
    bootstrap's correction, keeping the percentile interval's shape."""
    return draws - 2 * (float(np.nanmean(draws)) - point)


def lowest_gain(v: Callable[[str, str], Any]) -> Any:
    """The smallest FLASK gain of any trained setting over the base model."""
    gains = [v(s, "flask_avg") - v("none", "flask_avg") for s in TRAINED]
    return np.min(np.stack(np.broadcast_arrays(*gains)), axis=0)


DELTA_CLAIMS = (
    DeltaClaim("p_best_nlp", "P gives the best NLP average among single sources", "P - max(A, C), NLP avg (pp)",
               +1, best_single("P", "nlp_avg"), 2, True),
    DeltaClaim("c_best_code", "C gives the best HumanEval among single sources", "C - max(A, P), pass@1 (pp)",
               +1, best_single("C", "pass@1"), 2, True),
    DeltaClaim("c_best_code10", "C gives the best HumanEval pass@10 among single sources",
               "C - max(A, P), pass@10 (pp)", +1, best_single("C", "pass@10"), 2, True),
    DeltaClaim(
        "p_lowers_alignment", "Adding P lowers alignment", "mean(AP - A, CP - C, ACP - AC), FLASK avg", -1,
        lambda v: (v("AP", "flask_avg") - v("A", "flask_avg") + v("CP", "flask_avg") - v("C", "flask_avg")
                   + v("ACP", "flask_avg") - v("AC", "flask_avg")) / 3, 1,
    ),
    DeltaClaim("c_raises_alignment", "Adding C to A raises alignment", "AC - A, FLASK avg", +1,
               lambda v: v("AC", "flask_avg") - v("A", "flask_avg"), 1),
    DeltaClaim("a_best_alignment", "A gives the best alignment among single sources", "A - max(C, P), FLASK avg",
               +1, best_single("A", "flask_avg"), 1, True),
    DeltaClaim("a_best_race", "A is the best single source on RACE", "A - max(C, P), RACE (pp)", +1,
               best_single("A", "race"), 2, True),
    DeltaClaim("a_best_hellaswag", "A is the best single source on HellaSwag", "A - max(C, P), HellaSwag (pp)",
               +1, best_single("A", "hellaswag"), 2, True),
    DeltaClaim("p_best_arc", "P is the best single source on ARC", "P - max(A, C), ARC (pp)", +1,
               best_single("P", "arc_challenge"), 2, True),
    DeltaClaim("p_best_winogrande", "P is the best single source on Winogrande", "P - max(A, C), Winogrande (pp)",
               +1, best_single("P", "winogrande"), 2, True),
    DeltaClaim("ac_above_c_code", "AC is above C on code (the paper: at 7B)", "AC - C, pass@1 (pp)", +1,
               lambda v: v("AC", "pass@1") - v("C", "pass@1"), 2),
    DeltaClaim("all_raise_alignment", "Every instruction type improves alignment over the base model",
               "min over A ... ACP of (setting - none), FLASK avg", +1, lowest_gain, 1, True),
)  # fmt: skip


@dataclass
class ClaimResult:
    id: str
    text: str
    measure: str
    mark: str  # holds | within noise | reversed | too few items | does not hold (no interval) | not evaluable | ...
    delta: float | None = None
    interval: tuple[float, float] | None = None
    detail: str = ""
    paper: dict[str, str] = field(default_factory=dict)
    decimals: int = 2
    sign: int = 1  # the direction the claim says the delta goes


def mark_delta(sign: int, delta: float, interval: tuple[float, float] | None) -> str:
    """holds / reversed: the interval excludes 0 on the claimed / the other side; within noise:
    it contains 0. Without an interval (one seed and no per-item files) only the point speaks."""
    if interval is None:
        return "holds" if sign * delta > 0 else "does not hold"
    if interval[0] <= 0 <= interval[1]:
        return "within noise"
    return "holds" if sign * (interval[0] + interval[1]) > 0 else "reversed"


class Draws:
    """Bootstrap draws per (setting, metric): paired over items where every model involved has its
    per-item files (instmix.report.items), else over seeds only."""

    def __init__(self, reps: Replicates, resampler: Resampler | None, params: ReportParams) -> None:
        self.seeds = Values(reps, params.bootstrap_samples, params.seed)
        self.resampler = resampler
        self.item_level = resampler is not None
        self.items: dict[str, int] = {}  # item set -> its size, for every metric drawn

    def __call__(self, setting: str, key: str) -> Any:
        if self.resampler is not None and (draws := self.resampler(setting, key)) is not None:
            common = self.resampler.common
            self.items |= {u: len(common[u]) for u in units_of(key) if u in common}
            return draws
        self.item_level = False
        return self.seeds(setting, key)

    def seed_only(self, setting: str, key: str) -> Any:
        if self.resampler is not None and self.resampler(setting, key) is not None:
            return self.resampler.seed_only(setting, key)
        return self.seeds.seed_only(setting, key)

    def spread(self, key: str) -> seeds.Spread:
        return self.resampler.spread(key) if self.item_level and self.resampler else self.seeds.spread(key)

    def too_few(self, params: ReportParams) -> str:
        """'' or why a mark other than within noise is not earned: too few shared items."""
        if not self.item_level or not self.items:
            return ""
        unit, n = min(self.items.items(), key=lambda kv: kv[1])
        return f"; only {n} shared items ({unit}) < report.min_items {params.min_items}" if n < params.min_items else ""


def seeds_detail(used: Mapping[str, int]) -> str:
    counts = sorted(set(used.values()))
    if counts == [1]:
        return "single run"
    if len(counts) == 1:
        return f"{counts[0]} seeds per setting"
    return "seeds per setting: " + ", ".join(f"{s} {used[s]}" for s in sorted(used, key=setting_order))


def evaluate_delta_claim(
    claim: DeltaClaim, reps: Replicates, params: ReportParams, resampler: Resampler | None = None
) -> ClaimResult:
    result = ClaimResult(claim.id, claim.text, claim.measure, "not evaluable", decimals=claim.decimals, sign=claim.sign)
    point = Values(reps)
    delta = float(claim.delta(point))
    if point.missing:
        result.detail = "missing: " + ", ".join(point.missing)
        return result
    interval = None
    multi_seed = any(n > 1 for n in point.used.values())
    source = Draws(reps, resampler, params)
    if resampler is not None or multi_seed:  # else there is nothing to resample
        correct = (lambda d: correct_bias(d, delta)) if claim.extreme else None
        bounds = seeds.widened(claim.delta, source, params.confidence, correct)
        if source.item_level or multi_seed:
            interval = bounds
    result.delta, result.interval = delta, interval
    result.mark = mark_delta(claim.sign, delta, interval)
    result.detail = seeds_detail(point.used) + interval_detail(source.item_level, multi_seed, interval)
    if interval is not None and claim.extreme:
        result.detail += "; bias-corrected (a max or min of noisy values)"
    if result.mark in ("holds", "reversed") and (few := source.too_few(params)):
        result.mark, result.detail = "too few items", result.detail + few + f" (interval alone: {result.mark})"
    if result.mark == "within noise":
        result.detail += "; point estimate " + ("holds" if claim.sign * delta > 0 else "does not hold")
    return result


def interval_detail(item_level: bool, multi_seed: bool, interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "; no interval (one seed, no per-item files)"
    if item_level:
        return "; paired bootstrap over items" + (" + pooled seed variance (t)" if multi_seed else "")
    return "; pooled seed variance (t)"


def paper_delta(claim: DeltaClaim, paper: Mapping[str, Any], size: str) -> str:
    """The claim's delta on the paper's own published table, e.g. '+0.6 (holds)'."""
    rows = {**paper["table1"].get(size, {})}
    for row, values in paper["table2"].get(size, {}).items():
        rows[row] = {**rows.get(row, {}), **values}
    reps = {row: {k: [v] for k, v in values.items()} for row, values in rows.items()}
    result = evaluate_delta_claim(claim, reps, ReportParams())
    if result.delta is None:
        return DASH
    return f"{result.delta:+.{claim.decimals}f} ({result.mark})"
