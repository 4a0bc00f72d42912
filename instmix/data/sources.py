"""Readers for the three instruction sources in their own published formats.

- Alpaca / CodeAlpaca: a JSON array of {instruction, input, output} (the GitHub and
  CodeAlpaca-20k files), or parquet with the same columns (tatsu-lab/alpaca on the hub).
- P3: one file per prompted task. Either `<task>.jsonl` with inputs/targets (or the GPT-3
  style prompt/completion used by the Self-Instruct T0 sample), or the hub's parquet layout
  `<task>/train-*.parquet` with inputs_pretokenized/targets_pretokenized.

Rows that are not usable (missing or non-text fields, empty text, a placeholder response,
text that is not valid Unicode, a record over MAX_CHARS) are counted by reason, never fatal. A
placeholder response is a whole one ("<nooutput>", "<No output>") or one opening with such a
bracketed tag ("<nooutput> This type of instruction cannot be fulfilled by a GPT model."): the
dataset's "no answer possible" marker, dropped either way.
Cleaning is counted too: Alpaca's placeholders for an empty input, matched after lowercasing and
dropping everything but letters ("<noinput>", "No input.", "<no input>" -> "noinput"), become
no input; control characters other than tab and newline (NUL included) are removed. A file that
cannot be parsed at all is fatal, one line naming the file and line (and column for JSON).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instmix.core.params import StageError
from instmix.core.records import Record, clean_text, record_id

# Alpaca's placeholders for empty fields, in the normalised spelling of `placeholder`; "noinput"
# also stands in for an empty output in the real data (<noinput> as a response).
NO_INPUT, NO_OUTPUT = {"noinput"}, {"nooutput", "noinput"}
MAX_CHARS = 100_000  # prompt + response; the longest P3 records are ~30K, a longer one is an accident
PLACEHOLDER_TAG = re.compile(r"\s*<([^<>]{1,20})>")  # a leading <tag>, checked by placeholder_prefix
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
END_OF_TEXT = "<|endoftext|>"  # closes every completion in GPT-3 style P3 files

# T0's training mixture (t-zero datasets.csv, do_train == BASE: 38 datasets), in P3's
# config-name spelling. The T0 paper and model card say "CommonsenseQA"; the t-zero code trains
# on cos_e (CommonsenseQA with explanations): P3's commonsense_qa_* tasks are not in this
# mixture. No evaluated benchmark is in here.
T0_TRAIN = (
    "glue_mrpc", "glue_qqp", "paws_labeled_final",
    "kilt_tasks_hotpotqa", "wiki_qa",
    "adversarial_qa_dbidaf", "adversarial_qa_dbert", "adversarial_qa_droberta",
    "duorc_SelfRC", "duorc_ParaphraseRC", "ropes", "quoref",
    "cos_e_v1.11", "cosmos_qa", "dream", "qasc", "quail", "quarel",
    "quartz", "sciq", "social_i_qa", "wiki_hop_original", "wiqa",
    "amazon_polarity", "app_reviews", "imdb", "rotten_tomatoes", "yelp_review_full",
    "common_gen", "wiki_bio",
    "cnn_dailymail_3.0.0", "gigaword", "multi_news", "samsum", "xsum",
    "ag_news", "dbpedia_14", "trec",
)  # fmt: skip

# P3 datasets whose prompts are built from a benchmark this project evaluates on.
BENCHMARK_DATASETS = {
    "ai2_arc": "ARC",
    "piqa": "PIQA",
    "race": "RACE",
    "hellaswag": "HellaSwag",
    "winogrande": "Winogrande",
    "hendrycks_test": "MMLU",
    "mmlu": "MMLU",
    "cais_mmlu": "MMLU",
}


class SourceFileError(StageError):
    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")


def normalise_name(name: str) -> str:
    """P3 task names replace odd characters with `_`; compare names the same way."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def belongs_to(task: str, dataset: str) -> bool:
    task, dataset = normalise_name(task), normalise_name(dataset)
    return task == dataset or task.startswith(dataset + "_")


def benchmark_of(name: str) -> str | None:
    """The evaluated benchmark a P3 dataset or task is built from, if any."""
    return next((bench for ds, bench in BENCHMARK_DATASETS.items() if belongs_to(name, ds)), None)


# ---------------------------------------------------------------------------- file formats


def _decode(path: Path) -> str:
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is harmless
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SourceFileError(path, line, f"not UTF-8 (byte 0x{data[err.start]:02x})") from None
    if not text.strip():
        raise SourceFileError(path, 1, "file is empty")
    return text


def hostile(err: Exception) -> str:
    if isinstance(err, RecursionError):
        return "nested too deeply"
    return "an integer of more than 4,300 digits" if "digits" in str(err) else str(err)


