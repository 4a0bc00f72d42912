"""Padded batches vs TRL `bfd` packing (padding-free) for SFT of SmolLM2-135M-Instruct, on CPU.

Both modes train one epoch on the same examples: an equal, seeded random sample from each of
the real sources in ../shared/data (Alpaca, CodeAlpaca, the P3 T0-train sample), read with
the pipeline's own readers and trained by `instmix.train.sft.build_trainer`, so the benchmark runs
what sft@<setting> runs. Same max_length, per-device batch and global batch in both modes; in
the packed mode one "example" of the batch is a packed row of up to max_length tokens.

Measured per mode, from the collated batches the model was fed:
- tokens/s: non-padding tokens per wall second over the optimizer steps after the warmup;
- padding waste: pad tokens / all tokens, over every batch fed.
Other jobs may share the cores, so each mode runs --repeats times, alternated (AB BA), and the
best run of each mode is compared.

    python bench/sft_packing.py [--per-source 16] [--global-batch 4] [--repeats 2] [--base DIR]

The base model is built once by the base stage (model.base: smollm2) into --cache.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `python bench/sft_packing.py`

from instmix.core import hub  # noqa: E402
from instmix.core.records import Record  # noqa: E402
from instmix.train.config import SFTParams  # noqa: E402
from instmix.train.sft import build_trainer, prompt_lengths  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "assets" / "demo"
SHARED_SOURCES = {  # the files the issue names: the original Alpaca sample, CodeAlpaca 2k, P3 T0-train
    "alpaca": "alpaca/alpaca_data_sample.json",
    "codealpaca": "codealpaca/code_alpaca_2k.json",
    "p3": "p3_t0_train_sample",
}
DEMO_SOURCES = {"alpaca": "alpaca.json", "codealpaca": "codealpaca.json", "p3": "p3"}


# ---------------------------------------------------------------------------- data


def read_sources(root: Path, layout: dict[str, str]) -> dict[str, list[Record]]:
    """Every record of the three sources, normalised as fetch@<source> normalises them."""
    from instmix.data.sources import Drops, p3_task_files, read_instructions, read_p3_task

    drops = Drops()
    records = {s: list(read_instructions(s, root / layout[s], drops)) for s in ("alpaca", "codealpaca")}
    p3 = root / layout["p3"]
    records["p3"] = [r for task, files in p3_task_files(p3).items() for r in read_p3_task(task, files, drops)]
    return records


def sample_mix(sources: dict[str, list[Record]], per_source: int, seed: int) -> list[Record]:
    """`per_source` records drawn at random from each source (fewer if a source is smaller), shuffled."""
    rng = random.Random(seed)
    n = min(per_source, *(len(rs) for rs in sources.values()))
    mix = [r for name in sorted(sources) for r in rng.sample(sources[name], n)]
    rng.shuffle(mix)
    return mix


def keep_trainable(tokenizer: Any, records: list[Record], max_length: int) -> tuple[list[Record], int]:
    """Drop examples whose prompt alone fills max_length: the padded mode drops them (no supervised
    token left), the packed mode would keep them; dropping them first gives both modes the same tokens."""
    lengths = prompt_lengths(tokenizer, records, "paper")
    kept = [r for r, length in zip(records, lengths, strict=True) if length < max_length]
    return kept, len(records) - len(kept)


# ---------------------------------------------------------------------------- measuring


@dataclass
class Batch:
    real: int
    """Tokens of the examples in the micro-batch (what the model should attend to)."""
    total: int
    """Tokens the model was fed, padding included."""
    examples: int
    """Original examples in it (a packed row holds several)."""
    supervised: int
    """Tokens with a label (the response): the only positions TRL's fused LM head projects."""


