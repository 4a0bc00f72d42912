"""Lay out one NLP benchmark in the columns lm-eval's built-in task reads (stage benchmarks@<task>).

`eval.benchmarks.<task>` names the source: a file (MMLU: a folder) in a public format, or a
`*.hub.yaml` pin, which means lm-eval's built-in task reads the hub itself at eval time.
The conversion only moves fields into the hub's column layout (docs/hub-layouts.md section 4);
the prompts, choices and metrics stay lm-eval's own (configs/lm_eval/, instmix.nlp.harness).

Source formats read (those of ../shared/data; the demo files in assets/demo/benchmarks copy them):
- arc_challenge: llm-foundry's ICL jsonl (query "Question: ...", choices, gold) -> test.jsonl
  with id, question, choices {text, label}, answerKey.
- winogrande: dev.jsonl (sentence, option1, option2, answer; or the aligned `dev-labels.lst`)
  -> validation.jsonl.
- piqa: valid.jsonl (goal, sol1, sol2) plus the aligned `valid-labels.lst` -> validation.jsonl.
- mmlu: a folder of `<subject>_test.csv` (header question,choice0-3,answer 0-3; or hendrycks'
  headerless CSVs with A-D) -> `<subject>.jsonl` with question, subject, choices, answer.
- race: one row per question (example_id, article, question, options, answer) -> test.jsonl
  with one doc per article and its questions in `problems`, as lm-eval parses them.
- hellaswag: the val text dump (`.txt` or `.txt.bz2`, 6 lines a task) or jsonl rows (HF's
  ctx_a/ctx_b, or the reduced `context` schema) -> validation.jsonl with activity_label,
  ctx_a, ctx_b, ctx, endings, label.

The stage writes <out dir>/<split>.jsonl and <out dir>.metrics.json: docs, the source format and
what could not be carried over from it. A pin writes <out dir>/hub.json (the repo and the commit its
branch resolves to now, so that every model is scored on the same rows) and, for decontamination
only, a copy of the rows the built-in task scores at that commit in the same layout (eval_nlp reads
the hub through lm-eval, not this copy).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instmix.core import hub
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import ParamsError, StageError
from instmix.data.sources import SourceFileError

SPLIT = {"arc_challenge": "test", "winogrande": "validation", "piqa": "validation", "race": "test"}
SPLIT |= {"hellaswag": "validation", "mmlu": "test"}  # the split each built-in task scores
HUB_FILE = "hub.json"
# The hub config each built-in task reads (lm_eval/tasks/<task>.yaml `dataset_name`); MMLU: one per subject.
DATASET_NAME = {"arc_challenge": "ARC-Challenge", "winogrande": "winogrande_xl", "race": "high"}
DATASET_NAME |= {"piqa": None, "hellaswag": None}
LETTERS = "ABCDEFGH"

Doc = dict[str, Any]


def lm_eval_tasks_dir() -> Path:
    """The installed lm_eval/tasks folder, found without importing lm_eval (slow)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise StageError("lm_eval is not installed (pip install lm-eval)")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def builtin_subjects() -> list[str]:
    """The 57 MMLU subjects lm-eval defines (mmlu/default/mmlu_<subject>.yaml)."""
    return sorted(p.stem.removeprefix("mmlu_") for p in (lm_eval_tasks_dir() / "mmlu" / "default").glob("mmlu_*.yaml"))


# ---------------------------------------------------------------------------- reading


def read_lines(path: Path) -> list[str]:
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise StageError(f"cannot read {path}: {err}") from err


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SourceFileError(path, number, f"not JSON: {err.msg}") from err
        if not isinstance(row, dict):
            raise SourceFileError(path, number, "not a JSON object")
        rows.append(row)
    if not rows:
        raise StageError(f"{path} holds no rows")
    return rows


def read_labels(path: Path, count: int) -> list[str]:
    """A `.lst` file: one label per line, aligned with the rows of the data file."""
    labels = [line.strip() for line in read_lines(path) if line.strip()]
    if len(labels) != count:
        raise StageError(f"{path} has {len(labels)} labels for {count} rows; the files must be aligned")
    return labels


