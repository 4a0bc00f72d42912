"""Fine-tuning params (the `sft` section), grouped by concern, and what `auto` resolves to here."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Literal

from instmix.core.params import ParamsError, StageError


@dataclass(frozen=True)
class LoraParams:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
    save: Literal["merged", "adapter"] = "merged"
    """`merged`: fold the adapter into the weights and save a plain model (what the eval
    stages load). `adapter`: save only the adapter (small; load it with peft on the base)."""


@dataclass(frozen=True)
class SFTParams:
    """Training hyperparameters. Defaults are the paper's (docs/paper.md section 1.6)."""

    epochs: float = 2.0
    lr: float = 5e-5
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    warmup_ratio: float = 0.03
    global_batch: int = 64
    """Examples per optimizer step: per_device_batch x gradient accumulation x processes."""
    per_device_batch: int = 4
    max_length: int = 512
    """Tokens per example (or per packed row); longer examples are cut at the end."""
    template: Literal["paper", "chat"] = "paper"
    batching: Literal["auto", "padded", "padding_free", "packed"] = "auto"
    """How a micro-batch is laid out; global_batch counts examples in every mode but `packed`.
    padded: each example a row, padded to the longest. padding_free: the batch's examples end to
    end in one row, positions restarting per example (no attention across examples, no pad
    tokens): the same loss and gradients as padded, without the padding's compute. packed: TRL's
    best-fit-decreasing packing into max_length rows, where a batch item is a *row* of several
    examples, so the steps per epoch depend on example lengths (a deviation, flagged in the
    report). auto: padding_free on a GPU, padded on a CPU."""
    loss_normalization: Literal["per_microbatch_token_mean", "global_token_mean"] = "per_microbatch_token_mean"
    """How the token losses of one optimizer step become one loss (instmix/train/loss.py).
    per_microbatch_token_mean (the authors': HF Trainer before 4.46): each micro-batch's mean over its
    supervised tokens, averaged over the accumulation steps and the processes, so a micro-batch of
    short answers (P3) weighs as much as one of long answers; an example whose prompt fills max_length
    stays in the data with zero loss (it counts towards the steps and costs a forward pass).
    global_token_mean (TRL's default): the summed token loss over the supervised token count of the
    whole global batch, so every token weighs the same; TRL drops examples without a supervised token."""
    precision: Literal["auto", "bf16_mixed", "bf16_pure", "fp32"] = "auto"
    """bf16_mixed: fp32 master weights and optimizer state, bf16 autocast compute (the authors'
    ZeRO-3 setup). bf16_pure: weights loaded and updated in bf16 (at lr 5e-5 small updates can
    vanish; a deviation, flagged in the report). auto: bf16_mixed on a GPU, fp32 on a CPU."""
    attn_implementation: Literal[
        "auto", "sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_4"
    ] = "auto"
    """auto: flash_attention_2 on a GPU when flash-attn is importable, else sdpa. sdpa and eager run
    anywhere; flex_attention (torch's, built in), flash_attention_2 (the flash-attn package: no wheel
    for torch 2.13, source build only) and flash_attention_4 (flash-attn-4) need a GPU, and
    flash_attention_4 has no backward pass for head dim < 128 on Hopper (SmolLM2-135M: 64; Llama-2: 128).
    Every choice computes the same attention; the fidelity table is not affected."""
    liger: bool = False
    """Liger's Triton kernels (GPU, liger-kernel from requirements-gpu.txt): fused RMSNorm, RoPE and
    SwiGLU. The cross-entropy stays TRL's own chunked LM-head loss (TRL turns Liger's fused linear
    cross-entropy off), so no logits tensor is materialised either way. Same maths, fp rounding aside."""
    compile: bool = False
    """torch.compile the model (Trainer's torch_compile). Padding-free batches vary in length, so
    the first steps recompile; measure before turning it on (bench/gpu_check.sh). The optimizer is
    fused AdamW in every mode (transformers' default with torch >= 2.8): the same update as AdamW."""
    gradient_checkpointing: bool = False
    lora: LoraParams | None = None
    """Train a LoRA adapter instead of all weights; null = full fine-tuning (the paper)."""
    launcher: Literal["single", "ddp", "fsdp", "zero3"] = "single"
    """The accelerate config in configs/accelerate/ that dvc.yaml launches with (paper: zero3)."""
    num_processes: int = 1
    """Processes (GPUs) on this machine; must be 1 with launcher single."""
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 1

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "lr": self.lr, "global_batch": self.global_batch}
        positive |= {"per_device_batch": self.per_device_batch, "save_steps": self.save_steps}
        positive |= {"save_total_limit": self.save_total_limit, "logging_steps": self.logging_steps}
        for key, value in positive.items():
            if value <= 0:
                raise ParamsError(key, value, "a positive number")
        if not 0 <= self.warmup_ratio < 1:
            raise ParamsError("warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        if self.max_length < 8:
            raise ParamsError("max_length", self.max_length, "an integer >= 8")
        if self.num_processes < 1 or (self.launcher == "single" and self.num_processes != 1):
            raise ParamsError("num_processes", self.num_processes, "1 with launcher single, else the number of GPUs")
        per_step = self.per_device_batch * self.num_processes
        if self.global_batch % per_step:
            allowed = f"a multiple of per_device_batch x num_processes ({self.per_device_batch} x {self.num_processes})"
            raise ParamsError("global_batch", self.global_batch, allowed)
        if self.lora is not None and self.launcher in ("fsdp", "zero3"):
            raise ParamsError("lora", asdict(self.lora), "null with launcher fsdp or zero3 (LoRA: single or ddp)")


# ---------------------------------------------------------------------------- environment


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def gradient_accumulation(params: SFTParams, processes: int) -> int:
    per_step = params.per_device_batch * processes
    if params.global_batch % per_step:
        raise StageError(
            f"sft.global_batch={params.global_batch} is not divisible by per_device_batch x processes "
            f"= {params.per_device_batch} x {processes}; choose a multiple of {per_step}"
        )
    return params.global_batch // per_step


@dataclass(frozen=True)
class Runtime:
    """What `auto` params resolve to on this machine."""

    device: str
    batching: str
    precision: str
    attn_implementation: str

    @property
    def bf16(self) -> bool:
        """bf16 compute (autocast, or pure)."""
        return self.precision != "fp32"


def resolve_runtime(params: SFTParams, gpu: bool | None = None) -> Runtime:
    """`gpu`: whether a CUDA device is there (default: ask torch)."""
    import importlib.util

    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    attn = params.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if gpu and importlib.util.find_spec("flash_attn") else "sdpa"
    refuse_unavailable(params, gpu)
    batching = params.batching if params.batching != "auto" else "padding_free" if gpu else "padded"
    precision = params.precision if params.precision != "auto" else "bf16_mixed" if gpu else "fp32"
    return Runtime(device="cuda" if gpu else "cpu", batching=batching, precision=precision, attn_implementation=attn)


GPU_ONLY_ATTENTION = {"flex_attention", "flash_attention_2", "flash_attention_4"}


def refuse_unavailable(params: SFTParams, gpu: bool) -> None:
    """GPU-only options on a CPU, or options whose package is missing: one line, not a silent fallback."""
    import importlib.metadata
    import importlib.util

    attn = params.attn_implementation
    if attn in GPU_ONLY_ATTENTION and not gpu:
        raise ParamsError("sft.attn_implementation", attn, "auto, sdpa or eager on a CPU (it needs a GPU)")
    if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ParamsError("sft.attn_implementation", attn, "auto, sdpa or flex_attention: flash-attn is not installed")
    if attn == "flash_attention_4":
        try:
            importlib.metadata.version("flash-attn-4")
        except importlib.metadata.PackageNotFoundError:
            allowed = "auto, sdpa or flex_attention: flash-attn-4 is not installed"
            raise ParamsError("sft.attn_implementation", attn, allowed) from None
    if params.liger and not gpu:
        raise ParamsError("sft.liger", True, "false on a CPU (Liger's kernels are Triton, GPU only)")
    if params.liger and importlib.util.find_spec("liger_kernel") is None:
        raise ParamsError("sft.liger", True, "false: liger-kernel is not installed (make gpu)")


def refuse_head_dim(params: SFTParams, head_dim: int, capability: tuple[int, int]) -> None:
    """flash_attention_4 trains only with head dim >= 128 on Hopper (sm_90): it has no backward below."""
    if params.attn_implementation == "flash_attention_4" and capability[0] == 9 and head_dim < 128:
        allowed = f"sdpa or flex_attention for this model (head dim {head_dim}; flash-attn-4 trains >= 128 on Hopper)"
        raise ParamsError("sft.attn_implementation", "flash_attention_4", allowed)
