"""judge@<model>: score FLASK answers with a judge, FLASK's way, and aggregate (alignment, part 2).

    python -m stages.judge <answers.jsonl> <out dir> <cache dir>

Reads the answers of `stages.eval_align`, builds FLASK's judge prompt for each (the rubrics of
the instance's 3 skills, the instruction, the reference answer, the response; prompt and
rubrics read from FLASK's own files), judges, parses and aggregates. Writes to <out dir>:
- metrics.json: {"align": {<8 skills>, avg, instances, parse_failures, judge}}: each skill is
  the mean 1-5 score over the instances annotated with it, x 20 (0-100); avg = the unweighted
  mean of the skills (paper Table 2); null where a skill has no score.
- judgments.jsonl: per instance idx, skills, the raw judge output, the parsed scores, status.
- breakdown.json: per skill counts, per domain and per difficulty scores, parse statistics,
  the judge's settings and the sha256 of FLASK's files.

Backends (`eval.align.judge.backend`):
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

Parsing is FLASK's: the last {...} block of the output, lower-cased, "_" -> " ", read with
ast.literal_eval; 'na', 'n/a', 'not applicable' (and none, null) -> N/A, left out of the means. Where that
fails, a lenient reader takes "name: score" pairs from the same block (FLASK fixed those by
hand). An instance whose dict is missing, or lacks a valid 1-5 score (or N/A) for one of its
skills, counts as a parse failure; its other skills still count.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import statistics
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from stages.eval_align import (
    AlignParams,
    FlaskSource,
    JudgeParams,
    JudgePrompt,
    read_judge_prompt,
    read_rubrics,
    rubric_for,
)
from stages.files import dumps, read_jsonl, write_json, write_jsonl
from stages.params import StageError, cli, load

NA = "N/A"
NA_WORDS = {"na", "n/a", "not applicable", "none", "null"}
FLASK_DICT = re.compile(r"{[^}]+}")  # FLASK's own pattern; the last match is the scores
LENIENT_PAIR = re.compile(
    r"""['"]?([a-z][a-z ]*?)['"]?\s*:\s*['"]?(\d+(?:\.\d+)?|n/a|na|not applicable|none|null)\b['"]?"""
)
WEAK_JUDGE_PARAMS = 7e9  # an hf judge smaller than this is labelled weak in the metrics
ANSWER_FIELDS = ("idx", "instruction", "reference", "skills", "domain", "difficulty", "response")


# ---------------------------------------------------------------------------- FLASK's prompt


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


# ---------------------------------------------------------------------------- parsing


def normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def short_name(name: str) -> str:
    """FLASK's aggregation key: the first word, or the second for 'logical ...'."""
    words = normalise(name).split()
    if not words:
        return ""
    return words[1] if words[0] == "logical" and len(words) > 1 else words[0]


def metric_key(skill: str) -> str:
    """The metrics key of a FLASK skill: logical_correctness, commonsense, readability, ..."""
    short = short_name(skill)
    return f"logical_{short}" if normalise(skill).startswith("logical ") else short


def parse_judgment(text: str) -> tuple[dict[str, Any] | None, str]:
    """The last {...} block of a judge output as {lower-case name: value}, and how it was read.

    how: `literal` (FLASK's way), `lenient` (name: score pairs), `none` (no usable dict).
    """
    blocks = FLASK_DICT.findall(text or "")
    if not blocks:
        return None, "none"
    block = blocks[-1].replace("\n", "").replace("_", " ").lower()
    try:
        value = ast.literal_eval(block)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if isinstance(value, dict) and value:
        return {normalise(str(k)): _score_value(v) for k, v in value.items()}, "literal"
    pairs = LENIENT_PAIR.findall(block)
    if pairs:
        return {normalise(k): _score_value(v) for k, v in pairs}, "lenient"
    return None, "none"