def labels_file(data: Path) -> Path:
    return data.with_name(f"{data.name.split('.')[0]}-labels.lst")  # valid.jsonl -> valid-labels.lst


def need(row: dict[str, Any], fields: dict[str, type], path: Path, number: int) -> None:
    for name, kind in fields.items():
        if not isinstance(row.get(name), kind):
            raise SourceFileError(path, number, f"field {name!r} missing or not {kind.__name__}")


# ---------------------------------------------------------------------------- converters


def arc(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    """llm-foundry's ICL copy: the question is `query` minus "Question: "; the original ids
    and choice labels are gone. lm-eval shows neither (the target is the choice index), so
    labels A, B, C, ... and the row number as id leave every prompt and target unchanged."""
    docs = []
    for number, row in enumerate(read_rows(path), 1):
        need(row, {"query": str, "choices": list, "gold": int}, path, number)
        query, choices, gold = row["query"], row["choices"], row["gold"]
        if not query.startswith("Question: "):
            raise SourceFileError(path, number, "query does not start with 'Question: ' (llm-foundry ARC format)")
        if not 2 <= len(choices) <= len(LETTERS) or not 0 <= gold < len(choices):
            raise SourceFileError(path, number, f"gold {gold} does not index {len(choices)} choices")
        labels = list(LETTERS[: len(choices)])
        docs.append(
            {
                "id": str(number - 1),
                "question": query.removeprefix("Question: "),
                "choices": {"text": choices, "label": labels},
                "answerKey": labels[gold],
            }
        )
    return docs, {"format": "llm-foundry", "reconstructed": {"id": len(docs), "choice_labels": len(docs)}}


def winogrande(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    rows = read_rows(path)
    labels_path = labels_file(path)
    labels = read_labels(labels_path, len(rows)) if labels_path.exists() else None
    docs = []
    for number, row in enumerate(rows, 1):
        need(row, {"sentence": str, "option1": str, "option2": str}, path, number)
        answer = str(row["answer"]) if "answer" in row else None
        if labels is not None:
            if answer is not None and answer != labels[number - 1]:
                raise SourceFileError(path, number, f"answer {answer} but {labels_path.name} says {labels[number - 1]}")
            answer = labels[number - 1]
        if answer not in ("1", "2"):
            raise SourceFileError(path, number, f"answer {answer!r} is not 1 or 2 (and no {labels_path.name})")
        if "_" not in row["sentence"]:
            raise SourceFileError(path, number, "sentence has no blank '_'")
        docs.append({k: row[k] for k in ("sentence", "option1", "option2")} | {"answer": answer})
    return docs, {"format": "winogrande", "labels_file": labels is not None}


def piqa(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    rows = read_rows(path)
    labels_path = labels_file(path)
    if not labels_path.exists():
        raise StageError(f"{labels_path} is missing: PIQA's labels live beside the data file")
    labels = read_labels(labels_path, len(rows))
    docs = []
    for number, (row, label) in enumerate(zip(rows, labels, strict=True), 1):
        need(row, {"goal": str, "sol1": str, "sol2": str}, path, number)
        if label not in ("0", "1"):
            raise SourceFileError(labels_path, number, f"label {label!r} is not 0 or 1")
        docs.append({k: row[k] for k in ("goal", "sol1", "sol2")} | {"label": int(label)})
    return docs, {"format": "piqa"}


MMLU_HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


def mmlu_subjects(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise StageError(f"{folder} is not a folder of <subject>_test.csv files")
    files = {p.name.removesuffix("_test.csv"): p for p in sorted(folder.glob("*_test.csv"))}
    if not files:
        raise StageError(f"{folder} holds no <subject>_test.csv file")
    unknown = sorted(set(files) - set(builtin_subjects()))
    if unknown:
        raise StageError(f"{files[unknown[0]]}: {unknown[0]!r} is not one of lm-eval's 57 MMLU subjects")
    return files


def mmlu_subject(subject: str, path: Path) -> list[Doc]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StageError(f"cannot read {path}: {err}") from err
    header = rows[:1] == [MMLU_HEADER]  # the reformatted copy; hendrycks' own CSVs have none and use A-D
    docs = []
    for number, row in enumerate(rows[1:] if header else rows, 2 if header else 1):
        if len(row) != 6:
            raise SourceFileError(path, number, f"{len(row)} columns, expected 6")
        answer = row[5].strip()
        index = ("0123" if header else "ABCD").find(answer) if len(answer) == 1 else -1
        if index < 0:
            raise SourceFileError(path, number, f"answer {answer!r} is not {'0-3' if header else 'A-D'}")
        docs.append({"question": row[0], "subject": subject, "choices": row[1:5], "answer": index})
    if not docs:
        raise StageError(f"{path} holds no questions")
    return docs


def race(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    """lm-eval's race scores one doc per article: the earlier questions of the article are
    shown with their answers and only the last one is scored. `problems` is the Python
    literal of the question list, which lm-eval reads with ast.literal_eval."""
    articles: dict[str, Doc] = {}
    rows = read_rows(path)
    for number, row in enumerate(rows, 1):
        need(row, {"example_id": str, "article": str, "question": str, "options": list, "answer": str}, path, number)
        if len(row["options"]) != 4 or row["answer"] not in ("A", "B", "C", "D"):
            raise SourceFileError(path, number, "RACE needs 4 options and an answer A-D")
        doc = articles.setdefault(row["example_id"], {"article": row["article"], "problems": []})
        if doc["article"] != row["article"]:
            raise SourceFileError(path, number, f"article text differs from earlier rows of {row['example_id']}")
        doc["problems"].append({"answer": row["answer"], "options": row["options"], "question": row["question"]})
    docs = [{"article": d["article"], "problems": repr(d["problems"])} for d in articles.values()]
    return docs, {"format": "race-per-question", "questions": len(rows), "questions_scored": len(docs)}


def split_context(ctx: str) -> tuple[str, str]:
    """(ctx_a, ctx_b) from HellaSwag's joined ctx. ActivityNet contexts end in an unfinished
    noun phrase (ctx_b, which lm-eval capitalises), WikiHow ones in a full sentence (ctx_b
    empty): ctx_b is what follows the last sentence end, when the context does not end in one."""
    ctx = ctx.strip()
    if re.search(r"[.!?][\"')\]]*$", ctx):
        return ctx, ""
    ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]* ", ctx)]
    if not ends:
        return "", ctx
    return ctx[: ends[-1] - 1], ctx[ends[-1] :]


def hellaswag_doc(label: str, ctx_a: str, ctx_b: str, endings: list[str], gold: int) -> Doc:
    ctx = f"{ctx_a} {ctx_b}" if ctx_b else ctx_a
    return {"activity_label": label, "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": ctx, "endings": endings, "label": str(gold)}


def hellaswag_text(path: Path) -> Iterator[Doc]:
    """The text dump: `activity_label: ctx`, the gold index, then the four endings."""
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 6:
        raise StageError(f"{path}: {len(lines)} lines is not a multiple of 6 (context, label, 4 endings)")
    for start in range(0, len(lines), 6):
        head, gold, *endings = lines[start : start + 6]
        label, sep, ctx = head.partition(": ")
        if not sep:
            raise SourceFileError(path, start + 1, "no 'activity label: ' prefix")
        if gold not in ("0", "1", "2", "3"):
            raise SourceFileError(path, start + 2, f"label {gold!r} is not 0-3")
        yield hellaswag_doc(label, *split_context(ctx), endings, int(gold))


def hellaswag_jsonl(path: Path) -> Iterator[Doc]:
    """HF rows (ctx_a and ctx_b kept as they are) or the reduced schema with `context` only."""
    for number, row in enumerate(read_rows(path), 1):
        need(row, {"activity_label": str, "endings": list}, path, number)
        if str(row.get("label")) not in ("0", "1", "2", "3") or len(row["endings"]) != 4:
            raise SourceFileError(path, number, "HellaSwag needs 4 endings and a label 0-3")
        label, endings, gold = row["activity_label"], row["endings"], int(row["label"])
        if isinstance(row.get("ctx_a"), str) and isinstance(row.get("ctx_b"), str):
            yield hellaswag_doc(label, row["ctx_a"], row["ctx_b"], endings, gold)
        else:
            need(row, {"context": str}, path, number)
            yield hellaswag_doc(label, *split_context(row["context"]), endings, gold)


def hellaswag(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    text = path.name.endswith((".txt", ".txt.bz2"))
    docs = list(hellaswag_text(path) if text else hellaswag_jsonl(path))
    split_known = not text and all("ctx_a" in r for r in read_rows(path))
    stats = {
        "format": "text-dump" if text else "jsonl",
        "ctx_b_guessed": 0 if split_known else sum(bool(d["ctx_b"]) for d in docs),
        # The dump stored endings stripped after preprocessing: an ending that began with a
        # WikiHow marker ("[substeps] ...") has lost the leading space lm-eval keeps.
        "endings_whitespace_exact": not text,
    }
    return docs, stats


CONVERTERS = {"arc_challenge": arc, "winogrande": winogrande, "piqa": piqa, "race": race, "hellaswag": hellaswag}


# ---------------------------------------------------------------------------- stage


def convert(task: str, source: Path, out: Path) -> dict[str, Any]:
    """Write the task's docs under `out`; returns the metrics."""
    if task == "mmlu":
        subjects = {name: mmlu_subject(name, path) for name, path in mmlu_subjects(source).items()}
        for name, docs in subjects.items():
            write_jsonl(out / f"{name}.jsonl", docs)
        per_subject = {name: len(docs) for name, docs in subjects.items()}
        stats = {"format": "mmlu-csv", "subjects": len(subjects), "docs_per_subject": per_subject}
        return {"docs": sum(per_subject.values()), "split": SPLIT[task], **stats}
    docs, stats = CONVERTERS[task](source)
    write_jsonl(out / f"{SPLIT[task]}.jsonl", docs)
    return {"docs": len(docs), "split": SPLIT[task], **stats}


def hub_docs(task: str, repo: str, commit: str) -> dict[str, list[Doc]]:
    """File stem -> the rows the built-in task scores, read from the hub at `commit`."""
    from datasets import load_dataset

    configs = {s: s for s in builtin_subjects()} if task == "mmlu" else {SPLIT[task]: DATASET_NAME[task]}
    docs = {}
    for stem, config in configs.items():
        try:
            docs[stem] = [dict(row) for row in load_dataset(repo, config, split=SPLIT[task], revision=commit)]
        except Exception as err:  # the hub and datasets raise many types; the user needs one line
            raise hub.hub_error(repo, commit, err) from err
    return docs


def prepare(task: str, source: str, out: Path) -> dict[str, Any]:
    """Convert a local source under `out`, or record a hub pin there; returns the metrics."""
    if hub.is_pin(source):
        pin = hub.read_pin(source)
        commit = hub.pinned_commit(pin)  # every model is then scored on this one commit
        docs = hub_docs(task, pin.repo, commit)  # all read before anything is written
        for stem, rows in docs.items():
            write_jsonl(out / f"{stem}.jsonl", rows)
        write_json(out / HUB_FILE, {"repo": pin.repo, "revision": commit})
        counts = {"docs": sum(map(len, docs.values())), "split": SPLIT[task]}
        return {"source": "hub", "repo": pin.repo, "revision": pin.revision, "commit": commit, **counts,
                "params": {"path": source}}  # fmt: skip
    if not Path(source).exists():
        raise ParamsError(f"eval.benchmarks.{task}", source, "an existing file or folder, or a *.hub.yaml pin")
    hub.go_offline()
    return {"source": "local", **convert(task, Path(source), out), "params": {"path": source}}
