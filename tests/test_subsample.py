"""subsample@<source>: dedup, seeded sampling, even P3 spread, clear errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from instmix.core.files import read_jsonl, write_jsonl
from instmix.core.params import StageError
from instmix.core.records import Record, record_id
from instmix.data.subsample import SubsampleParams, deduplicate, even_quotas, subsample
from tests.conftest import run_stage, set_params


def make(source: str, i: int, task: str | None = None, text: str | None = None) -> Record:
    orig = f"{task}:{i}" if task else str(i)
    body = text or f"prompt {orig}"
    return Record(id=record_id(source, orig), source=source, orig_id=orig, task=task, prompt=body, response="r")


def test_exact_duplicates_are_removed_keeping_the_first() -> None:
    records = [make("alpaca", 0, text="same"), make("alpaca", 1), make("alpaca", 2, text="same")]
    assert [r["orig_id"] for r in deduplicate(records)] == ["0", "1"]


def test_sample_is_seeded_random_not_the_first_rows() -> None:
    records = [make("alpaca", i) for i in range(200)]
    first, _ = subsample("alpaca", records, SubsampleParams(n=20, seed=1))
    again, _ = subsample("alpaca", records, SubsampleParams(n=20, seed=1))
    other, _ = subsample("alpaca", records, SubsampleParams(n=20, seed=2))
    assert first == again and first != other
    assert [r["orig_id"] for r in first] != [str(i) for i in range(20)]
    assert len({r["id"] for r in first}) == 20


def test_too_few_unique_records_is_a_clear_error() -> None:
    records = [make("alpaca", i, text="dup" if i % 2 else None) for i in range(10)]  # 5 + 1 unique
    with pytest.raises(StageError, match=r"subsample.n=7 but only 6 unique records \(4 duplicates removed\)"):
        subsample("alpaca", records, SubsampleParams(n=7))


@pytest.mark.parametrize("seed", range(20))
def test_even_quotas_fill_small_tasks_and_split_the_rest_evenly(seed: int) -> None:
    rng = random.Random(seed)
    sizes = {f"t{i}": rng.randint(1, 60) for i in range(rng.randint(1, 12))}
    n = rng.randint(1, sum(sizes.values()))
    quotas = even_quotas(sizes, n, random.Random(seed))
    assert sum(quotas.values()) == n
    assert all(0 <= quotas[t] <= sizes[t] for t in sizes)
    open_tasks = [quotas[t] for t in sizes if quotas[t] < sizes[t]]
    if open_tasks:  # tasks not exhausted differ by at most one and hold at least any full task's quota
        assert max(open_tasks) - min(open_tasks) <= 1
        assert all(quotas[t] <= max(open_tasks) for t in sizes)


def test_p3_prefixes_stay_spread_across_tasks() -> None:
    records = [make("p3", i, task=f"task{t}") for t in range(5) for i in range(40)]
    sample, metrics = subsample("p3", records, SubsampleParams(n=50))
    assert metrics["records_per_task"] == dict.fromkeys((f"task{t}" for t in range(5)), 10)
    assert {r["task"] for r in sample[:5]} == {f"task{t}" for t in range(5)}


def test_stage_writes_sample_ids_and_metrics(workdir: Path) -> None:
    records = [make("alpaca", i) for i in range(30)] + [make("alpaca", 99, text="prompt 3")]
    write_jsonl(workdir / "fetched.jsonl", records)
    result = run_stage("subsample", "alpaca", "fetched.jsonl", "s/alpaca.jsonl", cwd=workdir)
    assert result.returncode == 0, result.stderr
    sample = read_jsonl(workdir / "s/alpaca.jsonl")
    assert (workdir / "s/alpaca.ids").read_text().split() == [r["id"] for r in sample]
    metrics = json.loads((workdir / "s/alpaca.metrics.json").read_text())
    assert metrics["records"] == 16 and metrics["duplicates_dropped"] == 1 and metrics["available"] == 31
    assert set(metrics["lengths"]) == {"prompt_chars", "prompt_words", "response_chars", "response_words"}


@pytest.mark.parametrize(
    ("value", "allowed"), [(0, "a positive integer"), (-5, "a positive integer"), ("x", "integer")]
)
def test_bad_n_stops_before_any_work(workdir: Path, value: object, allowed: str) -> None:
    set_params(workdir, **{"subsample.n": value})
    result = run_stage("subsample", "alpaca", "missing.jsonl", "s/alpaca.jsonl", cwd=workdir)
    assert result.returncode == 2
    assert f"subsample.n={value}" in result.stderr and allowed in result.stderr
    assert not (workdir / "s").exists()


@pytest.mark.parametrize(("content", "message"), [
    ('{"a": 1}\n', "bad.jsonl:1: not a record (missing or mistyped id, source, orig_id, task, prompt, response)"),
    ("{broken\n", "cannot read bad.jsonl"),
])  # fmt: skip
def test_a_corrupt_input_is_one_line_and_writes_nothing(workdir: Path, content: str, message: str) -> None:
    (workdir / "bad.jsonl").write_text(content)
    result = run_stage("subsample", "alpaca", "bad.jsonl", "s/alpaca.jsonl", cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (workdir / "s").exists()
