"""Batched text generation shared by the evaluation stages (eval_code, eval_align).

    model, tokenizer = load_model("models/sft/AC")
    texts = generate(model, tokenizer, prompts, max_new_tokens=256, temperature=0.8, top_p=0.95,
                     num_samples=10, batch_size=16, stop=["\\ndef "], seed=0)
    # texts[i][j]: sample j of prompts[i], the prompt removed, cut before the first stop sequence

The prompt format is the caller's business. Prompts are sorted by token length so a batch
pads little (left padding, so every row ends where generation starts), and the results come
back in the caller's order. Sampling is reseeded per batch: the same prompts, batch size and
seed give the same texts (on the same hardware). temperature 0 is greedy decoding, and then
a prompt is generated once and its text repeated num_samples times.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instmix.core import hub

DEFAULT_CONTEXT = 2048  # when the config names no context length


def load_model(model_dir: str | Path, *, device: str | None = None) -> tuple[Any, Any]:
    """A plain HF model directory, ready to generate: eval mode, left padding, a pad token.

    fp32 on a CPU, bf16 on a GPU. `device` defaults to cuda when available.
    """
    hub.go_offline()
    # Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning
    # made each decode step ~18x slower here (2.8 s vs 0.16 s). Read when torch starts its threads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # Llama-2 has none; generation only needs a filler the mask hides
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model.eval()
    return model, tokenizer


def context_length(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(getattr(config, "max_position_embeddings", None) or DEFAULT_CONTEXT)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the earliest stop sequence (all of it when none occurs)."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


class _StopOnText:
    """Marks a row finished once its new text holds a stop sequence, so a batch ends early.

    Only a tail of the new tokens is decoded each step: wide enough for the longest stop
    sequence (a token is at least one byte), so the check stays cheap on long generations.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int) -> None:
        self.tokenizer, self.stop, self.prompt_length = tokenizer, [s for s in stop if s], prompt_length
        self.window = max((len(s.encode()) for s in self.stop), default=0) + 2
        self.done: Any = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        new = input_ids[:, self.prompt_length :]
        tails = self.tokenizer.batch_decode(new[:, -self.window :], skip_special_tokens=True)
        for row, tail in enumerate(tails):
            if not self.done[row] and any(s in tail for s in self.stop):
                self.done[row] = True
        return self.done.clone()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    num_samples: int = 1,
    batch_size: int = 8,
    stop: Sequence[str] = (),
    seed: int = 0,
    progress: bool = True,
    desc: str = "generate",
) -> list[list[str]]:
    """`num_samples` completions of each prompt (prompt removed, cut before the first stop sequence).

    temperature 0 = greedy; otherwise nucleus sampling at `temperature` and `top_p` (no top-k).
    Prompts longer than the context minus max_new_tokens lose their beginning.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, StoppingCriteriaList

    if max_new_tokens < 1 or num_samples < 1 or batch_size < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise ValueError("generate: max_new_tokens, num_samples, batch_size >= 1, temperature >= 0, top_p in (0, 1]")
    greedy = temperature == 0
    copies = 1 if greedy else num_samples  # greedy samples are identical: generate once
    max_prompt = max(1, context_length(model) - max_new_tokens)
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"][-max_prompt:] for p in prompts]
    jobs = [(i, j) for i in range(len(prompts)) for j in range(copies)]
    jobs.sort(key=lambda job: (-len(encoded[job[0]]), job))  # longest first: memory trouble shows at once

    eos = tokenizer.eos_token_id
    model_eos = model.generation_config.eos_token_id
    eos_ids = sorted({eos, *(model_eos if isinstance(model_eos, list) else [model_eos])} - {None})
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_p": top_p}
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids,
        top_k=0 if not greedy else None,
        **sampling,
    )
    results: dict[tuple[int, int], str] = {}
    device = next(model.parameters()).device
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    with tqdm(total=len(jobs), desc=desc, unit="sample", disable=not progress) as bar:
        for number, batch in enumerate(batches):
            rows = [encoded[i] for i, _ in batch]
            width = max(map(len, rows))
            pad = tokenizer.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
            attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            criteria = StoppingCriteriaList([_StopOnText(tokenizer, stop, input_ids.shape[1])] if stop else [])
            torch.manual_seed(seed * 1_000_003 + number)
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    stopping_criteria=criteria,
                )
            texts = tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
            for job, text in zip(batch, texts, strict=True):
                results[job] = cut_at_stop(text, stop)
            bar.update(len(batch))
    return [[results[(i, j if not greedy else 0)] for j in range(num_samples)] for i in range(len(prompts))]
