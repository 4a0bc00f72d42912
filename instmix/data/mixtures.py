"""Your own mixtures (params `mixtures`): a budget split over the sources by weights.

    mixtures:
      code_heavy: {weights: {alpaca: 0.25, codealpaca: 0.75}, budget: {records: 32}}
      by_tokens: {weights: {alpaca: 0.5, p3: 0.5}, budget: {tokens: 4000}, max_repeat: 2}
      ap: {weights: {alpaca: 0.5, p3: 0.5}, budget: additive}

- `weights`: the fraction of the budget each source fills (they sum to 1). Not sampling
  probabilities and not per-source multipliers: 0.25 of a 32-record budget is 8 records.
- `budget`: `{records: N}` holds exactly N records (shares by largest remainder); `{tokens: N}`
  draws each source's records until its share of N supervised tokens is reached, so it ends
  at most one record past it (a record's supervised tokens: its response's tokens under the
  base model's tokenizer, plus the EOS); `additive` is the paper's design: the whole sample of
  every source with a weight, whatever the weights.
- `max_repeat`: how many epochs of a source's sample a share may take (1: no record twice).
  A source's records are taken in sample order (a prefix is a random sample), then again from
  the start. A share beyond max_repeat epochs stops the stage with one line.

Each mixture is shuffled with mix.seed and its name, like the paper's settings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, Literal

from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, count_by, length_stats
from instmix.core.vocab import LETTERS, MIXTURE_NAME, SETTINGS, SOURCES, fixed_name

NAMES = "lowercase letters, digits and _, starting with a letter (up to 32)"
WEIGHT_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Budget:
    records: int | None = None
    """Exactly this many records."""
    tokens: int | None = None
    """This many supervised tokens, each source's share reached with at most one record past it."""

    def __post_init__(self) -> None:
        if (self.records is None) == (self.tokens is None):
            raise ParamsError("tokens", self.tokens, f"exactly one of records, tokens (records: {self.records})")
        key, value = ("records", self.records) if self.tokens is None else ("tokens", self.tokens)
        if value is not None and value < 1:
            raise ParamsError(key, value, "at least 1")


@dataclass(frozen=True)
class Mixture:
    weights: dict[str, float]
    """Source id -> the fraction of the budget it fills (summing to 1)."""
    budget: Literal["additive"] | Budget = "additive"
    """{records: N}, {tokens: N}, or additive (the whole sample of each weighted source)."""
    max_repeat: float = 1.0
    """Epochs of a source's sample one share may take (1: each record at most once)."""

    def __post_init__(self) -> None:
        for source, weight in self.weights.items():
            if source not in SOURCES:
                raise ParamsError(f"weights.{source}", weight, f"a declared source: {', '.join(SOURCES)}")
            if not weight > 0:
                raise ParamsError(f"weights.{source}", weight, "a fraction above 0 (leave a source out instead)")
        if not self.weights or abs(sum(self.weights.values()) - 1) > WEIGHT_SUM_TOLERANCE:
            raise ParamsError(
                "weights", self.weights, f"fractions of the budget summing to 1 (± {WEIGHT_SUM_TOLERANCE:g})"
            )
        if not self.max_repeat >= 1:
            raise ParamsError("max_repeat", self.max_repeat, "at least 1 (1: no record twice)")

    @property
    def budget_records(self) -> int | None:
        """N of a `{records: N}` budget, else None."""
        return self.budget.records if isinstance(self.budget, Budget) else None

    @property
    def budget_tokens(self) -> int | None:
        """N of a `{tokens: N}` budget, else None."""
        return self.budget.tokens if isinstance(self.budget, Budget) else None


def check_name(name: str) -> None:
    if not MIXTURE_NAME.fullmatch(name) or name in {s.lower() for s in SETTINGS}:
        raise ParamsError(f"mixtures.{name}", name, f"a new name of {NAMES}, not a paper setting")


