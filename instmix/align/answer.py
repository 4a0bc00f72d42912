"""The evaluated model answers FLASK's instructions (stage eval_align@<model id>, alignment part 1).

Eval set (paper, App. B): instances with `idx <= idx_max` (1,700: the file as the paper read
it) whose annotated skills all lie among the `top_skills` (8) most frequent skills of those
instances: exactly 1,180 on FLASK's file. `limit` draws a seeded random subset of them.
Answers are one row per instance (sorted by idx) with the instruction, FLASK's reference
answer, its skills, domain and difficulty, and the model's `response`. Judging is a separate
stage, so changing or re-running the judge never regenerates answers.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from instmix.align.flask import read_eval_set, read_rubrics, rubric_for
from instmix.core.params import ParamsError, StageError
from instmix.gen.generate import check_engine


@dataclass(frozen=True)
class AlignParams:
    """FLASK alignment evaluation. Defaults: the paper's eval set and FLASK's inference settings."""

    idx_max: int = 1700
    """Keep instances with idx <= idx_max (the 1,700 instances the paper's copy of FLASK had)."""
    top_skills: int = 8
    """Keep instances whose skills all lie among this many most frequent skills (paper: 8)."""
    limit: int | None = None
    """Evaluate a seeded random subset of this many instances; null = all (1,180)."""
    template: Literal["paper", "chat"] = "paper"
    """How the model sees an instruction; match sft.template. paper: the instruction as is (training
    was prompt + " " + response); chat: the tokenizer's chat template. Neither is FLASK's
    inference.py, which wraps it in a fastchat chat template: the paper states no inference prompt,
    its models never saw a chat template, and LLaMA-2's base tokenizer has none (the fidelity
    table names the difference)."""
    max_new_tokens: int = 1024
    temperature: float = 0.7
    """0 = greedy. Default: FLASK's inference.py (the paper does not say)."""
    top_p: float = 1.0
    batch_size: int = 8
    """Sequences generated together by the padded engine."""
    engine: Literal["auto", "padded", "continuous", "vllm"] = "auto"
    """How completions are generated (instmix.gen.generate): auto = continuous on a GPU, padded on a
    CPU; padded = fixed batches of batch_size; continuous = transformers' continuous batching; vllm =
    vLLM (a separate environment, a GPU). Greedy texts are the same on every engine."""
    seed: int = 0
    """Seeds the `limit` draw and the sampling."""

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
        check_engine(self.engine)


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


def load_eval_set(folder: Path, params: AlignParams) -> list[dict[str, Any]]:
    """Read FLASK's eval set and rubrics, select the instances, and check every skill has a rubric."""
    rubrics = read_rubrics(folder)
    chosen = select(read_eval_set(folder), params)
    if not chosen:
        raise StageError(f"no FLASK instance passes idx <= {params.idx_max} and the top-{params.top_skills} skills")
    for skill in sorted({s for i in chosen for s in i["skills"]}):
        rubric_for(skill, rubrics)
    return chosen


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
    from instmix.gen.generate import generate, load_model

    model, tokenizer = load_model(model_dir, engine=params.engine)
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
        engine=params.engine,
    )
    return [{**instance, "response": samples[0].strip()} for instance, samples in zip(instances, texts, strict=True)]
