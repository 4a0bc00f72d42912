"""eval_align@<model>: the evaluated model answers the FLASK instructions (alignment, part 1).

    python -m stages.eval_align <model dir> <out dir>

Writes <out dir>/answers.jsonl: one row per FLASK instance (sorted by idx) with the
instruction, FLASK's reference answer, its annotated skills, domain and difficulty, and the
model's `response`. Judging is a separate stage (`stages.judge`), so changing or re-running
the judge never regenerates answers.

Eval set (paper, App. B): instances with `idx <= idx_max` (1,700: the file as the paper read
it) whose annotated skills all lie among the `top_skills` (8) most frequent skills of those
instances: exactly 1,180 on FLASK's file. `limit` draws a seeded random subset of them.

FLASK's files (eval set, skill rubrics, judge prompts, reviewers) come from `eval.align.flask`:
`path` is a folder holding them, or a `*.github.yaml` pin: raw files of a GitHub repository
at a pinned commit (assets/hub/flask.github.yaml: kaistAI/FLASK), checked against sha256.
The params of the whole `eval.align` section, the judge's included, live here.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from stages.files import write_jsonl
from stages.params import ParamsError, StageError, cli, load, parse

PIN_SUFFIX = ".github.yaml"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOWNLOAD_TRIES = 4


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
class JudgeParams:
    """The judge (stages.judge). Defaults: the paper's GPT-4-0613 with FLASK's reference-answer prompt."""

    backend: Literal["openai", "hf"] = "openai"
    """`openai`: any OpenAI-compatible chat endpoint. `hf`: a local model scoring each skill as the
    probability-weighted mean of the score tokens 1-5 (deterministic)."""
    model: str = "gpt-4-0613"
    """openai: the model name sent to the endpoint."""
    hf_model: str = "models/base"
    """hf: the judge's model directory (the demo: models/base, SmolLM2-135M, a weak judge)."""
    base_url: str | None = None
    """openai: the endpoint, e.g. http://localhost:8000/v1; null = the client's default (OPENAI_BASE_URL or OpenAI)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """openai: the NAME of the environment variable holding the key (the key itself never goes in
    params); null for a local server that needs none."""
    prompt_id: int = 2
    """The FLASK judge prompt: 2 = with the reference ("ground truth") answer, as the paper."""
    temperature: float = 0.0
    """openai: sent with every request (FLASK's script meant 0 but its request dropped it: API default 1)."""
    max_tokens: int = 1024
    concurrency: int = 8
    """openai: requests in flight at once."""
    retries: int = 6
    """openai: retries per request on rate limits, timeouts and server errors (exponential backoff)."""
    timeout: float = 120.0
    """openai: seconds per request."""
    feedback_tokens: int = 0
    """hf: greedy feedback tokens the judge writes before its scores are read (0 = score at once)."""
    batch_size: int = 8
    """hf: prompts per batch while the judge writes feedback (feedback_tokens > 0)."""

    def __post_init__(self) -> None:
        positive = {"max_tokens": self.max_tokens, "concurrency": self.concurrency, "prompt_id": self.prompt_id}
        positive |= {"batch_size": self.batch_size}
        for key, value in positive.items():
            if value < 1:
                raise ParamsError(key, value, "a positive integer")
        for key, value in {"retries": self.retries, "feedback_tokens": self.feedback_tokens}.items():
            if value < 0:
                raise ParamsError(key, value, "an integer >= 0")
        if not 0 <= self.temperature <= 2:
            raise ParamsError("temperature", self.temperature, "a number in [0, 2]")
        if self.timeout <= 0:
            raise ParamsError("timeout", self.timeout, "a positive number of seconds")
        if self.api_key_env is not None and not ENV_NAME.match(self.api_key_env):
            raise ParamsError("api_key_env", "<hidden>", "the name of an environment variable (never the key itself)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ParamsError("base_url", self.base_url, "null or an http(s):// URL")


@dataclass(frozen=True)
class AlignParams:
    """FLASK alignment evaluation. Defaults: the paper's eval set and FLASK's inference settings."""

    flask: FlaskParams = field(default_factory=FlaskParams)
    idx_max: int = 1700
    """Keep instances with idx <= idx_max (the 1,700 instances the paper's copy of FLASK had)."""
    top_skills: int = 8
    """Keep instances whose skills all lie among this many most frequent skills (paper: 8)."""
    limit: int | None = None
    """Evaluate a seeded random subset of this many instances; null = all (1,180)."""
    template: Literal["paper", "chat"] = "paper"
    """How the model sees an instruction; match sft.template. paper: the instruction as is (training
    was prompt + " " + response); chat: the tokenizer's chat template."""
    max_new_tokens: int = 1024
    temperature: float = 0.7
    """0 = greedy. Default: FLASK's inference.py (the paper does not say)."""
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0
    """Seeds the `limit` draw and the sampling."""
    judge: JudgeParams = field(default_factory=JudgeParams)

    def __post_init__(self) -> None:
        for key in ("idx_max", "top_skills", "max_new_tokens", "batch_size"):
            if getattr(self, key) < 1:
                raise ParamsError(key, getattr(self, key), "a positive integer")
        if self.limit is not None and self.limit < 1:
            raise ParamsError("limit", self.limit, "null (all instances) or a positive integer")
        if self.temperature < 0:
            raise ParamsError("temperature", self.temperature, "a number >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ParamsError("top_p", self.top_p, "a number in (0, 1]")


# ---------------------------------------------------------------------------- FLASK's files


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
            raise ParamsError("eval.align.flask.path", params.path, f"an existing folder or a *{PIN_SUFFIX} pin")

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


def read_eval_set(source: FlaskSource) -> list[dict[str, Any]]:
    """FLASK's eval set as instances: idx, instruction, reference, skills, domain, difficulty, task."""
    where = source.describe(source.params.eval_set)
    instances = []
    for number, row in enumerate(_json_lines(source.read("eval_set"), where), 1):
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


def read_rubrics(source: FlaskSource) -> dict[str, dict[str, Any]]:
    """skillset_description.json as {skill name: {"Skill", "Criteria", "Scoring": {"1".."5"}}}."""
    where = source.describe(source.params.skills)
    try:
        rows = json.loads(_text(source.read("skills"), where))
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


def read_judge_prompt(source: FlaskSource, prompt_id: int) -> JudgePrompt:
    where = source.describe(source.params.prompts)
    prompts = {row.get("prompt_id"): row for row in _json_lines(source.read("prompts"), where)}
    reviewers = _json_lines(source.read("reviewers"), source.describe(source.params.reviewers))
    prompt = prompts.get(prompt_id)
    if prompt is None:
        raise ParamsError("eval.align.judge.prompt_id", prompt_id, f"one of {sorted(prompts)} (the ids in {where})")
    reviewer = next((r for r in reviewers if r.get("prompt_id") == prompt_id), None)
    if reviewer is None:
        raise StageError(f"{source.describe(source.params.reviewers)}: no reviewer uses prompt_id {prompt_id}")
    defaults = prompt.get("defaults", {})
    if isinstance(defaults, str):  # older copies hold the dict as its Python repr
        defaults = ast.literal_eval(defaults)
    if not isinstance(prompt.get("system_prompt"), str) or not isinstance(prompt.get("prompt_template"), str):
        raise StageError(f"{where}: prompt_id {prompt_id} lacks system_prompt or prompt_template")
    return JudgePrompt(prompt_id, prompt["system_prompt"], prompt["prompt_template"], dict(defaults), reviewer)


# ---------------------------------------------------------------------------- the eval set


def top_skills(instances: list[dict[str, Any]], k: int) -> list[str]:
    """The k most frequent annotated skills (ties: by name, so the choice is deterministic)."""
    counts = Counter(skill for instance in instances for skill in instance["skills"])
    return [skill for skill, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]]


def select(instances: list[dict[str, Any]], params: AlignParams) -> list[dict[str, Any]]:
    """The paper's eval set: idx <= idx_max, every skill among the top-k skills of those instances."""
    kept = [i for i in instances if i["idx"] <= params.idx_max]
    top = set(top_skills(kept, params.top_skills))
    chosen = [i for i in kept if set(i["skills"]) <= top]
    if params.limit is not None and params.limit < len(chosen):
        chosen = random.Random(params.seed).sample(chosen, params.limit)  # spread, never the first N
    return sorted(chosen, key=lambda i: i["idx"])


def load_eval_set(params: AlignParams) -> tuple[list[dict[str, Any]], FlaskSource]:
    """Read FLASK's eval set and rubrics, select the instances, and check every skill has a rubric."""
    source = FlaskSource(params.flask)
    rubrics = read_rubrics(source)
    chosen = select(read_eval_set(source), params)
    if not chosen:
        raise StageError(f"no FLASK instance passes idx <= {params.idx_max} and the top-{params.top_skills} skills")
    for skill in sorted({s for i in chosen for s in i["skills"]}):
        rubric_for(skill, rubrics)
    return chosen, source


# ---------------------------------------------------------------------------- answering


def render_prompts(tokenizer: Any, instructions: list[str], template: str) -> list[str]:
    if template == "paper":
        return list(instructions)
    if tokenizer.chat_template is None:
        raise StageError("eval.align.template=chat but the model's tokenizer has no chat template; use paper")
    rendered = []
    for text in instructions:
        message = [{"role": "user", "content": text}]
        prompt = tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
        if tokenizer.bos_token and prompt.startswith(tokenizer.bos_token):
            prompt = prompt[len(tokenizer.bos_token) :]  # generate() adds the special tokens itself
        rendered.append(prompt)
    return rendered


def answer(model_dir: Path, instances: list[dict[str, Any]], params: AlignParams) -> list[dict[str, Any]]:
    from stages.generate import generate, load_model

    model, tokenizer = load_model(model_dir)
    prompts = render_prompts(tokenizer, [i["instruction"] for i in instances], params.template)
    texts = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        batch_size=params.batch_size,
        seed=params.seed,
        desc="answer FLASK",
    )
    return [{**instance, "response": samples[0].strip()} for instance, samples in zip(instances, texts, strict=True)]


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise StageError("usage: python -m stages.eval_align <model dir> <out dir>")
    model_dir, out_dir = Path(argv[0]), Path(argv[1])
    params = load(AlignParams, "eval.align")
    if not (model_dir / "config.json").is_file():
        raise StageError(f"{model_dir} is not a model directory (no config.json)")
    instances, _ = load_eval_set(params)
    rows = answer(model_dir, instances, params)
    write_jsonl(out_dir / "answers.jsonl", rows)
    empty = sum(not row["response"] for row in rows)
    print(f"eval_align: {len(rows)} FLASK answers ({empty} empty) -> {out_dir / 'answers.jsonl'}")


if __name__ == "__main__":
    cli(main)
