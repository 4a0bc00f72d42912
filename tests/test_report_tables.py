"""report.tables: Δ cells get no interval on fewer than report.min_items items; only the NLP table
promises McNemar p values; no "-0.00"."""

from __future__ import annotations

import numpy as np

from instmix.core.vocab import SKILLS
from instmix.report.items import Resampler
from instmix.report.layout import TABLE2_COLUMNS
from instmix.report.stats import stats_of
from instmix.report.tables import factorial_section, fmt, fmt_interval, tables_section

PAPER = {
    "table1": {"source": "paper", "7b": {}},
    "table2": {"source": "paper", "7b": {}},
}


def flask_runs(instances: int) -> dict[str, list[dict]]:
    """Every table setting with FLASK scores on `instances` instances; AC one point above A on each."""
    rng = np.random.default_rng(0)
    base = rng.integers(1, 5, size=instances).astype(float)
    runs = {}
    for setting in ("A", "C", "P", "AC", "AP", "CP", "ACP"):
        scores = base + (1.0 if setting == "AC" else 0.0) - (0.5 if setting == "P" else 0.0)
        runs[setting] = [{"align": {i: dict.fromkeys(SKILLS, float(v)) for i, v in enumerate(scores)}}]
    return runs


def flask_stats(runs: dict[str, list[dict]]) -> dict:
    reps = {}
    for setting, models in runs.items():
        values = [x[SKILLS[0]] * 20 for x in models[0]["align"].values()]
        reps[setting] = {key: [float(np.mean(values))] for key in TABLE2_COLUMNS}
    return stats_of(reps)


def delta_cells(instances: int, min_items: int) -> tuple[list[str], str]:
    runs = flask_runs(instances)
    lines = tables_section(flask_stats(runs), PAPER, ("7b",), draws=Resampler(runs, 1000), min_items=min_items)
    start = lines.index("## Table 2: FLASK alignment skills (1-5 scores x 20)")
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("**Δ vs A**"))
    header, ac = lines[at], next(line for line in lines[at:] if line.startswith("| AC |"))
    return ac.split(" | ")[1:], header


def test_a_delta_on_too_few_items_prints_no_interval() -> None:
    cells, header = delta_cells(4, min_items=30)
    assert cells[0] == "+20.0 [too few items: 4] (—)"  # not "+20.0 [+20.0, +20.0]"
    assert "p=" not in header and "McNemar" not in header  # the FLASK table has no p values
    assert "fewer than report.min_items (30)" in header
    cells, _ = delta_cells(40, min_items=30)
    assert cells[0].startswith("+20.0 [+20.0, +20.0]")  # a constant shift: every draw agrees


def test_the_factorial_rows_drop_intervals_on_too_few_items() -> None:
    runs = flask_runs(4)
    stats = dict(flask_stats(runs))
    stats["none"] = stats["A"]
    row = next(line for line in factorial_section(stats, Resampler(runs, 500), 0.95, 30) if "FLASK avg" in line)
    assert "FLASK avg (too few items: 4, no intervals)" in row and "[" not in row


def test_no_negative_zero() -> None:
    assert fmt(-0.001, 2, True) == "+0.00" and fmt(-0.001, 2) == "0.00" and fmt(-0.006, 2, True) == "-0.01"
    assert fmt_interval(-0.004, 0.004, 2) == "[+0.00, +0.00]"
