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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from instmix.align.flask import build_messages, digests, read_judge_prompt, read_rubrics
from instmix.align.judge_params import JudgeParams
from instmix.align.scoring import aggregate, assign, parse_judgment
from instmix.core.files import read_jsonl
from instmix.core.params import StageError

WEAK_JUDGE_PARAMS = 7e9  # an hf judge smaller than this is labelled weak in the metrics
ANSWER_FIELDS = ("idx", "instruction", "reference", "skills", "domain", "difficulty", "response")


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