def read_json_array(path: Path) -> list[Any]:
    try:
        rows = json.loads(_decode(path))
    except json.JSONDecodeError as err:
        raise SourceFileError(path, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
    except (ValueError, RecursionError) as err:  # parses, but no Python value holds it
        raise SourceFileError(path, 1, f"unreadable JSON: {hostile(err)}") from None
    if not isinstance(rows, list):
        raise SourceFileError(path, 1, "expected a JSON array of records")
    return rows


def read_json_lines(path: Path) -> list[Any]:
    rows = []
    # split on "\n" only: str.splitlines() would also split at U+2028 inside JSON strings
    for number, line in enumerate(_decode(path).split("\n"), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise SourceFileError(path, number, f"invalid JSON line: {err.msg} (column {err.colno})") from None
            except (ValueError, RecursionError) as err:
                raise SourceFileError(path, number, f"unreadable JSON line: {hostile(err)}") from None
    return rows


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq  # imported here: local JSON runs should not pay for it

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types; all mean "unreadable"
        raise SourceFileError(path, 1, f"unreadable parquet: {err}".replace("\n", " ")) from None


def read_rows(path: Path) -> list[Any]:
    if path.suffix == ".parquet":
        return read_parquet(path)
    if path.suffix == ".jsonl":
        return read_json_lines(path)
    return read_json_array(path)


# ---------------------------------------------------------------------------- normalisation


class Drops(Counter[str]):
    """Rows dropped during normalisation, by reason (instmix.data.fetch.DROP_REASONS), and rows
    cleaned, by kind (CLEAN_KINDS)."""


CLEAN_KINDS = ("placeholder_input", "control_characters")


def placeholder(text: str) -> str:
    """The normalised spelling placeholders are matched in: lowercase letters only, short texts only."""
    return re.sub(r"[^a-z]", "", text.lower()) if len(text) <= 20 else text


def placeholder_prefix(text: str) -> bool:
    """A response opening with a bracketed no-answer tag ("<nooutput> This type of instruction
    cannot be fulfilled…"): the dataset's marker that no answer exists, whatever follows it.
    Brackets are required, so "No output is needed when…" or "<html>…" stay responses."""
    tag = PLACEHOLDER_TAG.match(text)
    return tag is not None and placeholder(tag.group(1)) in NO_OUTPUT


def _text_field(row: dict[str, Any], name: str, drops: Drops, *, required: bool = True) -> str | None:
    value = row.get(name)
    if value is None:
        if required:
            drops["missing_field"] += 1
            return None
        return ""
    if not isinstance(value, str):
        drops["non_text"] += 1
        return None
    return value


def make_record(source: str, orig_id: str, task: str | None, prompt: str, response: str, drops: Drops) -> Record | None:
    """Prompt and response -> a record, cleaned; None (counted in `drops`) when unusable."""
    if len(prompt) + len(response) > MAX_CHARS:
        drops["too_long"] += 1
        return None
    if CONTROL.search(prompt) or CONTROL.search(response):
        drops["control_characters"] += 1
        prompt, response = CONTROL.sub("", prompt), CONTROL.sub("", response)
    try:
        (prompt + response).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape such as "\ud800"
        drops["invalid_unicode"] += 1
        return None
    prompt, response = clean_text(prompt), clean_text(response)
    if not prompt:
        drops["empty_prompt"] += 1
        return None
    if not response:
        drops["empty_response"] += 1
        return None
    return Record(
        id=record_id(source, orig_id), source=source, orig_id=orig_id, task=task, prompt=prompt, response=response
    )


def instruction_record(source: str, orig_id: str, row: Any, drops: Drops, join: str = " ") -> Record | None:
    """Alpaca-style row -> record. prompt = instruction, then `join` and the input if any."""
    if not isinstance(row, dict):
        drops["non_text"] += 1
        return None
    instruction = _text_field(row, "instruction", drops)
    output = _text_field(row, "output", drops) if instruction is not None else None
    given = _text_field(row, "input", drops, required=False) if output is not None else None
    if instruction is None or output is None or given is None:
        return None
    given = given.strip()
    if given and placeholder(given) in NO_INPUT:
        drops["placeholder_input"] += 1
        given = ""
    if output.strip() and (placeholder(output.strip()) in NO_OUTPUT or placeholder_prefix(output)):
        drops["placeholder_response"] += 1
        return None
    prompt = instruction.strip() + (join + given if given else "")
    return make_record(source, orig_id, None, prompt, output, drops)


P3_FIELD_PAIRS = (
    ("inputs_pretokenized", "targets_pretokenized"),  # hub parquet (inputs/targets are token ids)
    ("inputs", "targets"),
    ("prompt", "completion"),  # GPT-3 style, completion ends with <|endoftext|>
)


def p3_record(task: str, orig_id: str, row: Any, drops: Drops) -> Record | None:
    if not isinstance(row, dict):
        drops["non_text"] += 1
        return None
    pair = next((p for p in P3_FIELD_PAIRS if p[0] in row and p[1] in row), None)
    if pair is None:
        drops["missing_field"] += 1
        return None
    prompt, target = (_text_field(row, name, drops) for name in pair)
    if prompt is None or target is None:
        return None
    target = target.strip().removesuffix(END_OF_TEXT)
    return make_record("p3", orig_id, task, prompt, target, drops)


# ---------------------------------------------------------------------------- sources


def instruction_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".parquet") and p.is_file())
    if not files:
        raise SourceFileError(path, 1, "no .json or .parquet files in this directory")
    return files


def read_instructions(source: str, path: Path, drops: Drops, join: str = " ") -> Iterator[Record]:
    files = instruction_files(path)
    for file in files:
        prefix = "" if len(files) == 1 else f"{file.relative_to(path).as_posix()}:"
        for index, row in enumerate(read_rows(file)):
            record = instruction_record(source, f"{prefix}{index}", row, drops, join)
            if record is not None:
                yield record


def p3_task_files(directory: Path) -> dict[str, list[Path]]:
    """Task name -> its files: `<task>.jsonl`, or the hub's `<task>/train-*.parquet`."""
    tasks: dict[str, list[Path]] = {p.stem: [p] for p in directory.glob("*.jsonl")}
    for shard in sorted(directory.glob("*/train-*.parquet")):
        tasks.setdefault(shard.parent.name, []).append(shard)
    return dict(sorted(tasks.items()))


def read_p3_task(task: str, files: list[Path], drops: Drops) -> list[Record]:
    rows = [row for file in files for row in read_rows(file)]
    records = (p3_record(task, f"{task}:{i}", row, drops) for i, row in enumerate(rows))
    return [r for r in records if r is not None]
