"""Replicates over seeds: mean ± std per setting, and draws of the means for claims where there are
no per-item files (the seed term of instmix.report.seeds alone)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from instmix.report import seeds
from instmix.report.layout import METRIC_NAMES
from instmix.report.runs import Run

Replicates = Mapping[str, Mapping[str, Sequence[float]]]
"""{setting: {metric: [value per seed]}}."""


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # sample std (ddof 1) over seeds; None for one run
    n: int


def replicates(runs: Iterable[Run]) -> dict[str, dict[str, list[float]]]:
    """{setting: {metric: [value per seed]}}, seeds in ascending order: a setting's model ids pooled."""
    reps: dict[str, dict[str, list[float]]] = {}
    for r in sorted(runs, key=lambda r: (r.setting, -1 if r.seed is None else r.seed)):
        for key, value in r.values.items():
            reps.setdefault(r.setting, {}).setdefault(key, []).append(value)
    return reps


def stat(values: Sequence[float]) -> Stat:
    mean = float(np.mean(values))
    return Stat(mean, float(np.std(values, ddof=1)) if len(values) > 1 else None, len(values))


def stats_of(reps: Replicates) -> dict[str, dict[str, Stat]]:
    return {s: {k: stat(v) for k, v in metrics.items() if v} for s, metrics in reps.items()}


class Values:
    """Looks up per-setting values for a claim: means, or bootstrap draws of the means."""

    def __init__(self, reps: Replicates, draws: int = 0, seed: int = 0) -> None:
        self.reps, self.draws, self.seed = reps, draws, seed
        self.spreads: dict[str, seeds.Spread] = {}
        self.used: dict[str, int] = {}  # setting -> replicates, for "single run" and n in the report
        self.missing: list[str] = []

    def __call__(self, setting: str, key: str) -> Any:
        values = self.reps.get(setting, {}).get(key)
        if not values:
            name = f"{setting} {METRIC_NAMES.get(key, key)}"
            if name not in self.missing:
                self.missing.append(name)
            return math.nan  # the caller checks `missing`, so every missing value gets named
        self.used[setting] = len(values)
        if not self.draws:
            return float(np.mean(values))
        # Without per-item files only the seed term varies (instmix.report.seeds), at the `between`
        # variance: nothing else carries the items' noise here.
        spread = self.spread(key)
        return float(np.mean(values)) + seeds.term(
            spread, spread.between, len(values), self.draws, [self.seed, setting, key]
        )

    def spread(self, key: str) -> seeds.Spread:
        if key not in self.spreads:  # pooled over every setting: once per metric, not once per draw
            self.spreads[key] = seeds.pooled({s: m.get(key) for s, m in self.reps.items()})
        return self.spreads[key]

    def seed_only(self, setting: str, key: str) -> Any:
        return self(setting, key)


def pairwise_agreement(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None, int] | None:
    """How often y orders two runs as x does: over every pair, the share ordered the same way among
    the pairs untied in both (a pair tied in either counts for neither; None if no pair is left),
    Kendall's tau-b (ties corrected; None if either is constant), and the number of pairs compared.
    None with fewer than 2 runs. Concordant everywhere gives (1.0, +1.0, n), reversed (0.0, -1.0, n)."""
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 2:
        return None
    same = differ = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            product = (x[i] - x[j]) * (y[i] - y[j])
            same, differ = same + (product > 0), differ + (product < 0)
    share = same / (same + differ) if same + differ else None
    constant = len(set(x)) < 2 or len(set(y)) < 2
    tau = None if constant else float(scipy_stats.kendalltau(x, y).statistic)
    return share, tau, same + differ
