"""sft.loss_normalization (instmix/train/loss.py) on the tiny model: the step's gradient under each
normalisation against a hand computation, and the examples the cut at max_length leaves without loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from instmix.core.params import ParamsError, parse
from instmix.core.records import Record
from instmix.train.config import SFTParams
from instmix.train.sft import build_trainer
from tests.test_sft import FAST, demo_records

MODES = ["per_microbatch_token_mean", "global_token_mean"]


def long_and_short() -> list[Record]:
    """The 2 shortest and the 2 longest responses of the demo records: in two micro-batches of two, seed 42
    pairs the long ones and the short ones (the test checks it), so their supervised token counts differ
    several times over."""
    records = sorted(demo_records(), key=lambda r: len(r["response"]))
    return records[:2] + records[-2:]


def one_step(params: SFTParams, records: list[Record], base: Path, checkpoints: Path) -> tuple[Any, list[Any]]:
    """The trainer after one optimizer step, and its gradient before the update (unclipped)."""
    from transformers import TrainerCallback

    grads: list[Any] = []

    class Capture(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            grads.extend(p.grad.detach().clone() for p in model.parameters())

    trainer, _ = build_trainer(params, 42, records, base, checkpoints, [Capture()])
    trainer.args.max_grad_norm = 0.0  # the gradient itself, not its clipped copy
    return trainer, grads


def hand_gradients(trainer: Any, mode: str) -> tuple[float, list[Any], list[int]]:
    """The step's loss and gradient from the model's plain forward on the trainer's own micro-batches:
    per-token cross-entropy on the shifted labels, reduced by hand."""
    import torch
    import torch.nn.functional as F

    model, steps = trainer.model, trainer.args.gradient_accumulation_steps
    model.zero_grad()
    sums, counts = [], []
    for _, batch in zip(range(steps), trainer.get_train_dataloader(), strict=False):  # the first step's batches
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), reduction="none", ignore_index=-100)
        sums.append(losses.sum())
        counts.append(int((labels != -100).sum()))
    assert len(sums) == steps and min(counts) > 0
    if mode == "per_microbatch_token_mean":
        loss = sum(s / c for s, c in zip(sums, counts, strict=True)) / steps
    else:
        loss = sum(sums) / sum(counts)
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad()
    assert isinstance(loss, torch.Tensor)
    return loss.item(), grads, counts


@pytest.mark.parametrize("mode", MODES)
def test_each_normalisation_is_its_hand_computation(tiny_base: Path, tmp_path: Path, mode: str) -> None:
    params = parse(
        SFTParams, {**FAST, "epochs": 1.0, "global_batch": 4, "per_device_batch": 2, "loss_normalization": mode}, "sft"
    )
    trainer, grads = one_step(params, long_and_short(), tiny_base, tmp_path / mode)
    hand_loss, hand, counts = hand_gradients(trainer, mode)  # at the weights the step starts from
    other_loss, other, _ = hand_gradients(trainer, next(m for m in MODES if m != mode))
    assert max(counts) > 4 * min(counts)  # a long-answer micro-batch and a short-answer one
    trainer.train()
    assert trainer.state.global_step == 1 and len(grads) == len(hand)
    logged = trainer.state.log_history[0]["loss"]
    assert logged == pytest.approx(hand_loss, rel=1e-4)  # a random model's token losses are all near ln(vocab):
    assert other_loss == pytest.approx(hand_loss, rel=0.05)  # the losses barely differ, the gradients do
    import torch

    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, hand, strict=True))
    # The two normalisations give different gradients, far beyond float noise: not just a rescaling.
    flat, flat_other = torch.cat([g.flatten() for g in hand]), torch.cat([g.flatten() for g in other])
    assert (flat - flat_other).norm() > 0.05 * flat.norm()
    assert torch.nn.functional.cosine_similarity(flat, flat_other, dim=0) < 0.999


@pytest.mark.parametrize("mode", MODES)
def test_examples_without_supervised_tokens_are_kept_only_in_the_authors_mode(
    tiny_base: Path, tmp_path: Path, mode: str
) -> None:
    records = demo_records()
    records[:8] = [{**r, "prompt": r["prompt"] * 40} for r in records[:8]]  # prompts past max_length
    params = parse(SFTParams, {**FAST, "epochs": 1.0, "loss_normalization": mode}, "sft")
    trainer, counts = build_trainer(params, 42, records, tiny_base, tmp_path)
    assert counts["examples"] == 48 and counts["examples_without_supervised_tokens"] == 8
    empty = [e for e in trainer.train_dataset if all(label == -100 for label in e["labels"])]
    kept = mode == "per_microbatch_token_mean"
    assert counts["examples_trained"] == len(trainer.train_dataset) == (48 if kept else 40)
    assert len(empty) == (8 if kept else 0) and all(len(e["input_ids"]) == params.max_length for e in empty)
    assert sum(s["examples"] for s in counts["sources"].values()) == counts["examples_trained"]
    trainer.train()
    assert (
        trainer.state.global_step == math.ceil(counts["examples_trained"] / params.global_batch) == (6 if kept else 5)
    )


def test_a_micro_batch_without_supervised_tokens_adds_zero(tiny_base: Path, tmp_path: Path) -> None:
    """0/0 is defined as 0: a finite zero loss and no gradient, where torch's token mean is nan."""
    import torch

    records = [{**r, "prompt": r["prompt"] * 40} for r in demo_records()[:6]]
    records += demo_records()[6:8]
    params = parse(SFTParams, FAST, "sft")
    trainer, counts = build_trainer(params, 42, records, tiny_base, tmp_path)
    assert counts["examples_without_supervised_tokens"] == 6
    batch = trainer.data_collator([e for e in trainer.train_dataset if set(e["labels"]) == {-100}][:4])
    model = trainer.model.train()
    assert torch.isnan(model(**batch).loss)  # what the authors' trainer computed for such a micro-batch
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    assert loss.item() == 0.0 and all(not p.grad.any() for p in model.parameters() if p.grad is not None)


def test_a_bad_loss_normalization_is_one_line() -> None:
    with pytest.raises(ParamsError) as error:
        parse(SFTParams, {"loss_normalization": "token_mean"}, "sft")
    assert str(error.value) == (
        "params.yaml: sft.loss_normalization=token_mean is not allowed: "
        "one of per_microbatch_token_mean, global_token_mean"
    )
