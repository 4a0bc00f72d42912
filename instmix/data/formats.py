"""Readers for the instruction formats people publish, turning a file's rows into records.

    records, metrics = read_format("mychat", Path("chats.jsonl"), "sharegpt", {"conversations": "dialog"})

A file is a JSON array (`.json`), JSON lines (`.jsonl`) or parquet; a folder is read file by
file (`.json`, `.jsonl`, `.parquet`, sorted), its records' orig_id prefixed with the file's path.
Formats, each with the field names it reads by default:

- `alpaca`: instruction, input (optional), output: today's Alpaca/CodeAlpaca rules, placeholders
  included (instmix.data.sources.instruction_record).
- `sharegpt`: conversations, a list of {from, value} turns (roles human/user, gpt/assistant/chatgpt,
  system), and an optional top-level system string (LLaMA-Factory's sharegpt layout).
- `messages`: messages, a list of {role, content} turns (roles system/user/assistant): TRL's and
  open-instruct's conversational format.
- `prompt_completion`: prompt and completion strings (TRL; a trailing <|endoftext|>, the GPT-3
  fine-tuning end marker, is removed), or both lists of {role, content} turns (TRL's
  conversational prompt-completion), read as one conversation.

The column map renames fields, {format's name: the file's name}, e.g. {"instruction": "question",
"output": "answer"} or {"conversations": "dialog", "from": "speaker", "value": "text"}. Keys are
the format's names above (`messages` and conversational `prompt_completion` turns: role, content);
an unknown key, a non-string name or two names reading one field is a one-line error.

A conversation becomes one record: the LAST assistant turn is the response, every earlier turn
(system included) the prompt. A prompt of one user turn is its text as is (as Alpaca's
instruction); otherwise each turn is "<Role>: <text>" (System, User, Assistant), joined by a blank
line. Turns after the last assistant turn have no answer: they are removed and the record kept
(cleaned.trailing_turns); empty earlier turns are left out (cleaned.empty_turns). Dropped and
counted: no assistant turn (no_assistant_turn), an empty last assistant turn (empty_response),
nothing before it (empty_prompt). An unknown role, or a required field no row has, stops the read
with one line (rows are numbered from 0, as orig_id); anything else unusable in one row drops that
row, counted by reason, with the cleaning rules of instmix.data.sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instmix.core.params import StageError
from instmix.core.records import Record, clean_text
from instmix.data import sources
from instmix.data.sources import CONTROL, END_OF_TEXT, Drops

COLUMNS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output"),
    "sharegpt": ("conversations", "from", "value", "system"),
    "messages": ("messages", "role", "content"),
    "prompt_completion": ("prompt", "completion", "role", "content"),
}
FORMATS = tuple(COLUMNS)
REQUIRED = {
    "alpaca": ("instruction", "output"),
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
}
# The turn lists of each format and the (role, text) keys of their turns.
TURN_LISTS = {"sharegpt": ("conversations",), "messages": ("messages",), "prompt_completion": ("prompt", "completion")}
TURN_KEYS = {"sharegpt": ("from", "value"), "messages": ("role", "content"), "prompt_completion": ("role", "content")}
CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
ROLES = {
    "sharegpt": CHAT_ROLES | {"human": "user", "gpt": "assistant", "chatgpt": "assistant"},
    "messages": CHAT_ROLES,
    "prompt_completion": CHAT_ROLES,
}
MARKERS = {"system": "System", "user": "User", "assistant": "Assistant"}

# instmix.data.fetch.DROP_REASONS (a test keeps them in step) plus the conversations' own.
DROP_REASONS = ("missing_field", "non_text", "empty_prompt", "empty_response", "placeholder_response")
DROP_REASONS += ("invalid_unicode", "too_long", "no_assistant_turn")
CLEAN_KINDS = (*sources.CLEAN_KINDS, "trailing_turns", "empty_turns")
SUFFIXES = (".json", ".jsonl", ".parquet")

Turn = tuple[str, str]  # (system | user | assistant, text)


class FormatError(StageError):
    """A file or a column map a format cannot read: one line."""


def column_map(fmt: str, columns: dict[str, str] | None = None) -> dict[str, str]:
    """Every field name the format reads -> the file's name for it, `columns` applied."""
    if fmt not in COLUMNS:
        raise FormatError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    columns = columns or {}
    if not isinstance(columns, dict):
        raise FormatError(f"columns: expected a map of field names, got {type(columns).__name__}")
    known = COLUMNS[fmt]
    for key, name in columns.items():
        if key not in known:
            raise FormatError(f"columns: unknown key {key!r} for format {fmt} (known: {', '.join(known)})")
        if not isinstance(name, str) or not name:
            raise FormatError(f"columns.{key}: expected a field name, got {name!r}")
    resolved = {key: columns.get(key, key) for key in known}
    readers: dict[str, str] = {}
    for key, name in resolved.items():
        if name in readers and not _apart(fmt, readers[name], key):
            raise FormatError(f"columns: {readers[name]} and {key} both read the field {name!r} (format {fmt})")
        readers.setdefault(name, key)
    return resolved


