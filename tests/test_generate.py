"""instmix.gen.generate on the tiny model: batching keeps results and order, stop sequences, seeds,
and the continuous engine gives the padded engine's greedy texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from instmix.code.humaneval import STOP, CodeParams, read_problems
from instmix.core.params import ParamsError
from instmix.gen.generate import cut_at_stop, generate, load_model, resolve_engine
from tests.conftest import run_stage

PROMPTS = ["def add(a, b):", "Write a haiku about the sea.", "x", "Sort a list of numbers in Python, then " * 6]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The `tiny` base model, built by the real base stage and loaded for generation."""
    import torch

    torch.set_num_threads(1)  # a 64-wide model: threads only contend on a shared CPU
    root = tmp_path_factory.mktemp("base")
    (root / "params.yaml").write_text("model:\n  base: tiny\n")
    result = run_stage("base", "models/base", cwd=root)
    assert result.returncode == 0, result.stderr
    return load_model(root / "models" / "base")


def test_load_model_is_ready_for_batched_generation(tiny: tuple[Any, Any]) -> None:
    import torch

    model, tokenizer = tiny
    assert not model.training and model.dtype == torch.float32
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None


def test_batches_give_the_same_texts_in_the_callers_order(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    common = {"max_new_tokens": 12, "temperature": 0.0, "progress": False}
    batched = generate(model, tokenizer, PROMPTS, batch_size=4, **common)
    single = generate(model, tokenizer, PROMPTS, batch_size=1, **common)
    assert batched == single
    alone = [generate(model, tokenizer, [p], batch_size=1, **common)[0] for p in PROMPTS]
    assert batched == alone  # order restored after sorting by length
    assert all(len(samples) == 1 and samples[0] for samples in batched)


def test_samples_have_the_requested_shape_and_follow_the_seed(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    common = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.95, "num_samples": 3, "batch_size": 5}
    first = generate(model, tokenizer, PROMPTS, seed=1, progress=False, **common)
    assert [len(s) for s in first] == [3] * len(PROMPTS)
    assert first == generate(model, tokenizer, PROMPTS, seed=1, progress=False, **common)
    assert first != generate(model, tokenizer, PROMPTS, seed=2, progress=False, **common)
    assert len({text for samples in first for text in samples}) > len(PROMPTS)  # sampling varies
    greedy = generate(model, tokenizer, PROMPTS, max_new_tokens=5, temperature=0, num_samples=3, progress=False)
    assert all(len(set(samples)) == 1 for samples in greedy)


def test_stop_sequences_cut_the_text_and_end_generation(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    common = {"max_new_tokens": 40, "temperature": 1.0, "num_samples": 4, "batch_size": 8, "seed": 0}
    free = generate(model, tokenizer, PROMPTS, progress=False, **common)
    stop = sorted({c for samples in free for text in samples for c in text[5:7] if c.strip()})[:2]
    assert stop, "the free texts have no characters to stop at"
    cut = generate(model, tokenizer, PROMPTS, stop=stop, progress=False, **common)
    assert all(not any(s in text for s in stop) for samples in cut for text in samples)
    assert sum(len(t) for samples in cut for t in samples) < sum(len(t) for samples in free for t in samples)
    for samples_free, samples_cut in zip(free, cut, strict=True):  # same seed: cut is a prefix of free
        assert all(f.startswith(c) for f, c in zip(samples_free, samples_cut, strict=True))


def test_cut_at_stop_takes_the_earliest() -> None:
    assert cut_at_stop("a = 1\ndef g():\n#x", ["\n#", "\ndef"]) == "a = 1"
    assert cut_at_stop("no stop", ["\n#"]) == "no stop"


def test_bad_arguments_are_refused(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tokenizer, ["x"], max_new_tokens=1, temperature=1.0, top_p=0.0)


def test_a_missing_model_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_model(tmp_path / "nothing")


def test_continuous_engine_gives_the_padded_greedy_texts(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    common = {"max_new_tokens": 16, "temperature": 0.0, "num_samples": 2, "stop": ["):)", ".."], "progress": False}
    padded = generate(model, tokenizer, PROMPTS * 3, batch_size=4, engine="padded", **common)
    continuous = generate(model, tokenizer, PROMPTS * 3, engine="continuous", **common)
    assert continuous == padded
    assert any(len(t) < 16 for samples in padded for t in samples)  # a stop sequence did cut some


def test_continuous_engine_on_smollm2_humaneval_prompts(smollm2_base: Path) -> None:
    """The real demo model on real HumanEval prompts, Codex's stop sequences: the same greedy code."""
    model, tokenizer = load_model(smollm2_base)
    prompts = [p["prompt"] for p in list(read_problems().values())[:3]]
    common = {"max_new_tokens": 24, "temperature": 0.0, "stop": STOP, "progress": False}
    padded = generate(model, tokenizer, prompts, batch_size=3, engine="padded", **common)
    assert generate(model, tokenizer, prompts, engine="continuous", **common) == padded
    assert sum(len(samples[0].strip()) for samples in padded) > 20  # real code, not empty strings


def test_continuous_sampling_follows_the_seed(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    common = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.95, "num_samples": 3, "engine": "continuous"}
    first = generate(model, tokenizer, PROMPTS, seed=1, progress=False, **common)
    assert [len(s) for s in first] == [3] * len(PROMPTS)
    assert first == generate(model, tokenizer, PROMPTS, seed=1, progress=False, **common)
    assert first != generate(model, tokenizer, PROMPTS, seed=2, progress=False, **common)


def test_engine_auto_and_vllm() -> None:
    assert (resolve_engine("auto", gpu=True), resolve_engine("auto", gpu=False)) == ("continuous", "padded")
    with pytest.raises(ParamsError, match="engine=vllm is not allowed"):
        resolve_engine("vllm", gpu=False)
    with pytest.raises(ParamsError, match="engine=vllm"):  # validated with the params, before any work
        CodeParams(engine="vllm")
