"""sft@<setting> and base on the tiny model: masking, a real training run, resume, bad inputs."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from instmix.core.files import write_jsonl
from instmix.core.params import ParamsError, StageError, parse
from instmix.core.records import Record
from instmix.train.config import SFTParams, gradient_accumulation, refuse_head_dim, resolve_runtime
from instmix.train.sft import build_trainer, preflight
from tests.conftest import REPO, run_stage, set_params, stage_env

FAST = {"lr": 3e-3, "epochs": 3.0, "global_batch": 8, "per_device_batch": 4, "max_length": 128, "warmup_ratio": 0.0}


def demo_records() -> list[Record]:
    """48 real records from the demo sources, fetched the way the pipeline fetches them."""
    from instmix.data.sources import Drops, p3_task_files, read_instructions, read_p3_task

    demo, drops = REPO / "assets" / "demo", Drops()
    records = list(read_instructions("alpaca", demo / "alpaca.json", drops))[:16]
    records += list(read_instructions("codealpaca", demo / "codealpaca.json", drops))[:16]
    records += [r for task, files in p3_task_files(demo / "p3").items() for r in read_p3_task(task, files, drops)][:16]
    return records


@pytest.fixture
def sft_dir(workdir: Path, tiny_base: Path) -> Path:
    """A workdir with the tiny model's fast params and a 48-record mixture in mix.jsonl."""
    set_params(workdir, **{f"sft.{key}": value for key, value in FAST.items()})
    write_jsonl(workdir / "mix.jsonl", demo_records())
    return workdir


def sft_args(workdir: Path, tiny_base: Path, seed: str = "42") -> list[str | Path]:
    return [workdir / "mix.jsonl", tiny_base, workdir / "out", workdir / "report", workdir / "ckpt", "--seed", seed]