def _apart(fmt: str, first: str, second: str) -> bool:
    """Row fields and turn fields live at different levels: one name may serve both."""
    turn_keys = TURN_KEYS.get(fmt, ())
    return (first in turn_keys) != (second in turn_keys)


def _visible(text: str) -> bool:
    return bool(clean_text(CONTROL.sub("", text)))


def render(turns: list[Turn]) -> str:
    """The prompt: one user turn as it is, else "<Role>: <text>" turns joined by a blank line."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1].strip()
    return "\n\n".join(f"{MARKERS[role]}: {text.strip()}" for role, text in turns)


def conversation_record(source: str, orig_id: str, turns: list[Turn], drops: Drops) -> Record | None:
    """The last assistant turn is the response; the turns before it, the prompt."""
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        drops["no_assistant_turn"] += 1
        return None
    if last < len(turns) - 1:
        drops["trailing_turns"] += 1
    response = turns[last][1]
    if not _visible(response):
        drops["empty_response"] += 1
        return None
    earlier = [(role, text) for role, text in turns[:last] if _visible(text)]
    if len(earlier) < last:
        drops["empty_turns"] += 1
    record = sources.make_record(source, orig_id, None, render(earlier), response, drops)
    if record is not None:  # turn counts describe the records kept
        drops["turns"] += len(earlier) + 1
        drops["multi_turn"] += any(role == "assistant" for role, _ in earlier)
    return record


class RowReader:
    """One file's rows in one format: rows -> records, drops counted, fatal problems raised."""

    def __init__(self, source: str, path: Path, fmt: str, columns: dict[str, str], join: str, drops: Drops) -> None:
        self.source, self.path, self.fmt, self.cols, self.join, self.drops = source, path, fmt, columns, join, drops

    def turns(self, index: int, value: Any) -> list[Turn] | None:
        """A turn list as (role, text) pairs; None (counted) when a turn is unusable."""
        if not isinstance(value, list):
            self.drops["non_text"] += 1
            return None
        role_key, text_key = (self.cols[k] for k in TURN_KEYS[self.fmt])
        roles, turns = ROLES[self.fmt], []
        for number, turn in enumerate(value):
            if not isinstance(turn, dict):
                self.drops["non_text"] += 1
                return None
            if role_key not in turn or text_key not in turn:
                self.drops["missing_field"] += 1
                return None
            role, text = turn[role_key], turn[text_key]
            if not isinstance(role, str) or not isinstance(text, str):
                self.drops["non_text"] += 1
                return None
            if role.lower() not in roles:
                raise FormatError(
                    f"{self.path}: row {index}, turn {number}: unknown role {role!r} for format {self.fmt}"
                    f" (known: {', '.join(roles)})"
                )
            turns.append((roles[role.lower()], text))
        return turns

    def record(self, index: int, orig_id: str, row: Any) -> Record | None:
        if not isinstance(row, dict):
            self.drops["non_text"] += 1
            return None
        if self.fmt == "alpaca":
            mapped = {key: row[name] for key, name in self.cols.items() if name in row}
            return sources.instruction_record(self.source, orig_id, mapped, self.drops, self.join)
        missing = [k for k in REQUIRED[self.fmt] if self.cols[k] not in row]
        if missing:
            self.drops["missing_field"] += 1
            return None
        if self.fmt == "prompt_completion":
            prompt, completion = row[self.cols["prompt"]], row[self.cols["completion"]]
            if isinstance(prompt, str) and isinstance(completion, str):
                completion = completion.strip().removesuffix(END_OF_TEXT)
                return sources.make_record(self.source, orig_id, None, prompt, completion, self.drops)
            if not (isinstance(prompt, list) and isinstance(completion, list)):
                self.drops["non_text"] += 1
                return None
        turns: list[Turn] = []
        for key in TURN_LISTS[self.fmt]:
            part = self.turns(index, row[self.cols[key]])
            if part is None:
                return None
            turns += part
        system = row.get(self.cols["system"]) if self.fmt == "sharegpt" else None
        if system is not None and not isinstance(system, str):
            self.drops["non_text"] += 1
            return None
        if system and _visible(system):
            turns.insert(0, ("system", system))
        return conversation_record(self.source, orig_id, turns, self.drops)

    def check_fields(self, rows: list[Any]) -> None:
        """A required field that no row (or no turn) has is a wrong format or map, not bad rows."""
        dicts = [row for row in rows if isinstance(row, dict)]
        if not dicts:
            return
        for key in REQUIRED[self.fmt]:
            if not any(self.cols[key] in row for row in dicts):
                self.refuse("row", key, sorted(dicts[0]))
        lists = [row.get(self.cols[k]) for row in dicts for k in TURN_LISTS.get(self.fmt, ())]
        turns = [t for turns in lists if isinstance(turns, list) for t in turns if isinstance(t, dict)]
        for key in TURN_KEYS.get(self.fmt, ()) if turns else ():
            if not any(self.cols[key] in turn for turn in turns):
                self.refuse("turn", key, sorted(turns[0]))

    def refuse(self, level: str, key: str, seen: list[str]) -> None:
        name = self.cols[key]
        raise FormatError(
            f"{self.path}: no {level} has the field {name!r} that format {self.fmt} reads as {key}"
            f" (name it in columns.{key}); the first {level}'s fields: {', '.join(map(repr, seen)) or 'none'}"
        )


