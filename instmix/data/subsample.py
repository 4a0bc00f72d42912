"""Exact deduplication, then a seeded sample of `n` records of one source (stage subsample@<source>).

Duplicates are records with the same prompt and response (after fetch's normalisation); the
first one in source order is kept. P3 is drawn evenly across its tasks: each task gets an
equal share of `n`, and the share a small task cannot fill goes to the others.

The sample is in a random order, so any prefix of it is itself a random sample (for P3,
tasks are interleaved so a prefix stays spread across tasks): the mixtures take prefixes,
which nests the ratio sweep's smaller mixtures inside its larger ones.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import zip_longest
from typing import Any

from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, count_by, length_stats


@dataclass(frozen=True)
class SubsampleParams:
    n: int
    """Records per source (paper: 20,000)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ParamsError("n", self.n, "a positive integer")


def deduplicate(records: list[Record]) -> list[Record]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for record in records:
        key = (record["prompt"], record["response"])
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def even_quotas(sizes: dict[str, int], n: int, rng: random.Random) -> dict[str, int]:
    """Split n across tasks as evenly as their sizes allow (water-filling)."""
    quotas, remaining = {}, n
    by_size = sorted(sizes, key=lambda t: (sizes[t], t))
    for i, task in enumerate(by_size):
        quotas[task] = min(sizes[task], remaining // (len(by_size) - i))
        remaining -= quotas[task]
    order = sorted(sizes)
    rng.shuffle(order)
    while remaining:  # the rounding remainder: one more each, in a seeded order
        for task in order:
            if remaining and quotas[task] < sizes[task]:
                quotas[task] += 1
                remaining -= 1
    return quotas


def sample_evenly(records: list[Record], n: int, rng: random.Random) -> list[Record]:
    by_task: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_task[str(record["task"])].append(record)
    quotas = even_quotas({t: len(rs) for t, rs in by_task.items()}, n, rng)
    tasks = sorted(by_task)
    rng.shuffle(tasks)
    draws = [rng.sample(by_task[t], quotas[t]) for t in tasks]
    return [r for round_ in zip_longest(*draws) for r in round_ if r is not None]


def subsample(source: str, records: list[Record], params: SubsampleParams) -> tuple[list[Record], dict[str, Any]]:
    unique = deduplicate(records)
    if len(unique) < params.n:
        raise StageError(
            f"subsample@{source}: subsample.n={params.n} but only {len(unique)} unique records "
            f"({len(records) - len(unique)} duplicates removed); lower subsample.n or add data"
        )
    rng = random.Random(f"{params.seed}:{source}")
    sample = sample_evenly(unique, params.n, rng) if source == "p3" else rng.sample(unique, params.n)
    metrics: dict[str, Any] = {
        "available": len(records),
        "duplicates_dropped": len(records) - len(unique),
        "records": len(sample),
        "lengths": length_stats(sample),
        "params": asdict(params),
    }
    if source == "p3":
        metrics["tasks"] = len({r["task"] for r in sample})
        metrics["records_per_task"] = count_by(sample, "task")
    return sample, metrics
