"""instmix.score.likelihood: the teacher-forced scorer against a plain `model(**batch).loss`, in
both layouts and both CPU attention implementations, on the tiny model; tokenisation as lm-eval's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from instmix.core.params import ParamsError
from instmix.score.likelihood import Score, encode_pair, load_model, packed_batches, prepare, score_texts

# Lengths from a few tokens to past max_length, so padded batches pad, packed rows hold several
# sequences, and one context is cut from the left; one continuation is multi-byte UTF-8.
PAIRS = [
    ("Give three tips for staying healthy.\nAnswer:", " Eat well, sleep, and exercise."),
    ("2 + 2 =", " 4"),
    ("Translate to Japanese: Japan\nAnswer: ", "日本"),
    ("Write a Python function that adds two numbers.\n", "def add(a, b):\n    return a + b\n"),
    ("Q: Which is heavier?\nA:", " A kilogram of iron weighs the same as a kilogram of feathers."),
    ("Le café", " est chaud."),
    ("The sky is", " blue."),
    ("1, 2, 3,", " 4"),
    ("Summarise: " + "the quick brown fox jumps over the lazy dog. " * 6, " A fox jumps."),
]
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def tiny(tiny_base: Path) -> tuple[Any, Any]:
    torch.set_num_threads(1)  # two test workers share two cores
    return load_model(tiny_base, device="cpu")


def reference(model: Any, tokenizer: Any, context: str, continuation: str, max_length: int) -> tuple[float, int]:
    """Summed NLL of the continuation by the plain route: one sequence, labels on the continuation,
    the model's own mean loss times the number of labelled tokens."""
    context_ids, continuation_ids, _ = encode_pair(tokenizer, context, continuation)
    ids = (context_ids + continuation_ids)[-(max_length + 1) :]
    labels = [-100] * (len(ids) - len(continuation_ids)) + continuation_ids
    with torch.inference_mode():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    # The model shifts labels by one, so the first kept token is context, never a target.
    return float(loss) * len(continuation_ids), len(continuation_ids)


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_scores_equal_the_models_own_loss(tiny: tuple[Any, Any], layout: str) -> None:
    model, tokenizer = tiny
    scores = score_texts(model, tokenizer, PAIRS, layout=layout, batch_size=3, max_length=MAX_LENGTH)  # type: ignore[arg-type]
    for (context, continuation), got in zip(PAIRS, scores, strict=True):
        nll, tokens = reference(model, tokenizer, context, continuation, MAX_LENGTH)
        assert got.tokens == tokens > 0
        # Within 1e-5 per token: `.loss` is an fp32 mean (rounding ~2e-7 of ~4 nats), so times 60
        # tokens the sum itself carries ~1e-5 of rounding; the scorer sums in float64.
        assert got.mean_nll == pytest.approx(nll / tokens, abs=1e-5), (context, continuation)
        assert got.nll == pytest.approx(nll, rel=1e-6, abs=1e-5)
        moved = context[len(context.rstrip()) :]  # whitespace closing the context is scored with the continuation
        assert got.bytes == len((moved + continuation).encode("utf-8"))


def test_packed_rows_hold_several_sequences_and_truncation_happens(tiny: tuple[Any, Any]) -> None:
    """The layout the equality test checks is really packed (else it would prove nothing about masking)."""
    _, tokenizer = tiny
    fed = [prepare(*encode_pair(tokenizer, c, x)[:2], MAX_LENGTH) for c, x in PAIRS]
    rows = [row for batch in packed_batches(fed, 3, MAX_LENGTH) for row in batch]
    assert max(len(row) for row in rows) >= 3 and len(rows) < len(PAIRS)
    assert all(sum(len(fed[i].ids) for i in row) <= MAX_LENGTH for row in rows)
    context, continuation = PAIRS[-1]
    assert sum(map(len, encode_pair(tokenizer, context, continuation)[:2])) > MAX_LENGTH + 1
    assert len(fed[-1].ids) == MAX_LENGTH


def test_packing_keeps_sequences_apart_with_eager_attention(tiny_base: Path) -> None:
    model, tokenizer = load_model(tiny_base, device="cpu", attn_implementation="eager")
    packed = score_texts(model, tokenizer, PAIRS, layout="packed", batch_size=2, max_length=MAX_LENGTH)
    for (context, continuation), got in zip(PAIRS, packed, strict=True):
        nll, tokens = reference(model, tokenizer, context, continuation, MAX_LENGTH)
        assert got.mean_nll == pytest.approx(nll / tokens, abs=1e-5), (context, continuation)


def test_results_do_not_depend_on_batch_size_or_order(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    base = score_texts(model, tokenizer, PAIRS, batch_size=1, max_length=MAX_LENGTH, progress=False)
    for layout in ("padded", "packed"):
        for batch_size in (2, 16):
            again = score_texts(model, tokenizer, PAIRS, layout=layout, batch_size=batch_size, max_length=MAX_LENGTH)  # type: ignore[arg-type]
            assert [s.tokens for s in again] == [s.tokens for s in base]
            assert [s.mean_nll for s in again] == pytest.approx([s.mean_nll for s in base], abs=1e-5)
        reverse = score_texts(model, tokenizer, PAIRS[::-1], layout=layout, batch_size=3, max_length=MAX_LENGTH)  # type: ignore[arg-type]
        assert [s.mean_nll for s in reverse[::-1]] == pytest.approx([s.mean_nll for s in base], abs=1e-5)
    assert len({round(s.nll, 3) for s in base}) == len(PAIRS)  # distinct values: a mix-up would show


def test_tokenisation_follows_lm_eval(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    context, continuation, nbytes = encode_pair(tokenizer, "Answer: ", "日本")
    assert tokenizer.decode(continuation) == " 日本" and nbytes == 7  # the trailing space moves over: 1 + 2 * 3
    assert context == tokenizer.encode("Answer:", add_special_tokens=False)
    whole = tokenizer.encode("Answer: 日本", add_special_tokens=False)
    assert context + continuation == whole  # the whole-string difference
    assert encode_pair(tokenizer, "", " hi")[0] == [tokenizer.eos_token_id]  # empty context: EOT, as lm-eval


def test_bits_per_byte_and_bad_input() -> None:
    score = Score(nll=3 * math.log(2), tokens=2, bytes=3)
    assert score.bits_per_byte == pytest.approx(1.0) and score.mean_nll == pytest.approx(1.5 * math.log(2))
    with pytest.raises(ValueError, match="does not fit max_length 4"):
        prepare([1, 2], [3, 4, 5, 6, 7], 4)


def test_packing_is_refused_where_attention_would_mix_sequences(tiny_base: Path) -> None:
    model, tokenizer = load_model(tiny_base, device="cpu", attn_implementation="paged|eager")
    with pytest.raises(ParamsError) as err:
        score_texts(model, tokenizer, PAIRS[:2], layout="packed")
    assert "layout=packed" in str(err.value) and "\n" not in str(err.value)
    assert score_texts(model, tokenizer, PAIRS[:2], layout="padded", max_length=MAX_LENGTH)[0].tokens > 0
