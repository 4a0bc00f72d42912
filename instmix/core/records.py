"""The one record schema every data stage reads and writes, and the stats computed on it."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypedDict


class Record(TypedDict):
    id: str  # stable: sha256 of source and orig_id, 16 hex digits
    source: str  # alpaca | codealpaca | p3
    orig_id: str  # position in the source file(s), e.g. "17" or "ag_news_classify:3"
    task: str | None  # the P3 subset (promptsource template); null for the other sources
    prompt: str
    response: str


FIELDS = {"id": str, "source": str, "orig_id": str, "task": (str, type(None)), "prompt": str, "response": str}


def read_record_file(path: str | Path) -> list[Record]:
    """A records file a data stage wrote; a missing one, or a row off the schema, is one error line."""
    from instmix.core.files import read_records
    from instmix.core.params import StageError

    rows = read_records(path)
    for line, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            row = {}
        bad = [k for k, kind in FIELDS.items() if k not in row or not isinstance(row[k], kind)]
        extra = sorted(set(row) - set(FIELDS))
        if bad or extra:
            what = f"missing or mistyped {', '.join(bad)}" if bad else f"unknown keys {', '.join(extra)}"
            raise StageError(f"{path}:{line}: not a record ({what}); rerun the stage that writes it (dvc repro)")
    return rows  # type: ignore[return-value]


def record_id(source: str, orig_id: str) -> str:
    return hashlib.sha256(f"{source}\x1f{orig_id}".encode()).hexdigest()[:16]


def clean_text(text: str) -> str:
    """NFC-normalise, unify line endings and strip outer whitespace; inner text is kept as is."""
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").strip()


def percentiles(values: Sequence[int], qs: Iterable[int] = (10, 50, 90, 99)) -> dict[str, int]:
    """Nearest-rank percentiles: always an observed value, so the stats stay integers."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}": ordered[max(0, -(-q * len(ordered) // 100) - 1)] for q in qs}


def length_stats(records: Sequence[Record]) -> dict[str, dict[str, int]]:
    """Token-free length statistics (characters and whitespace-separated words)."""
    stats = {}
    for field in ("prompt", "response"):
        texts = [r[field] for r in records]
        for unit, lengths in (("chars", [len(t) for t in texts]), ("words", [len(t.split()) for t in texts])):
            stats[f"{field}_{unit}"] = percentiles(lengths) | ({"max": max(lengths)} if lengths else {})
    return stats


def count_by(records: Iterable[Record], field: str) -> dict[str, int]:
    return dict(sorted(Counter(str(r[field]) for r in records).items()))