def _score_value(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in NA_WORDS:
            return NA
        try:
            return float(word)
        except ValueError:
            return value
    return value


def assign(parsed: dict[str, Any] | None, skills: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each annotated skill's score (float in [1, 5], N/A or None) and its status.

    status: ok | na | missing (no key for the skill) | invalid (not a number in [1, 5]).
    A key matches a skill by full name, else by FLASK's short name (first word, 'logical X' -> X).
    """
    scores: dict[str, Any] = {}
    status: dict[str, str] = {}
    parsed = parsed or {}
    for skill in skills:
        key = normalise(skill)
        if key not in parsed:
            key = next((k for k in parsed if short_name(k) == short_name(skill)), "")
        value = parsed.get(key)
        if not key:
            scores[skill], status[skill] = None, "missing"
        elif value == NA:
            scores[skill], status[skill] = NA, "na"
        elif isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 5:
            scores[skill], status[skill] = float(value), "ok"
        else:
            scores[skill], status[skill] = None, "invalid"
    return scores, status


# ---------------------------------------------------------------------------- aggregation


def _scaled(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values) * 20, 4) if values else None


def aggregate(judgments: Sequence[dict[str, Any]], judge: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics.json and the per-skill, per-domain and per-difficulty breakdown.

    A skill's score is the mean over the instances annotated with it and scored (N/A and
    failures left out), x 20: FLASK's 1-5 scale on 0-100, as the paper's Table 2.
    """
    per_skill: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"ok": 0, "na": 0, "missing": 0, "invalid": 0})
    per_domain: dict[str, list[float]] = defaultdict(list)
    domain_instances: dict[str, int] = defaultdict(int)
    per_level: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    level_instances: dict[str, int] = defaultdict(int)
    for row in judgments:
        for skill in row["skills"]:
            key, value = metric_key(skill), row["scores"].get(skill)
            counts[key][row["status"][skill]] += 1
            if isinstance(value, float):
                per_skill[key].append(value)
                per_level[row["difficulty"]][key].append(value)
                for domain in row["domain"]:
                    per_domain[domain].append(value)
        for domain in row["domain"]:
            domain_instances[domain] += 1
        level_instances[row["difficulty"]] += 1

    skills = {key: _scaled(per_skill[key]) for key in counts}
    complete = [v for v in skills.values() if v is not None]
    avg = round(statistics.fmean(complete), 4) if complete and len(complete) == len(skills) else None
    failures = sum(row["failed"] for row in judgments)
    metrics = {"align": {**skills, "avg": avg, "instances": len(judgments), "parse_failures": failures, "judge": judge}}

    how = defaultdict(int)
    for row in judgments:
        how[row["parsed_as"]] += 1
    breakdown = {
        "skills": {
            key: {"score": skills[key], "mean_1to5": _mean(per_skill[key]), **counts[key]} for key in sorted(counts)
        },
        "domain": {
            d: {"score": _scaled(per_domain[d]), "instances": domain_instances[d], "scores": len(per_domain[d])}
            for d in sorted(domain_instances)
        },
        "difficulty": {
            level: {
                "instances": level_instances[level],
                "score": _scaled([v for values in per_level[level].values() for v in values]),
                "skills": {key: _scaled(values) for key, values in sorted(per_level[level].items())},
            }
            for level in sorted(level_instances)
        },
        "parse": {"instances_failed": failures, "read_as": dict(sorted(how.items()))},
    }
    return metrics, breakdown


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


# ---------------------------------------------------------------------------- openai backend


class JudgeCallError(Exception):
    """A request that failed for good (after the client's retries)."""


class FatalJudgeError(Exception):
    """An error every request would hit (bad key, unknown model): stop at once."""


