"""report.factorial: the 2^3 decomposition recovers planted effects; Shapley sums to ACP - none."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from instmix.report.factorial import FACTORS, SETTINGS, TERMS, attribution, effects, shapley

PLANTED = {"A": 1.5, "C": -0.7, "P": 2.2, "AxC": 0.4, "AxP": -1.1, "CxP": 0.25, "AxCxP": 0.6}
BASELINE = 50.0


def metric(setting: str) -> float:
    """A metric built from known effects: y = baseline + sum of effect / 2^k x coded factors (k: the
    term's sources), so each effect is a difference of differences of size `effect`."""
    coded = {f: 1 if f in setting else -1 for f in FACTORS}
    return BASELINE + sum(
        v / 2 ** len(term.split("x")) * math.prod(coded[f] for f in term.split("x")) for term, v in PLANTED.items()
    )


def test_the_decomposition_recovers_planted_main_effects_and_interactions() -> None:
    assert SETTINGS == ("none", "A", "C", "P", "AC", "AP", "CP", "ACP") and tuple(PLANTED) == TERMS
    assert effects(metric) == pytest.approx(PLANTED)


def test_shapley_values_sum_to_acp_minus_none_and_match_a_brute_force() -> None:
    values = shapley(metric)
    assert sum(values.values()) == pytest.approx(metric("ACP") - metric("none"))
    for source in FACTORS:  # average over the 6 orders of adding the sources
        gains = []
        for order in itertools.permutations(FACTORS):
            before = order[: order.index(source)]
            name = "".join(f for f in FACTORS if f in before) or "none"
            after = "".join(f for f in FACTORS if f in (*before, source))
            gains.append(metric(after) - metric(name))
        assert values[source] == pytest.approx(np.mean(gains))


def test_it_works_on_bootstrap_draws() -> None:
    draws = {s: np.full(5, metric(s)) + np.arange(5) for s in SETTINGS}  # a common shift cancels
    result = attribution(draws.__getitem__)
    assert np.allclose(result["A"], PLANTED["A"]) and np.allclose(result["AxCxP"], PLANTED["AxCxP"])
    assert np.allclose(sum(result[f"Shapley {f}"] for f in FACTORS), draws["ACP"] - draws["none"])


def test_an_interaction_reads_as_the_change_in_a_main_effect() -> None:
    """Planted: adding A gains 1.0 without C and 1.75 with C (a change of 0.75), whatever P."""
    gain = {"": 1.0, "C": 1.75}

    def y(setting: str) -> float:
        with_c = "C" in setting
        return 40.0 + (gain["C" if with_c else ""] if "A" in setting else 0.0) + (3.0 if with_c else 0.0)

    result = effects(y)
    assert result["AxC"] == pytest.approx(0.75)
    assert result["A"] == pytest.approx((1.0 + 1.75) / 2) and result["C"] == pytest.approx(3.0 + 0.75 / 2)
    assert result["AxP"] == pytest.approx(0.0) and result["AxCxP"] == pytest.approx(0.0)


def test_a_three_way_interaction_reads_as_the_change_in_a_two_way_one() -> None:
    """Planted: A's gain is 1 everywhere except with both C and P, where it is 3: AxC is 0 without
    P and 2 with P, so AxCxP = 2 (and AxC, AxP read 1: the change averaged over the third source)."""

    def y(setting: str) -> float:
        return 10.0 + (3.0 if {"C", "P"} <= set(setting) else 1.0) * ("A" in setting)

    result = effects(y)
    assert result["AxCxP"] == pytest.approx(2.0)
    assert result["AxC"] == pytest.approx(1.0) and result["AxP"] == pytest.approx(1.0)
