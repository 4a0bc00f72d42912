"""mix@<setting>: the paper's settings, the ratio and instance-count sweeps, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instmix.core.files import read_jsonl, write_jsonl
from instmix.core.params import StageError
from instmix.core.records import Record, record_id
from instmix.data.mix import MixParams, mix
from tests.conftest import run_stage, set_params

N = 10


def samples(n: int = N) -> dict[str, list[Record]]:
    def rec(source: str, i: int) -> Record:
        task = "task" if source == "p3" else None
        return Record(
            id=record_id(source, str(i)), source=source, orig_id=str(i), task=task, prompt=f"{source} {i}", response="r"
        )

    return {s: [rec(s, i) for i in range(n)] for s in ("alpaca", "codealpaca", "p3")}


def ids(records: list[Record]) -> set[str]:
    return {r["id"] for r in records}


@pytest.mark.parametrize(
    ("setting", "sources"),
    [("A", ["alpaca"]), ("C", ["codealpaca"]), ("P", ["p3"]), ("AC", ["alpaca", "codealpaca"]),
     ("AP", ["alpaca", "p3"]), ("CP", ["codealpaca", "p3"]), ("ACP", ["alpaca", "codealpaca", "p3"])],
)  # fmt: skip
def test_table_settings_concatenate_whole_samples(setting: str, sources: list[str]) -> None:
    data = samples()
    mixture, metrics = mix(setting, {s: data[s] for s in sources}, MixParams())
    assert ids(mixture) == ids([r for s in sources for r in data[s]])
    assert metrics["records_per_source"] == dict.fromkeys(sources, N)


def test_mixtures_are_shuffled_with_the_seed() -> None:
    first, _ = mix("ACP", samples(), MixParams(seed=0))
    again, _ = mix("ACP", samples(), MixParams(seed=0))
    other, _ = mix("ACP", samples(), MixParams(seed=1))
    assert first == again and first != other
    assert [r["source"] for r in first[:N]] != ["alpaca"] * N


def test_ratio_endpoints_are_a_and_acp() -> None:
    assert ids(mix("ratio", samples(), MixParams(ratio=0.0))[0]) == ids(
        mix("A", {"alpaca": samples()["alpaca"]}, MixParams())[0]
    )
    assert ids(mix("ratio", samples(), MixParams(ratio=2.0))[0]) == ids(mix("ACP", samples(), MixParams())[0])


@pytest.mark.parametrize(("ratio", "each"), [(0.5, 3), (1.0, 5), (1.5, 8), (0.1, 1)])  # round(ratio * 10 / 2), half up
def test_ratio_takes_prefixes_of_c_and_p(ratio: float, each: int) -> None:
    data = samples()
    mixture, metrics = mix("ratio", data, MixParams(ratio=ratio))
    assert metrics["records_per_source"] == {"alpaca": N, "codealpaca": each, "p3": each}
    assert ids(mixture) >= ids(data["codealpaca"][:each])  # nested: a larger ratio extends a smaller one


def test_count_takes_per_type_of_each_and_refuses_more_than_the_sample() -> None:
    _, metrics = mix("count", samples(), MixParams(per_type=4))
    assert metrics["records_per_source"] == {"alpaca": 4, "codealpaca": 4, "p3": 4}
    with pytest.raises(StageError, match=r"lower mix\.per_type or raise subsample\.n"):
        mix("count", samples(), MixParams(per_type=N + 1))


def test_the_digest_tells_a_reordered_mixture_from_a_new_one() -> None:
    acp, acp_metrics = mix("ACP", samples(), MixParams())
    count, count_metrics = mix("count", samples(), MixParams(per_type=N))  # every record: ACP reordered
    assert count != acp and count_metrics["records_digest"] == acp_metrics["records_digest"]
    assert mix("count", samples(), MixParams(per_type=N - 1))[1]["records_digest"] != acp_metrics["records_digest"]


@pytest.mark.parametrize(
    ("sweep_id", "params"), [("ratio-0.5", MixParams(ratio=0.5)), ("count-4", MixParams(per_type=4))]
)
def test_a_sweep_id_draws_like_its_setting_with_the_value_in_its_name(sweep_id: str, params: MixParams) -> None:
    setting = sweep_id.split("-")[0]
    point, point_metrics = mix(sweep_id, samples(), MixParams())
    single, single_metrics = mix(setting, samples(), params)
    assert ids(point) == ids(single)
    assert point_metrics == single_metrics and ("ratio" in point_metrics or point_metrics["per_type"] == 4)


def test_a_sweep_point_beyond_the_sample_names_itself() -> None:
    with pytest.raises(StageError, match=r"lower count-11 in mix\.sweep or raise subsample\.n"):
        mix("count-11", samples(), MixParams())


@pytest.fixture
def sample_dir(workdir: Path) -> Path:
    for source, records in samples().items():
        write_jsonl(workdir / "sub" / f"{source}.jsonl", records)
    return workdir


def test_stage_writes_mixture_and_metrics(sample_dir: Path) -> None:
    result = run_stage("mix", "AP", "sub", "m/AP.jsonl", cwd=sample_dir)
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(sample_dir / "m/AP.jsonl")) == 2 * N
    metrics = json.loads((sample_dir / "m/AP.metrics.json").read_text())
    assert metrics["records_per_task"] == {"task": N} and metrics["lengths"]["prompt_words"]["p50"] == 2


def test_stage_names_a_sweep_point_s_files_after_its_id(sample_dir: Path) -> None:
    result = run_stage("mix", "ratio-0.5", "sub", "m/ratio-0.5.jsonl", cwd=sample_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (sample_dir / "m").iterdir()) == ["ratio-0.5.jsonl", "ratio-0.5.metrics.json"]
    assert json.loads((sample_dir / "m/ratio-0.5.metrics.json").read_text())["ratio"] == 0.5


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [("mix.ratio", -0.5, "a number in [0, 2]"), ("mix.ratio", 2.5, "a number in [0, 2]"),
     ("mix.ratio", float("nan"), "a finite number"), ("mix.ratio", "abc", "a finite number"),
     ("mix.per_type", 0, "a positive integer"), ("mix.shuffle", True, "unknown key"),
     ("mix.sweep", ["ratio-2.5"], "ratio-<r> with r in [0, 2] or count-<k> with k >= 1"),
     ("mix.sweep", ["count-0"], "count-<k> with k >= 1"), ("mix.sweep", ["ACP"], "ratio-<r>"),
     ("mix.sweep", "ratio-1", "a list"), ("mix.sweep", ["count-4", "count-4"], "distinct ids")],
)  # fmt: skip
def test_bad_params_stop_with_one_line_and_write_nothing(
    sample_dir: Path, key: str, value: object, allowed: str
) -> None:
    set_params(sample_dir, **{key: value})
    result = run_stage("mix", "ratio", "sub", "m/ratio.jsonl", cwd=sample_dir)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and key in result.stderr and allowed in result.stderr
    assert not (sample_dir / "m").exists()


@pytest.mark.parametrize("setting", ["AX", "ratio-3", "count-x"])
def test_unknown_settings_are_refused(sample_dir: Path, setting: str) -> None:
    result = run_stage("mix", setting, "sub", f"m/{setting}.jsonl", cwd=sample_dir)
    assert result.returncode == 2 and f"unknown mix setting {setting!r}" in result.stderr
    assert not (sample_dir / "m").exists()


def test_a_sample_off_the_schema_is_one_line_and_writes_nothing(workdir: Path) -> None:
    (workdir / "s").mkdir()
    for source in ("alpaca", "codealpaca", "p3"):
        (workdir / "s" / f"{source}.jsonl").write_text('{"id": "x"}\n')
    result = run_stage("mix", "A", "s", "m/A.jsonl", cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "s/alpaca.jsonl:1: not a record (missing or mistyped source, orig_id, task, prompt" in result.stderr
    assert not (workdir / "m").exists()
