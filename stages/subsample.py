"""subsample@<source>: a seeded random sample of `n` records after exact deduplication.

    python -m stages.subsample <source> <fetched.jsonl> <out.jsonl>

Duplicates are records with the same prompt and response (after fetch's normalisation); the
first one in source order is kept. P3 is drawn evenly across its tasks: each task gets an
equal share of `n`, and the share a small task cannot fill goes to the others.

The sample is written in a random order, so any prefix of it is itself a random sample
(for P3, tasks are interleaved so a prefix stays spread across tasks): the mixtures take
prefixes, which nests the ratio sweep's smaller mixtures inside its larger ones.

Writes <out.jsonl>, <out>.ids (one id per line, in sample order) and <out>.metrics.json.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from stages.files import metrics_path, read_jsonl, write_json, write_jsonl, write_lines
from stages.params import ParamsError, StageError, cli, load
from stages.records import SOURCES, Record, count_by, length_stats


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
    }
    if source == "p3":
        metrics["tasks"] = len({r["task"] for r in sample})
        metrics["records_per_task"] = count_by(sample, "task")
    return sample, metrics


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in SOURCES:
        raise StageError(f"usage: python -m stages.subsample <{'|'.join(SOURCES)}> <fetched.jsonl> <out.jsonl>")
    source, fetched, out = argv
    params = load(SubsampleParams, "subsample")
    sample, metrics = subsample(source, read_jsonl(fetched), params)
    write_jsonl(out, sample)
    write_lines(Path(out).with_suffix(".ids"), (r["id"] for r in sample))
    write_json(metrics_path(out), metrics)
    print(f"subsample@{source}: {len(sample)} of {metrics['available']} records -> {out}")


if __name__ == "__main__":
    cli(main)
