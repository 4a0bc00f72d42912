"""Fetch one instruction source and normalise it to the record schema (stage fetch@<source>).

Reads a file or folder in the source's own format, or a `*.hub.yaml` pin from the hub.
The metrics hold rows read, records kept, rows dropped by reason, P3 tasks and, for the hub,
the repo read, its revision as pinned and the commit read (the fidelity table checks all three).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from instmix.core import hub
from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, count_by
from instmix.data import formats, sources

DROP_REASONS = ("missing_field", "non_text", "empty_prompt", "empty_response", "placeholder_response")
DROP_REASONS += ("invalid_unicode", "too_long")
PAPER_POOL_CAP = 1000  # records per P3 task in the paper's 660K pool


@dataclass(frozen=True)
class SourceParams:
    path: str
    """A file or directory in the source's own format, or a `*.hub.yaml` pin to read from the hub."""


@dataclass(frozen=True)
class InstructionParams(SourceParams):
    join: str = " "
    """Between the instruction and a non-empty input. The authors' code joins with one space."""
    format: Literal["alpaca", "sharegpt", "messages", "prompt_completion"] = "alpaca"
    """How the file lays out its rows (instmix.data.formats): alpaca (instruction, input, output),
    sharegpt (conversations of from/value turns), messages (role/content turns), prompt_completion."""
    columns: dict[str, str] | None = None
    """The file's names for the format's fields, {format's name: the file's name}, e.g. {output: answer}."""

    def __post_init__(self) -> None:
        try:  # an unknown key or two keys on one field: one line, before any read
            formats.column_map(self.format, self.columns)
        except formats.FormatError as err:
            raise ParamsError("columns", self.columns, str(err).removeprefix("columns: ")) from err


@dataclass(frozen=True)
class P3Params(SourceParams):
    datasets: Literal["t0_train", "paper", "all"] | list[str] = "t0_train"
    """P3 datasets whose prompted tasks are read: T0's training mixture (no evaluated benchmark),
    `paper` (the paper's ~660K pool, a sensitivity arm: every task, which includes ~74 built from
    ARC, PIQA, RACE, HellaSwag and Winogrande; needs allow_benchmarks and max_per_task 1000),
    `all` (every task, no cap implied), or a list of dataset names."""
    allow_benchmarks: bool = False
    """Allow tasks built from an evaluated benchmark (ARC, PIQA, RACE, HellaSwag, Winogrande, MMLU)."""
    max_per_task: int | None = None
    """Keep at most this many records per task, drawn at random (the paper pooled 1,000)."""
    seed: int = 0
    """Seed of the max_per_task draw."""

    def __post_init__(self) -> None:
        if self.max_per_task is not None and self.max_per_task < 1:
            raise ParamsError("max_per_task", self.max_per_task, "a positive integer or null")
        if self.datasets == "paper" and not self.allow_benchmarks:
            allowed = "true with datasets: paper (its pool holds tasks built from evaluated benchmarks)"
            raise ParamsError("allow_benchmarks", self.allow_benchmarks, allowed)
        if self.datasets == "paper" and self.max_per_task != PAPER_POOL_CAP:
            raise ParamsError("max_per_task", self.max_per_task, f"{PAPER_POOL_CAP} with datasets: paper")
        if isinstance(self.datasets, list) and not self.allow_benchmarks:
            for i, name in enumerate(self.datasets):
                if bench := sources.benchmark_of(name):
                    raise ParamsError(
                        f"datasets[{i}]",
                        name,
                        f"built from {bench}, an evaluated benchmark; "
                        "set fetch.p3.allow_benchmarks: true to use it anyway",
                    )


# {"repo": the hub repo read, "revision": as pinned, "commit": read}; all None for local files
Origin = dict[str, str | None]


def locate(
    key: str, path: str, patterns: list[str] | None = None, ignore: list[str] | None = None
) -> tuple[Path, Origin]:
    """The local directory or file to read, and the repo, pinned revision and commit read if from the hub."""
    if hub.is_pin(path):
        pin = hub.read_pin(path)
        folder = hub.snapshot(pin, patterns, ignore)
        return folder, {"repo": pin.repo, "revision": pin.revision, "commit": folder.name}  # snapshots/<commit sha>
    hub.go_offline()
    if not Path(path).exists():
        raise ParamsError(f"fetch.{key}.path", path, "an existing file or directory (or a *.hub.yaml pin)")
    return Path(path), {"repo": None, "revision": None, "commit": None}


