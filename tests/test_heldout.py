"""heldout@<source>: disjoint from the sample by id and by text, seeded, spread over P3 tasks, short cases counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from instmix.core.files import read_jsonl, write_jsonl
from instmix.core.params import StageError
from instmix.core.records import Record, record_id
from instmix.data.heldout import HeldoutParams, heldout
from instmix.data.subsample import SubsampleParams, subsample
from tests.conftest import run_stage, set_params


def make(source: str, orig: str, prompt: str, response: str = "r", task: str | None = None) -> Record:
    return Record(id=record_id(source, orig), source=source, orig_id=orig, task=task, prompt=prompt, response=response)


def pool(source: str = "alpaca", size: int = 40) -> list[Record]:
    return [make(source, str(i), f"prompt {i}") for i in range(size)]


def test_disjoint_from_the_sample_by_id_by_text_and_by_prompt() -> None:
    records = pool()
    sample = records[:10]
    planted = [
        make("alpaca", "copy", "prompt 3"),  # prompt 3 / r again under another id: placed first, so dedup keeps it
        make("alpaca", "other", "prompt 4", "another response"),  # a sampled prompt with another response
        make("alpaca", "shared", "fresh prompt", "r"),  # only the response is a sample's: kept
    ]
    held, metrics = heldout("alpaca", planted + records, sample, HeldoutParams(n=100))
    sample_ids = {r["id"] for r in sample}
    sample_prompts = {r["prompt"] for r in sample}
    assert not sample_ids & {r["id"] for r in held}
    assert not sample_prompts & {r["prompt"] for r in held}
    assert {r["orig_id"] for r in held} == {"shared"} | {str(i) for i in range(10, 40)}
    # prompt 3's own record (orig 3) is a later duplicate of the planted copy, so dedup drops it first
    assert metrics["removed"] == {"sampled": 9, "same_text": 1, "same_prompt": 1}
    assert metrics["duplicates_dropped"] == 1 and metrics["available"] == 43
    assert metrics["available_after_sample"] == metrics["records"] == 31 and metrics["short_by"] == 69


def test_disjoint_from_a_real_subsample_and_seeded() -> None:
    records = pool(size=200)
    sample, _ = subsample("alpaca", records, SubsampleParams(n=120, seed=0))
    first, _ = heldout("alpaca", records, sample, HeldoutParams(n=50, seed=0))
    again, _ = heldout("alpaca", records, sample, HeldoutParams(n=50, seed=0))
    other, _ = heldout("alpaca", records, sample, HeldoutParams(n=50, seed=1))
    assert first == again and first != other
    assert len({r["id"] for r in first}) == 50 and not {r["id"] for r in first} & {r["id"] for r in sample}
    # the same seed as subsample's does not replay its draw order: the held-out seed string differs
    left = [r for r in records if r["id"] not in {s["id"] for s in sample}]
    assert [r["orig_id"] for r in first] != [r["orig_id"] for r in left[:50]]


def test_p3_is_spread_evenly_across_tasks() -> None:
    records = [make("p3", f"t{t}:{i}", f"p {t} {i}", task=f"t{t}") for t in range(4) for i in range(30)]
    sample, _ = subsample("p3", records, SubsampleParams(n=40))
    held, metrics = heldout("p3", records, sample, HeldoutParams(n=20))
    assert metrics["tasks"] == 4 and metrics["records_per_task"] == {f"t{t}": 5 for t in range(4)}
    assert {r["task"] for r in held[:4]} == {f"t{t}" for t in range(4)}  # interleaved, like the sample


def test_fewer_left_than_n_takes_all_of_them_and_counts() -> None:
    records = pool(size=12)
    held, metrics = heldout("codealpaca", records, records[:9], HeldoutParams(n=8))
    assert sorted(r["orig_id"] for r in held) == ["10", "11", "9"]
    assert (metrics["available_after_sample"], metrics["records"], metrics["short_by"]) == (3, 3, 5)


def test_nothing_left_is_one_line_error() -> None:
    records = pool(size=5)
    with pytest.raises(StageError, match=r"heldout@alpaca: no record is left after the sample of 5 \(5 fetched\)"):
        heldout("alpaca", records, records, HeldoutParams(n=3))


def test_a_sample_from_another_fetch_is_an_error() -> None:
    records = pool(size=10)
    stray = make("alpaca", "elsewhere", "not fetched")
    with pytest.raises(StageError, match=f"sample record {stray['id']} is not in the fetched records"):
        heldout("alpaca", records, [*records[:3], stray], HeldoutParams(n=3))


def write_inputs(workdir: Path, size: int = 30, sampled: int = 16) -> None:
    set_params(workdir, **{"heldout.n": 8})  # these tests' own n, whatever the demo profile holds
    records = pool(size=size)
    write_jsonl(workdir / "fetched.jsonl", records)
    write_jsonl(workdir / "sample.jsonl", records[:sampled])


def test_stage_is_byte_identical_across_runs(workdir: Path) -> None:
    write_inputs(workdir)
    outputs = []
    for run in ("a", "b"):
        result = run_stage("heldout", "alpaca", "fetched.jsonl", "sample.jsonl", f"{run}/alpaca.jsonl", cwd=workdir)
        assert result.returncode == 0 and not result.stderr, result.stderr
        outputs.append([(workdir / run / f"alpaca{ext}").read_bytes() for ext in (".jsonl", ".ids", ".metrics.json")])
    assert outputs[0] == outputs[1]
    held = read_jsonl(workdir / "a/alpaca.jsonl")
    assert (workdir / "a/alpaca.ids").read_text().split() == [r["id"] for r in held]
    metrics = json.loads((workdir / "a/alpaca.metrics.json").read_text())
    assert metrics["params"] == {"n": 8, "seed": 0} and metrics["records"] == 8 == len(held)


def test_stage_warns_in_one_line_when_short(workdir: Path) -> None:
    write_inputs(workdir, size=20)
    result = run_stage("heldout", "alpaca", "fetched.jsonl", "sample.jsonl", "h/alpaca.jsonl", cwd=workdir)
    assert result.returncode == 0
    assert result.stderr == "warning: heldout@alpaca: heldout.n=8 but the sample leaves 4 records; holding out all 4\n"
    assert json.loads((workdir / "h/alpaca.metrics.json").read_text())["short_by"] == 4


@pytest.mark.parametrize(("value", "allowed"), [(0, "a positive integer"), ("x", "an integer")])
def test_bad_n_stops_before_any_work(workdir: Path, value: object, allowed: str) -> None:
    set_params(workdir, **{"heldout.n": value})
    result = run_stage("heldout", "alpaca", "missing.jsonl", "sample.jsonl", "h/alpaca.jsonl", cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"heldout.n={value}" in result.stderr and allowed in result.stderr
    assert not (workdir / "h").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alpaca", "missing.jsonl", "sample.jsonl", "h/alpaca.jsonl"), "missing.jsonl"),
        (("alpaca", "fetched.jsonl", "sample.jsonl"), "usage: python -m stages.heldout"),
        (("dolly", "fetched.jsonl", "sample.jsonl", "h/dolly.jsonl"), "usage: python -m stages.heldout"),
        (("alpaca", "fetched.jsonl", "fetched.jsonl", "h/alpaca.jsonl"), "no record is left"),
    ],
)
def test_errors_are_one_line_and_write_nothing(workdir: Path, args: tuple[str, ...], message: str) -> None:
    write_inputs(workdir)
    result = run_stage("heldout", *args, cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (workdir / "h").exists()


def test_demo_sources_leave_enough_for_the_demo_n(workdir: Path) -> None:
    """The demo profile's heldout.n is met by every demo source without a warning, and gives the
    report the paired items it needs (report.min_items)."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    n = params["heldout"]["n"]
    assert n >= params["report"]["min_items"]
    for source in ("alpaca", "codealpaca", "p3"):
        for module, args in (
            ("fetch", (f"f/{source}.jsonl",)),
            ("subsample", (f"f/{source}.jsonl", f"s/{source}.jsonl")),
            ("heldout", (f"f/{source}.jsonl", f"s/{source}.jsonl", f"h/{source}.jsonl")),
        ):
            result = run_stage(module, source, *args, cwd=workdir)
            assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
        metrics = json.loads((workdir / f"h/{source}.metrics.json").read_text())
        assert metrics["short_by"] == 0 and metrics["records"] == n
        # 56 rows a source, 16 sampled; Alpaca and CodeAlpaca each lose one duplicate and one unusable row
        assert metrics["available_after_sample"] == {"alpaca": 38, "codealpaca": 38, "p3": 40}[source]
        if source == "p3":  # 14 records per task, 4 sampled: 8 of the 10 left in each task
            assert metrics["records_per_task"] == {task: 8 for task in metrics["records_per_task"]}
            assert metrics["tasks"] == 4
