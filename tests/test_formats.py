"""instmix.data.formats: the published formats, the column map, the multi-turn rule, Alpaca placeholders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from instmix.core.records import record_id
from instmix.data import fetch, formats, sources
from instmix.data.formats import FormatError, read_format
from tests.conftest import DEMO


def write(path: Path, rows: list[Any]) -> Path:
    """A JSON array for .json, JSON lines for .jsonl."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(json.dumps(rows, indent=2))
    return path


def by_orig_id(records: list[dict]) -> dict[str, dict]:
    return {r["orig_id"]: r for r in records}


def one_line_error(path: Path, fmt: str, columns: dict | None = None) -> str:
    with pytest.raises(FormatError) as err:
        read_format("s", path, fmt, columns)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_drop_reasons_extend_fetch() -> None:
    assert formats.DROP_REASONS[: len(fetch.DROP_REASONS)] == fetch.DROP_REASONS
    assert formats.CLEAN_KINDS[: len(sources.CLEAN_KINDS)] == sources.CLEAN_KINDS


# ---------------------------------------------------------------------------- alpaca


ALPACA = [
    {"question": "Name a colour.", "context": "", "answer": "Blue."},
    {"question": "Translate.", "context": "Bonjour", "answer": "Hello."},
    {"question": "Write a poem.", "context": "", "answer": "<nooutput> This type of instruction cannot be fulfilled."},
    {"question": "Paint it.", "context": "", "answer": "<No Output>"},
    {"question": "Make a button.", "context": "", "answer": "<button>Save</button>"},
    {"question": "Say nothing.", "context": "<noinput>", "answer": "No output is needed here."},
]


