"""Your own mixtures: weights as fractions of a records or token budget, upsampling up to max_repeat."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from instmix.check import problems
from instmix.core.params import ParamsError, StageError, parse
from instmix.core.records import Record
from instmix.data.mixtures import Mixture, build, check_name, shares
from tests.conftest import set_params, stage_env


def sample(source: str, n: int) -> list[Record]:
    return [
        {
            "id": f"{source}-{i}",
            "source": source,
            "orig_id": str(i),
            "task": None,
            "prompt": f"q{i}",
            "response": "w " * (i % 5 + 1),
        }
        for i in range(n)
    ]


SAMPLES = {"alpaca": sample("alpaca", 10), "codealpaca": sample("codealpaca", 6), "p3": sample("p3", 8)}


def words(record: Record) -> int:  # a stand-in tokenizer: the budget arithmetic does not depend on which
    return len(record["response"].split())


def mixture(**spec: object) -> Mixture:
    return parse(Mixture, spec, "mixtures.m")


def test_shares_split_a_budget_exactly_by_largest_remainder() -> None:
    assert shares({"alpaca": 0.5, "codealpaca": 0.25, "p3": 0.25}, 10) == {"alpaca": 5, "codealpaca": 3, "p3": 2}
    assert sum(shares({"alpaca": 1 / 3, "codealpaca": 1 / 3, "p3": 1 / 3}, 100).values()) == 100


def test_a_records_budget_holds_exactly_and_repeats_up_to_max_repeat() -> None:
    spec = mixture(weights={"alpaca": 0.4, "codealpaca": 0.6}, budget={"records": 15}, max_repeat=2)
    records, metrics = build("m", spec, SAMPLES, seed=0)
    assert len(records) == metrics["records"] == 15
    assert metrics["records_per_source"] == {"alpaca": 6, "codealpaca": 9}
    code = Counter(r["id"] for r in records if r["source"] == "codealpaca")
    # 9 of a 6-record sample: every record once, the first three twice (a second pass in sample order)
    assert code == {f"codealpaca-{i}": 2 if i < 3 else 1 for i in range(6)}
    assert metrics["epochs_per_source"] == {"alpaca": 0.6, "codealpaca": 1.5}
    assert build("m", spec, SAMPLES, seed=0)[0] == records  # seeded
    assert [r["id"] for r in build("m", spec, SAMPLES, seed=1)[0]] != [r["id"] for r in records]


def test_a_share_beyond_max_repeat_is_one_line_naming_the_source() -> None:
    spec = mixture(weights={"alpaca": 0.4, "codealpaca": 0.6}, budget={"records": 25}, max_repeat=2)
    with pytest.raises(StageError) as err:  # codealpaca's share is 15 > 2 x 6
        build("m", spec, SAMPLES, seed=0)
    assert str(err.value) == (
        "mixtures.m: codealpaca's share is 15 records but its sample has 6 and max_repeat is 2; "
        "raise max_repeat or subsample.n, or lower the budget"
    )


def test_a_token_budget_ends_within_one_record_of_each_share() -> None:
    spec = mixture(weights={"alpaca": 0.5, "p3": 0.5}, budget={"tokens": 41}, max_repeat=1.5)
    records, metrics = build("m", spec, SAMPLES, seed=0, tokens=words)
    assert metrics["budget"] == {"tokens": 41}
    for source in ("alpaca", "p3"):
        taken = [r for r in records if r["source"] == source]
        assert metrics["tokens_per_source"][source] == sum(map(words, taken))
        assert 20.5 <= sum(map(words, taken)) < 20.5 + max(map(words, taken))
    with pytest.raises(StageError, match="p3's share is 30 tokens but its sample has 21 tokens"):
        build("m", mixture(weights={"alpaca": 0.5, "p3": 0.5}, budget={"tokens": 60}), SAMPLES, 0, tokens=words)


def test_additive_is_the_paper_concatenation_of_whole_samples() -> None:
    _, metrics = build("m", mixture(weights={"alpaca": 0.5, "p3": 0.5}), SAMPLES, seed=0)
    assert metrics["records_per_source"] == {"alpaca": 10, "p3": 8} and metrics["budget"] == "additive"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"weights": {"alpaca": 0.5, "p3": 0.4}}, "mixtures.m.weights={alpaca: 0.5, p3: 0.4} is not allowed"),
        ({"weights": {"dolly": 1.0}}, "mixtures.m.weights.dolly=1.0 is not allowed: a declared source"),
        ({"weights": {"alpaca": 1.0}, "budget": {"records": 4, "tokens": 9}}, "exactly one of records, tokens"),
        ({"weights": {"alpaca": 1.0}, "budget": "fixed"}, "mixtures.m.budget=fixed is not allowed"),
        ({"weights": {"alpaca": 1.0}, "max_repeat": 0.5}, "mixtures.m.max_repeat=0.5 is not allowed: at least 1"),
        ({"weights": {"alpaca": 1.0}, "budget": {"records": 0}}, "mixtures.m.budget={records: 0} is not allowed"),
    ],
)
def test_bad_mixtures_are_one_line(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        mixture(**spec)


def test_a_name_must_not_be_a_paper_setting() -> None:
    check_name("code_heavy")
    for name in ("ACP", "ratio", "m-1", "1m"):
        with pytest.raises(ParamsError, match=f"mixtures.{name}="):
            check_name(name)


def test_check_names_an_unfillable_budget_and_an_undeclared_setting(workdir: Path) -> None:
    set_params(workdir, mixtures={"big": {"weights": {"alpaca": 1.0}, "budget": {"records": 40}}})
    set_params(workdir, settings=["A", "big", "small"])
    found = problems(yaml.safe_load((workdir / "params.yaml").read_text()))
    assert any(p.startswith("params.yaml: settings=[A, big, small] is not allowed") for p in found), found
    assert any("mixtures.big.budget.records=40 is not allowed: alpaca's share (40)" in p for p in found), found


def test_the_stage_writes_nothing_for_a_refused_share(workdir: Path, tmp_path: Path) -> None:
    samples = tmp_path / "subsample"
    samples.mkdir()
    for source, records in SAMPLES.items():
        (samples / f"{source}.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in records))
    set_params(workdir, mixtures={"m": {"weights": {"codealpaca": 1.0}, "budget": {"records": 7}}})
    out = tmp_path / "mix" / "m.jsonl"
    args = [sys.executable, "-m", "stages.mixture", "m", str(samples), str(out), str(tmp_path / "no-model")]
    result = subprocess.run(args, cwd=workdir, env=stage_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 2 and not out.parent.exists()
    assert result.stderr.strip().splitlines() == [
        "error: mixtures.m: codealpaca's share is 7 records but its sample has 6 and max_repeat is 1; "
        "raise max_repeat or subsample.n, or lower the budget"
    ]
