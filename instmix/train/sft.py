"""Fine-tune the base model on one mixture with TRL's SFTTrainer (stage sft@<model id>).

The mixture becomes a prompt/completion dataset, so the loss covers response tokens only.
Templates: `paper` trains on prompt + " " + response + EOS (the authors' code); `chat` renders
a user turn and an assistant turn with the tokenizer's chat template.

Checkpoints go to a directory DVC keeps between runs (persist): a run that was killed resumes
from its last checkpoint, as long as the params, the seed, the mixture and the base model are
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from instmix.core.files import write_json
from instmix.core.params import ParamsError, StageError
from instmix.core.records import Record, read_record_file
from instmix.train.config import SFTParams, gradient_accumulation, refuse_head_dim, resolve_runtime, world_size

FINGERPRINT = "fingerprint.json"


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


def full_lengths(tokenizer: Any, records: list[Record], template: str) -> list[int]:
    """Tokens of each whole example as TRL builds it (paper: prompt + completion + EOS)."""
    if template == "chat":
        examples = [to_example(r, "chat") for r in records]
        ids = [tokenizer.apply_chat_template(e["prompt"] + e["completion"], tokenize=True, return_dict=True)
               for e in examples]  # fmt: skip
        return [len(i["input_ids"]) for i in ids]
    texts = [r["prompt"] + to_example(r, "paper")["completion"] for r in records]
    return [len(ids) + 1 for ids in tokenizer(texts)["input_ids"]]


def token_accounting(
    records: list[Record], prompts: list[int], full: list[int], max_length: int, keep_empty: bool
) -> dict[str, dict[str, Any]]:
    """Per source: the examples trained on, their prompt tokens and supervised (response) tokens
    after the cut at max_length, and the source's share of the mixture's supervised tokens: the gradient signal each
    source gets (P3's responses are a few words, so "20K each" is not "a third each"). `keep_empty`: the examples
    left without a supervised token are trained on (with zero loss) rather than dropped."""
    per: dict[str, dict[str, Any]] = {}
    for record, prompt, whole in zip(records, prompts, full, strict=True):
        counts = per.setdefault(record["source"], {"examples": 0, "prompt_tokens": 0, "supervised_tokens": 0})
        kept, supervised = min(whole, max_length), max(min(whole, max_length) - prompt, 0)
        if supervised or keep_empty:
            counts["examples"] += 1
            counts["prompt_tokens"] += kept - supervised
            counts["supervised_tokens"] += supervised
    total = sum(c["supervised_tokens"] for c in per.values()) or 1
    for counts in per.values():
        counts["supervised_share"] = round(counts["supervised_tokens"] / total, 6)
    return dict(sorted(per.items()))


def keeps_empty_examples(params: SFTParams, packed: bool) -> bool:
    """Whether the examples left without a supervised token are trained on: in the authors' normalisation
    (instmix/train/loss.py), and in packed rows (TRL's packing keeps them); TRL drops them otherwise."""
    return params.loss_normalization == "per_microbatch_token_mean" or packed


def preflight(tokenizer: Any, records: list[Record], params: SFTParams, packed: bool = False) -> dict[str, Any]:
    """Refuse, before the model is loaded, inputs that cannot train anything; count the examples given, those
    left without a supervised token by max_length, and those trained on (each epoch)."""
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
    keep = keeps_empty_examples(params, packed)
    full = full_lengths(tokenizer, records, params.template)
    sources = token_accounting(records, lengths, full, params.max_length, keep)
    trained = len(records) if keep else len(records) - cut
    return {
        "examples": len(records),
        "examples_without_supervised_tokens": cut,
        "examples_trained": trained,
        "sources": sources,
    }


# ---------------------------------------------------------------------------- training


def fingerprint(params: SFTParams, seed: int, mixture: Path, base: Path) -> str:
    digest = hashlib.sha256(json.dumps(asdict(params) | {"seed": seed}, sort_keys=True).encode())
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
    seed: int,
    records: list[Record],
    base: Path,
    checkpoints: Path,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, dict[str, Any]]:
    """The SFTTrainer for this run, and the data counts of the preflight check."""
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from instmix.train.loss import trainer_class  # imports trl

    runtime = resolve_runtime(params)
    accumulation = gradient_accumulation(params, world_size())
    tokenizer = AutoTokenizer.from_pretrained(base)
    packed = runtime.batching == "packed"
    counts = preflight(tokenizer, records, params, packed)
    # Built before the model: under `accelerate launch` with DeepSpeed, the config registers ZeRO-3,
    # so from_pretrained partitions the weights as it loads them (zero3_init_flag) instead of
    # materialising the whole model on every rank.
    config = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=params.epochs,
        learning_rate=params.lr,
        lr_scheduler_type=params.scheduler,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a fraction of the steps
        per_device_train_batch_size=params.per_device_batch,
        gradient_accumulation_steps=accumulation,
        max_length=params.max_length,
        seed=seed,
        data_seed=seed,
        bf16=runtime.bf16,  # autocast over fp32 weights unless the weights are bf16 (bf16_pure)
        use_cpu=runtime.device == "cpu",
        packing=packed,
        packing_strategy="bfd",
        completion_only_loss=True,
        activation_checkpointing=params.gradient_checkpointing,  # SFTConfig defaults to True
        logging_steps=params.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        # Padding-free batches have no attention mask: "non_padding" would skip every EOS (= pad) token.
        include_num_input_tokens_seen="non_padding" if runtime.batching == "padded" else "all",
        report_to="none",  # DVCLive is added below with our own directory
        dataloader_num_workers=0,
        use_liger_kernel=params.liger,
        torch_compile=params.compile,
    )
    if runtime.attn_implementation == "flash_attention_4":
        text = AutoConfig.from_pretrained(base).get_text_config()
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        refuse_head_dim(params, head_dim, torch.cuda.get_device_capability())
    model = AutoModelForCausalLM.from_pretrained(
        base,
        dtype=torch.bfloat16 if runtime.precision == "bf16_pure" else torch.float32,
        attn_implementation=runtime.attn_implementation,
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
    dataset = Dataset.from_list([to_example(r, params.template) for r in records])
    trainer = trainer_class(params.loss_normalization)(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*callbacks, no_final_checkpoint()],
    )
    if runtime.batching == "padding_free":
        padding_free(trainer)
    return trainer, counts