def test_alpaca_renamed_columns_and_placeholder_responses(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.json", ALPACA)
    columns = {"instruction": "question", "input": "context", "output": "answer"}
    records, metrics = read_format("qa", path, "alpaca", columns)
    rows = by_orig_id(records)
    assert sorted(rows) == ["0", "1", "4", "5"]  # 2: a placeholder opening the response, 3: a whole one
    assert rows["1"]["prompt"] == "Translate. Bonjour" and rows["1"]["response"] == "Hello."
    assert rows["4"]["response"] == "<button>Save</button>"  # a tag that is not a placeholder
    assert rows["5"] == {
        "id": record_id("qa", "5"),
        "source": "qa",
        "orig_id": "5",
        "task": None,
        "prompt": "Say nothing.",
        "response": "No output is needed here.",  # no brackets: a real answer
    }
    assert metrics["dropped"]["placeholder_response"] == 2 and metrics["cleaned"]["placeholder_input"] == 1
    assert metrics["rows_read"] == 6 and metrics["records"] == 4 and metrics["columns"] == columns


def test_fetch_alpaca_reader_drops_a_placeholder_prefix(tmp_path: Path) -> None:
    rows = [{"instruction": r["question"], "input": r["context"], "output": r["answer"]} for r in ALPACA]
    drops = sources.Drops()
    records = list(sources.read_instructions("alpaca", write(tmp_path / "a.json", rows), drops))
    assert [r["orig_id"] for r in records] == ["0", "1", "4", "5"]
    assert drops["placeholder_response"] == 2


def test_alpaca_format_reads_the_demo_as_fetch_does() -> None:
    records, metrics = read_format("alpaca", DEMO / "alpaca.json", "alpaca")
    drops = sources.Drops()
    assert records == list(sources.read_instructions("alpaca", DEMO / "alpaca.json", drops))
    assert metrics["rows_read"] == 56 and metrics["dropped"]["placeholder_response"] == 1
    # The demo's only tagged response is a whole placeholder, dropped before: its fetch output is unchanged.
    rows = json.loads((DEMO / "alpaca.json").read_text())
    assert [i for i, row in enumerate(rows) if sources.placeholder_prefix(row["output"])] == [22]
    assert rows[22]["output"] == "<nooutput>"


# ---------------------------------------------------------------------------- conversations


def sharegpt(*turns: tuple[str, str], **extra: Any) -> dict:
    return {"conversations": [{"from": who, "value": text} for who, text in turns], **extra}


def test_sharegpt_conversations(tmp_path: Path) -> None:
    rows = [
        sharegpt(("human", "Hi there."), ("gpt", "Hello!")),
        sharegpt(
            ("system", "Be brief."),
            ("human", "What is 2+2?"),
            ("gpt", "4."),
            ("user", "And 3+3?"),
            ("chatgpt", "6."),
        ),
        sharegpt(("human", "Anyone?"), ("gpt", "  ")),  # empty last assistant turn
        sharegpt(("human", "Q1"), ("gpt", "A1"), ("human", "Q2 with no answer")),  # trailing user turn
        sharegpt(("human", "Only a question.")),  # no assistant turn
        sharegpt(("Human", "Capital of France?"), ("GPT", "Paris."), system="Answer in one word."),
    ]
    records, metrics = read_format("chat", write(tmp_path / "chat.jsonl", rows), "sharegpt")
    got = by_orig_id(records)
    assert sorted(got) == ["0", "1", "3", "5"]
    assert got["0"]["prompt"] == "Hi there." and got["0"]["response"] == "Hello!"  # one user turn: as is
    assert got["1"]["prompt"] == "System: Be brief.\n\nUser: What is 2+2?\n\nAssistant: 4.\n\nUser: And 3+3?"
    assert got["1"]["response"] == "6."
    assert got["3"]["prompt"] == "Q1" and got["3"]["response"] == "A1"  # the unanswered turn is removed
    assert got["5"]["prompt"] == "System: Answer in one word.\n\nUser: Capital of France?"
    assert metrics["dropped"]["empty_response"] == 1 and metrics["dropped"]["no_assistant_turn"] == 1
    assert metrics["cleaned"]["trailing_turns"] == 1
    assert metrics["multi_turn"] == 1 and metrics["turns"] == 2 + 5 + 2 + 3
    assert metrics["rows_read"] == 6 and metrics["records"] == 4
    assert [r["id"] for r in records] == [record_id("chat", str(i)) for i in (0, 1, 3, 5)]


def test_sharegpt_renamed_columns(tmp_path: Path) -> None:
    rows = [{"dialog": [{"speaker": "user", "text": "Ping?"}, {"speaker": "assistant", "text": "Pong."}]}]
    path = write(tmp_path / "d.json", rows)
    columns = {"conversations": "dialog", "from": "speaker", "value": "text"}
    records, _ = read_format("d", path, "sharegpt", columns)
    assert [(r["prompt"], r["response"]) for r in records] == [("Ping?", "Pong.")]
    assert "no row has the field 'conversations'" in one_line_error(path, "sharegpt")


def messages(*turns: tuple[str, Any]) -> dict:
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


def test_messages_turns_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        messages(
            ("system", "You are terse."), ("user", "Hi"), ("assistant", ""),
            ("user", "Name a fruit."), ("assistant", "Apple."),
        ),
        messages(("user", "Bell\u0007 rings"), ("assistant", "Ding.")),
        messages(("user", [{"type": "text", "text": "parts"}]), ("assistant", "x")),  # content not a string
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},  # a turn without content
        {"messages": "not a list"},
        messages(("assistant", "Unprompted.")),  # nothing before the response
        messages(("user", "Q"), ("assistant", "\u0000")),  # only a control character
        messages(("user", "lone \ud800"), ("assistant", "A")),
    ]  # fmt: skip
    records, metrics = read_format("m", write(tmp_path / "m.json", rows), "messages")
    got = by_orig_id(records)
    assert sorted(got) == ["0", "1"]
    # The empty assistant turn in the middle is left out; the record is kept.
    assert got["0"]["prompt"] == "System: You are terse.\n\nUser: Hi\n\nUser: Name a fruit."
    assert got["1"]["prompt"] == "Bell rings"
    dropped = {k: v for k, v in metrics["dropped"].items() if v}
    assert dropped == {"non_text": 2, "missing_field": 1, "empty_prompt": 1, "empty_response": 1, "invalid_unicode": 1}
    assert metrics["cleaned"]["empty_turns"] == 1 and metrics["cleaned"]["control_characters"] == 1
    assert metrics["multi_turn"] == 0 and metrics["turns"] == 4 + 2
    assert metrics["rows_read"] == len(rows)


def test_prompt_completion_strings_and_conversations(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Sky colour?", "completion": " Blue.<|endoftext|>"},
        {"prompt": "Empty?", "completion": "<|endoftext|>"},
        {
            "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}],
            "completion": [{"role": "assistant", "content": "Hi!"}],
        },
        {"prompt": "text", "completion": [{"role": "assistant", "content": "mixed"}]},
        {"prompt": "no completion"},
    ]
    records, metrics = read_format("pc", write(tmp_path / "pc.jsonl", rows), "prompt_completion")
    assert [(r["orig_id"], r["prompt"], r["response"]) for r in records] == [
        ("0", "Sky colour?", "Blue."),
        ("2", "System: Be kind.\n\nUser: Hello", "Hi!"),
    ]
    dropped = {k: v for k, v in metrics["dropped"].items() if v}
    assert dropped == {"empty_response": 1, "non_text": 1, "missing_field": 1}


