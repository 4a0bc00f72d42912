"""sft@<setting>: fine-tune the base model on one mixture with TRL's SFTTrainer.

    accelerate launch --config_file configs/accelerate/<launcher>.yaml -m stages.sft \\
        <setting> <mixture.jsonl> <base model dir> <out model dir> <report dir> <checkpoint dir> \
        [--seed N]

`--seed` overrides sft.seed: the replicate stages (sft_seed@…, one per entry of `seeds`) train
the same setting again as model <setting>-s<N>.

The mixture becomes a prompt/completion dataset, so the loss covers response tokens only.
Templates: `paper` trains on prompt + " " + response + EOS (the authors' code); `chat` renders
a user turn and an assistant turn with the tokenizer's chat template.

Writes the fine-tuned model to <out model dir>, DVCLive curves to <report dir>/live and the
final numbers to <report dir>/metrics.json. Checkpoints go to <checkpoint dir>, which DVC
keeps between runs (persist): a run that was killed resumes from its last checkpoint, as long
as the params, the mixture and the base model are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from stages import hub
from stages.files import read_jsonl, write_json
from stages.params import ParamsError, StageError, cli, load, parse
from stages.records import Record

FINGERPRINT = "fingerprint.json"


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
    seed: int = 42
    template: Literal["paper", "chat"] = "paper"
    packing: Literal["auto"] | bool = "auto"
    """Best-fit-decreasing packing, padding-free (no attention across examples). auto: on a GPU only."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto: bf16 on a GPU, fp32 on a CPU."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    """auto: flash_attention_2 on a GPU when flash-attn is importable, else sdpa."""
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
        if self.global_batch % self.per_device_batch:
            allowed = f"a multiple of per_device_batch ({self.per_device_batch})"
            raise ParamsError("global_batch", self.global_batch, allowed)
        if self.num_processes < 1 or (self.launcher == "single" and self.num_processes != 1):
            raise ParamsError("num_processes", self.num_processes, "1 with launcher single, else the number of GPUs")
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
    bf16: bool
    packing: bool
    attn_implementation: str


def resolve_runtime(params: SFTParams) -> Runtime:
    import importlib.util

    import torch

    gpu = torch.cuda.is_available()
    attn = params.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if gpu and importlib.util.find_spec("flash_attn") else "sdpa"
    return Runtime(
        device="cuda" if gpu else "cpu",
        bf16=gpu if params.precision == "auto" else params.precision == "bf16",
        packing=gpu if params.packing == "auto" else params.packing,
        attn_implementation=attn,
    )


# ---------------------------------------------------------------------------- data


def to_example(record: Record, template: str) -> dict[str, Any]:
    if template == "chat":
        return {
            "prompt": [{"role": "user", "content": record["prompt"]}],
            "completion": [{"role": "assistant", "content": record["response"]}],
        }
    return {"prompt": record["prompt"], "completion": " " + record["response"]}


def prompt_lengths(tokenizer: Any, records: list[Record], template: str) -> list[int]:
    """Prompt tokens per example, counted as TRL counts them (chat: with the generation prompt)."""
    if template == "chat":
        return [len(chat_prompt_ids(tokenizer, r["prompt"])) for r in records]
    return [len(ids) for ids in tokenizer([r["prompt"] for r in records])["input_ids"]]


def chat_prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    message = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]


def preflight(tokenizer: Any, records: list[Record], params: SFTParams) -> dict[str, int]:
    """Refuse, before the model is loaded, inputs that cannot train anything."""
    if not records:
        raise StageError("the mixture is empty")
    if params.template == "chat":
        if tokenizer.chat_template is None:
            raise StageError("sft.template=chat but the base tokenizer has no chat template; use template: paper")
        overhead = len(chat_prompt_ids(tokenizer, ""))
        if overhead >= params.max_length:
            allowed = f"more than the chat template's own prompt length ({overhead} tokens)"
            raise ParamsError("sft.max_length", params.max_length, allowed)
    lengths = prompt_lengths(tokenizer, records, params.template)
    cut = sum(length >= params.max_length for length in lengths)
    if cut == len(records):
        raise StageError(
            f"no example keeps a supervised token: every prompt is at least sft.max_length={params.max_length} tokens "
            f"(shortest prompt: {min(lengths)}); raise sft.max_length"
        )
    return {"examples": len(records), "examples_without_supervised_tokens": cut}


# ---------------------------------------------------------------------------- training


def fingerprint(params: SFTParams, mixture: Path, base: Path) -> str:
    digest = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode())
    digest.update(mixture.read_bytes())
    for name in sorted(p.name for p in base.iterdir()):
        digest.update(f"{name}:{(base / name).stat().st_size}".encode())
    digest.update((base / "config.json").read_bytes())
    return digest.hexdigest()


def prepare_checkpoints(directory: Path, run_fingerprint: str) -> bool:
    """Keep the checkpoints only if they belong to this exact run; True when one can be resumed."""
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint

    state = PartialState()
    marker = directory / FINGERPRINT
    same_run = marker.exists() and json.loads(marker.read_text())["fingerprint"] == run_fingerprint
    stale = [c for c in directory.glob("checkpoint-*") if not same_run or not is_complete_checkpoint(c)]
    state.wait_for_everyone()  # every rank has decided before rank 0 changes anything
    if state.is_main_process:
        for old in stale:
            shutil.rmtree(old)
        if not same_run:
            write_json(marker, {"fingerprint": run_fingerprint})
    state.wait_for_everyone()
    return same_run and get_last_checkpoint(str(directory)) is not None