def padding_free(trainer: Any) -> None:
    """Padding-free batches of whole examples, one row per example as in padded batches. TRL
    offers padding-free only with packing, or without truncation (its max_length check); here its
    dataset is prepared (truncated) as for padded batches, then its own padding-free collator
    joins each batch's examples end to end (positions restart per example)."""
    import dataclasses

    trainer.data_collator = dataclasses.replace(trainer.data_collator, padding_free=True)


def no_final_checkpoint() -> Any:
    """The Trainer checkpoints after the last step too (model and optimizer: 4 s of the demo's 16 s
    of training); `save_final` writes the model anyway and the checkpoints are then deleted."""
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps:
                control.should_save = False
            return control

    return NoFinalCheckpoint()


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
    params: SFTParams,
    seed: int,
    mixture: Path,
    base: Path,
    out: Path,
    report: Path,
    checkpoints: Path,
    callbacks: Callable[[bool], Sequence[Any]] = lambda resume: (),
) -> dict[str, Any]:
    """Train, save the model to `out` and the metrics (with the params and seed used) to `report`.
    `callbacks(resume)` gives the trainer's loggers (the stage's DVCLive), told whether this run resumes."""
    records = read_record_file(mixture)
    resume = prepare_checkpoints(checkpoints, fingerprint(params, seed, mixture, base))
    trainer, counts = build_trainer(params, seed, records, base, checkpoints, callbacks(resume))
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
        **counts,  # examples given, those max_length left without a supervised token, those trained; tokens per source
        "resumed": resume,
        "runtime": asdict(resolve_runtime(params)),  # what the `auto` params meant on this machine
        "params": asdict(params) | {"seed": seed},
    }
    if trainer.is_world_process_zero():
        write_json(report / "metrics.json", metrics)
        for old in checkpoints.glob("checkpoint-*"):  # finished: only the final model is kept
            shutil.rmtree(old)
        loss = f"{metrics['first_loss']:.3f} -> {metrics['last_loss']:.3f}"
        print(f"sft@{out.name}: {metrics['steps']} steps, loss {loss}, {metrics['tokens_per_second']} tokens/s")
    return metrics
