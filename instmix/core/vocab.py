"""The study's vocabulary, declared once: sources, settings, tasks, skills and model ids.

Every other module imports these names; a test fails if another module spells a list out again.

Model ids are directory names (models/<id>, reports/eval/<family>/<id>, reports/sft/<id>):
- `base`: the untuned base model (the row "none" of the paper's Table 1);
- `<setting>-<seed>`: a setting trained with one seed of `seeds`, e.g. A-42, ratio-0.5-42.
"""

from __future__ import annotations

import re

SOURCES = ("alpaca", "codealpaca", "p3")
LETTERS = {"A": "alpaca", "C": "codealpaca", "P": "p3"}

TABLE_SETTINGS = ("A", "C", "P", "AC", "AP", "CP", "ACP")
"""The paper's Table 1 and 2 mixtures: concatenations of whole per-source samples."""
SWEEP_SETTINGS = ("ratio", "count")
"""Settings drawn at the point mix.ratio / mix.per_type names (the sweep ids carry their own point)."""
SETTINGS = TABLE_SETTINGS + SWEEP_SETTINGS
MIXTURE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""A name of params `mixtures` (your own mixture; a setting like A or ratio-0.5 once trained): not a paper setting."""


def fixed_name(setting: str) -> str:
    """The fixed-budget twin of a table setting (stages.design fixed): AC -> fixed_ac."""
    return f"fixed_{setting.lower()}"


TASK_LABELS = {
    "arc_challenge": "ARC", "winogrande": "Winogrande", "piqa": "PIQA", "mmlu": "MMLU", "race": "RACE",
    "hellaswag": "HellaSwag",
}  # fmt: skip
TASKS = tuple(TASK_LABELS)
"""The six zero-shot NLP benchmarks of Table 1, as lm-eval names its tasks (labels: Table 1's columns)."""
SKILL_LABELS = {
    "logical_correctness": "Corr.", "factuality": "Fact.", "commonsense": "Comm.", "comprehension": "Compr.",
    "completeness": "Compl.", "insightfulness": "Insight.", "readability": "Read.", "conciseness": "Conc.",
}  # fmt: skip
SKILLS = tuple(SKILL_LABELS)
"""The 8 FLASK skills of Table 2 (metric keys; labels: Table 2's columns)."""

BASE = "base"
"""The untuned model's id; its directory is models/base."""
BASE_ROW = "none"
"""The untuned model's row name in Table 1 (the paper's label)."""

MODEL_ID = re.compile(r"^(?P<setting>.+)-(?P<seed>\d+)$")


def model_id(setting: str, seed: int) -> str:
    return f"{setting}-{seed}"


def split_model_id(model: str) -> tuple[str, int | None]:
    """(setting, seed) of a model id; the base model is (BASE_ROW, None)."""
    if model == BASE:
        return BASE_ROW, None
    match = MODEL_ID.match(model)
    if match is None:
        return model, None
    return match["setting"], int(match["seed"])
