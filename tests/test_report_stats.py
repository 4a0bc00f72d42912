"""report.stats: replicates pooled over seeds, mean ± std, and the bootstrap over seeds."""

from __future__ import annotations

import math

import numpy as np

from instmix.report.runs import Run
from instmix.report.stats import Values, bootstrap_means, percentile_interval, replicates, stat, stats_of


def test_replicates_pool_a_settings_model_ids_in_seed_order() -> None:
    runs = [Run("A-42", "A", 42, {"m": 3.0}), Run("A-7", "A", 7, {"m": 1.0}), Run("base", "none", None, {"m": 9.0})]
    reps = replicates(runs)
    assert reps == {"A": {"m": [1.0, 3.0]}, "none": {"m": [9.0]}}
    stats = stats_of(reps)
    assert stats["A"]["m"].mean == 2.0 and math.isclose(stats["A"]["m"].std, math.sqrt(2)) and stats["A"]["m"].n == 2
    assert stat([4.0]).std is None  # one run: no spread to show


def test_bootstrap_interval_matches_a_known_spread() -> None:
    """Two settings of 40 seeds with sample std 2 each: the delta's interval is mean +- 1.96 * sqrt(2 * 4 / 40)."""
    n, sd = 40, 2.0
    z = np.random.default_rng(1).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)  # exactly mean 0, sample std 1
    reps = {"A": {"m": list(10 + sd * z)}, "B": {"m": list(13 + sd * z[::-1])}}
    values = Values(reps, 20000, seed=0)
    low, high = percentile_interval(values("B", "m") - values("A", "m"), 0.95)
    half = 1.96 * np.sqrt(2 * sd**2 * (n - 1) / n / n)  # bootstrap uses the plug-in (ddof 0) variance
    assert abs((low + high) / 2 - 3.0) < 0.05
    assert abs((high - low) / 2 - half) / half < 0.05, (low, high, half)
    assert bootstrap_means([4.0], 5, np.random.default_rng(0)).tolist() == [4.0] * 5


def test_values_name_what_is_missing_and_draws_do_not_depend_on_other_settings() -> None:
    values = Values({"A": {"nlp_avg": [1.0, 2.0]}})
    assert values("A", "nlp_avg") == 1.5 and math.isnan(values("C", "nlp_avg")) and math.isnan(values("C", "flask_avg"))
    assert values.missing == ["C NLP avg", "C FLASK avg"] and values.used == {"A": 2}
    alone = Values({"A": {"m": [1.0, 2.0, 4.0]}}, 500, seed=3)("A", "m")
    crowded = Values({"A": {"m": [1.0, 2.0, 4.0]}, "B": {"m": [0.0, 9.0]}}, 500, seed=3)("A", "m")
    assert np.array_equal(alone, crowded) and alone.std() > 0
