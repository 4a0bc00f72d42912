"""The `hf` judge backend: a local model scores each skill from its next-token distribution.

For each skill it reads the judge's distribution at the score position of the Python dict
FLASK asks for -- the prompt, optional greedy feedback, then "{'<Skill>':" -- and scores the
skill as the probability-weighted mean of " 1".." 5" (renormalised over the five).
Deterministic. A response too long for the judge's context loses its end (counted).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from instmix.align.flask import JudgePrompt
from instmix.core.params import StageError

if TYPE_CHECKING:
    from instmix.align.judge_params import JudgeParams


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

    from instmix.align.flask import build_messages
    from instmix.gen.generate import context_length, generate, load_model

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
            batch_size=params.batch_size, desc="judge feedback", engine=params.engine,
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
