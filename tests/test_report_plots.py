"""report.plots: error bars come from the paired intervals, else the seeds' std, else none."""

from __future__ import annotations

import numpy as np
import pytest

from instmix.report.plots import Spread
from instmix.report.seeds import percentile_interval
from instmix.report.stats import Stat

DRAWS = {"A": np.linspace(9.0, 11.0, 1001), "C": np.linspace(11.0, 15.0, 1001)}
STATS = {"A": {"nlp_avg": Stat(10.0, 0.5, 2)}, "C": {"nlp_avg": Stat(13.0, None, 1)}}


def test_bars_carry_their_bootstrap_interval_around_the_value() -> None:
    spread = Spread(STATS, lambda s, k: DRAWS.get(s), 0.9)
    below, above = spread.errors(["A", "C"], "nlp_avg", [10.0, 13.0])
    low, high = percentile_interval(DRAWS["C"], 0.9)
    assert below[1] == pytest.approx(13.0 - low) and above[1] == pytest.approx(high - 13.0)
    assert "90% paired bootstrap interval" in spread.label()


def test_a_change_carries_the_interval_of_the_paired_difference() -> None:
    spread = Spread(STATS, lambda s, k: DRAWS.get(s), 0.95)
    below, above = spread.errors(["A", "C"], "nlp_avg", [0.0, 3.0], ref="A")
    assert below[0] == above[0] == 0.0  # the reference against itself
    low, high = percentile_interval(DRAWS["C"] - DRAWS["A"], 0.95)
    assert (3.0 - below[1], 3.0 + above[1]) == pytest.approx((low, high))


def test_without_draws_the_seeds_std_and_otherwise_nothing() -> None:
    spread = Spread(STATS)
    assert spread.errors(["A", "C"], "nlp_avg", [10.0, 13.0]) == [[0.5, 0.0], [0.5, 0.0]]
    assert spread.errors(["C"], "nlp_avg", [13.0]) is None and spread.label() == "std over seeds"
