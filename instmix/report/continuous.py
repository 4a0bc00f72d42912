"""Continuous metrics beside every accuracy: their keys, units, direction and item sets.

eval_nlp stores, per document, `p_gold` (the gold choice's probability normalised over the
choices) and `bpb_gold` (the gold continuation's bits per byte); eval_lik stores, per item, the
teacher-forced NLL and UTF-8 bytes of each source's held-out records, of HumanEval's canonical
solutions and of FLASK's reference answers. Keys (display units):

- `p_gold:<task>`, `p_gold:avg` (%, higher is better), `bpb_gold:<task>`, `bpb_gold:avg` (bits per
  byte, lower is better): a document's value, averaged as the task's accuracy is (MMLU pools its
  subjects' documents; `avg` is the mean over the tasks evaluated);
- `bpb:heldout:<source>`, `bpb:code`, `bpb:align` (lower is better): an item set's bits per byte,
  total bits over total bytes (a long record weighs by its length, as a corpus's bits per byte);
  `bpb:heldout:avg` the mean over the sources' held-out sets.
"""

from __future__ import annotations

from instmix.core.vocab import LETTERS, SOURCES, TASK_LABELS, TASKS

PROXIES = ("p_gold", "bpb_gold")
SETS = (*(f"heldout:{s}" for s in SOURCES), "code", "align")
HELDOUT = {source: f"bpb:heldout:{source}" for source in SOURCES}
SOURCE_LETTER = {source: letter for letter, source in LETTERS.items()}

LABELS = {
    **{f"p_gold:{t}": f"{label} p(gold)" for t, label in TASK_LABELS.items()},
    "p_gold:avg": "p(gold) avg",
    **{f"bpb_gold:{t}": f"{label} bpb" for t, label in TASK_LABELS.items()},
    "bpb_gold:avg": "gold bpb avg",
    **{key: f"held-out {SOURCE_LETTER[s]} bpb" for s, key in HELDOUT.items()},
    "bpb:heldout:avg": "held-out bpb avg",
    "bpb:code": "HumanEval solution bpb",
    "bpb:align": "FLASK reference bpb",
}
"""Every continuous key, with its column label."""
TWIN = {
    **{t: f"p_gold:{t}" for t in TASKS},
    "nlp_avg": "p_gold:avg",
    "pass@1": "bpb:code",
    "pass@10": "bpb:code",
    "flask_avg": "bpb:align",
}
"""Each accuracy-like metric's continuous proxy."""


def lower_is_better(key: str) -> bool:
    return key.startswith("bpb")


def unit_of(key: str) -> str | None:
    """The item set a single-set continuous key is computed from (None for averages and others)."""
    kind, _, rest = key.partition(":")
    if kind in PROXIES and rest in TASKS:
        return f"{kind}:{rest}"
    if kind == "bpb" and rest in SETS:
        return f"lik:{rest}"
    return None


def units_of(key: str) -> tuple[str, ...]:
    if key in ("p_gold:avg", "bpb_gold:avg"):
        return tuple(f"{key.partition(':')[0]}:{t}" for t in TASKS)
    if key == "bpb:heldout:avg":
        return tuple(f"lik:heldout:{s}" for s in SOURCES)
    unit = unit_of(key)
    return (unit,) if unit else ()