def select_tasks(available: list[str], params: P3Params, directory: Path | str = "the P3 folder") -> list[str]:
    available = [t for t in available if not t.endswith("_score_eval")]  # rank-eval copies
    if params.datasets in ("all", "paper"):
        chosen = available
        refused = [t for t in chosen if sources.benchmark_of(t)]
        if refused and not params.allow_benchmarks:
            raise StageError(
                f"P3 task {refused[0]} is built from {sources.benchmark_of(refused[0])}, an evaluated benchmark "
                f"({len(refused)} such tasks); list datasets explicitly or set fetch.p3.allow_benchmarks: true"
            )
    else:
        wanted = sources.T0_TRAIN if params.datasets == "t0_train" else params.datasets
        chosen = [t for t in available if any(sources.belongs_to(t, d) for d in wanted)]
    if not chosen:
        raise StageError(
            f"no P3 task file in {directory} matches fetch.p3.datasets={params.datasets!r}"
            f" ({len(available)} tasks there)"
        )
    return chosen


def hub_patterns(params: P3Params) -> list[str]:
    if params.datasets in ("all", "paper"):
        wanted: Sequence[str] = ["*"]
    else:
        wanted = sources.T0_TRAIN if params.datasets == "t0_train" else params.datasets
    return [p for d in wanted for p in (f"{d}/train-*.parquet", f"{d}_*/train-*.parquet")]


def fetch_p3(params: P3Params, drops: sources.Drops) -> tuple[list[Record], Origin]:
    directory, origin = locate("p3", params.path, hub_patterns(params), ["*_score_eval/*"])
    if not directory.is_dir():
        raise ParamsError("fetch.p3.path", params.path, "a folder of <task>.jsonl or <task>/train-*.parquet files")
    task_files = sources.p3_task_files(directory)
    used = {f for files in task_files.values() for f in files}
    skipped = sorted(p for p in directory.rglob("*") if p.is_file() and p not in used and not p.name.startswith("."))
    if not task_files:
        found = f"{len(skipped)} other files" if skipped else "nothing"
        raise StageError(f"{directory}: no P3 task files (<task>.jsonl or <task>/train-*.parquet); found {found}")
    records = []
    drops["skipped_files"] = len(skipped)  # files in the folder that are not a task's
    for task in select_tasks(list(task_files), params, directory):
        task_records = sources.read_p3_task(task, task_files[task], drops)
        if params.max_per_task is not None and len(task_records) > params.max_per_task:
            keep = random.Random(f"{params.seed}:{task}").sample(range(len(task_records)), params.max_per_task)
            task_records = [task_records[i] for i in sorted(keep)]
        records.extend(task_records)
    return records, origin


def params_class(source: str) -> type[SourceParams]:
    return P3Params if source == "p3" else InstructionParams


def fetch(source: str, params: SourceParams) -> tuple[list[Record], dict[str, Any]]:
    drops = sources.Drops()
    if isinstance(params, P3Params):
        records, origin = fetch_p3(params, drops)
    else:
        path, origin = locate(source, params.path)
        assert isinstance(params, InstructionParams)
        # The plain Alpaca read keeps its own reader: in a folder it reads .json and .parquet files only, where
        # the format readers also take .jsonl, so today's reads (the paper's hub folders too) stay as they were.
        if params.format != "alpaca" or params.columns:
            records, read = formats.read_format(source, path, params.format, params.columns, params.join)
            return records, {**read, **origin, "params": asdict(params)}
        records = list(sources.read_instructions(source, path, drops, params.join))
    metrics: dict[str, Any] = {
        "rows_read": len(records) + sum(drops[reason] for reason in DROP_REASONS),
        "records": len(records),
        "dropped": {reason: drops[reason] for reason in DROP_REASONS},
        "cleaned": {kind: drops[kind] for kind in sources.CLEAN_KINDS},
        **origin,
        "params": asdict(params),
    }
    if source == "p3":
        metrics["skipped_files"] = drops["skipped_files"]
        metrics["tasks"] = len({r["task"] for r in records})
        metrics["records_per_task"] = count_by(records, "task")
        # Tasks whose prompts are built from an evaluated benchmark (only with allow_benchmarks).
        metrics["benchmark_tasks"] = sorted({t for r in records if sources.benchmark_of(t := r["task"])})
    return records, metrics
