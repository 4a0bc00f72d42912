"""The report's section on your own mixtures (params `mixtures`): what each holds, and its metrics
beside the base model's with paired intervals, like the paper's tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from instmix.core.vocab import BASE_ROW, TABLE_SETTINGS, fixed_name
from instmix.report.continuous import HELDOUT, LABELS
from instmix.report.layout import DASH, METRIC_NAMES, setting_order
from instmix.report.params import ReportParams
from instmix.report.tables import Draws, Stats, delta_cell, markdown_table, table_section

ACCURACY = ("nlp_avg", "p_gold:avg", "pass@1", "flask_avg")
BPB = (*HELDOUT.values(), "bpb:code", "bpb:align")
HEADER = ("mixture", "budget", "records", "per source: weight: records (epochs)")
PAIRED = (*ACCURACY, "bpb:heldout:avg")


def named_settings(settings: Iterable[str]) -> list[str]:
    """Settings that are neither the paper's nor a sweep point: the names of `mixtures`."""
    return sorted((s for s in settings if setting_order(s)[0] == 3), key=setting_order)


def budget_text(budget: Any) -> str:
    if isinstance(budget, dict):
        return ", ".join(f"{value:,} {unit}" for unit, value in budget.items())
    return str(budget) if budget else DASH


def composition_rows(named: Iterable[str], mix: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for setting in named:
        metrics = mix.get(setting, {})
        weights = metrics.get("params", {}).get("mixture", {}).get("weights", {})
        epochs = metrics.get("epochs_per_source", {})
        parts = [
            f"{source} {weights.get(source, 0):g}: {count:,} ({epochs.get(source, 0):g} epochs)"
            for source, count in metrics.get("records_per_source", {}).items()
        ]
        rows.append([setting, budget_text(metrics.get("budget")), f"{metrics.get('records', 0):,}", "; ".join(parts)])
    return rows


def mixtures_section(
    stats: Stats, mix: Mapping[str, Mapping[str, Any]], draws: Draws | None, params: ReportParams
) -> list[str]:
    named = named_settings(stats)
    if not named:
        return []
    present = {k for row in stats.values() for k in row}
    rows = (BASE_ROW, *named)
    common = (stats, {}, (), (), draws, params.confidence, params.min_items)
    lines = [
        "## Your mixtures",
        "",
        "The mixtures of params `mixtures` that `settings` trains: each source's weight is its fraction of the "
        "budget; records per source, and how many epochs of its sample that took (above 1: repeated).",
        "",
        *markdown_table(HEADER, composition_rows(named, mix)),
        "",
    ]
    accuracy = {k: METRIC_NAMES.get(k, LABELS.get(k, k)) for k in ACCURACY if k in present}
    bpb = {k: LABELS[k] for k in BPB if k in present}
    if accuracy:
        lines += table_section("mixtures", rows, accuracy, (BASE_ROW,), 2, *common)
    if bpb:
        lines += table_section("mixtures", rows, bpb, (BASE_ROW,), 3, *common)
    return lines


def fixed_pairs(stats: Stats) -> list[tuple[str, str]]:
    """(additive setting, its fixed-budget twin) where both were trained: AC and fixed_ac (stages.design)."""
    return [(s, fixed_name(s)) for s in TABLE_SETTINGS if s in stats and fixed_name(s) in stats]


def fixed_section(
    stats: Stats, mix: Mapping[str, Mapping[str, Any]], draws: Draws | None, params: ReportParams
) -> list[str]:
    """The paper's additive subsets beside the same subsets at one fixed budget: fixed - additive is the
    effect of size (and steps) at the same composition; across the fixed rows, composition at one size."""
    pairs = fixed_pairs(stats)
    present = {k for row in stats.values() for k in row}
    keys = [k for k in PAIRED if k in present]
    if not pairs or not keys:
        return []
    body = []
    for additive, fixed in pairs:
        sizes = [f"{mix.get(s, {}).get('records', 0):,}" for s in (additive, fixed)]
        cells = [f"{additive} / {fixed}", " / ".join(sizes)]
        for key in keys:
            decimals = 3 if key.startswith("bpb") else 2
            cells.append(delta_cell(stats, fixed, additive, key, decimals, draws, params.confidence, params.min_items))
        body.append(cells)
    header = ["additive / fixed", "records", *(METRIC_NAMES.get(k, LABELS.get(k, k)) for k in keys)]
    return [
        "## Fixed budget vs additive (size vs composition)",
        "",
        "Each of the paper's subsets (the whole samples concatenated: AC has twice A's records and optimizer "
        "steps) beside the same subset at one fixed budget (`python -m stages.design fixed`: its sources "
        f"weighted equally). Cells: fixed - additive [{params.confidence:.0%} paired bootstrap interval; *too few "
        f"items: n*: fewer than report.min_items ({params.min_items}) shared items], the "
        "effect of the additive design's extra data at the same composition (bits per byte: lower is better).",
        "",
        *markdown_table(header, body),
        "",
    ]
