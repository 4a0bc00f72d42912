"""The `eval.lik` section: teacher-forced likelihood of held-out records, HumanEval's canonical
solutions and FLASK's reference answers (stage eval_lik@<model id>).

A stage reads only its own section, so the values that must equal other sections' are repeated
here and recorded in the metrics: `template` and `max_length` are sft's (the held-out loss is the
training loss on unseen records), `code_limit` / `code_prompt_template` are eval.code's, and the
`align_*` keys are eval.align's (the same problems and instances as pass@1 and the judge scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instmix.core.params import ParamsError


@dataclass(frozen=True)
class LikParams:
    """Likelihood scoring settings. Defaults: the paper profile's."""

    template: Literal["paper", "chat"] = "paper"
    """The training template of the held-out records; set it to sft.template. paper: prompt + " " +
    response (+ EOS, not scored); chat: the tokenizer's chat template (its closing tokens not scored)."""
    max_length: int = 512
    """Tokens per held-out example, cut at the end as training cuts; set it to sft.max_length."""
    limit: int | None = None
    """Score the first `limit` records of each held-out file (draw order: a random subset); null = all."""
    code_limit: int | None = None
    """The first `code_limit` HumanEval problems, as eval.code.limit; null = all 164."""
    code_prompt_template: str = "{prompt}"
    """The model's input for a problem, as eval.code.prompt_template ({prompt}: the HumanEval prompt)."""
    align_template: Literal["paper", "chat"] = "paper"
    """How an instruction is shown, as eval.align.template (paper: as is; chat: the chat template)."""
    align_idx_max: int = 1700
    """As eval.align.idx_max."""
    align_top_skills: int = 8
    """As eval.align.top_skills."""
    align_limit: int | None = None
    """As eval.align.limit (a seeded subset of the FLASK instances); null = all."""
    align_seed: int = 0
    """As eval.align.seed (seeds the align_limit draw)."""
    batch_size: int = 8
    """Sequences (padded) or rows of the longest example's length (packed) per forward pass."""
    layout: Literal["auto", "padded", "packed"] = "auto"
    """padded: one sequence per row; packed: length-sorted packing, no attention across sequences.
    auto: packed where the attention implementation separates packed sequences, else padded."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda when a GPU is visible, else cpu."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: bfloat16 on a GPU, float32 on a CPU."""

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ParamsError("max_length", self.max_length, "an integer >= 8 (sft.max_length)")
        if self.batch_size < 1:
            raise ParamsError("batch_size", self.batch_size, "a positive integer")
        for key in ("limit", "code_limit", "align_limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ParamsError(key, value, "null (all) or a positive integer")
        for key in ("align_idx_max", "align_top_skills"):
            if getattr(self, key) < 1:
                raise ParamsError(key, getattr(self, key), "a positive integer")
        if "{prompt}" not in self.code_prompt_template:
            raise ParamsError("code_prompt_template", self.code_prompt_template, "a string containing {prompt}")