def format_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FormatError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise FormatError(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
    return files


def read_format(
    source: str, path: Path, fmt: str, columns: dict[str, str] | None = None, join: str = " "
) -> tuple[list[Record], dict[str, Any]]:
    """Every usable record of `path` in format `fmt`, in file order, and the metrics of the read.

    `source` names the records (Record.source, and with orig_id their id); `join` goes between an
    Alpaca instruction and its input, as in fetch.
    """
    cols, drops, records = column_map(fmt, columns), Drops(), []
    files = format_files(path)
    for file in files:
        prefix = "" if len(files) == 1 else f"{file.relative_to(path).as_posix()}:"
        rows = sources.read_rows(file)
        reader = RowReader(source, file, fmt, cols, join, drops)
        reader.check_fields(rows)
        for index, row in enumerate(rows):
            if (record := reader.record(index, f"{prefix}{index}", row)) is not None:
                records.append(record)
    return records, format_metrics(fmt, cols, records, drops)


def format_metrics(fmt: str, cols: dict[str, str], records: list[Record], drops: Drops) -> dict[str, Any]:
    """rows_read = records + every drop; multi_turn and turns count the kept conversations."""
    return {
        "format": fmt,
        "columns": {key: name for key, name in cols.items() if key != name},  # the renames only
        "rows_read": len(records) + sum(drops[reason] for reason in DROP_REASONS),
        "records": len(records),
        "dropped": {reason: drops[reason] for reason in DROP_REASONS},
        "cleaned": {kind: drops[kind] for kind in CLEAN_KINDS},
        "multi_turn": drops["multi_turn"],
        "turns": drops["turns"],
    }