class CountingCollator:
    """Wraps TRL's collator; records real and fed tokens of every micro-batch, and checks them
    against the batch's own bookkeeping (attention_mask when padded, position_ids when padding-free)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[Batch] = []

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.inner(examples)
        lengths = [n for e in examples for n in e.get("seq_lengths", [len(e["input_ids"])])]
        real, total = sum(lengths), batch["input_ids"].numel()
        if "attention_mask" in batch:
            if int(batch["attention_mask"].sum()) != real:
                raise AssertionError(f"attention_mask counts {int(batch['attention_mask'].sum())}, examples {real}")
        else:  # padding-free: one flat row; positions restart at 0 at each original example
            positions = batch["position_ids"]
            expected = torch.cat([torch.arange(n) for n in lengths])
            if positions.shape[0] != 1 or not torch.equal(positions[0, :real], expected):
                raise AssertionError("padding-free position_ids do not restart at each example")
            if positions[0, real:].any():
                raise AssertionError("padding-free row has non-zero positions after its examples")
        supervised = int((batch["labels"] != -100).sum())
        self.batches.append(Batch(real=real, total=total, examples=len(lengths), supervised=supervised))
        return batch


def step_clock() -> Any:
    """A TrainerCallback that stamps the end of every optimizer step (after the GPU finished it)."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    return StepClock()


@dataclass
class Result:
    mode: str
    steps: int
    timed_steps: int
    timed_seconds: float
    timed_tokens: int
    timed_supervised: int
    real_tokens: int
    fed_tokens: int
    examples: int
    micro_batches: int
    trainer_tokens: int
    """Trainer's own count (num_input_tokens_seen, non_padding), for comparison."""
    losses: list[float] = field(default_factory=list)
    peak_memory_gb: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.timed_tokens / self.timed_seconds

    @property
    def padding(self) -> float:
        return 1 - self.real_tokens / self.fed_tokens


def run_mode(
    mode: str,
    params: SFTParams,
    records: list[Record],
    base: Path,
    warmup_steps: int,
    max_steps: int | None = None,
    after: Callable[[Any], None] | None = None,
) -> Result:
    """Train with `params` (one epoch, or `max_steps`) and measure what the model was fed.
    `after(trainer)` runs once training is done, before the trainer is freed."""
    import torch

    from instmix.train.config import gradient_accumulation
    from instmix.train.sft import peak_memory_gb

    with tempfile.TemporaryDirectory() as checkpoints:
        trainer, _ = build_trainer(params, 42, records, base, Path(checkpoints))
        if max_steps is not None:
            trainer.args.max_steps = max_steps
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        clock = step_clock()
        trainer.add_callback(clock)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        if after is not None:
            after(trainer)
        state = trainer.state
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        trainer_tokens = int(state.num_input_tokens_seen)
        memory = peak_memory_gb()
        del trainer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    accumulation = gradient_accumulation(params, 1)
    steps = len(clock.ends)
    if steps <= warmup_steps:
        raise SystemExit(f"error: {mode}: only {steps} optimizer steps; need more than {warmup_steps} (warmup)")
    # the dataloader may collate one batch ahead: count only the micro-batches of steps that ran
    fed = counter.batches[: steps * accumulation]
    timed = fed[warmup_steps * accumulation :]
    bad = [x for x in losses if not math.isfinite(x)]
    if bad or not losses:
        raise SystemExit(f"error: {mode}: loss is not finite: {losses}")
    return Result(
        mode=mode,
        steps=steps,
        timed_steps=steps - warmup_steps,
        timed_seconds=clock.ends[-1] - clock.ends[warmup_steps - 1] if warmup_steps else math.nan,
        timed_tokens=sum(b.real for b in timed),
        timed_supervised=sum(b.supervised for b in timed),
        real_tokens=sum(b.real for b in fed),
        fed_tokens=sum(b.total for b in fed),
        examples=sum(b.examples for b in fed),
        micro_batches=len(fed),
        trainer_tokens=trainer_tokens,
        losses=losses,
        peak_memory_gb=memory,
    )


# ---------------------------------------------------------------------------- setup


