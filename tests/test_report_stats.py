"""report.stats: replicates pooled over seeds, mean ± std, and the draws of a setting's mean without per-item files."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from instmix.report import seeds
from instmix.report.runs import Run
from instmix.report.stats import Values, pairwise_agreement, replicates, stat, stats_of


def test_replicates_pool_a_settings_model_ids_in_seed_order() -> None:
    runs = [Run("A-42", "A", 42, {"m": 3.0}), Run("A-7", "A", 7, {"m": 1.0}), Run("base", "none", None, {"m": 9.0})]
    reps = replicates(runs)
    assert reps == {"A": {"m": [1.0, 3.0]}, "none": {"m": [9.0]}}
    stats = stats_of(reps)
    assert stats["A"]["m"].mean == 2.0 and math.isclose(stats["A"]["m"].std, math.sqrt(2)) and stats["A"]["m"].n == 2
    assert stat([4.0]).std is None  # one run: no spread to show


def test_seed_interval_is_the_pooled_t_interval() -> None:
    """Two settings of n seeds with sample std 2 each: the delta's interval is the pooled two-sample t
    interval, mean +- t(2n - 2) * sqrt(2 * 4 / n), for many seeds and for the few the 2-3-seed studies have."""
    for n in (40, 2, 3):
        z = np.random.default_rng(1).standard_normal(n)
        z = (z - z.mean()) / z.std(ddof=1)  # exactly mean 0, sample std 1
        reps = {"A": {"m": list(10 + 2.0 * z)}, "B": {"m": list(13 + 2.0 * z[::-1])}}
        values = Values(reps, 40000, seed=0)
        low, high = seeds.widened(lambda v: v("B", "m") - v("A", "m"), values, 0.95)
        half = scipy_stats.t.ppf(0.975, 2 * n - 2) * np.sqrt(2 * 4.0 / n)
        assert abs((low + high) / 2 - 3.0) < 0.03 * half
        assert abs((high - low) / 2 - half) / half < 0.03, (n, low, high, half)
    assert np.all(Values({"A": {"m": [4.0]}}, 5)("A", "m") == 4.0)  # one run: nothing varies


def test_values_name_what_is_missing_and_draws_do_not_depend_on_other_settings() -> None:
    values = Values({"A": {"nlp_avg": [1.0, 2.0]}})
    assert values("A", "nlp_avg") == 1.5 and math.isnan(values("C", "nlp_avg")) and math.isnan(values("C", "flask_avg"))
    assert values.missing == ["C NLP avg", "C FLASK avg"] and values.used == {"A": 2}
    alone = Values({"A": {"m": [1.0, 2.0, 4.0]}}, 500, seed=3)("A", "m")
    crowded = Values({"A": {"m": [1.0, 2.0, 4.0]}, "B": {"m": [0.0, 9.0]}}, 500, seed=3)("A", "m")
    # the seed variance is pooled over settings (so B widens A's draws), the random stream is A's own
    assert crowded.std() > alone.std() > 0
    assert np.allclose((alone - alone.mean()) / alone.std(), (crowded - crowded.mean()) / crowded.std())


def test_pairwise_agreement_has_known_answers() -> None:
    x = [1.0, 2.0, 3.0, 4.0]
    assert pairwise_agreement(x, [10.0, 20.0, 30.0, 40.0]) == (1.0, 1.0, 6)  # concordant everywhere
    assert pairwise_agreement(x, [4.0, 3.0, 2.0, 1.0]) == (0.0, -1.0, 6)  # reversed everywhere
    share, tau, pairs = pairwise_agreement(x, [1.0, 3.0, 2.0, 4.0])  # one swapped pair of six
    assert share == 5 / 6 and pairs == 6 and math.isclose(tau, (5 - 1) / 6)
    # ties: a pair tied in either metric counts for neither side; tau-b corrects for them
    share, tau, pairs = pairwise_agreement([1.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert share == 1.0 and pairs == 2 and 0 < tau < 1
    assert pairwise_agreement([1.0, 2.0], [5.0, 5.0]) == (None, None, 0)  # nothing to order, tau undefined
    assert pairwise_agreement([1.0], [2.0]) is None
