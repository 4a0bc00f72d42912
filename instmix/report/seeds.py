"""The seed term of the report's intervals, and the small-sample widening it needs.

A setting's value is the mean of its seeds' models. Resampling the items shows the items' noise
but not the seed-to-seed spread (every seed's model scores the same items), and resampling 2 or 3
seed values with replacement cannot estimate that spread (it covered 86 % and 92 % instead of 95 %
in the audit). So the spread is estimated as in a random-effects ANOVA, pooled over the settings
with several seeds:

- `between`: the variance of the seeds' values about their setting's mean (df = sum of seeds - 1);
  it holds the seed variance plus each model's own item noise (its Bernoulli noise on the items,
  independent between seeds), which the item draws already carry;
- `noise`: that item noise, measured from the item draws themselves;
- the seed variance proper, `between - noise`, is what a setting's draws add, as a normal term of
  variance (between - noise) / seeds.

Few seeds give few degrees of freedom, so an interval's half-widths are then rescaled to
t(df') x sqrt(V) / (z x sd of the draws). V is the delta's variance: the draws' variance, less the
item noise that the seed term's truncation at 0 could not take out (where `between` < `noise`); df'
is Satterthwaite's, df x (V / R)^2, R the variance of the delta's seed part at `between` (the only
poorly known part). Where the items' noise is small this is the pooled two-sample t interval on the
seeds; where it dominates, the bootstrap's. With 1 seed everywhere the spread is unknown and nothing
is added: an interval then speaks about the trained models, not about retraining them.
bench/coverage.py measures the coverage.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Spread:
    between: float = 0.0
    noise: float = 0.0
    df: int = 0

    @property
    def seed(self) -> float:
        """The seed variance proper: what the item draws do not already carry."""
        return max(0.0, self.between - self.noise)


def pooled(values: Mapping[str, Sequence[float] | None], noise: float = 0.0) -> Spread:
    """The spread of the seeds' values, pooled over the settings with several seeds."""
    groups = [np.asarray(v, dtype=float) for v in values.values() if v is not None and len(v) > 1]
    df = sum(len(g) - 1 for g in groups)
    if df == 0:
        return Spread()
    return Spread(sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / df, noise, df)


def normal(draws: int, stream: Sequence[Any]) -> np.ndarray:
    """Standard normal draws, one stream per (seed, setting, metric): the same whatever else exists."""
    key = "\x1f".join(str(s) for s in stream[1:])
    return np.random.default_rng([int(stream[0]), zlib.crc32(key.encode())]).standard_normal(draws)


class Source(Protocol):
    """Draws per (setting, metric) with their seed term, the seed part alone (`seed_only`: the point
    plus the seed term at the `between` variance), and the metric's Spread."""

    def __call__(self, setting: str, key: str) -> Any: ...
    def seed_only(self, setting: str, key: str) -> Any: ...
    def spread(self, key: str) -> Spread: ...


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval; NaN draws (a resample without any instance of some FLASK skill) are left out."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def widened(
    delta: Callable[[Callable[[str, str], Any]], Any], source: Source, confidence: float,
    correct: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """The percentile interval of `delta`'s draws (after `correct`, e.g. a bias correction), widened
    by t(df') / z about their mean where seeds vary (the module docstring)."""
    keys: set[str] = set()

    def total(setting: str, key: str) -> Any:
        keys.add(key)
        return source(setting, key)

    draws = np.asarray(delta(total), dtype=float)
    if correct is not None:
        draws = correct(draws)
    low, high = percentile_interval(draws, confidence)
    spreads = [source.spread(k) for k in keys] if hasattr(source, "spread") else []  # plain draws: no seed info
    spread = min(spreads, key=lambda s: s.df, default=Spread())
    if spread.df == 0 or spread.between == 0:
        return low, high
    raw = float(np.nanvar(np.asarray(delta(source.seed_only), dtype=float)))
    total = float(np.nanvar(draws))
    if raw == 0 or total == 0:
        return low, high
    variance = max(0.0, total - raw * max(0.0, spread.noise - spread.between) / spread.between)
    q = (1 + confidence) / 2
    factor = float(stats.t.ppf(q, spread.df * (variance / raw) ** 2) / stats.norm.ppf(q)) * math.sqrt(variance / total)
    centre = float(np.nanmean(draws))
    return centre - factor * (centre - low), centre + factor * (high - centre)


def term(spread: Spread, variance: float, seeds: int, draws: int, stream: Sequence[Any]) -> np.ndarray | float:
    """A setting's seed term at `variance` (spread.seed or spread.between) over its `seeds`."""
    if spread.df == 0 or variance == 0:
        return 0.0
    return normal(draws, stream) * math.sqrt(variance / seeds)