class OpenAIJudge:
    """Chat completions on an OpenAI-compatible endpoint, every response cached on disk."""

    def __init__(self, params: JudgeParams, cache_dir: Path) -> None:
        key = os.environ.get(params.api_key_env, "") if params.api_key_env else "unused"
        if not key:
            raise StageError(f"eval.align.judge.api_key_env: the environment variable {params.api_key_env} is not set")
        from openai import OpenAI

        self._secret = key
        self.params, self.cache_dir = params, cache_dir
        self.client = OpenAI(api_key=key, base_url=params.base_url, max_retries=params.retries, timeout=params.timeout)
        self.base_url = str(self.client.base_url)
        self.calls = self.hits = 0
        self._lock = threading.Lock()
        self._fatal = ""  # once set, queued requests stop before they are sent

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        request = {"base_url": self.base_url, "model": self.params.model, "messages": messages}
        request |= {"temperature": self.params.temperature, "max_tokens": self.params.max_tokens}
        return hashlib.sha256(dumps(request).encode()).hexdigest()

    def complete(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The judge's reply {content, usage, finish_reason}: from the cache, else from the endpoint."""
        import openai

        key = self.cache_key(messages)
        path = self.cache_dir / key[:2] / f"{key}.json"
        if self._fatal:
            raise FatalJudgeError(self._fatal)
        if path.exists():
            with self._lock:
                self.hits += 1
            return json.loads(path.read_text(encoding="utf-8"))
        try:
            response = self.client.chat.completions.create(
                model=self.params.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.params.temperature,
                max_tokens=self.params.max_tokens,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as err:
            self._fatal = self._clean(err)
            raise FatalJudgeError(self._fatal) from None
        except openai.BadRequestError as err:  # this prompt only (e.g. too long): recorded, not cached
            return {"content": None, "error": self._clean(err), "finish_reason": None, "usage": None}
        except openai.OpenAIError as err:  # retries exhausted: rate limits, timeouts, server errors
            raise JudgeCallError(self._clean(err)) from None
        with self._lock:
            self.calls += 1
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        record = {
            "content": choice.message.content if choice else None,
            "finish_reason": choice.finish_reason if choice else None,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
            if usage
            else None,
            "model": response.model,
            "request": {"model": self.params.model, "temperature": self.params.temperature},
        }
        write_json(path, record)
        return record

    def _clean(self, err: Exception) -> str:
        """One line about the error, with the key (or any part the server echoed) masked."""
        text = f"{type(err).__name__}: {err}".replace("\n", " ")
        text = text.replace(self._secret, "***")
        return text if len(self._secret) < 8 else text.replace(self._secret[-4:], "***")

    def judge_all(self, requests: list[list[dict[str, str]]]) -> list[dict[str, Any]]:
        from tqdm.auto import tqdm

        results: list[dict[str, Any] | None] = [None] * len(requests)
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=self.params.concurrency) as pool:
            futures = {pool.submit(self.complete, messages): i for i, messages in enumerate(requests)}
            try:
                for future in tqdm(as_completed(futures), total=len(futures), desc="judge", unit="call"):
                    try:
                        results[futures[future]] = future.result()
                    except JudgeCallError as err:
                        failures.append(str(err))
            except FatalJudgeError as err:
                pool.shutdown(wait=True, cancel_futures=True)
                raise StageError(f"the judge endpoint refused the request: {err}") from None
        if failures:
            raise StageError(
                f"{len(failures)} of {len(requests)} judge calls failed after {self.params.retries} retries "
                f"(first: {failures[0]}); the others are cached in {self.cache_dir}: rerun to retry only these"
            )
        return [r for r in results if r is not None]


# ---------------------------------------------------------------------------- hf backend


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The judge's prompt text up to the start of its answer (chat template when it has one)."""
    if tokenizer.chat_template is None:
        return "\n\n".join(m["content"] for m in messages) + "\n\n"
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token) :]  # the tokenizer adds it again
    return text


def score_slot(skill: str) -> str:
    """Where the judge's score for `skill` goes: the value of its key in FLASK's Python dict."""
    return f"\n\n{{'{skill}':"


def digit_plan(tokenizer: Any, text: str) -> list[list[tuple[tuple[int, ...], int]]]:
    """For each score 1..5: the (context ids, next id) steps whose probabilities multiply to P(" d" | text).

    Tokenisers differ in how they split " 3" (one token, or a space then the digit, and not
    always the same way for every digit), so each digit's continuation is taken from the
    tokenisation of the full text and scored by the chain rule from the common prefix.
    """
    fulls = [tokenizer(text + " " + d)["input_ids"] for d in "12345"]
    common = 0
    while all(len(f) > common + 1 for f in fulls) and len({f[common] for f in fulls}) == 1:
        common += 1
    return [[(tuple(f[:k]), f[k]) for k in range(common, len(f))] for f in fulls]