def smollm2_base(cache: Path) -> Path:
    """models/base for model.base: smollm2, built once by the base stage as DVC runs it."""
    out = cache / "smollm2"
    if (out / "config.json").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "params.yaml").write_text("model:\n  base: smollm2\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"building the SmolLM2 base model in {out} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "stages.base", out.name], cwd=cache, env=env, check=True)
    return out


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores, {cpu}, load average {load}"


def table(runs: list[tuple[Result, str]]) -> str:
    header = "| mode | load at start | examples | steps (timed) | tokens fed | padding | tokens/s |"
    rows = [header, "|---" * 7 + "|"]
    for r, load in runs:
        rows.append(
            f"| {r.mode} | {load} | {r.examples} | {r.steps} ({r.timed_steps}) | {r.fed_tokens:,} | {r.padding:.1%} "
            f"| {r.tokens_per_second:,.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="default: ../shared/data")
    parser.add_argument("--per-source", type=int, default=16, help="examples drawn from each source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--per-device-batch", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=4)
    parser.add_argument("--warmup-steps", type=int, default=1, help="optimizer steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternated; the best counts")
    parser.add_argument("--base", type=Path, help="a model directory (default: SmolLM2 built by the base stage)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "instmix-bench")
    args = parser.parse_args()
    if args.warmup_steps < 1:
        parser.error("--warmup-steps must be at least 1 (the first step pays one-time costs)")
    if not args.data.is_dir():
        print(f"skipped: {args.data} is not present (this benchmark needs the real source samples)")
        return
    start, machine_at_start = time.perf_counter(), machine()
    hub.go_offline()
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    base = args.base or smollm2_base(args.cache)
    tokenizer = AutoTokenizer.from_pretrained(base)
    records = sample_mix(read_sources(args.data, SHARED_SOURCES), args.per_source, args.seed)
    records, dropped = keep_trainable(tokenizer, records, args.max_length)
    print(f"{len(records)} examples ({args.per_source} per source, {dropped} dropped: prompt >= max_length)")

    params = SFTParams(
        epochs=1.0,
        warmup_ratio=0.0,
        global_batch=args.global_batch,
        per_device_batch=args.per_device_batch,
        max_length=args.max_length,
        precision="fp32",
        attn_implementation="sdpa",
        save_steps=10**9,  # no checkpoints inside the timing
    )
    # Other jobs may share the cores: alternate the modes (AB BA ...) and keep each mode's best run.
    modes = {False: "padded", True: "bfd packing, padding-free"}
    runs: list[tuple[Result, str]] = []
    for repeat in range(args.repeats):
        for packing in (False, True) if repeat % 2 == 0 else (True, False):
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"--- {modes[packing]} (run {repeat + 1} of {args.repeats}, load {load})", flush=True)
            mode = replace(params, batching="packed" if packing else "padded")
            runs.append((run_mode(modes[packing], mode, records, base, args.warmup_steps), load))
    tokens = {r.real_tokens for r, _ in runs}
    if len(tokens) != 1:
        raise SystemExit(f"error: the runs trained different numbers of tokens: {sorted(tokens)}")
    results = [
        max((r for r, _ in runs if r.mode == mode), key=lambda r: r.tokens_per_second) for mode in modes.values()
    ]
    padded, packed = results

    print(f"\nSFT of {base.name}, max_length {args.max_length}, per-device batch {args.per_device_batch}, "
          f"global batch {args.global_batch}, fp32, sdpa, warmup {args.warmup_steps} step(s) not timed")  # fmt: skip
    print(table(runs))
    print(f"speed-up: {packed.tokens_per_second / padded.tokens_per_second:.2f}x tokens/s (best run of each mode); "
          f"same {padded.real_tokens:,} example tokens in every run")  # fmt: skip
    for r in results:
        print(f"{r.mode}: Trainer's num_input_tokens_seen {r.trainer_tokens:,} vs {r.real_tokens:,} counted here")
    print(f"machine at the start: {machine_at_start}\nmachine at the end:   {machine()}")
    print(f"wall time: {time.perf_counter() - start:.0f} s (other jobs may share these cores: see the load)")


if __name__ == "__main__":
    main()
