"""Run discovery and reading artifacts: one Run per model id found under <reports dir>.

A model id is its directory name (instmix.core.vocab): `base`, or `<setting>-<seed>`. Reads
eval/{nlp,code,align}/<id>/metrics.json, eval/align/<id>/answers.metrics.json and
sft/<id>/metrics.json (plus the loss curve), data/mix/<setting>.metrics.json and the paper's
numbers. A missing file is simply absent; one that exists but cannot be read is one StageError.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from instmix.core.params import StageError
from instmix.core.vocab import SKILLS, TASKS, split_model_id
from instmix.report.items import Items, read_items
from instmix.report.layout import SIZE_LABEL, setting_order

EVAL_FAMILIES = ("nlp", "code", "align", "lik")


@dataclass
class Run:
    """One model id: a setting and the seed it was trained with (None for base)."""

    model: str
    setting: str
    seed: int | None
    values: dict[str, float] = field(default_factory=dict)
    """Canonical metrics in display units (accuracies and pass@k in %, FLASK 0-100)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """Every scalar of the metrics files but their params, flattened (`nlp.piqa.acc`), in their own units."""
    info: dict[str, Any] = field(default_factory=dict)
    """Evaluation settings for the header: lm-eval version, limit, HumanEval n, judge ..."""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The params each stage used for this model: {"nlp"|"code"|"align"|"answers"|"sft": {...}}."""
    items: Items = field(default_factory=dict)
    """Per-item scores from its samples and judgments (instmix.report.items), for paired intervals."""

    @property
    def order(self) -> tuple[tuple[int, int, float, str], int]:
        return setting_order(self.setting), -1 if self.seed is None else self.seed


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err


def read_optional(path: Path) -> dict[str, Any] | None:
    """A metrics file another stage wrote, or None when it is not there."""
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise StageError(f"{path}: not a JSON object")
    return data


def params_of(data: Mapping[str, Any] | None) -> dict[str, Any]:
    found = (data or {}).get("params")
    return dict(found) if isinstance(found, Mapping) else {}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        elif value is None or isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
    return flat


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def nlp_values(block: Mapping[str, Any], metric: str) -> dict[str, float]:
    values = {}
    for task in TASKS:
        scores = block.get(task)
        if isinstance(scores, Mapping):
            value = number(scores.get(metric))
            if value is None and metric == "acc_norm":  # MMLU has no acc_norm
                value = number(scores.get("acc"))
            if value is not None:
                values[task] = 100 * value
    average = number(block.get("avg")) if metric == "acc" else None
    if average is not None:
        values["nlp_avg"] = 100 * average
    elif all(task in values for task in TASKS):
        values["nlp_avg"] = sum(values[t] for t in TASKS) / len(TASKS)
    return values


def add_nlp(run: Run, data: Mapping[str, Any], block: Mapping[str, Any], metric: str) -> None:
    limit, version = run.params["nlp"].get("limit"), data.get("lm_eval_version")
    run.values |= nlp_values(block, metric)
    for proxy, scale in (("p_gold", 100), ("bpb_gold", 1)):  # instmix.report.continuous
        for task in TASKS:
            if isinstance(scores := block.get(task), Mapping) and (v := number(scores.get(proxy))) is not None:
                run.values[f"{proxy}:{task}"] = scale * v
        if (v := number(block.get(f"{proxy}_avg"))) is not None:
            run.values[f"{proxy}:avg"] = scale * v
    run.info |= {"lm_eval_version": version, "nlp_limit": limit}
    run.raw |= {"nlp.lm_eval_version": version, "nlp.limit": limit}


def add_code(run: Run, data: Mapping[str, Any], block: Mapping[str, Any], metric: str) -> None:
    run.values |= {k: 100 * v for k in ("pass@1", "pass@10") if (v := number(block.get(k))) is not None}
    run.info |= {f"code_{k}": block.get(k) for k in ("n", "problems", "sandboxed")}


def add_align(run: Run, data: Mapping[str, Any], block: Mapping[str, Any], metric: str) -> None:
    run.values |= {k: v for k in SKILLS if (v := number(block.get(k))) is not None}
    if (average := number(block.get("avg"))) is not None:
        run.values["flask_avg"] = average
    run.info |= {f"align_{k}": block.get(k) for k in ("judge", "instances", "parse_failures")}


def add_lik(run: Run, data: Mapping[str, Any], block: Mapping[str, Any], metric: str) -> None:
    """eval_lik's bits per byte (instmix.report.continuous)."""
    for source, values in (block.get("heldout") or {}).items():
        if isinstance(values, Mapping) and (v := number(values.get("bpb"))) is not None:
            run.values[f"bpb:heldout:{source}"] = v
    if (v := number(block.get("heldout_bpb_avg"))) is not None:
        run.values["bpb:heldout:avg"] = v
    for part in ("code", "align"):
        if isinstance(values := block.get(part), Mapping) and (v := number(values.get("bpb"))) is not None:
            run.values[f"bpb:{part}"] = v


