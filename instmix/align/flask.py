"""FLASK's files: where they come from, the copy the stage `flask` makes, and their readers.

The stage copies FLASK's eval set, skill rubrics, judge prompts and reviewers from
`eval.flask.path` (a folder, or a `*.github.yaml` pin: raw files of a GitHub repository at a
pinned commit, checked against sha256) to data/flask/ under fixed names (FILES), so answering
and judging read one local copy and DVC sees the files change. `build_messages` lays out FLASK's
judge messages for one answer (the judge and its hf backend both use it).
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from instmix.core.files import atomic_open
from instmix.core.params import ParamsError, StageError, parse

PIN_SUFFIX = ".github.yaml"
DOWNLOAD_TRIES = 4
FILES = {
    "eval_set": "eval_set.jsonl",
    "skills": "skills.json",
    "prompts": "prompts.jsonl",
    "reviewers": "reviewers.jsonl",
}


@dataclass(frozen=True)
class FlaskParams:
    """Where FLASK's files are. The four file names are relative to `path`."""

    path: str = "assets/hub/flask.github.yaml"
    """A folder holding the files, or a `*.github.yaml` pin (raw files at a pinned commit)."""
    eval_set: str = "evaluation_set/flask_evaluation.jsonl"
    skills: str = "metadata_annotation/skillset/src/skillset_description.json"
    """The 12 skills: name, criteria and the 1-5 scoring rubric."""
    prompts: str = "gpt_review/src/prompt.jsonl"
    """The judge prompts (system prompt, template, defaults), one per prompt_id."""
    reviewers: str = "gpt_review/src/reviewer.jsonl"
    """Which prompt_id each FLASK reviewer (judge) uses."""

    def __post_init__(self) -> None:
        for key in ("eval_set", "skills", "prompts", "reviewers"):
            name = getattr(self, key)
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ParamsError(key, name, f"a path inside {self.path} (relative, no '..')")


@dataclass(frozen=True)
class GitHubPin:
    url: str
    """Raw-file base of the repository, e.g. https://raw.githubusercontent.com/kaistAI/FLASK."""
    revision: str
    """A commit sha (pin it) or a branch."""
    sha256: dict[str, str] = field(default_factory=dict)
    """Expected sha256 per file path; a file listed here that differs is an error."""


