"""The fidelity table: the paper's setup (assets/paper_setup.yaml), this run's value of each item
and whether it deviates, with the reason.

The report fills "this run" from the params every stage recorded in its metrics
(`observed_in_artifacts`); README shows the same table for the paper profile, filled from its
params (`observed_in_params`). A key's values are a list: one per model or source that recorded it.
Where a stage records what it actually read (the hub repo and commit of each fetch, benchmark and
base model), the row shows that rather than the param that asked for it.
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
RUN_SECTIONS = {
    "sft": "sft", "nlp": "eval.nlp", "code": "eval.code", "answers": "eval.align", "align": "eval.judge",
    "lik": "eval.lik",
}  # fmt: skip
NULL = "null (not set)"  # not "none", which reads as "none used"


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
    return NULL if value is None else f"{value:,}" if isinstance(value, int) else str(value)


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


def read_at(revision: Any, commit: Any) -> str | None:
    """What a hub read was pinned to: the commit read where pinned to a sha, else the branch (and,
    once run, the commit it resolved to); None for local files. A row checks it is a bare sha."""
    if revision is None and commit is None:
        return None
    if hub.SHA.match(str(revision)):
        return str(commit or revision)
    return f"{commit} (read at branch {revision})" if commit else f"branch {revision}"


def pins_text(pins: Mapping[str, tuple[Any, Any]]) -> str:
    """One value for several pins ({task: (revision, commit)}): `commits: task@<sha>, ...` (12 hex
    digits) when every pin is a sha, else `branch: ...`, each branch with the commit it read if known."""
    shown_pins = []
    for task, (revision, commit) in sorted(pins.items()):
        if hub.SHA.match(str(revision)):
            shown_pins.append(f"{task}@{str(commit or revision)[:12]}")
        else:
            shown_pins.append(f"{task}@{revision}" + (f" → {str(commit)[:12]}" if commit else ""))
    pinned = all(hub.SHA.match(str(revision)) for revision, _ in pins.values())
    return ("commits: " if pinned else "branch: ") + ", ".join(shown_pins)


def observed_in_params(params: Mapping[str, Any], root: Path) -> dict[str, list[Any]]:
    """The values a params tree sets (README: the paper profile), with what each hub pin file asks
    for: `fetch.<source>.repo` (the local path where not a pin) and `.revision`, and
    `eval.benchmarks.revision` (one value for all tasks). No commit is known before a run."""
    flat = {key: [value] for key, value in flatten(params).items()}

    def pin_of(path: Any) -> dict[str, Any] | None:
        pin = root / str(path)
        if not (hub.is_pin(path) and pin.is_file()):
            return None
        return yaml.safe_load(pin.read_text(encoding="utf-8"))

    for source in SOURCES:
        path = params.get("fetch", {}).get(source, {}).get("path")
        if path is None:
            continue
        pin = pin_of(path)
        flat[f"fetch.{source}.repo"] = [pin["repo"] if pin else path]
        flat[f"fetch.{source}.revision"] = [read_at(pin["revision"], None) if pin else None]
    model = params.get("model", {}) or {}
    if "revision" in model:
        flat["model.revision"] = [read_at(model["revision"], None)]
    tasks = params.get("eval", {}).get("benchmarks", {}) or {}
    if pinned := {task: (pin["revision"], None) for task, path in tasks.items() if (pin := pin_of(path))}:
        flat["eval.benchmarks.revision"] = [pins_text(pinned)]
    return flat


def resolved(run: Any) -> dict[str, Any] | None:
    """The sft params a run recorded, each `auto` replaced by what it resolved to there (its runtime)."""
    params = run.params.get("sft")
    if params is None:
        return None
    return {k: run.raw.get(f"sft.runtime.{k}", v) if v == "auto" else v for k, v in params.items()}


def observed_in_artifacts(runs: Iterable[Any], setup: Any, report_params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The values the stages recorded: params in each metrics file, and what each hub read actually
    read: the repo (a local source: its path) and commit of each fetch, each benchmark's commit,
    the base model's commit. `runs`: instmix.report.runs.Run; `setup`: instmix.report.header.Setup."""
    observed: dict[str, list[Any]] = {}

    def add(section: str, params: Mapping[str, Any] | None) -> None:
        for key, value in flatten(params or {}).items():
            observed.setdefault(f"{section}.{key}", []).append(value)

    add("model", (setup.base or {}).get("params"))
    if setup.base and "commit" in setup.base:
        observed["model.revision"] = [read_at((setup.base.get("params") or {}).get("revision"), setup.base["commit"])]
    for source, metrics in setup.fetched.items():
        if metrics:
            add(f"fetch.{source}", metrics.get("params"))
            if "repo" in metrics or metrics.get("commit") is None:  # a local read: its path is the copy read
                repo = metrics.get("repo") or (metrics.get("params") or {}).get("path")
                observed.setdefault(f"fetch.{source}.repo", []).append(repo)
            observed.setdefault(f"fetch.{source}.revision", []).append(
                read_at(metrics.get("revision"), metrics.get("commit"))
            )
    for metrics in setup.subsampled.values():
        add("subsample", (metrics or {}).get("params"))
    pinned = {}
    for task, metrics in setup.benchmarks.items():
        if metrics:
            observed.setdefault(f"eval.benchmarks.{task}", []).append(metrics.get("params", {}).get("path"))
            if metrics.get("source") == "hub":
                pinned[task] = (metrics.get("revision"), metrics.get("commit"))
    if pinned:
        observed["eval.benchmarks.revision"] = [pins_text(pinned)]
    for run in runs:
        for name, section in RUN_SECTIONS.items():
            add(section, resolved(run) if name == "sft" else run.params.get(name))
        if "lm_eval_version" in run.info:
            observed.setdefault("eval.nlp.lm_eval_version", []).append(run.info["lm_eval_version"])
    add("report", report_params)
    return observed