def shared_prefix_logprobs(
    model: Any, contexts: list[tuple[int, ...]], wanted: dict[tuple[int, ...], set[int]]
) -> dict[tuple[tuple[int, ...], int], float]:
    """log P(token | context) for the wanted tokens of contexts that share a long prefix.

    One instance's score slots differ only in their last few tokens: the common prefix runs
    once, then every suffix runs in one batch on copies of its KV cache (3-6x less work than
    running each full context).
    """
    import torch

    device = next(model.parameters()).device
    shortest = min(map(len, contexts))
    common = 0
    while common < shortest - 1 and len({c[common] for c in contexts}) == 1:
        common += 1
    common = max(common, 1)  # every suffix keeps at least one token: its logits are the ones read
    with torch.inference_mode():
        cache = model(input_ids=torch.tensor([contexts[0][:common]], device=device), use_cache=True).cache
        suffixes = [c[common:] for c in contexts]
        width = max(map(len, suffixes))
        cache.batch_repeat_interleave(len(suffixes))
        ids = torch.tensor([list(s) + [0] * (width - len(s)) for s in suffixes], device=device)
        mask = torch.tensor([[1] * (common + len(s)) + [0] * (width - len(s)) for s in suffixes], device=device)
        positions = torch.arange(common, common + width, device=device).expand(len(suffixes), -1)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache).logits
    last = torch.tensor([len(s) - 1 for s in suffixes], device=device)
    logprobs = torch.log_softmax(logits[torch.arange(len(suffixes), device=device), last].float(), dim=-1).cpu()
    return {(c, token): float(logprobs[row, token]) for row, c in enumerate(contexts) for token in wanted[c]}


def score_skills(model: Any, tokenizer: Any, text: str, skills: Sequence[str]) -> dict[str, tuple[list[float], float]]:
    """Per skill: P(score = 1..5) renormalised over the five, and the probability mass they had."""
    import math

    plans = {skill: digit_plan(tokenizer, text + score_slot(skill)) for skill in skills}
    wanted: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for plan in plans.values():
        for steps in plan:
            for context, token in steps:
                wanted[context].add(token)
    logprobs = shared_prefix_logprobs(model, list(wanted), wanted)
    result = {}
    for skill, plan in plans.items():
        logp = [sum(logprobs[step] for step in steps) for steps in plan]
        top = max(logp)
        p = [math.exp(x - top) for x in logp]  # shifted: no underflow however unlikely the digits are
        result[skill] = ([x / sum(p) for x in p], math.exp(top) * sum(p))
    return result


