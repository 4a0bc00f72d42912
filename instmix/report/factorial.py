"""Factorial attribution (beyond the paper): the eight settings none, A, C, P, AC, AP, CP, ACP are
a full 2^3 design in the three sources, so each metric splits into main effects, interactions
and exact Shapley values per source.

Every term is a difference (of differences) of means, in the metric's own units. With each source
coded +1 (in the mixture) or -1 (not), a term of k sources is the sum over the eight settings of
the product of its coded factors times the metric, divided by 2^(3-k): a main effect (k = 1, /4)
is the mean of the settings with the source minus the mean of those without; A x C (k = 2, /2)
is how much A's effect changes when C is added (A's effect with C minus A's effect without C,
averaged over P); A x C x P (k = 3, /1) is how much that change itself changes when P is added.
(The classical Yates effects divide every term by 4, which halves a two-way interaction and
quarters the three-way one; these do not.) The Shapley value of a source is its average marginal gain over the orders in
which the sources can be added, so the three sum to ACP - none. Data quantity is confounded with
the design (single sources 20K examples, pairs 40K, ACP 60K), which the report says beside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from instmix.core.vocab import BASE_ROW, TABLE_SETTINGS
from instmix.report import seeds

FACTORS = TABLE_SETTINGS[:3]  # A, C, P: the single sources
TERMS = tuple(
    "x".join(t) for r in (1, 2, 3) for t in itertools.combinations(FACTORS, r)
)  # A, C, P, AxC, AxP, CxP, AxCxP


def setting(subset: tuple[str, ...] | frozenset[str]) -> str:
    """{A, P} -> "AP"; {} -> the base row."""
    return "".join(f for f in FACTORS if f in subset) or BASE_ROW


SUBSETS = [frozenset(s) for r in range(4) for s in itertools.combinations(FACTORS, r)]
SETTINGS = tuple(setting(s) for s in SUBSETS)


def effects(y: Callable[[str], Any]) -> dict[str, Any]:
    """Every main effect and interaction of the metric `y(setting)` (floats or bootstrap draws), as
    differences of differences (the module docstring): a planted change of d in A's effect with C
    gives AxC = d."""
    values = {s: y(setting(s)) for s in SUBSETS}
    out = {}
    for term in TERMS:
        factors = term.split("x")
        total = sum(math.prod(1 if f in s else -1 for f in factors) * v for s, v in values.items())
        out[term] = total / 2 ** (len(FACTORS) - len(factors))
    return out


def shapley(y: Callable[[str], Any]) -> dict[str, Any]:
    """The exact Shapley value of each source for v(S) = y(S) - y(none); they sum to ACP - none."""
    n = len(FACTORS)
    out = {}
    for source in FACTORS:
        total: Any = 0.0
        for subset in SUBSETS:
            if source in subset:
                continue
            weight = math.factorial(len(subset)) * math.factorial(n - len(subset) - 1) / math.factorial(n)
            total = total + weight * (y(setting(subset | {source})) - y(setting(subset)))
        out[source] = total
    return out


def attribution(y: Callable[[str], Any]) -> dict[str, Any]:
    """{term: value} for the effects and {"Shapley <source>": value}; y must give all 8 settings."""
    return effects(y) | {f"Shapley {s}": v for s, v in shapley(y).items()}


def complete(means: Mapping[str, Mapping[str, Any]], metric: str) -> bool:
    return all(metric in means.get(s, {}) for s in SETTINGS)


def intervals(metric: str, source: Any, confidence: float) -> dict[str, tuple[float, float]] | None:
    """Every term's interval (instmix.report.seeds.widened) from the draws of `source` (a Resampler),
    or None unless every setting has draws of `metric`."""
    if source is None or any(source(s, metric) is None for s in SETTINGS):
        return None
    columns = [*TERMS, *(f"Shapley {f}" for f in FACTORS)]

    def term(column: str) -> Callable[[Callable[[str, str], Any]], Any]:
        return lambda v: attribution(lambda s: v(s, metric))[column]

    return {column: seeds.widened(term(column), source, confidence) for column in columns}
