"""Build one training mixture from the per-source samples (stage mix@<setting>).

Settings (paper Table 1 and Figure 2; the base model has no mixture):
- A, C, P, AC, AP, CP, ACP: the concatenation of the whole per-source samples
  (A = Alpaca, C = CodeAlpaca, P = P3; 20K each in the paper).
- ratio: all of A, plus round(mix.ratio * n / 2) each of C and P, where n = |A|, so
  ratio 0 is A and ratio 2 is ACP (paper section 1.4; halves round up).
- count: the first mix.per_type records of each of A, C and P.
- ratio-<r>, count-<k> (the ids listed in mix.sweep): the same with the ratio r or the k
  records per type taken from the id, so each sweep point is its own setting and stage.
Partial draws take a prefix of each sample, which is itself a random sample.
Every mixture is shuffled with mix.seed.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, count_by, length_stats
from instmix.core.vocab import LETTERS, SOURCES, SWEEP_SETTINGS, TABLE_SETTINGS

MAX_RATIO = 2.0  # (N_C + N_P) / N_A cannot exceed 2 when each sample holds n records
SWEEP_IDS = f"ratio-<r> with r in [0, {MAX_RATIO:g}] or count-<k> with k >= 1"
SWEEP_ID = re.compile(r"ratio-(?P<ratio>\d+(?:\.\d+)?)|count-(?P<count>[1-9]\d*)")


@dataclass(frozen=True)
class MixParams:
    ratio: float = 1.0
    """Specialised/general ratio (N_C + N_P) / N_A for the `ratio` setting (paper: 0 .. 2)."""
    per_type: int = 20000
    """Records of each of A, C and P in the `count` setting (paper: up to 20,000)."""
    sweep: list[str] = field(default_factory=list)
    """Extra settings, one model each: ratio-<r> and count-<k> (paper: ratio-0 .. ratio-2)."""
    seed: int = 0
    """Seed of the shuffle of every mixture."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= MAX_RATIO:
            raise ParamsError("ratio", self.ratio, f"a number in [0, {MAX_RATIO:g}]")
        if self.per_type < 1:
            raise ParamsError("per_type", self.per_type, "a positive integer")
        for i, setting in enumerate(self.sweep):
            if (point := parse_sweep_id(setting)) is None:
                raise ParamsError(f"sweep[{i}]", setting, SWEEP_IDS)
            if setting != (canonical := f"{point[0]}-{point[1]:g}"):  # one id per point: ratio-0.50 is ratio-0.5
                raise ParamsError(f"sweep[{i}]", setting, f"the canonical id {canonical}")
            if (same := self.same_as(*point)) is not None:
                raise ParamsError(f"sweep[{i}]", setting, f"a point other than {same}, which is trained already")
        if len(set(self.sweep)) < len(self.sweep):
            raise ParamsError("sweep", self.sweep, "distinct ids")

    def same_as(self, kind: str, x: float) -> str | None:
        """The setting a sweep point duplicates: `ratio`/`count` at their own x, A at ratio 0, ACP at 2."""
        if kind == "ratio":
            return {0.0: "A", MAX_RATIO: "ACP", self.ratio: f"ratio (mix.ratio is {self.ratio:g})"}.get(x)
        return f"count (mix.per_type is {self.per_type})" if x == self.per_type else None


def parse_sweep_id(setting: str) -> tuple[str, float | int] | None:
    """("ratio", r) for `ratio-<r>` with r <= MAX_RATIO, ("count", k) for `count-<k>`, else None."""
    match = SWEEP_ID.fullmatch(setting)
    if match is None:
        return None
    if match["count"] is not None:
        return "count", int(match["count"])
    ratio = float(match["ratio"])
    return ("ratio", ratio) if ratio <= MAX_RATIO else None


def sweep_point(setting: str, params: MixParams) -> tuple[str, float | int] | None:
    """The (kind, x) a sweep setting draws with; None for the table settings A .. ACP."""
    if setting in TABLE_SETTINGS:
        return None
    if setting == "ratio":
        return "ratio", params.ratio
    if setting == "count":
        return "count", params.per_type
    point = parse_sweep_id(setting)
    if point is None:
        raise StageError(
            f"unknown mix setting {setting!r}; allowed: {', '.join(TABLE_SETTINGS + SWEEP_SETTINGS)}, {SWEEP_IDS}"
        )
    return point


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def draw_counts(setting: str, point: tuple[str, float | int] | None, sizes: dict[str, int]) -> dict[str, int]:
    """How many records of each source's sample the setting (at its sweep point) takes, a prefix of each."""
    if point is None:
        return {LETTERS[letter]: sizes[LETTERS[letter]] for letter in setting}
    kind, x = point
    if kind == "ratio":
        general, *specialised = SOURCES
        return {general: sizes[general]} | dict.fromkeys(specialised, round_half_up(x * sizes[general] / 2))
    return dict.fromkeys(SOURCES, int(x))


def mix(setting: str, samples: dict[str, list[Record]], params: MixParams) -> tuple[list[Record], dict[str, Any]]:
    point = sweep_point(setting, params)
    counts = draw_counts(setting, point, {s: len(rs) for s, rs in samples.items()})
    for source, count in counts.items():
        if count > len(samples[source]):
            key = {"ratio": "mix.ratio", "count": "mix.per_type"}.get(setting, f"{setting} in mix.sweep")
            raise StageError(
                f"mix@{setting}: needs {count} {source} records but its sample has {len(samples[source])}; "
                f"lower {key} or raise subsample.n"
            )
    mixture = [r for source, count in counts.items() for r in samples[source][:count]]
    random.Random(f"{params.seed}:{setting}").shuffle(mixture)
    metrics = {
        "records": len(mixture),
        "records_per_source": count_by(mixture, "source"),
        "records_per_task": count_by((r for r in mixture if r["task"] is not None), "task"),
        "records_digest": records_digest(mixture),
        "lengths": length_stats(mixture),
        "params": {"seed": params.seed},  # the only mix param every setting reads; the x below
    }
    if point is not None:  # the sweep's x, which the report plots against
        kind, x = point
        metrics["ratio" if kind == "ratio" else "per_type"] = x
        metrics["params"]["ratio" if kind == "ratio" else "per_type"] = x
    return mixture, metrics


def records_digest(records: list[Record]) -> str:
    """Which records, ignoring their order: two mixtures with one digest differ only in order."""
    return hashlib.sha256("\n".join(sorted(r["id"] for r in records)).encode()).hexdigest()[:16]


def needed_sources(setting: str) -> list[str]:
    return [LETTERS[letter] for letter in setting] if setting in TABLE_SETTINGS else list(LETTERS.values())
