"""Deterministic, atomic output files.

Every output is written to a temporary file beside its target and renamed into place, so a
crash never leaves a half-written file that DVC could cache. JSON is written with sorted
keys and no timestamps: the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[TextIO]:
    """Open a text file for writing that appears at `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, keys sorted. orjson: the mixtures of 60K records are written
    in a fifth of json's time (bench/README.md, data stages)."""
    with atomic_open(path) as handle:
        handle.writelines(orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode() + "\n" for row in rows)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_open(path) as handle:
        handle.write(json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    with atomic_open(path) as handle:
        for line in lines:
            handle.write(line + "\n")


def metrics_path(output: str | Path) -> Path:
    """The metrics file that accompanies a data output: data/x/foo.jsonl -> data/x/foo.metrics.json
    (only the last suffix goes: data/mix/ratio-0.5.jsonl -> data/mix/ratio-0.5.metrics.json)."""
    output = Path(output)
    return output.with_name(output.with_suffix("").name + ".metrics.json")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """A JSON-lines file another stage wrote; a missing or corrupt one is one error line."""
    from instmix.core.params import StageError

    try:
        return read_jsonl(path)
    except FileNotFoundError:
        raise StageError(f"{path}: no such file; run the stage that writes it first (dvc repro)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from None