def shares(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """`total` split by `weights`, exactly: floors, then the largest remainders (ties in source order)."""
    exact = {s: w * total for s, w in weights.items()}
    out = {s: math.floor(x) for s, x in exact.items()}
    order = sorted(exact, key=lambda s: (-(exact[s] - out[s]), SOURCES.index(s)))
    for source in order[: total - sum(out.values())]:
        out[source] += 1
    return out


def cycled(sample: Sequence[Record], count: int) -> list[Record]:
    """The first `count` records of the sample repeated end to end."""
    return [sample[i % len(sample)] for i in range(count)]


def refuse(name: str, source: str, want: str, have: str, mixture: Mixture) -> StageError:
    return StageError(
        f"mixtures.{name}: {source}'s share is {want} but its sample has {have} and max_repeat is "
        f"{mixture.max_repeat:g}; raise max_repeat or subsample.n, or lower the budget"
    )


def draw(
    name: str, mixture: Mixture, samples: Mapping[str, Sequence[Record]], tokens: Callable[[Record], int] | None
) -> tuple[dict[str, list[Record]], dict[str, Any]]:
    """Each source's records for the mixture, and what the metrics say of the budget."""
    budget = mixture.budget
    if budget == "additive":
        return {s: list(samples[s]) for s in mixture.weights}, {"budget": "additive"}
    assert isinstance(budget, Budget)
    drawn: dict[str, list[Record]] = {}
    if budget.records is not None:
        for source, count in shares(mixture.weights, budget.records).items():
            sample = samples[source]
            if count > mixture.max_repeat * len(sample) or (count and not sample):
                raise refuse(name, source, f"{count} records", f"{len(sample)}", mixture)
            drawn[source] = cycled(sample, count)
        return drawn, {"budget": {"records": budget.records}}
    assert budget.tokens is not None and tokens is not None
    for source, weight in mixture.weights.items():
        sample, share = samples[source], weight * budget.tokens
        lengths = [tokens(r) for r in sample]
        if share > mixture.max_repeat * sum(lengths):
            raise refuse(name, source, f"{share:.0f} tokens", f"{sum(lengths)} tokens", mixture)
        taken, count = 0, 0
        while taken < share:
            taken += lengths[count % len(sample)]
            count += 1
        drawn[source] = cycled(sample, count)
    return drawn, {"budget": {"tokens": budget.tokens}}


def build(
    name: str, mixture: Mixture, samples: Mapping[str, Sequence[Record]], seed: int,
    tokens: Callable[[Record], int] | None = None,
) -> tuple[list[Record], dict[str, Any]]:  # fmt: skip
    """The shuffled mixture and its metrics (records and epochs per source, supervised tokens when counted)."""
    drawn, metrics = draw(name, mixture, samples, tokens)
    records = [r for source in SOURCES for r in drawn.get(source, [])]
    random.Random(f"{seed}:{name}").shuffle(records)
    metrics |= {
        "records": len(records),
        "records_per_source": count_by(records, "source"),
        "epochs_per_source": {s: round(len(rs) / len(samples[s]), 4) for s, rs in drawn.items() if samples[s]},
        "lengths": length_stats(records),
        "params": {"seed": seed, "mixture": asdict(mixture)},
    }
    if tokens is not None:
        metrics["tokens_per_source"] = {s: sum(map(tokens, rs)) for s, rs in drawn.items()}
    return records, metrics


def token_counter(tokenizer_dir: str) -> Callable[[Record], int]:
    """A record's supervised tokens: its response under the base tokenizer, without special tokens, plus the EOS."""
    from transformers import AutoTokenizer

    tokenizer, seen = AutoTokenizer.from_pretrained(tokenizer_dir), {}

    def count(record: Record) -> int:
        if record["id"] not in seen:
            seen[record["id"]] = len(tokenizer(record["response"], add_special_tokens=False)["input_ids"]) + 1
        return seen[record["id"]]

    return count


def subset_design(sources: Sequence[str], budget: Budget, max_repeat: float = 1.0) -> dict[str, Mixture]:
    """Every non-empty subset of `sources` at one budget, its sources weighted equally: `fixed_<letters>`
    (fixed_ac = half A, half C), beside the paper's additive A … ACP, so size and composition read apart."""
    letters = {source: letter for letter, source in LETTERS.items()}
    design = {}
    for size in range(1, len(sources) + 1):
        for subset in combinations(sources, size):
            name = fixed_name("".join(letters[s] for s in subset))
            design[name] = Mixture(dict.fromkeys(subset, 1 / size), budget, max_repeat)
    return design
