"""The report's rows, columns and their order: which settings and metrics each table shows.

Rows and metric keys come from instmix.core.vocab; this module only adds labels and ordering.
"""

from __future__ import annotations

import math

from instmix.core.vocab import BASE_ROW, SKILL_LABELS, SWEEP_SETTINGS, TABLE_SETTINGS, TASK_LABELS
from instmix.report.continuous import LABELS as CONTINUOUS_LABELS

TABLE1_ROWS = (BASE_ROW, *TABLE_SETTINGS)
TABLE2_ROWS = TABLE_SETTINGS
# Canonical metric keys (display units: %, FLASK 0-100) and their column labels, in vocab order.
TABLE1_COLUMNS = {
    **TASK_LABELS,
    "nlp_avg": "NLP avg", "pass@1": "HumanEval @1", "pass@10": "HumanEval @10",
}  # fmt: skip
TABLE2_COLUMNS = {**SKILL_LABELS, "flask_avg": "Avg."}
METRIC_NAMES = {**TABLE1_COLUMNS, "flask_avg": "FLASK avg", **CONTINUOUS_LABELS}
"""Names of metrics in 'missing: <setting> <name>' notes."""
SIZE_LABEL = {"7b": "LLaMA-2-7B", "13b": "LLaMA-2-13B"}
PLOT_FILES = ("benchmarks.png", "ratio_sweep.png", "count_sweep.png", "flask_profile.png", "loss_curves.png",
              "claims_forest.png", "factorial.png", "heldout_loss.png")  # fmt: skip
DASH = "—"
MARK_BENCHMARK_PROMPTS = "†"  # a setting trained on P3 prompts built from an evaluated benchmark


def sweep_kind(setting: str) -> str | None:
    """`ratio` for ratio, ratio-0.5 ...; `count` for count, count-5000 ...; None for the rest."""
    kind = setting.partition("-")[0]
    return kind if kind in SWEEP_SETTINGS else None


def setting_order(setting: str) -> tuple[int, int, float, str]:
    """Base row, the table settings, the plain sweep settings, then sweep ids by kind and x."""
    if setting in TABLE1_ROWS:
        return (0, TABLE1_ROWS.index(setting), 0.0, "")
    if setting in SWEEP_SETTINGS:
        return (1, SWEEP_SETTINGS.index(setting), 0.0, "")
    kind = sweep_kind(setting)
    if kind is None:
        return (3, 0, 0.0, setting)
    try:
        return (2, SWEEP_SETTINGS.index(kind), float(setting[len(kind) + 1 :]), "")
    except ValueError:
        return (2, SWEEP_SETTINGS.index(kind), math.inf, setting)