def hf_judge(
    items: list[dict[str, Any]], prompt: JudgePrompt, rubrics: dict[str, dict[str, Any]], params: JudgeParams
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every skill of every item with a local model; outputs carry FLASK-style text."""
    from tqdm.auto import tqdm

    from stages.generate import context_length, generate, load_model

    model, tokenizer = load_model(params.hf_model)
    limit = context_length(model) - params.feedback_tokens - 16  # room for the score slot

    texts, truncated = [], []
    for item in items:

        def render(response: str, item: dict[str, Any] = item) -> str:
            return render_chat(tokenizer, build_messages(item, prompt, rubrics, response))

        text, cut = fit_prompt(tokenizer, item, render, limit)
        texts.append(text)
        truncated.append(cut)
    feedback = [""] * len(items)
    if params.feedback_tokens:
        generated = generate(
            model, tokenizer, texts, max_new_tokens=params.feedback_tokens, temperature=0.0,
            batch_size=params.batch_size, desc="judge feedback",
        )  # fmt: skip
        feedback = [samples[0] for samples in generated]

    outputs, masses = [], []
    for i, item in enumerate(tqdm(items, desc="judge", unit="instance")):
        weights = score_skills(model, tokenizer, texts[i] + feedback[i], item["skills"])
        expected = {skill: round(sum(d * w for d, w in enumerate(p, 1)), 4) for skill, (p, _) in weights.items()}
        probs = {skill: {"p": [round(w, 6) for w in p], "mass": round(mass, 6)} for skill, (p, mass) in weights.items()}
        masses += [mass for _, mass in weights.values()]
        content = feedback[i].strip() + "\n\n{" + ", ".join(f"'{s}': {v}" for s, v in expected.items()) + "}"
        outputs.append({"content": content.strip(), "probs": probs, "truncated": truncated[i]})
    n_params = sum(p.numel() for p in model.parameters())
    info = {"parameters": n_params, "digit_mass_mean": round(statistics.fmean(masses), 6) if masses else None}
    info["truncated_prompts"] = sum(truncated)
    return outputs, info


def fit_prompt(tokenizer: Any, item: dict[str, Any], render: Callable[[str], str], limit: int) -> tuple[str, bool]:
    """The rendered judge prompt; a response too long for the judge's context loses its end."""
    text = render(item["response"])
    excess = len(tokenizer(text)["input_ids"]) - limit
    if excess <= 0:
        return text, False
    response_ids = tokenizer(item["response"], add_special_tokens=False)["input_ids"]
    keep = len(response_ids) - excess - 8  # re-tokenising the cut text can shift a few tokens
    if keep < 0:
        raise StageError(
            f"FLASK instance {item['idx']}: the judge prompt is {excess} tokens over the judge's context "
            f"even without the response; use a judge with a longer context"
        )
    return render(tokenizer.decode(response_ids[:keep]) + " [...]"), True


# ---------------------------------------------------------------------------- the stage


def read_answers(path: Path) -> list[dict[str, Any]]:
    try:
        rows = read_jsonl(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StageError(f"cannot read answers {path}: {err}".replace("\n", " ")) from err
    for number, row in enumerate(rows, 1):
        missing = [f for f in ANSWER_FIELDS if f not in row]
        if missing:
            raise StageError(f"{path}:{number}: missing {', '.join(missing)} (written by stages.eval_align?)")
    if not rows:
        raise StageError(f"{path}: no answers")
    return rows


def judge_label(params: JudgeParams, n_params: int | None = None) -> str:
    if params.backend == "openai":
        return f"openai:{params.model}"
    weak = n_params is not None and n_params < WEAK_JUDGE_PARAMS
    return f"hf:{params.hf_model}" + (" [weak judge]" if weak else "")


def judge(
    items: list[dict[str, Any]], params: AlignParams, cache_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Judge every item: (judgments, metrics, breakdown)."""
    source = FlaskSource(params.flask)
    rubrics = read_rubrics(source)
    prompt = read_judge_prompt(source, params.judge.prompt_id)
    settings: dict[str, Any] = {"backend": params.judge.backend, "prompt_id": prompt.prompt_id}
    cache_dir.mkdir(parents=True, exist_ok=True)  # a DVC output even when the hf backend does not use it
    if params.judge.backend == "openai":
        client = OpenAIJudge(params.judge, cache_dir)
        outputs = client.judge_all([build_messages(item, prompt, rubrics) for item in items])
        print(f"judge: {client.calls} calls to {client.base_url}, {client.hits} answered from the cache")
        label = judge_label(params.judge)
        settings |= {"model": params.judge.model, "temperature": params.judge.temperature}
        settings |= {"max_tokens": params.judge.max_tokens}
    else:
        if not (Path(params.judge.hf_model) / "config.json").is_file():
            raise StageError(f"eval.align.judge.hf_model={params.judge.hf_model!r} is not a model directory")
        outputs, info = hf_judge(items, prompt, rubrics, params.judge)
        label = judge_label(params.judge, info["parameters"])
        settings |= {"model": params.judge.hf_model, "feedback_tokens": params.judge.feedback_tokens, **info}

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
    breakdown["flask_sha256"] = dict(sorted(source.sha256.items()))
    return judgments, metrics, breakdown


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise StageError("usage: python -m stages.judge <answers.jsonl> <out dir> <cache dir>")
    answers, out_dir, cache_dir = Path(argv[0]), Path(argv[1]), Path(argv[2])
    params = load(AlignParams, "eval.align")
    items = read_answers(answers)
    judgments, metrics, breakdown = judge(items, params, cache_dir)
    write_jsonl(out_dir / "judgments.jsonl", judgments)
    write_json(out_dir / "breakdown.json", breakdown)
    write_json(out_dir / "metrics.json", metrics)
    align = metrics["align"]
    print(
        f"judge: {align['instances']} instances, {align['parse_failures']} parse failures, "
        f"avg {align['avg']} ({align['judge']}) -> {out_dir / 'metrics.json'}"
    )


if __name__ == "__main__":
    cli(main)
