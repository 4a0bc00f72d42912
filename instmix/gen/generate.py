"""Text generation shared by the evaluation stages (eval_code, eval_align, judge), on one of three engines.

    model, tokenizer = load_model("models/sft/AC")
    texts = generate(model, tokenizer, prompts, max_new_tokens=256, temperature=0.8, top_p=0.95,
                     num_samples=10, batch_size=16, stop=["\\ndef "], seed=0, engine="continuous")
    # texts[i][j]: sample j of prompts[i], the prompt removed, cut before the first stop sequence

Engines (the `engine` param of eval.code, eval.align and eval.judge):
- padded: `model.generate` on fixed batches of `batch_size` rows, sorted by prompt length, left
  padded; a batch ends when every row hit EOS or a stop sequence. Sampling is reseeded per batch.
- continuous: transformers' continuous batching (`generate_batch`'s manager, paged attention):
  a finished sequence frees its slot at once, so no row waits for the batch's longest. Every
  request is queued before the loop starts, so the schedule, and with it the seeded sampling, is
  the same on every run. Stop sequences are applied to the finished text (the engine knows only
  EOS), so a sequence runs to EOS or max_new_tokens. batch_size is not used.
- vllm: vLLM's offline engine, only where `vllm` is importable (requirements-vllm.txt, a separate
  environment: it pins its own torch) and a GPU is there. Each request is seeded (SamplingParams.seed),
  so samples do not depend on batching.
Greedy texts are the same on every engine (tests/test_generate.py; on a GPU, bench/gpu_check.sh);
sampled texts follow the same distribution but not the same random stream across engines.

The prompt format is the caller's business. Results come back in the caller's order. temperature 0
is greedy decoding, and then a prompt is generated once and its text repeated num_samples times.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from instmix.core import hub
from instmix.core.params import ParamsError, StageError

DEFAULT_CONTEXT = 2048  # when the config names no context length
Engine = Literal["auto", "padded", "continuous", "vllm"]


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_engine(engine: str, gpu: bool | None = None) -> str:
    """auto: continuous on a GPU, padded on a CPU (where continuous batching's per-step bookkeeping
    costs more than padding saves: bench/README.md). vllm is refused, with one line, where it cannot run."""
    gpu = _gpu() if gpu is None else gpu
    if engine == "auto":
        return "continuous" if gpu else "padded"
    if engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ParamsError("engine", engine, "auto, padded or continuous: vllm is not importable here "
                          "(install requirements-vllm.txt into a separate environment)")  # fmt: skip
    if engine == "vllm" and not gpu:
        raise ParamsError("engine", engine, "auto, padded or continuous: vllm runs on a GPU, and none is here")
    return engine


def check_engine(engine: str) -> None:
    """For params validation: refuse vllm where it cannot run (auto is resolved when the model loads)."""
    if engine == "vllm":
        resolve_engine(engine)


def load_model(model_dir: str | Path, *, device: str | None = None, engine: Engine = "padded") -> tuple[Any, Any]:
    """A plain HF model directory, ready to generate: eval mode, left padding, a pad token.

    fp32 on a CPU, bf16 on a GPU. `device` defaults to cuda when available. With engine vllm the
    model is a `vllm.LLM` over the same directory (bf16), beside the same tokenizer.
    """
    hub.go_offline()
    # Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning
    # made each decode step ~18x slower here (2.8 s vs 0.16 s). Read when torch starts its threads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    engine = resolve_engine(engine)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # Llama-2 has none; generation only needs a filler the mask hides
        tokenizer.pad_token = tokenizer.eos_token
    if engine == "vllm":
        from vllm import LLM

        return LLM(model=str(model_dir), dtype="bfloat16", seed=0), tokenizer
    device = device or ("cuda" if _gpu() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model.eval()
    return model, tokenizer


def context_length(model: Any) -> int:
    if hasattr(model, "llm_engine"):  # a vllm.LLM
        return int(model.llm_engine.model_config.max_model_len)
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
    engine: Engine = "padded",
) -> list[list[str]]:
    """`num_samples` completions of each prompt (prompt removed, cut before the first stop sequence).

    temperature 0 = greedy; otherwise nucleus sampling at `temperature` and `top_p` (no top-k).
    Prompts longer than the context minus max_new_tokens lose their beginning.
    """
    if max_new_tokens < 1 or num_samples < 1 or batch_size < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise ValueError("generate: max_new_tokens, num_samples, batch_size >= 1, temperature >= 0, top_p in (0, 1]")
    greedy = temperature == 0
    copies = 1 if greedy else num_samples  # greedy samples are identical: generate once
    max_prompt = max(1, context_length(model) - max_new_tokens)
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"][-max_prompt:] for p in prompts]
    jobs = [(i, j) for i in range(len(prompts)) for j in range(copies)]
    jobs.sort(key=lambda job: (-len(encoded[job[0]]), job))  # longest first: memory trouble shows at once
    engine = resolve_engine(engine, next(model.parameters()).is_cuda if hasattr(model, "parameters") else True)
    sampling = {"temperature": temperature, "top_p": top_p}
    if engine == "vllm":
        texts = _vllm(model, encoded, copies, max_new_tokens, sampling, stop, seed, greedy, progress)
    else:
        config = _generation_config(model, tokenizer, max_new_tokens, sampling, greedy)
        run = _continuous if engine == "continuous" else _padded
        texts = run(model, tokenizer, encoded, jobs, config, batch_size, stop, seed, progress, desc)
    results = {job: cut_at_stop(text, stop) for job, text in texts.items()}
    return [[results[(i, j if not greedy else 0)] for j in range(num_samples)] for i in range(len(prompts))]


def _generation_config(model: Any, tokenizer: Any, max_new_tokens: int, sampling: dict, greedy: bool) -> Any:
    from transformers import GenerationConfig

    model_eos = model.generation_config.eos_token_id
    eos_ids = sorted({tokenizer.eos_token_id, *(model_eos if isinstance(model_eos, list) else [model_eos])} - {None})
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids,
        **({"do_sample": False} if greedy else {"do_sample": True, "top_k": 0, **sampling}),
    )


Job = tuple[int, int]  # (prompt index, sample index)


def _padded(
    model: Any, tokenizer: Any, encoded: list[list[int]], jobs: list[Job], config: Any,
    batch_size: int, stop: Sequence[str], seed: int, progress: bool, desc: str,
) -> dict[Job, str]:  # fmt: skip
    import torch
    from tqdm.auto import tqdm
    from transformers import StoppingCriteriaList

    texts: dict[Job, str] = {}
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    with tqdm(total=len(jobs), desc=desc, unit="sample", disable=not progress) as bar:
        for number, batch in enumerate(batches):
            rows = [encoded[i] for i, _ in batch]
            width = max(map(len, rows))
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
            attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            criteria = StoppingCriteriaList([_StopOnText(tokenizer, stop, input_ids.shape[1])] if stop else [])
            torch.manual_seed(seed * 1_000_003 + number)
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                    stopping_criteria=criteria,
                )  # fmt: skip
            decoded = tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
            texts.update(zip(batch, decoded, strict=True))
            bar.update(len(batch))
    return texts


def _continuous(
    model: Any, tokenizer: Any, encoded: list[list[int]], jobs: list[Job], config: Any,
    batch_size: int, stop: Sequence[str], seed: int, progress: bool, desc: str,
) -> dict[Job, str]:  # fmt: skip
    import torch
    from tqdm.auto import tqdm
    from transformers import ContinuousBatchingConfig

    ids = {f"{i}:{j}": (i, j) for i, j in jobs}
    cb = ContinuousBatchingConfig(seed=seed)
    cuda = next(model.parameters()).is_cuda
    if not cuda:  # sized from the work: on a CPU the default takes 90 % of RAM for the cache (9 s to allocate)
        cb.num_blocks = sum(-(-(len(encoded[i]) + config.max_new_tokens) // cb.page_size) for i, _ in jobs)
        cb.max_batch_tokens = 2048
    manager = model.init_continuous_batching(generation_config=config, continuous_batching_config=cb)
    if cuda:
        manager.warmup()  # captures CUDA graphs
    for request_id, (i, _) in ids.items():  # all queued before the loop starts: a fixed schedule
        manager.add_request(encoded[i], request_id=request_id, max_new_tokens=config.max_new_tokens)
    tokens: dict[Job, list[int]] = {}
    try:
        with torch.inference_mode():
            manager.start()
            with tqdm(total=len(jobs), desc=desc, unit="sample", disable=not progress) as bar:
                while len(tokens) < len(jobs):
                    result = manager.get_result(timeout=1)
                    if result is None:
                        if not manager.is_running():
                            error = manager.background_thread_status.fatal_error
                            left = len(jobs) - len(tokens)
                            raise StageError(f"{desc}: continuous batching stopped with {left} samples left: {error}")
                        continue
                    if result.error is not None:
                        raise StageError(f"{desc}: continuous batching failed on a request: {result.error}")
                    if result.is_finished():
                        tokens[ids[result.request_id]] = list(result.generated_tokens)
                        bar.update(1)
    finally:
        manager.stop(block=True, timeout=30)
        manager.destroy()
    return {job: tokenizer.decode(t, skip_special_tokens=True) for job, t in tokens.items()}


def _vllm(
    llm: Any, encoded: list[list[int]], copies: int, max_new_tokens: int, sampling: dict,
    stop: Sequence[str], seed: int, greedy: bool, progress: bool,
) -> dict[Job, str]:  # fmt: skip
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(
        n=copies, max_tokens=max_new_tokens, stop=[s for s in stop if s], seed=seed, skip_special_tokens=True,
        **({"temperature": 0.0} if greedy else sampling),
    )  # fmt: skip
    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in encoded], params, use_tqdm=progress)
    return {(i, j): sample.text for i, output in enumerate(outputs) for j, sample in enumerate(output.outputs)}