ADD: dict[str, Callable[[Run, Mapping[str, Any], Mapping[str, Any], str], None]] = {
    "nlp": add_nlp, "code": add_code, "align": add_align, "lik": add_lik,
}  # fmt: skip


def read_runs(reports: Path, nlp_metric: str) -> dict[str, Run]:
    """Every model id that has any evaluation or training metrics, keyed by model id, in report order."""
    runs: dict[str, Run] = {}

    def run(model: str) -> Run:
        if model not in runs:
            runs[model] = Run(model, *split_model_id(model))
        return runs[model]

    for family in EVAL_FAMILIES:
        for path in sorted((reports / "eval" / family).glob("*/metrics.json")):
            data = read_optional(path) or {}
            block = data.get(family)
            if not isinstance(block, dict):
                raise StageError(f"{path}: no '{family}' section (the metrics contract: instmix/report/runs.py)")
            r = run(path.parent.name)
            r.raw |= flatten({family: block})
            r.params[family] = params_of(data)
            ADD[family](r, data, block, nlp_metric)
            if family == "align" and (answers := read_optional(path.parent / "answers.metrics.json")):
                r.params["answers"] = params_of(answers)
    for path in sorted((reports / "sft").glob("*/metrics.json")):
        data = read_optional(path) or {}
        r = run(path.parent.name)
        r.raw |= flatten({"sft": {k: v for k, v in data.items() if k != "params"}})
        r.params["sft"] = params_of(data)
    for r in runs.values():
        r.items = read_items(reports, r.model, nlp_metric)
    return {r.model: r for r in sorted(runs.values(), key=lambda r: r.order)}


def read_loss_curve(sft_dir: Path, model: str) -> tuple[list[float], list[float], str] | None:
    """(x, loss, x label) from DVCLive's TSVs: x is the epoch when epoch.tsv is there."""
    metrics = sft_dir / model / "live" / "plots" / "metrics"
    loss = read_tsv(metrics / "loss.tsv", "loss")
    if not loss:
        return None
    epochs = read_tsv(metrics / "epoch.tsv", "epoch")
    if epochs and all(step in epochs for step in loss):
        return [epochs[s] for s in loss], list(loss.values()), "epoch"
    return [float(s) for s in loss], list(loss.values()), "logged step"


def read_tsv(path: Path, column: str) -> dict[int, float]:
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StageError(f"cannot read {path}: {err}") from err
    out = {}
    for row in rows:
        try:
            out[int(row["step"])] = float(row[column])
        except (KeyError, TypeError, ValueError) as err:
            raise StageError(f"{path}: bad row {row!r}: {err}") from err
    return out


def read_mix(mix_dir: Path, settings: Iterable[str]) -> dict[str, dict[str, Any]]:
    """data/mix/<setting>.metrics.json of each setting that has one."""
    found = {s: read_optional(mix_dir / f"{s}.metrics.json") for s in sorted(set(settings), key=setting_order)}
    return {s: m for s, m in found.items() if m is not None}


def read_paper(path: Path) -> dict[str, Any]:
    """{"table1"|"table2": {"7b"|"13b": {row: {canonical key: value}}, "source": str}, "figure2": ...}."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        tables: dict[str, Any] = {}
        for table in ("table1", "table2"):
            columns = ["flask_avg" if c == "avg" else c for c in data[table]["columns"]]
            tables[table] = {
                size: {row: dict(zip(columns, map(float, values), strict=True)) for row, values in rows.items()}
                for size, rows in data[table].items()
                if size in SIZE_LABEL
            }
            tables[table]["source"] = data[table]["source"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err
    tables["figure2"] = data.get("figure2", {})
    return tables
