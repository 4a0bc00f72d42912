"""fetch@<source>: native formats, the record schema, dropped rows, broken files, P3 hygiene, hub layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instmix.core.files import read_jsonl
from instmix.core.records import record_id
from tests.conftest import DEMO, real_or_demo, run_stage, set_params

SCHEMA = {"id", "source", "orig_id", "task", "prompt", "response"}


def fetched(workdir: Path, source: str) -> tuple[list[dict], dict]:
    result = run_stage("fetch", source, "out/x.jsonl", cwd=workdir)
    assert result.returncode == 0, result.stderr
    records = read_jsonl(workdir / "out/x.jsonl")
    return records, json.loads((workdir / "out/x.metrics.json").read_text())


def fails(workdir: Path, source: str) -> str:
    """Run fetch expecting a clean failure: exit 2, one line on stderr, nothing written."""
    result = run_stage("fetch", source, "failed/x.jsonl", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert not (workdir / "failed").exists()
    return result.stderr


def test_alpaca_records_follow_the_schema(workdir: Path) -> None:
    records, metrics = fetched(workdir, "alpaca")
    assert all(set(r) == SCHEMA for r in records)
    assert all(r["id"] == record_id("alpaca", r["orig_id"]) and r["task"] is None for r in records)
    assert len({r["id"] for r in records}) == len(records)
    # 56 rows in the demo file, one of them Alpaca's "<nooutput>" placeholder.
    assert metrics["rows_read"] == 56 and metrics["records"] == 55
    assert metrics["dropped"]["placeholder_response"] == 1
    with_input = next(r for r in records if r["orig_id"] == "1")
    assert (
        with_input["prompt"]
        == "Rewrite the sentence in the passive voice. The committee approved the new park design."  # the authors' join
    )


def test_p3_reads_both_jsonl_formats_and_strips_end_of_text(workdir: Path) -> None:
    records, metrics = fetched(workdir, "p3")
    assert metrics["records"] == 56 and metrics["tasks"] == 4
    by_task = {r["task"]: r for r in reversed(records)}  # each task's first record
    assert by_task["samsum_Summarize_"]["response"].endswith("noodle place.")  # prompt/completion file
    assert by_task["ag_news_classify"]["response"] == "Sci/Tech"  # inputs/targets file
    assert not any("<|endoftext|>" in r["response"] for r in records)
    assert all(r["orig_id"].startswith(r["task"] + ":") for r in records)


def test_shared_p3_sample_drops_empty_completions(workdir: Path, shared_data: Path) -> None:
    set_params(workdir, **{"fetch.p3.path": str(shared_data / "p3_t0_train_sample")})
    _, metrics = fetched(workdir, "p3")
    # 111 templates, 21,938 rows; the 3 commonsense_qa ones (600 rows) are not in T0's training mixture.
    assert metrics["rows_read"] == 21938 - 600
    # The three TREC templates in the sample carry only "<|endoftext|>" as completion.
    assert metrics["dropped"]["empty_response"] == 600
    assert metrics["records"] == 20738 and metrics["tasks"] == 105


@pytest.fixture
def alpaca_copy(workdir: Path) -> Path:
    """A real Alpaca file (or the demo one) copied into the workdir, to corrupt on purpose."""
    copy = workdir / "alpaca.json"
    shutil.copy(real_or_demo("alpaca/alpaca_data_sample.json", "alpaca.json"), copy)
    set_params(workdir, **{"fetch.alpaca.path": str(copy)})
    return copy


def test_truncated_json_names_file_and_line(workdir: Path, alpaca_copy: Path) -> None:
    lines = alpaca_copy.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if i >= 40 and len(line) > 30)
    alpaca_copy.write_text("".join(lines[:cut]) + lines[cut][:20])  # a download cut inside a line
    assert f"{alpaca_copy}:{cut + 1}: invalid JSON" in fails(workdir, "alpaca")


def test_non_utf8_bytes_name_file_and_line(workdir: Path, alpaca_copy: Path) -> None:
    lines = alpaca_copy.read_bytes().split(b"\n")
    broken = next(i for i, line in enumerate(lines) if i > 10 and b'"' in line)
    lines[broken] = lines[broken].replace(b'"', b'"\xff', 1)
    alpaca_copy.write_bytes(b"\n".join(lines))
    assert f"{alpaca_copy}:{broken + 1}: not UTF-8" in fails(workdir, "alpaca")


def test_empty_file_stops_the_stage(workdir: Path, alpaca_copy: Path) -> None:
    alpaca_copy.write_text("")
    assert f"{alpaca_copy}:1: file is empty" in fails(workdir, "alpaca")


def test_bad_records_are_dropped_and_counted(workdir: Path, alpaca_copy: Path) -> None:
    rows = json.loads(alpaca_copy.read_text())
    del rows[0]["output"]
    rows[1]["output"] = 42
    rows[2]["instruction"] = "   "
    rows[3] = ["not", "a", "record"]
    alpaca_copy.write_text(json.dumps(rows))
    records, metrics = fetched(workdir, "alpaca")
    assert metrics["dropped"]["missing_field"] == 1
    assert metrics["dropped"]["non_text"] == 2
    assert metrics["dropped"]["empty_prompt"] == 1
    assert metrics["records"] + sum(metrics["dropped"].values()) == metrics["rows_read"] == len(rows)
    assert {"0", "1", "2", "3"}.isdisjoint(r["orig_id"] for r in records)


def test_broken_p3_line_names_file_and_line(workdir: Path) -> None:
    p3 = workdir / "p3"
    shutil.copytree(DEMO / "p3", p3)
    task = p3 / "ag_news_classify.jsonl"
    task.write_text(task.read_text()[:-30])
    set_params(workdir, **{"fetch.p3.path": str(p3)})
    assert f"{task}:14: invalid JSON line" in fails(workdir, "p3")


# ---------------------------------------------------------------------------- hostile input (issue 13)


def test_real_alpaca_placeholders_are_matched_by_the_normalised_rule(workdir: Path, shared_data: Path) -> None:
    sample = shared_data / "alpaca" / "alpaca_data_sample.json"
    set_params(workdir, **{"fetch.alpaca.path": str(sample)})
    records, metrics = fetched(workdir, "alpaca")
    assert metrics["cleaned"]["placeholder_input"] == 24  # "Noinput" 9, "No input." 8, "<no input>" 7
    # Rows 306 (<No output>) and 1502 (<noinput>), and 8 and 1299, which open with "<nooutput> ...".
    assert metrics["dropped"]["placeholder_response"] == 4
    by_row = {r["orig_id"]: r for r in records}
    assert {"8", "306", "1299", "1502"}.isdisjoint(by_row)
    assert by_row["563"]["prompt"].endswith("the customer.")  # its input "Noinput": no input
    assert by_row["566"]["prompt"].endswith("John Donne\n\nNoinput")  # real text before it: kept as it is


@pytest.mark.parametrize(
    ("content", "message"),
    [('[{"instruction": "a", "input": "", "output": 1' + "0" * 5000 + "}]", "an integer of more than 4,300 digits"),
     ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
     ('[{"instruction": "x", "output": "y"', "(column ")],
)  # fmt: skip
def test_hostile_json_is_one_line_and_writes_nothing(
    workdir: Path, alpaca_copy: Path, content: str, message: str
) -> None:
    alpaca_copy.write_text(content)
    assert message in fails(workdir, "alpaca")


def test_bad_text_is_cleaned_or_dropped_and_counted(workdir: Path, alpaca_copy: Path) -> None:
    rows = json.loads(alpaca_copy.read_text())
    rows[0]["instruction"] = "lone \ud800 surrogate"  # parses; cannot be written as UTF-8
    rows[1]["output"] = "nul\u0000 and bell\u0007 inside"
    rows[2]["output"] = "x" * 100_001
    alpaca_copy.write_text(json.dumps(rows, ensure_ascii=True))
    alpaca_copy.write_bytes(b"\xef\xbb\xbf" + alpaca_copy.read_bytes())  # a byte order mark is accepted
    records, metrics = fetched(workdir, "alpaca")
    assert metrics["dropped"]["invalid_unicode"] == 1 and metrics["dropped"]["too_long"] == 1
    assert metrics["cleaned"]["control_characters"] == 1
    cleaned = next(r for r in records if r["orig_id"] == "1")
    assert cleaned["response"] == "nul and bell inside"
    assert (workdir / "out/x.jsonl").read_bytes().decode("utf-8")  # everything written is valid UTF-8


def test_p3_folder_problems_name_the_folder(workdir: Path) -> None:
    p3 = workdir / "p3"
    p3.mkdir()
    (p3 / "tasks.json").write_text("[]")
    set_params(workdir, **{"fetch.p3.path": str(p3)})
    assert f"{p3}: no P3 task files (<task>.jsonl or <task>/train-*.parquet); found 1 other files" in fails(
        workdir, "p3"
    )
    shutil.copy(DEMO / "p3" / "ag_news_classify.jsonl", p3)
    set_params(workdir, **{"fetch.p3.datasets": ["imdb"]})
    assert f"no P3 task file in {p3} matches fetch.p3.datasets=['imdb'] (1 tasks there)" in fails(workdir, "p3")
    set_params(workdir, **{"fetch.p3.datasets": "t0_train"})
    _, metrics = fetched(workdir, "p3")
    assert metrics["skipped_files"] == 1  # tasks.json: counted, not read


# ---------------------------------------------------------------------------- P3 hygiene


def test_benchmark_dataset_in_params_is_refused(workdir: Path) -> None:
    set_params(workdir, **{"fetch.p3.datasets": ["ag_news", "ai2_arc_ARC_Challenge"]})
    err = fails(workdir, "p3")  # validated before any source is read
    assert "fetch.p3.datasets[1]=ai2_arc_ARC_Challenge" in err and "ARC" in err and "allow_benchmarks" in err
    # each fetch stage reads only its own source's section: alpaca is not held up by p3's params
    assert run_stage("fetch", "alpaca", "a.jsonl", cwd=workdir).returncode == 0


def test_benchmark_tasks_need_the_explicit_override(workdir: Path) -> None:
    p3 = workdir / "p3"
    shutil.copytree(DEMO / "p3", p3)
    shutil.copy(p3 / "imdb_Sentiment_with_choices_.jsonl", p3 / "piqa_what_is_the_correct_ending.jsonl")
    set_params(workdir, **{"fetch.p3.path": str(p3)})
    _, metrics = fetched(workdir, "p3")  # the default T0 mixture simply does not include it
    assert "piqa_what_is_the_correct_ending" not in metrics["records_per_task"]

    set_params(workdir, **{"fetch.p3.datasets": "all"})
    assert "piqa_what_is_the_correct_ending is built from PIQA" in fails(workdir, "p3")

    set_params(workdir, **{"fetch.p3.allow_benchmarks": True})
    _, metrics = fetched(workdir, "p3")
    assert metrics["records_per_task"]["piqa_what_is_the_correct_ending"] == 14
    assert metrics["benchmark_tasks"] == ["piqa_what_is_the_correct_ending"]  # what the report marks


@pytest.mark.parametrize(
    ("change", "message"),
    [({"fetch.p3.allow_benchmarks": False}, "fetch.p3.allow_benchmarks=false is not allowed: true with datasets"),
     ({"fetch.p3.max_per_task": None}, "fetch.p3.max_per_task=null is not allowed: 1000 with datasets: paper")],
)  # fmt: skip
def test_the_papers_pool_is_an_explicit_sensitivity_arm(workdir: Path, change: dict, message: str) -> None:
    p3 = workdir / "p3"
    shutil.copytree(DEMO / "p3", p3)
    shutil.copy(p3 / "imdb_Sentiment_with_choices_.jsonl", p3 / "piqa_what_is_the_correct_ending.jsonl")
    shutil.copy(p3 / "imdb_Sentiment_with_choices_.jsonl", p3 / "imdb_Sentiment_with_choices__score_eval.jsonl")
    paper = {"fetch.p3.path": str(p3), "fetch.p3.datasets": "paper", "fetch.p3.allow_benchmarks": True}
    set_params(workdir, **paper, **{"fetch.p3.max_per_task": 1000})
    _, metrics = fetched(workdir, "p3")
    tasks = sorted(t.name.removesuffix(".jsonl") for t in p3.glob("*.jsonl") if "_score_eval" not in t.name)
    assert sorted(metrics["records_per_task"]) == tasks  # every task but the rank-eval copy
    assert metrics["benchmark_tasks"] == ["piqa_what_is_the_correct_ending"]
    set_params(workdir, **change)
    assert message in fails(workdir, "p3")


# ---------------------------------------------------------------------------- hub layouts

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_repo(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """A dataset repo in the HF cache layout: datasets--org--name/{refs/main, snapshots/<sha>/...}."""
    root = cache / f"datasets--{repo.replace('/', '--')}"
    for name, data in files.items():
        path = root / "snapshots" / SHA / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(SHA)


def parquet_bytes(rows: list[dict], tmp: Path) -> bytes:
    pq.write_table(pa.Table.from_pylist(rows), tmp / "t.parquet")
    return (tmp / "t.parquet").read_bytes()


def write_pin(path: Path, repo: str, revision: str, files: list[str] | None = None) -> str:
    path.write_text(json.dumps({"repo": repo, "revision": revision, "files": files or []}))
    return str(path)


def test_hub_sources_read_like_the_local_files(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("build")
    cache = tmp_path_factory.mktemp("hf_cache")
    alpaca_rows = json.loads((DEMO / "alpaca.json").read_text())
    fake_hub_repo(
        cache,
        "tatsu-lab/alpaca",
        {
            "data/train-00000-of-00001-a09b74b3ef9c3b56.parquet": parquet_bytes(
                [{**r, "text": "..."} for r in alpaca_rows], tmp
            )
        },
    )
    fake_hub_repo(cache, "sahil2801/CodeAlpaca-20k", {"code_alpaca_20k.json": (DEMO / "codealpaca.json").read_bytes()})

    def p3_rows(task: str) -> list[dict]:
        rows = [json.loads(line) for line in (DEMO / "p3" / f"{task}.jsonl").read_text().splitlines()]
        return [
            {"inputs": [1, 2], "inputs_pretokenized": r["inputs"], "targets": [3], "targets_pretokenized": r["targets"]}
            for r in rows
        ]

    news = parquet_bytes(p3_rows("ag_news_classify"), tmp)
    imdb = parquet_bytes(p3_rows("imdb_Sentiment_with_choices_"), tmp)
    fake_hub_repo(
        cache,
        "bigscience/P3",
        {
            "ag_news_classify/train-00000-of-00001.parquet": news,
            "ag_news_classify/validation-00000-of-00001.parquet": imdb,  # not a training split
            "ag_news_classify_score_eval/train-00000-of-00001.parquet": news,  # rank-eval copy
            "cos_e_v1.11_explain_why_human/train-00000-of-00001.parquet": imdb,
            "piqa_what_is_the_correct_ending/train-00000-of-00001.parquet": imdb,  # benchmark
        },
    )
    set_params(
        workdir,
        **{
            "fetch.alpaca.path": write_pin(workdir / "a.hub.yaml", "tatsu-lab/alpaca", SHA, ["data/train-*.parquet"]),
            "fetch.codealpaca.path": write_pin(workdir / "c.hub.yaml", "sahil2801/CodeAlpaca-20k", "main"),
            "fetch.p3.path": write_pin(workdir / "p.hub.yaml", "bigscience/P3", "main"),
        },
    )
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    for source, local in (("alpaca", "alpaca.json"), ("codealpaca", "codealpaca.json")):
        assert run_stage("fetch", source, f"hub/{source}.jsonl", cwd=workdir, **env).returncode == 0
        local_params = workdir / "local"
        local_params.mkdir(exist_ok=True)
        shutil.copy(workdir / "params.yaml", local_params / "params.yaml")
        set_params(local_params, **{f"fetch.{source}.path": str(DEMO / local)})
        assert run_stage("fetch", source, "x.jsonl", cwd=local_params).returncode == 0
        assert (workdir / f"hub/{source}.jsonl").read_bytes() == (local_params / "x.jsonl").read_bytes()
        metrics = json.loads((workdir / f"hub/{source}.metrics.json").read_text())
        assert metrics["commit"] == SHA and metrics["revision"] == ("main" if source == "codealpaca" else SHA)
        assert metrics["repo"] == {"alpaca": "tatsu-lab/alpaca", "codealpaca": "sahil2801/CodeAlpaca-20k"}[source]
        local_metrics = json.loads((local_params / "x.metrics.json").read_text())
        assert (local_metrics["repo"], local_metrics["revision"], local_metrics["commit"]) == (None, None, None)

    result = run_stage("fetch", "p3", "hub/p3.jsonl", cwd=workdir, **env)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((workdir / "hub/p3.metrics.json").read_text())
    assert metrics["records_per_task"] == {"ag_news_classify": 14, "cos_e_v1.11_explain_why_human": 14}
    assert (metrics["revision"], metrics["commit"]) == ("main", SHA)  # the branch as pinned, the commit read
    assert metrics["repo"] == "bigscience/P3"  # the repo read: the fidelity table checks it is the paper's copy


def test_a_source_slot_reads_a_chat_file_with_renamed_fields(workdir: Path) -> None:
    """fetch.<source>.format and .columns: a messages file whose turns name their fields differently."""
    turns = [
        [{"speaker": "system", "text": "Be brief."}, {"speaker": "user", "text": "2+2?"},
         {"speaker": "assistant", "text": "4."}, {"speaker": "user", "text": "And 3+3?"},
         {"speaker": "assistant", "text": "6."}],
        [{"speaker": "user", "text": "Hello?"}, {"speaker": "assistant", "text": "  "}],  # empty answer: dropped
    ]  # fmt: skip
    chats = workdir / "chats.jsonl"
    chats.write_text("".join(json.dumps({"dialog": t}) + "\n" for t in turns))
    columns = {"messages": "dialog", "role": "speaker", "content": "text"}
    set_params(workdir, **{"fetch.codealpaca.path": str(chats), "fetch.codealpaca.format": "messages",
                           "fetch.codealpaca.columns": columns})  # fmt: skip
    records, metrics = fetched(workdir, "codealpaca")
    assert [(r["prompt"], r["response"]) for r in records] == [
        ("System: Be brief.\n\nUser: 2+2?\n\nAssistant: 4.\n\nUser: And 3+3?", "6.")
    ]
    assert metrics["format"] == "messages" and metrics["columns"] == columns and metrics["multi_turn"] == 1
    assert metrics["dropped"]["empty_response"] == 1 and metrics["rows_read"] == 2
    assert metrics["params"]["format"] == "messages" and metrics["repo"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fetch.alpaca.format": "csv"}, "fetch.alpaca.format=csv is not allowed"),
        ({"fetch.alpaca.columns": {"answer": "output"}}, "is not allowed: unknown key 'answer' for format alpaca"),
    ],
)
def test_a_bad_format_or_column_map_is_one_line_before_any_read(workdir: Path, change: dict, message: str) -> None:
    set_params(workdir, **change)
    assert message in fails(workdir, "alpaca")


def test_the_default_alpaca_read_is_todays(workdir: Path) -> None:
    records, metrics = fetched(workdir, "alpaca")
    set_params(workdir, **{"fetch.alpaca.columns": {"output": "output"}})  # the format reader, same names
    again, read = fetched(workdir, "alpaca")
    assert again == records and read["records"] == metrics["records"] and read["format"] == "alpaca"
