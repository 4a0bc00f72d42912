"""mix@<setting>: build one training mixture from the per-source samples.

    python -m stages.mix <setting> <subsample dir> <out.jsonl>

Settings (paper Table 1 and Figure 2; `none`, the base model, has no mixture):
- A, C, P, AC, AP, CP, ACP: the concatenation of the whole per-source samples
  (A = Alpaca, C = CodeAlpaca, P = P3; 20K each in the paper).
- ratio: all of A, plus round(mix.ratio * n / 2) each of C and P, where n = |A|, so
  ratio 0 is A and ratio 2 is ACP (paper section 1.4; halves round up).
- count: the first mix.per_type records of each of A, C and P.
Partial draws take a prefix of each sample, which is itself a random sample.
Every mixture is shuffled with mix.seed. Writes <out.jsonl> and <out>.metrics.json.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.files import metrics_path, read_jsonl, write_json, write_jsonl
from stages.params import ParamsError, StageError, cli, load
from stages.records import LETTERS, Record, count_by, length_stats

TABLE_SETTINGS = ("A", "C", "P", "AC", "AP", "CP", "ACP")
SWEEP_SETTINGS = ("ratio", "count")
MAX_RATIO = 2.0  # (N_C + N_P) / N_A cannot exceed 2 when each sample holds n records


@dataclass(frozen=True)
class MixParams:
    ratio: float = 1.0
    """Specialised/general ratio (N_C + N_P) / N_A for the `ratio` setting (paper: 0 .. 2)."""
    per_type: int = 20000
    """Records of each of A, C and P in the `count` setting (paper: up to 20,000)."""
    seed: int = 0
    """Seed of the shuffle of every mixture."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= MAX_RATIO:
            raise ParamsError("ratio", self.ratio, f"a number in [0, {MAX_RATIO:g}]")
        if self.per_type < 1:
            raise ParamsError("per_type", self.per_type, "a positive integer")


def check_setting(setting: str) -> None:
    if setting in SWEEP_SETTINGS or setting in TABLE_SETTINGS:
        return
    raise StageError(f"unknown mix setting {setting!r}; allowed: {', '.join(TABLE_SETTINGS + SWEEP_SETTINGS)}")


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def draw_counts(setting: str, sizes: dict[str, int], params: MixParams) -> dict[str, int]:
    """How many records of each source's sample the setting takes (a prefix of each)."""
    if setting == "ratio":
        specialised = round_half_up(params.ratio * sizes["alpaca"] / 2)
        return {"alpaca": sizes["alpaca"], "codealpaca": specialised, "p3": specialised}
    if setting == "count":
        return dict.fromkeys(("alpaca", "codealpaca", "p3"), params.per_type)
    return {LETTERS[letter]: sizes[LETTERS[letter]] for letter in setting}


def mix(setting: str, samples: dict[str, list[Record]], params: MixParams) -> tuple[list[Record], dict[str, Any]]:
    counts = draw_counts(setting, {s: len(rs) for s, rs in samples.items()}, params)
    for source, count in counts.items():
        if count > len(samples[source]):
            key = "mix.per_type" if setting == "count" else "mix.ratio"
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
        "lengths": length_stats(mixture),
    }
    if setting == "ratio":
        metrics["ratio"] = params.ratio
    if setting == "count":
        metrics["per_type"] = params.per_type
    return mixture, metrics


def needed_sources(setting: str) -> list[str]:
    return list(LETTERS.values()) if setting in SWEEP_SETTINGS else [LETTERS[letter] for letter in setting]


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise StageError("usage: python -m stages.mix <setting> <subsample dir> <out.jsonl>")
    setting, sample_dir, out = argv
    check_setting(setting)
    params = load(MixParams, "mix")
    samples = {source: read_jsonl(Path(sample_dir) / f"{source}.jsonl") for source in needed_sources(setting)}
    mixture, metrics = mix(setting, samples, params)
    write_jsonl(out, mixture)
    write_json(metrics_path(out), metrics)
    print(f"mix@{setting}: {len(mixture)} records {metrics['records_per_source']} -> {out}")


if __name__ == "__main__":
    cli(main)