def is_complete_checkpoint(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last: a run killed while saving leaves it absent or cut."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def build_trainer(
    params: SFTParams,
    records: list[Record],
    base: Path,
    checkpoints: Path,
    live_dir: Path | None = None,
    resume: bool = False,
) -> tuple[Any, dict[str, int]]:
    """The SFTTrainer for this run, and the data counts of the preflight check."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    runtime = resolve_runtime(params)
    accumulation = gradient_accumulation(params, world_size())
    tokenizer = AutoTokenizer.from_pretrained(base)
    counts = preflight(tokenizer, records, params)
    model = AutoModelForCausalLM.from_pretrained(
        base,
        dtype=torch.bfloat16 if runtime.bf16 else torch.float32,
        attn_implementation=runtime.attn_implementation,
    )
    config = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=params.epochs,
        learning_rate=params.lr,
        lr_scheduler_type=params.scheduler,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a fraction of the steps
        per_device_train_batch_size=params.per_device_batch,
        gradient_accumulation_steps=accumulation,
        max_length=params.max_length,
        seed=params.seed,
        data_seed=params.seed,
        bf16=runtime.bf16,  # SFTConfig defaults to bf16 even on a CPU
        use_cpu=runtime.device == "cpu",
        packing=runtime.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        activation_checkpointing=params.gradient_checkpointing,  # SFTConfig defaults to True
        logging_steps=params.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        # Padding-free batches have no attention mask: "non_padding" would skip every EOS (= pad) token.
        include_num_input_tokens_seen="all" if runtime.packing else "non_padding",
        report_to="none",  # DVCLive is added below with our own directory
        dataloader_num_workers=0,
    )
    peft_config = None
    if params.lora is not None:
        from peft import LoraConfig

        lora = params.lora
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )
    callbacks = []
    if live_dir is not None:
        from dvclive import Live
        from transformers.integrations import DVCLiveCallback

        # Live() wipes its directory unless resume=True; only rank 0 logs.
        live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None) if is_main_process() else None
        callbacks.append(DVCLiveCallback(live=live))
    dataset = Dataset.from_list([to_example(r, params.template) for r in records])
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    return trainer, counts


def peak_memory_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def save_final(trainer: Any, params: SFTParams, out: Path) -> None:
    """Every rank takes part in saving (FSDP / ZeRO-3 gather the weights); rank 0 renames."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if params.lora is not None and params.lora.save == "merged":
        if trainer.is_world_process_zero():
            trainer.model.merge_and_unload().save_pretrained(tmp)
            trainer.processing_class.save_pretrained(tmp)
    else:
        trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        (tmp / "training_args.bin").unlink(missing_ok=True)  # pickled args: not needed, not deterministic
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)


def train(
    params: SFTParams, setting: str, mixture: Path, base: Path, out: Path, report: Path, checkpoints: Path
) -> dict[str, Any]:
    records = read_jsonl(mixture)
    resume = prepare_checkpoints(checkpoints, fingerprint(params, mixture, base))
    trainer, counts = build_trainer(params, records, base, checkpoints, report / "live", resume)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    wall = time.perf_counter() - start
    save_final(trainer, params, out)
    state = trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    metrics = {
        "train_loss": result.training_loss,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "steps": state.global_step,
        "tokens": int(state.num_input_tokens_seen),
        "wall_seconds": round(wall, 2),
        "tokens_per_second": round(state.num_input_tokens_seen / wall, 1),
        "peak_memory_gb": round(peak_memory_gb(), 3),
        **counts,  # examples, and those left without a supervised token by max_length (not trained on)
        "resumed": resume,
    }
    if trainer.is_world_process_zero():
        write_json(report / "metrics.json", metrics)
        for old in checkpoints.glob("checkpoint-*"):  # finished: only the final model is kept
            shutil.rmtree(old)
        loss = f"{metrics['first_loss']:.3f} -> {metrics['last_loss']:.3f}"
        print(f"sft@{setting}: {metrics['steps']} steps, loss {loss}, {metrics['tokens_per_second']} tokens/s")
    return metrics


def main(argv: list[str]) -> None:
    seed = None
    if len(argv) == 8 and argv[6] == "--seed":
        argv, seed = argv[:6], parse(int, argv[7], "--seed")
    if len(argv) != 6:
        raise StageError(
            "usage: python -m stages.sft <setting> <mixture> <base dir> <out dir> <report dir> <checkpoint dir>"
            " [--seed N]"
        )
    setting, *paths = argv
    mixture, base, out, report, checkpoints = map(Path, paths)
    params = load(SFTParams, "sft")
    if seed is not None:
        params = replace(params, seed=seed)
    if not (base / "config.json").exists():
        raise StageError(f"{base} is not a model directory (no config.json); run the base stage first")
    hub.go_offline()  # the base model is a local directory: nothing to fetch
    train(params, setting, mixture, base, out, report, checkpoints)


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
