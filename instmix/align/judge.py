"""Score FLASK answers with a judge, FLASK's way, and aggregate (stage judge@<model id>, alignment part 2).

Reads the answers of eval_align, builds FLASK's judge prompt for each (the rubrics of
the instance's 3 skills, the instruction, the reference answer, the response; prompt and
rubrics read from FLASK's own files in data/flask), judges, parses and aggregates. Outputs:
- metrics.json: {"align": {<8 skills>, avg, instances, parse_failures, judge}}: each skill is
  the mean 1-5 score over the instances annotated with it, x 20 (0-100); avg = the unweighted
  mean of the skills (paper Table 2); null where a skill has no score.
- judgments.jsonl: per instance idx, skills, the raw judge output, the parsed scores, status.
- breakdown.json: per skill counts, per domain and per difficulty scores, parse statistics,
  the judge's settings and the sha256 of FLASK's files.

Backends (`eval.judge.backend`; instmix.align.judge_openai and judge_hf):
- `openai`: any OpenAI-compatible chat endpoint (the paper: GPT-4-0613). The key is read from
  the environment variable named by `api_key_env` and never written anywhere. Temperature
  and max_tokens are sent; retries with exponential backoff; `concurrency` requests at once.
  Every response is cached in <cache dir> under the sha256 of (base URL, model, messages,
  temperature, max_tokens): a crash or a rerun never pays twice.
- `hf`: a local model. For each skill it reads the judge's next-token distribution at the
  score position of the Python dict FLASK asks for -- the prompt, optional greedy feedback,
  then "{'<Skill>':" -- and scores the skill as the probability-weighted mean of " 1".." 5"
  (renormalised over the five). Deterministic. A response too long for the judge's context
  loses its end (counted in breakdown.json). A small model (the demo's SmolLM2-135M) is a
  weak judge: its scores show the pipeline works, not how good the answers are.
Parsing and aggregation: instmix.align.scoring.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from instmix.align.flask import JudgePrompt, digests, read_judge_prompt, read_rubrics, rubric_for
from instmix.align.scoring import aggregate, assign, parse_judgment
from instmix.core.files import read_jsonl
from instmix.core.params import ParamsError, StageError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WEAK_JUDGE_PARAMS = 7e9  # an hf judge smaller than this is labelled weak in the metrics
ANSWER_FIELDS = ("idx", "instruction", "reference", "skills", "domain", "difficulty", "response")


@dataclass(frozen=True)
class JudgeParams:
    """The judge (section eval.judge). Defaults: the paper's GPT-4-0613 with FLASK's reference-answer prompt."""

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
    """hf: prompts per batch while the judge writes feedback (feedback_tokens > 0), padded engine."""
    engine: Literal["auto", "padded", "continuous"] = "auto"
    """hf: how the feedback is generated (instmix.gen.generate; auto = continuous on a GPU, padded on
    a CPU). No vllm: the scores are read from the judge's own next-token distribution."""

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


def read_answers(path: Path) -> list[dict[str, Any]]:
    try:
        rows = read_jsonl(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StageError(f"cannot read answers {path}: {err}".replace("\n", " ")) from err
    for number, row in enumerate(rows, 1):
        missing = [f for f in ANSWER_FIELDS if f not in row]
        if missing:
            raise StageError(f"{path}:{number}: missing {', '.join(missing)} (written by the eval_align stage?)")
    if not rows:
        raise StageError(f"{path}: no answers")
    return rows


def judge_label(params: JudgeParams, n_params: int | None = None) -> str:
    if params.backend == "openai":
        return f"openai:{params.model}"
    weak = n_params is not None and n_params < WEAK_JUDGE_PARAMS
    return f"hf:{params.hf_model}" + (" [weak judge]" if weak else "")


def judge(
    items: list[dict[str, Any]], params: JudgeParams, flask: Path, cache_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Judge every item with FLASK's files in `flask`: (judgments, metrics, breakdown)."""
    rubrics = read_rubrics(flask)
    prompt = read_judge_prompt(flask, params.prompt_id)
    settings: dict[str, Any] = {"backend": params.backend, "prompt_id": prompt.prompt_id}
    cache_dir.mkdir(parents=True, exist_ok=True)  # a DVC output even when the hf backend does not use it
    if params.backend == "openai":
        from instmix.align.judge_openai import OpenAIJudge

        client = OpenAIJudge(params, cache_dir)
        outputs = client.judge_all([build_messages(item, prompt, rubrics) for item in items])
        print(f"judge: {client.calls} calls to {client.base_url}, {client.hits} answered from the cache")
        label = judge_label(params)
        settings |= {"model": params.model, "temperature": params.temperature, "max_tokens": params.max_tokens}
    else:
        from instmix.align.judge_hf import hf_judge

        if not (Path(params.hf_model) / "config.json").is_file():
            raise StageError(f"eval.judge.hf_model={params.hf_model!r} is not a model directory")
        outputs, info = hf_judge(items, prompt, rubrics, params)
        label = judge_label(params, info["parameters"])
        settings |= {"model": params.hf_model, "feedback_tokens": params.feedback_tokens, **info}

    judgments = []
    for item, output in zip(items, outputs, strict=True):
        parsed, how = parse_judgment(output.get("content") or "")
        scores, status = assign(parsed, item["skills"])
        row = {
            "idx": item["idx"],
            "skills": item["skills"],
            "domain": item["domain"],
            "difficulty": item["difficulty"],
            "judge_output": output.get("content"),
            "parsed": parsed,
            "parsed_as": how,
            "scores": scores,
            "status": status,
            "failed": any(s in ("missing", "invalid") for s in status.values()),
        }
        row |= {k: output[k] for k in ("error", "probs", "truncated", "usage", "finish_reason") if output.get(k)}
        judgments.append(row)

    metrics, breakdown = aggregate(judgments, label)
    usage = [o["usage"] for o in outputs if o.get("usage")]
    if usage:
        breakdown["usage"] = {k: sum(u.get(k) or 0 for u in usage) for k in ("prompt_tokens", "completion_tokens")}
    breakdown["judge"] = settings | {"label": label, "flask_reviewer": prompt.reviewer}
    breakdown["flask_sha256"] = digests(flask)
    metrics["params"] = asdict(params)
    return judgments, metrics, breakdown