@pytest.mark.parametrize("template", ["paper", "chat"])
def test_loss_covers_response_tokens_only(tiny_base: Path, tmp_path: Path, template: str) -> None:
    params = parse(SFTParams, {**FAST, "template": template, "max_length": 512}, "sft")
    records = demo_records()
    trainer, counts = build_trainer(params, 42, records, tiny_base, tmp_path)
    assert counts["examples"] == 48 and counts["examples_without_supervised_tokens"] == 0
    tokenizer = trainer.processing_class
    assert len(trainer.train_dataset) == len(records)
    for record, example in zip(records, trainer.train_dataset, strict=True):
        if template == "chat":
            message = [{"role": "user", "content": record["prompt"]}]
            prompt_ids = tokenizer.apply_chat_template(
                message, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        else:
            prompt_ids = tokenizer(record["prompt"])["input_ids"]
        labels, ids = example["labels"], example["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids
        assert all(label == -100 for label in labels[: len(prompt_ids)]), "a prompt token is supervised"
        supervised = labels[len(prompt_ids) :]
        assert supervised and supervised == ids[len(prompt_ids) :], "every response token is supervised"
        if template == "paper" and len(ids) < params.max_length:  # not truncated: ends with EOS
            assert tokenizer.decode(supervised).endswith("<eos>")


def test_sft_trains_fast_and_the_model_reloads(sft_dir: Path, tiny_base: Path) -> None:
    start = time.perf_counter()
    result = run_stage("sft", *sft_args(sft_dir, tiny_base), cwd=sft_dir)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 60, f"sft took {elapsed:.0f} s"
    metrics = json.loads((sft_dir / "report/metrics.json").read_text())
    assert metrics["steps"] == 3 * 48 // 8 and metrics["examples"] == metrics["examples_trained"] == 48
    assert not metrics["resumed"] and metrics["params"]["loss_normalization"] == "per_microbatch_token_mean"
    assert metrics["params"] == {**metrics["params"], **FAST, "seed": 42}  # the params it used, and the seed
    assert metrics["runtime"] == {
        "device": "cpu",
        "batching": "padded",
        "precision": "fp32",
        "attn_implementation": "sdpa",
    }
    losses = [
        float(line.split("\t")[-1])
        for line in (sft_dir / "report/live/plots/metrics/loss.tsv").read_text().splitlines()[1:]
    ]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    assert metrics["tokens"] > 0 and metrics["tokens_per_second"] > 0
    assert not list((sft_dir / "ckpt").glob("checkpoint-*"))  # finished: checkpoints cleared

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(sft_dir / "out")
    tokenizer = AutoTokenizer.from_pretrained(sft_dir / "out")
    inputs = tokenizer("Reverse a string in Python.", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_a_killed_run_resumes_from_its_last_checkpoint(sft_dir: Path, tiny_base: Path) -> None:
    set_params(sft_dir, **{"sft.epochs": 20.0, "sft.save_steps": 5, "sft.logging_steps": 5})
    total = 20 * 48 // 8
    command = [sys.executable, "-m", "stages.sft", *map(str, sft_args(sft_dir, tiny_base))]
    process = subprocess.Popen(
        command, cwd=sft_dir, env=stage_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list((sft_dir / "ckpt").glob("checkpoint-1[05]")) and time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = sorted(int(p.name.split("-")[1]) for p in (sft_dir / "ckpt").glob("checkpoint-*"))
    assert kept and len(kept) <= 3 and max(kept) < total  # save_total_limit 2, plus one being written
    torn = sft_dir / "ckpt" / f"checkpoint-{max(kept) + 1}"  # as if killed while writing its state
    torn.mkdir(exist_ok=True)
    (torn / "trainer_state.json").write_text('{"global_step": ')

    result = run_stage("sft", *sft_args(sft_dir, tiny_base), cwd=sft_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((sft_dir / "report/metrics.json").read_text())
    assert metrics["resumed"] and metrics["steps"] == total


def test_checkpoints_of_another_run_are_not_resumed(sft_dir: Path, tiny_base: Path) -> None:
    (sft_dir / "ckpt" / "checkpoint-3").mkdir(parents=True)
    (sft_dir / "ckpt" / "fingerprint.json").write_text('{"fingerprint": "another run"}')
    result = run_stage("sft", *sft_args(sft_dir, tiny_base), cwd=sft_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not json.loads((sft_dir / "report/metrics.json").read_text())["resumed"]


# ---------------------------------------------------------------------------- bad input


def test_the_last_step_writes_no_checkpoint(tiny_base: Path, tmp_path: Path) -> None:
    params = parse(SFTParams, {**FAST, "epochs": 1.0, "save_steps": 4}, "sft")
    trainer, _ = build_trainer(params, 42, demo_records(), tiny_base, tmp_path)
    trainer.train()
    assert trainer.state.global_step == 6
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-4"]  # not checkpoint-6


def test_global_batch_must_divide() -> None:
    with pytest.raises(
        ParamsError, match=r"sft.global_batch=30 .* a multiple of per_device_batch x num_processes \(4 x 1\)"
    ):
        parse(SFTParams, {"global_batch": 30, "per_device_batch": 4}, "sft")
    with pytest.raises(StageError, match="not divisible by per_device_batch x processes = 4 x 3"):
        gradient_accumulation(SFTParams(global_batch=64, per_device_batch=4), processes=3)
    assert gradient_accumulation(SFTParams(global_batch=64, per_device_batch=4), processes=4) == 4


def test_max_length_below_the_chat_prompt_is_refused(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    with pytest.raises(ParamsError, match="more than the chat template's own prompt length"):
        preflight(tokenizer, demo_records(), SFTParams(template="chat", max_length=8))


def test_mixture_without_supervised_tokens_is_refused(sft_dir: Path, tiny_base: Path) -> None:
    records = [{**r, "prompt": r["prompt"] * 40} for r in demo_records()]
    write_jsonl(sft_dir / "mix.jsonl", records)
    start = time.perf_counter()
    result = run_stage("sft", *sft_args(sft_dir, tiny_base), cwd=sft_dir)
    assert result.returncode == 2 and "no example keeps a supervised token" in result.stderr
    assert "sft.max_length=128" in result.stderr and time.perf_counter() - start < 30
    assert not (sft_dir / "out").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("model.base", "no/such/model", "model.base=no/such/model"), ("sft.lr", -1.0, "sft.lr=-1.0"),
     ("sft.num_processes", 2, "1 with launcher single"), ("sft.template", "alpaca", "one of paper, chat"),
     ("sft.loss_normalization", "mean", "one of per_microbatch_token_mean, global_token_mean")],
)  # fmt: skip
def test_bad_params_stop_before_loading_anything(
    sft_dir: Path, tiny_base: Path, key: str, value: object, message: str
) -> None:
    set_params(sft_dir, **{key: value})
    module, args = ("base", ["models/x"]) if key.startswith("model.") else ("sft", sft_args(sft_dir, tiny_base))
    result = run_stage(module, *args, cwd=sft_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_seed_flag_trains_a_replicate_and_is_validated(sft_dir: Path, tiny_base: Path) -> None:
    runs = {}
    for seed in ("42", "7"):
        args = [sft_dir / "mix.jsonl", tiny_base, *(sft_dir / seed / d for d in ("out", "report", "ckpt"))]
        result = run_stage("sft", *args, "--seed", seed, cwd=sft_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[seed] = (sft_dir / seed / "report/live/plots/metrics/loss.tsv").read_text()
    assert runs["42"] != runs["7"]  # another data order: another loss curve
    result = run_stage("sft", *sft_args(sft_dir, tiny_base, seed="x"), cwd=sft_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--seed=x" in result.stderr
    result = run_stage("sft", *sft_args(sft_dir, tiny_base)[:5], cwd=sft_dir)  # the seed is required
    assert result.returncode == 2 and "--seed N" in result.stderr


def test_unknown_base_directory_is_refused(sft_dir: Path) -> None:
    result = run_stage("sft", sft_dir / "mix.jsonl", sft_dir / "nothing", "o", "r", "c", "--seed", "1", cwd=sft_dir)
    assert result.returncode == 2 and "is not a model directory" in result.stderr


def test_bad_params_of_a_multi_process_launcher_stop_before_accelerate(sft_dir: Path, tiny_base: Path) -> None:
    # Checked before the command re-runs itself under `accelerate launch`: one line, no launcher traceback.
    set_params(sft_dir, **{"sft.launcher": "ddp", "sft.num_processes": 2, "sft.global_batch": 60})
    result = run_stage("sft", *sft_args(sft_dir, tiny_base), cwd=sft_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "sft.global_batch=60 is not allowed: a multiple of per_device_batch x num_processes (4 x 2)" in result.stderr


# ---------------------------------------------------------------------------- batching and precision


def loss_and_grads(model: Any, batch: dict[str, Any]) -> tuple[float, list[Any]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_padding_free_batches_give_the_padded_loss_and_gradients(tiny_base: Path, tmp_path: Path) -> None:
    import dataclasses

    import torch

    params = parse(SFTParams, {**FAST, "batching": "padding_free"}, "sft")
    trainer, _ = build_trainer(params, 42, demo_records(), tiny_base, tmp_path)
    free_collator = trainer.data_collator
    assert free_collator.padding_free
    padded_collator = dataclasses.replace(free_collator, padding_free=False)
    examples = [trainer.train_dataset[i] for i in (0, 17, 33, 40)]  # one of each source, lengths differ
    padded, free = padded_collator(examples), free_collator(examples)
    assert padded["input_ids"].shape[0] == 4 and (padded["attention_mask"] == 0).any()  # it did pad
    assert free["input_ids"].shape[0] == 1 and "attention_mask" not in free
    assert free["input_ids"].shape[1] == int(padded["attention_mask"].sum())  # no pad token at all
    supervised = int((padded["labels"][:, 1:] != -100).sum())
    assert supervised == int((free["labels"][:, 1:] != -100).sum()) > 0
    model = trainer.model.float().eval()
    loss_padded, grads_padded = loss_and_grads(model, padded)
    loss_free, grads_free = loss_and_grads(model, free)
    assert loss_free == pytest.approx(loss_padded, rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads_padded, grads_free, strict=True))
    # The control: the same row with attention across examples (positions running on) is further off
    # than float noise, so the match above is the isolation at work.
    leaky = model(input_ids=free["input_ids"], labels=free["labels"]).loss.item()
    assert abs(leaky - loss_padded) > 100 * abs(loss_free - loss_padded)


@pytest.mark.parametrize(("template", "max_length"), [("paper", 64), ("chat", 128)])
def test_token_accounting_is_what_trl_trains_on(
    tiny_base: Path, tmp_path: Path, template: str, max_length: int
) -> None:
    """Per-source supervised tokens equal the supervised labels of TRL's own tokenized dataset
    (after its cut at max_length), and prompt tokens the rest."""
    params = parse(SFTParams, {**FAST, "template": template, "max_length": max_length}, "sft")
    records = demo_records()
    trainer, counts = build_trainer(params, 42, records, tiny_base, tmp_path)
    source_of = {r["prompt"]: r["source"] for r in records}
    expected: dict[str, list[int]] = {}
    for example in trainer.train_dataset:  # without the examples TRL dropped (no supervised token left)
        prompt = example["prompt"] if template == "paper" else example["prompt"][0]["content"]
        ids, mask = example["input_ids"], [label != -100 for label in example["labels"]]
        assert len(ids) <= max_length
        totals = expected.setdefault(source_of[prompt], [0, 0, 0])
        totals[0], totals[1], totals[2] = totals[0] + 1, totals[1] + len(ids) - sum(mask), totals[2] + sum(mask)
    sources = counts["sources"]
    assert {s: [c["examples"], c["prompt_tokens"], c["supervised_tokens"]] for s, c in sources.items()} == expected
    assert sum(c["supervised_share"] for c in sources.values()) == pytest.approx(1.0, abs=1e-5)
    if template == "paper":  # P3's answers are a few words: far below a third of the supervised tokens
        assert sources["p3"]["supervised_share"] < 0.2 < sources["alpaca"]["supervised_share"]


@pytest.mark.parametrize("batching", ["padded", "padding_free", "packed"])
def test_steps_per_epoch_count_examples_unless_packed(tiny_base: Path, tmp_path: Path, batching: str) -> None:
    params = parse(SFTParams, {**FAST, "epochs": 1.0, "batching": batching}, "sft")
    trainer, counts = build_trainer(params, 42, demo_records(), tiny_base, tmp_path)
    trainer.train()
    if batching == "packed":  # a batch item is a 128-token row of several examples: fewer steps
        assert trainer.state.global_step < math.ceil(counts["examples"] / params.global_batch)
    else:
        assert trainer.state.global_step == math.ceil(counts["examples"] / params.global_batch) == 6


def test_auto_resolves_to_the_papers_semantics_on_a_gpu() -> None:
    gpu, cpu = resolve_runtime(SFTParams(), gpu=True), resolve_runtime(SFTParams(), gpu=False)
    assert (gpu.batching, gpu.precision, gpu.bf16) == ("padding_free", "bf16_mixed", True)
    assert (cpu.batching, cpu.precision, cpu.bf16) == ("padded", "fp32", False)


GPU_ONLY = [("attn_implementation", "flex_attention"), ("attn_implementation", "flash_attention_2"),
            ("attn_implementation", "flash_attention_4"), ("liger", True)]  # fmt: skip


@pytest.mark.parametrize(("key", "value"), GPU_ONLY)
def test_gpu_only_options_are_refused_on_a_cpu(key: str, value: object) -> None:
    params = parse(SFTParams, {key: value}, "sft")  # a valid value...
    with pytest.raises(ParamsError, match=f"^params.yaml: sft.{key}=.* on a CPU"):
        resolve_runtime(params, gpu=False)  # ...that this machine cannot run: one line, not a fallback


@pytest.mark.parametrize(("key", "value", "package"), [
    ("attn_implementation", "flash_attention_2", "flash_attn"),
    ("attn_implementation", "flash_attention_4", "flash_attn"),
    ("liger", True, "liger_kernel"),
])  # fmt: skip
def test_gpu_options_need_their_package(key: str, value: object, package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(ParamsError, match="not installed"):
        resolve_runtime(parse(SFTParams, {key: value}, "sft"), gpu=True)


def test_gpu_options_resolve_on_a_gpu() -> None:
    runtime = resolve_runtime(parse(SFTParams, {"attn_implementation": "flex_attention"}, "sft"), gpu=True)
    assert runtime.attn_implementation == "flex_attention"
    with pytest.raises(ParamsError, match="attn_implementation=flash3 is not allowed: one of"):
        parse(SFTParams, {"attn_implementation": "flash3"}, "sft")
    with pytest.raises(ParamsError, match=r"sft\.liger="):
        parse(SFTParams, {"liger": "yes"}, "sft")


def test_flash_attention_4_needs_head_dim_128_on_hopper() -> None:
    fa4 = SFTParams(attn_implementation="flash_attention_4")
    with pytest.raises(ParamsError, match="head dim 64"):
        refuse_head_dim(fa4, 64, (9, 0))  # SmolLM2-135M on an H100/H200
    refuse_head_dim(fa4, 128, (9, 0))  # Llama-2-7B
    refuse_head_dim(fa4, 64, (10, 0))  # Blackwell has the backward
    refuse_head_dim(SFTParams(attn_implementation="sdpa"), 64, (9, 0))


def test_compile_reaches_the_trainer(tiny_base: Path, tmp_path: Path) -> None:
    params = parse(SFTParams, {**FAST, "compile": True}, "sft")
    trainer, _ = build_trainer(params, 42, demo_records()[:8], tiny_base, tmp_path)
    assert trainer.args.torch_compile and not trainer.args.use_liger_kernel
    assert trainer.args.optim == "adamw_torch_fused"  # the fused AdamW update in every mode


@pytest.mark.parametrize(("precision", "weights"), [("bf16_mixed", "float32"), ("bf16_pure", "bfloat16")])
def test_mixed_precision_keeps_fp32_master_weights(
    tiny_base: Path, tmp_path: Path, precision: str, weights: str
) -> None:
    params = parse(SFTParams, {**FAST, "epochs": 1.0, "precision": precision}, "sft")
    trainer, _ = build_trainer(params, 42, demo_records()[:16], tiny_base, tmp_path)
    assert trainer.args.bf16  # bf16 compute either way
    trainer.train()
    assert {str(p.dtype).removeprefix("torch.") for p in trainer.model.parameters()} == {weights}
    state = [s for s in trainer.optimizer.state.values() if "exp_avg" in s]
    assert state and {str(s["exp_avg"].dtype).removeprefix("torch.") for s in state} == {weights}


ZERO3_PROBE = """
import sys
from pathlib import Path
from instmix.core.params import parse
from instmix.train.config import SFTParams
from instmix.train.sft import build_trainer
from tests.test_sft import demo_records
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

params = parse(SFTParams, {"global_batch": 4, "max_length": 64, "launcher": "zero3"}, "sft")
trainer, _ = build_trainer(params, 42, demo_records()[:8], Path(sys.argv[1]), Path(sys.argv[2]))
weights = list(trainer.model.parameters())
print("zero3", is_deepspeed_zero3_enabled(), all(hasattr(p, "ds_id") and p.numel() == 0 for p in weights))
"""


def test_zero3_partitions_the_weights_as_they_load(tiny_base: Path, tmp_path: Path) -> None:
    """Under the zero3 launcher's own accelerate config (one CPU process here; a GPU box runs the
    same path with NCCL), every weight is already a ZeRO-3 partition once the model is loaded:
    the training arguments exist before from_pretrained. What needs GPUs: sharding across ranks."""
    probe = tmp_path / "probe.py"
    probe.write_text(ZERO3_PROBE)
    config = REPO / "configs" / "accelerate" / "zero3.yaml"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "1"]
    result = subprocess.run(
        [*launch, str(probe), str(tiny_base), str(tmp_path / "ckpt")],
        cwd=REPO, env=stage_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "zero3 True True" in result.stdout, result.stdout[-2000:]