def test_folders_prefix_orig_ids_and_reads_are_deterministic(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    (folder / "b").mkdir(parents=True)
    write(folder / "a.jsonl", [messages(("user", "1"), ("assistant", "one"))])
    write(folder / "b" / "c.json", [messages(("user", "2"), ("assistant", "two"))])
    (folder / "notes.txt").write_text("not read")
    first, _ = read_format("f", folder, "messages")
    assert [r["orig_id"] for r in first] == ["a.jsonl:0", "b/c.json:0"]
    assert read_format("f", folder, "messages")[0] == first


# ---------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize(
    ("fmt", "columns", "message"),
    [
        ("chatml", None, "unknown format 'chatml' (known: alpaca, sharegpt, messages, prompt_completion)"),
        ("alpaca", {"question": "q"}, "unknown key 'question' for format alpaca (known: instruction, input, output)"),
        ("sharegpt", {"from": ""}, "columns.from: expected a field name, got ''"),
        ("alpaca", {"instruction": "input"}, "columns: instruction and input both read the field 'input'"),
        ("messages", ["role"], "columns: expected a map of field names, got list"),
    ],
)  # fmt: skip
def test_bad_column_maps(tmp_path: Path, fmt: str, columns: Any, message: str) -> None:
    path = write(tmp_path / "x.json", [messages(("user", "q"), ("assistant", "a"))])
    assert message in one_line_error(path, fmt, columns)


def test_a_field_no_row_has_is_a_wrong_map(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.json", ALPACA)
    error = one_line_error(path, "alpaca", {"instruction": "question", "input": "context"})
    assert error == (
        f"{path}: no row has the field 'output' that format alpaca reads as output (name it in columns.output);"
        " the first row's fields: 'answer', 'context', 'question'"
    )
    turns = write(tmp_path / "t.json", [{"messages": [{"role": "user", "text": "q"}]}])
    assert "no turn has the field 'content' that format messages reads as content" in one_line_error(turns, "messages")


def test_unknown_role_names_row_and_turn(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [sharegpt(("human", "q"), ("gpt", "a")), sharegpt(("human", "q"), ("bot", "a"))])
    assert one_line_error(path, "sharegpt") == (
        f"{path}: row 1, turn 1: unknown role 'bot' for format sharegpt"
        " (known: system, user, assistant, human, gpt, chatgpt)"
    )
    path = write(tmp_path / "m.json", [messages(("user", "q"), ("gpt", "a"))])
    assert "row 0, turn 1: unknown role 'gpt' for format messages" in one_line_error(path, "messages")


# ---------------------------------------------------------------------------- real files (../shared/data)


def test_real_alpaca_drops_placeholder_prefixed_responses(shared_data: Path) -> None:
    sample = shared_data / "alpaca" / "alpaca_data_sample.json"
    rows = json.loads(sample.read_text())
    assert rows[8]["output"].startswith("<nooutput> This type of instruction cannot be fulfilled")
    assert rows[1299]["output"].startswith("<nooutput> (The output of this instruction")
    records, metrics = read_format("alpaca", sample, "alpaca")
    assert {"8", "306", "1299", "1502"}.isdisjoint(r["orig_id"] for r in records)
    assert metrics["dropped"]["placeholder_response"] == 4 and metrics["rows_read"] == len(rows)
    assert not any(r["response"].lower().startswith(("<nooutput>", "<no output>")) for r in records)
    assert records == list(sources.read_instructions("alpaca", sample, sources.Drops()))  # fetch's reader agrees


def test_real_renamed_column_reads_the_same_records(shared_data: Path) -> None:
    # new_codealpaca.json carries `response`, a copy of `output`: read either way, the same records.
    path = shared_data / "codealpaca" / "new_codealpaca.json"
    by_output, _ = read_format("c", path, "alpaca")
    by_response, metrics = read_format("c", path, "alpaca", {"output": "response"})
    assert by_response == by_output and metrics["records"] == 4535


def test_real_prompt_completion_file_reads_as_the_p3_reader(shared_data: Path) -> None:
    # The Self-Instruct P3 sample is GPT-3 prompt/completion: the generic reader keeps the same text.
    task = "glue_mrpc_generate_sentence"
    path = shared_data / "p3_t0_train_sample" / f"{task}.jsonl"
    records, metrics = read_format("p3", path, "prompt_completion")
    p3 = sources.read_p3_task(task, [path], sources.Drops())
    assert [(r["prompt"], r["response"]) for r in records] == [(r["prompt"], r["response"]) for r in p3]
    assert metrics["records"] == len(p3) > 0