class FlaskSource:
    """Reads FLASK's files from a folder or from a pinned GitHub commit; records each file's sha256."""

    def __init__(self, params: FlaskParams) -> None:
        self.params = params
        self.pin: GitHubPin | None = None
        self.sha256: dict[str, str] = {}
        if params.path.endswith(PIN_SUFFIX):
            try:
                data = yaml.safe_load(Path(params.path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as err:
                raise StageError(f"cannot read FLASK pin {params.path}: {err}".replace("\n", " ")) from err
            self.pin = parse(GitHubPin, data, params.path)
        elif not Path(params.path).is_dir():
            raise ParamsError("eval.flask.path", params.path, f"an existing folder or a *{PIN_SUFFIX} pin")

    def read(self, key: str) -> bytes:
        """The bytes of the file named by params key `key` (eval_set, skills, prompts or reviewers)."""
        name = getattr(self.params, key)
        data = self._download(name) if self.pin else self._read_local(name)
        digest = hashlib.sha256(data).hexdigest()
        expected = self.pin.sha256.get(name) if self.pin else None
        if expected and expected != digest:
            raise StageError(f"{self.describe(name)}: sha256 {digest} differs from the pin's {expected}")
        self.sha256[key] = digest
        return data

    def describe(self, name: str) -> str:
        if self.pin:
            return f"{self.pin.url}@{self.pin.revision}:{name}"
        return str(Path(self.params.path) / name)

    def _read_local(self, name: str) -> bytes:
        try:
            return (Path(self.params.path) / name).read_bytes()
        except OSError as err:
            raise StageError(f"cannot read FLASK file {self.describe(name)}: {err.strerror}") from err

    def _download(self, name: str) -> bytes:
        assert self.pin is not None
        url = f"{self.pin.url.rstrip('/')}/{self.pin.revision}/{name}"
        for attempt in range(DOWNLOAD_TRIES):
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    return response.read()
            except urllib.error.HTTPError as err:
                if err.code < 500 or attempt == DOWNLOAD_TRIES - 1:
                    raise StageError(f"cannot download {url}: HTTP {err.code}") from err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == DOWNLOAD_TRIES - 1:
                    raise StageError(f"cannot download {url}: {err}") from err
            time.sleep(2**attempt)  # transient: back off and retry
        raise AssertionError("unreachable")


def _json_lines(data: bytes, where: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(_text(data, where).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise StageError(f"{where}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise StageError(f"{where}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StageError(f"{where}: not UTF-8 (byte {err.start})") from err


def read_eval_set(folder: Path) -> list[dict[str, Any]]:
    """FLASK's eval set as instances: idx, instruction, reference, skills, domain, difficulty, task."""
    return _eval_set(_read(folder, "eval_set"), str(folder / FILES["eval_set"]))


def _eval_set(data: bytes, where: str) -> list[dict[str, Any]]:
    instances = []
    for number, row in enumerate(_json_lines(data, where), 1):
        skills = row.get("skill")
        ok = isinstance(row.get("idx"), int) and isinstance(row.get("instruction"), str)
        ok &= isinstance(row.get("answer"), str) and isinstance(skills, list) and bool(skills)
        if not ok or not all(isinstance(s, str) for s in skills):
            raise StageError(f"{where}: row {number} lacks idx (int), instruction, answer or skill (a list of names)")
        domain = row.get("domain", [])
        instances.append(
            {
                "idx": row["idx"],
                "instruction": row["instruction"],
                "reference": row["answer"],
                "skills": skills,
                "domain": [str(d) for d in domain] if isinstance(domain, list) else [str(domain)],
                "difficulty": str(row.get("difficulty", "-1")),
                "task": str(row.get("task", "")),
            }
        )
    if len({i["idx"] for i in instances}) != len(instances):
        raise StageError(f"{where}: idx values are not unique")
    return instances


def read_rubrics(folder: Path) -> dict[str, dict[str, Any]]:
    """skillset_description.json as {skill name: {"Skill", "Criteria", "Scoring": {"1".."5"}}}."""
    return _rubrics(_read(folder, "skills"), str(folder / FILES["skills"]))


def _rubrics(data: bytes, where: str) -> dict[str, dict[str, Any]]:
    try:
        rows = json.loads(_text(data, where))
    except json.JSONDecodeError as err:
        raise StageError(f"{where}: not valid JSON ({err.msg}, line {err.lineno})") from err
    rubrics = {}
    for row in rows if isinstance(rows, list) else []:
        scoring = row.get("Scoring") if isinstance(row, dict) else None
        if not isinstance(scoring, dict) or any(not isinstance(scoring.get(str(s)), str) for s in range(1, 6)):
            raise StageError(f"{where}: every skill needs Skill, Criteria and Scoring levels '1' to '5'")
        rubrics[str(row.get("Skill"))] = row
    if not rubrics:
        raise StageError(f"{where}: expected a JSON list of skills")
    return rubrics


def rubric_for(label: str, rubrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """FLASK's lookup: the rubric whose name equals the label, else the first that contains it."""
    found = rubrics.get(label) or next((r for name, r in rubrics.items() if label in name), None)
    if found is None:
        raise StageError(f"FLASK skill {label!r} has no rubric in {', '.join(rubrics)}")
    return found


@dataclass(frozen=True)
class JudgePrompt:
    prompt_id: int
    system: str
    template: str
    defaults: dict[str, str]
    reviewer: dict[str, Any]
    """FLASK's reviewer entry that uses this prompt (its metadata is informative only)."""


def read_judge_prompt(folder: Path, prompt_id: int) -> JudgePrompt:
    where = str(folder / FILES["prompts"])
    reviewers_file = str(folder / FILES["reviewers"])
    prompts = {row.get("prompt_id"): row for row in _json_lines(_read(folder, "prompts"), where)}
    reviewers = _json_lines(_read(folder, "reviewers"), reviewers_file)
    prompt = prompts.get(prompt_id)
    if prompt is None:
        raise ParamsError("eval.judge.prompt_id", prompt_id, f"one of {sorted(prompts)} (the ids in {where})")
    reviewer = next((r for r in reviewers if r.get("prompt_id") == prompt_id), None)
    if reviewer is None:
        raise StageError(f"{reviewers_file}: no reviewer uses prompt_id {prompt_id}")
    defaults = prompt.get("defaults", {})
    if isinstance(defaults, str):  # older copies hold the dict as its Python repr
        defaults = ast.literal_eval(defaults)
    if not isinstance(prompt.get("system_prompt"), str) or not isinstance(prompt.get("prompt_template"), str):
        raise StageError(f"{where}: prompt_id {prompt_id} lacks system_prompt or prompt_template")
    return JudgePrompt(prompt_id, prompt["system_prompt"], prompt["prompt_template"], dict(defaults), reviewer)


def _read(folder: Path, key: str) -> bytes:
    try:
        return (folder / FILES[key]).read_bytes()
    except OSError as err:
        raise StageError(f"cannot read {folder / FILES[key]}: {err.strerror}; run the flask stage first") from err


def copy_files(params: FlaskParams, out: Path) -> dict[str, Any]:
    """Copy FLASK's four files to `out` (FILES), checked by parsing them first; returns the metrics."""
    source = FlaskSource(params)
    data = {key: source.read(key) for key in FILES}
    texts = {key: _text(data[key], source.describe(getattr(params, key))) for key in FILES}
    instances = _eval_set(data["eval_set"], source.describe(params.eval_set))  # errors name the source file
    rubrics = _rubrics(data["skills"], source.describe(params.skills))
    for key, name in FILES.items():
        with atomic_open(out / name) as handle:
            handle.write(texts[key])
    return {
        "instances": len(instances),
        "skills": len(rubrics),
        "source": source.describe(""),
        "sha256": dict(sorted(source.sha256.items())),
        "params": asdict(params),
    }


def digests(folder: Path) -> dict[str, str]:
    """sha256 of each of FLASK's files in `folder`, by params key."""
    return {key: hashlib.sha256(_read(folder, key)).hexdigest() for key in sorted(FILES)}


def skills_block(skills: Sequence[str], rubrics: dict[str, dict[str, Any]]) -> str:
    """The rubric text of the instance's skills, laid out as FLASK's gen_prompt does."""
    block = ""
    for label in skills:
        rubric = rubric_for(label, rubrics)
        block += f"\n{rubric['Skill']}: {rubric['Criteria']}"
        for level in "12345":
            block += f"\nScore {level}: {rubric['Scoring'][level]}"
        block += "\n\n"
    return block


def build_messages(
    item: dict[str, Any], prompt: JudgePrompt, rubrics: dict[str, dict[str, Any]], response: str | None = None
) -> list[dict[str, str]]:
    """FLASK's system and user messages for one answer (`response` overrides the item's)."""
    user = prompt.template.format(
        question=item["instruction"],
        response=item["response"] if response is None else response,
        skills=skills_block(item["skills"], rubrics),
        num=len(item["skills"]),
        sample_answer=item["reference"],
        **prompt.defaults,
    )
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]
