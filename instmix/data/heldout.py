"""A seeded held-out set of `n` records per source, drawn from what the sample leaves (stage heldout@<source>).

The held-out set measures how well a model predicts unseen data of a source, so it must share
nothing with that source's training sample. After subsample's exact deduplication, a record is
left out of the pool when:

- its id is in the sample (the sampled records themselves);
- its (prompt, response) equals a sampled record's (an exact duplicate under another id);
- its prompt equals a sampled record's (the model was trained on that very prompt, with
  another response: its loss there says little about unseen data).

A response alone is not matched: P3's label words ("positive", "World") and short code answers
recur across different prompts, and dropping them would skew the held-out set.

The draw is seeded and, for P3, spread evenly across tasks as subsample draws. When fewer than
`n` records are left (the paper's 20,000 of CodeAlpaca's ~20K), all of them are taken and the
metrics say how many were missing; none left is an error. The sample is never touched, so the
training data stays byte-identical whatever `heldout` holds.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, count_by, length_stats
from instmix.data.subsample import deduplicate, sample_evenly


@dataclass(frozen=True)
class HeldoutParams:
    n: int
    """Held-out records per source (fewer when the sample leaves fewer)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ParamsError("n", self.n, "a positive integer")


def remaining(unique: list[Record], sample: list[Record]) -> tuple[list[Record], dict[str, int]]:
    """The records of `unique` that share neither id nor text with the sample, and why the others went."""
    ids = {r["id"] for r in sample}
    texts = {(r["prompt"], r["response"]) for r in sample}
    prompts = {r["prompt"] for r in sample}
    removed = {"sampled": 0, "same_text": 0, "same_prompt": 0}
    left = []
    for record in unique:
        if record["id"] in ids:
            removed["sampled"] += 1
        elif (record["prompt"], record["response"]) in texts:
            removed["same_text"] += 1
        elif record["prompt"] in prompts:
            removed["same_prompt"] += 1
        else:
            left.append(record)
    return left, removed


def heldout(
    source: str, records: list[Record], sample: list[Record], params: HeldoutParams
) -> tuple[list[Record], dict[str, Any]]:
    """`params.n` records of `records` (a source's fetched file) disjoint from `sample` (its training sample)."""
    fetched_ids = {r["id"] for r in records}
    stray = next((r["id"] for r in sample if r["id"] not in fetched_ids), None)
    if stray is not None:  # a sample from another fetch: disjointness by id would mean nothing
        raise StageError(f"heldout@{source}: sample record {stray} is not in the fetched records; rerun subsample")
    unique = deduplicate(records)
    left, removed = remaining(unique, sample)
    if not left:
        raise StageError(
            f"heldout@{source}: no record is left after the sample of {len(sample)} "
            f"({len(records)} fetched); lower subsample.n or add data"
        )
    take = min(params.n, len(left))
    # Its own seed string: with heldout.seed == subsample.seed the two draws still differ in stream.
    rng = random.Random(f"heldout:{params.seed}:{source}")
    held = sample_evenly(left, take, rng) if source == "p3" else rng.sample(left, take)
    metrics: dict[str, Any] = {
        "available": len(records),
        "duplicates_dropped": len(records) - len(unique),
        "removed": removed,
        "available_after_sample": len(left),
        "records": len(held),
        "short_by": params.n - len(held),
        "lengths": length_stats(held),
        "params": asdict(params),
    }
    if source == "p3":
        metrics["tasks"] = len({r["task"] for r in held})
        metrics["records_per_task"] = count_by(held, "task")
    return held, metrics
