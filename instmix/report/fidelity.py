"""The fidelity table: the paper's setup (assets/paper_setup.yaml), this run's value of each item
and whether it deviates, with the reason.

The report fills "this run" from the params every stage recorded in its metrics
(`observed_in_artifacts`); README shows the same table for the paper profile, filled from its
params (`observed_in_params`). A key's values are a list: one per model or source that recorded it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instmix.core import hub
from instmix.core.params import StageError
from instmix.core.vocab import SOURCES

SETUP_FILE = Path(__file__).resolve().parents[2] / "assets" / "paper_setup.yaml"
# Where each stage's recorded params sit in a Run (instmix.report.runs) -> their params.yaml section.
RUN_SECTIONS = {"sft": "sft", "nlp": "eval.nlp", "code": "eval.code", "answers": "eval.align", "align": "eval.judge"}


@dataclass(frozen=True)
class Item:
    item: str
    paper: str
    source: str
    key: str | None = None
    fixed: str | None = None
    faithful: list[Any] | None = None
    pattern: str | None = None
    why: str = ""

    def deviates(self, values: Sequence[Any]) -> bool:
        if self.pattern is not None:
            return any(v is not None and not re.search(self.pattern, str(v)) for v in values)
        if self.faithful is not None:
            return any(v not in self.faithful for v in values)
        return False


def read_items(path: Path = SETUP_FILE) -> list[Item]:
    try:
        return [Item(**entry) for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]
    except (OSError, yaml.YAMLError, TypeError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return "`" + json.dumps(value) + "`"
    if isinstance(value, str) and (not value.strip() or value != value.strip()):
        return repr(value)
    return "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def shown(values: Iterable[Any]) -> str:
    """The distinct values ' / '-joined, noting when they differ across runs."""
    seen = sorted({text(v) for v in values})
    return "—" if not seen else seen[0] if len(seen) == 1 else " / ".join(seen) + " (differs across runs)"


def rows(items: Sequence[Item], observed: Mapping[str, Sequence[Any]]) -> list[list[str]]:
    """[item, paper (source), this run, deviation] for every item."""
    out = []
    for item in items:
        values = list(observed.get(item.key, [])) if item.key else []
        if item.fixed is not None:
            ours, verdict = item.fixed, ""
        elif not values:
            ours, verdict = "not recorded", ""
        else:
            ours = shown(values)
            verdict = f"**yes**: {item.why}" if item.deviates(values) else ""
            if not verdict and item.faithful is None and item.pattern is None:
                verdict = "paper does not say"
        paper = item.paper if item.source in ("—", "") else f"{item.paper} — {item.source}"
        out.append([item.item, paper, ours, verdict or "no"])
    return out


def deviations(items: Sequence[Item], observed: Mapping[str, Sequence[Any]]) -> list[str]:
    """'<item>: <this run> (paper: <theirs>): <why>' for each item that deviates."""
    found = []
    for item in items:
        values = list(observed.get(item.key, [])) if item.key else []
        if values and item.deviates(values):
            found.append(f"{item.item} {shown(values)} (paper: {item.paper}): {item.why}")
    return found


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"sft": {"lora": {"r": 8}}} -> {"sft": {...}, "sft.lora": {"r": 8}, "sft.lora.r": 8}: every
    level, so an item can check a whole sub-config (`sft.lora: null`) as well as one field."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat[f"{prefix}{key}"] = value
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
    return flat


def pins_text(revisions: Mapping[str, Any]) -> str:
    """One value for several pins: `commit shas`, or the ones that track a branch."""
    branches = [f"{task}@{r}" for task, r in sorted(revisions.items()) if not hub.SHA.match(str(r))]
    return "commit shas" if not branches else "branch: " + ", ".join(branches)


def observed_in_params(params: Mapping[str, Any], root: Path) -> dict[str, list[Any]]:
    """The values a params tree sets (README: the paper profile), with each hub pin's revision read
    from its pin file as `fetch.<source>.revision` and `eval.benchmarks.revision` (one per task)."""
    flat = {key: [value] for key, value in flatten(params).items()}

    def revision(path: Any) -> str | None:
        pin = root / str(path)
        if not (str(path).endswith(".hub.yaml") and pin.is_file()):
            return None
        return yaml.safe_load(pin.read_text())["revision"]

    for source in SOURCES:
        if (found := revision(params.get("fetch", {}).get(source, {}).get("path", ""))) is not None:
            flat[f"fetch.{source}.revision"] = [found]
    tasks = params.get("eval", {}).get("benchmarks", {}) or {}
    if pinned := {task: r for task, path in tasks.items() if (r := revision(path)) is not None}:
        flat["eval.benchmarks.revision"] = [pins_text(pinned)]
    return flat


def resolved(run: Any) -> dict[str, Any] | None:
    """The sft params a run recorded, each `auto` replaced by what it resolved to there (its runtime)."""
    params = run.params.get("sft")
    if params is None:
        return None
    return {k: run.raw.get(f"sft.runtime.{k}", v) if v == "auto" else v for k, v in params.items()}


def observed_in_artifacts(runs: Iterable[Any], setup: Any, report_params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The values the stages recorded: params in each metrics file, the hub commit each fetch read.
    `runs`: instmix.report.runs.Run; `setup`: instmix.report.header.Setup."""
    observed: dict[str, list[Any]] = {}

    def add(section: str, params: Mapping[str, Any] | None) -> None:
        for key, value in flatten(params or {}).items():
            observed.setdefault(f"{section}.{key}", []).append(value)

    add("model", (setup.base or {}).get("params"))
    for source, metrics in setup.fetched.items():
        if metrics:
            add(f"fetch.{source}", metrics.get("params"))
            observed.setdefault(f"fetch.{source}.revision", []).append(metrics.get("revision"))
    for metrics in setup.subsampled.values():
        add("subsample", (metrics or {}).get("params"))
    pinned = {}
    for task, metrics in setup.benchmarks.items():
        if metrics:
            observed.setdefault(f"eval.benchmarks.{task}", []).append(metrics.get("params", {}).get("path"))
            if metrics.get("source") == "hub":
                pinned[task] = metrics.get("revision")
    if pinned:
        observed["eval.benchmarks.revision"] = [pins_text(pinned)]
    for run in runs:
        for name, section in RUN_SECTIONS.items():
            add(section, resolved(run) if name == "sft" else run.params.get(name))
        if "lm_eval_version" in run.info:
            observed.setdefault("eval.nlp.lm_eval_version", []).append(run.info["lm_eval_version"])
    add("report", report_params)
    return observed
