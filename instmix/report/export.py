"""Token shares per source, the runs in the layout of AllenAI's olmix mixture-fitting tool, and results.csv's rows.

Each sft stage counts, with the base model's tokenizer and after the cut at max_length, the
examples, prompt tokens and supervised (response) tokens of each source it trained on
(instmix.train.sft.token_accounting). The report shows the supervised-token shares per model and
writes two CSVs joined on `run` (olmix's `load_from_csv`): ratios.csv, one weight column per
source (its share of the supervised tokens, summing to 1: the gradient signal each source gets),
and metrics.csv, one column per metric in display units. Only trained models have a mixture, so
`base` is in neither.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from instmix.core.files import atomic_open
from instmix.core.vocab import LETTERS, SOURCES
from instmix.report.layout import DASH, METRIC_NAMES
from instmix.report.runs import Run
from instmix.report.tables import markdown_table

SOURCE_LABEL = {source: letter for letter, source in LETTERS.items()}


def counts(run: Run, key: str) -> dict[str, int] | None:
    """{source: the sft stage's count} of a trained model, or None without token accounting."""
    found = {s: run.raw.get(f"sft.sources.{s}.{key}") for s in SOURCES}
    if all(v is None for v in found.values()):
        return None
    return {s: int(v or 0) for s, v in found.items()}


def shares(run: Run) -> dict[str, float] | None:
    supervised = counts(run, "supervised_tokens")
    if supervised is None or not sum(supervised.values()):
        return None
    total = sum(supervised.values())
    return {s: v / total for s, v in supervised.items()}


def token_section(runs: Mapping[str, Run]) -> list[str]:
    """Per trained model: examples and supervised tokens per source, and the supervised-token shares."""
    body = []
    for model, run in runs.items():
        examples, supervised, share = counts(run, "examples"), counts(run, "supervised_tokens"), shares(run)
        if examples is None or supervised is None:
            continue
        body.append([
            model,
            *(f"{examples[s]:,}" for s in SOURCES),
            *(f"{supervised[s]:,}" for s in SOURCES),
            *(DASH if share is None else f"{100 * share[s]:.1f} %" for s in SOURCES),
        ])  # fmt: skip
    header = ["model", *(f"{SOURCE_LABEL[s]} examples" for s in SOURCES)]
    header += [f"{SOURCE_LABEL[s]} supervised tokens" for s in SOURCES]
    header += [f"{SOURCE_LABEL[s]} share" for s in SOURCES]
    lines = ["## Supervised tokens per source", ""]
    if not body:
        return [*lines, "No token accounting in reports/sft/<model>/metrics.json.", ""]
    return [
        *lines,
        "What each model trained on, counted by its sft stage with the base tokenizer after the cut at "
        "`sft.max_length`: equal example counts are far from equal gradient signal (P3's answers are a few "
        "words). The shares are the weights of `reports/olmix/ratios.csv`.",
        "",
        *markdown_table(header, body),
        "",
    ]


def olmix_tables(runs: Mapping[str, Run]) -> tuple[list[list[str]], list[list[str]]]:
    """(ratios rows, metrics rows), each with its header first; one row per trained model."""
    keys = [k for k in METRIC_NAMES if any(k in r.values for r in runs.values())]
    ratios, metrics = [["run", "name", *SOURCES]], [["run", "name", *keys]]
    for model, run in runs.items():
        if (share := shares(run)) is None:
            continue
        ratios.append([model, run.setting, *(f"{share[s]:.6f}" for s in SOURCES)])
        metrics.append([model, run.setting, *(f"{run.values[k]:.6g}" if k in run.values else "" for k in keys)])
    return ratios, metrics


def write_olmix(out: Path, runs: Mapping[str, Run]) -> None:
    for name, rows in zip(("ratios.csv", "metrics.csv"), olmix_tables(runs), strict=True):
        write_csv(out / name, rows)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    with atomic_open(path) as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_rows(runs: Mapping[str, Run], mix: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per model id (report order): model, setting, seed, then every flattened metric but the
    params (those are in the header), plus the mixture's size and sweep x."""
    keyed = {}
    for model, r in runs.items():
        m = mix.get(r.setting, {})
        row = dict(r.raw) | {f"mix.{k}": m[k] for k in ("records", "ratio", "per_type") if k in m}
        row |= {f"mix.records_per_source.{k}": v for k, v in m.get("records_per_source", {}).items()}
        keyed[model] = row
    columns = sorted({k for row in keyed.values() for k in row})
    body = [[m, r.setting, csv_cell(r.seed), *(csv_cell(keyed[m].get(c)) for c in columns)] for m, r in runs.items()]
    return ["model", "setting", "seed", *columns], body
