"""Teacher-forced likelihood of continuations: one forward pass per batch, no sampling.

    model, tokenizer = load_model("models/A-42")
    scores = score_texts(model, tokenizer, [("Q: 2+2?\\nA:", " 4"), ...], layout="packed")
    scores[i].nll, scores[i].tokens, scores[i].bytes  # summed nats, tokens scored, UTF-8 bytes
    scores[i].bits_per_byte, scores[i].mean_nll       # what follows from them

Tokenisation is lm-eval's (`_encode_pair`, loglikelihood requests): whitespace closing the context
moves onto the continuation; then the continuation's tokens are the tokens of context +
continuation after the context's own tokens (the whole-string difference, so a token spanning
the boundary is tokenised as the model would read the joined text), without special tokens (as
lm-eval's HFLM for causal models). An empty context is the EOS token (lm-eval's EOT). `bytes` are
those of exactly the text scored (continuation plus the moved whitespace). Callers with their own
tokenisation (a training template) pass token ids to `score_tokens`.

Truncation, as lm-eval: a pair longer than max_length + 1 tokens keeps its last max_length + 1
(the context is cut from the left; the last token is only predicted, never fed). A continuation
that does not fit max_length tokens by itself is refused (its bits per byte would be wrong).

Layouts (results agree to float rounding; tests/test_likelihood.py):
- padded: rows sorted by length (longest first), right padded, with an attention mask;
- packed: sequences sorted by length, first-fit into rows of max_length tokens, position_ids
  restarting at 0 at each sequence and no attention mask: transformers then masks attention
  across sequences (masking_utils' packed-sequence detection: sdpa, eager and flex build a
  block-diagonal mask; flash-attention kernels read the position_ids, on one row per batch,
  so a flash batch's rows are joined end to end). Other attention implementations (paged) are
  refused. Tested on a CPU with sdpa and eager; flex_attention needs inductor's C++ build on a CPU.
A forward pass takes `batch_size` sequences (padded) or `batch_size` rows (packed); logits are
computed only where a continuation token is predicted, and NLLs are summed in float64.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from instmix.core.params import ParamsError

Layout = Literal["padded", "packed"]
MASKED_PACKING = ("sdpa", "eager", "flex_attention")  # masking_utils builds the block-diagonal mask
IGNORE = -100


@dataclass(frozen=True)
class Score:
    """One continuation's teacher-forced score."""

    nll: float
    """Summed negative log-likelihood of its tokens, in nats."""
    tokens: int
    """Continuation tokens scored."""
    bytes: int
    """UTF-8 bytes of the continuation text scored."""

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes if self.bytes else math.nan

    @property
    def mean_nll(self) -> float:
        return self.nll / self.tokens if self.tokens else math.nan


@dataclass(frozen=True)
class Fed:
    """One pair as fed: input ids (the last token of context + continuation dropped) and the
    number of continuation tokens, which are the last `scored` targets."""

    ids: list[int]
    targets: list[int]
    scored: int


# ---------------------------------------------------------------------------- loading


def resolve_device(device: str) -> str:
    """auto: cuda when a GPU is visible, else cpu (as the other evaluations)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError("device", device, "auto or cpu: no GPU is visible")
    return device


def load_model(
    model_dir: str | Path, *, device: str = "auto", dtype: str = "auto", attn_implementation: str | None = None
) -> tuple[Any, Any]:
    """A model directory in eval mode on `device`; dtype auto: bf16 on a GPU, fp32 on a CPU."""
    # Idle OpenMP threads sleep instead of spinning (shared CPUs; see instmix/gen/generate.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), **kwargs).to(device)
    return model.eval(), AutoTokenizer.from_pretrained(model_dir)


def context_length(model: Any) -> int:
    config = model.config.get_text_config()
    return int(getattr(config, "max_position_embeddings", None) or 2048)


# ---------------------------------------------------------------------------- tokenising


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int], int]:
    """Context ids, continuation ids and the continuation's UTF-8 bytes, as lm-eval encodes a pair."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    nbytes = len(continuation.encode("utf-8"))
    if not context:
        return [tokenizer.eos_token_id], tokenizer.encode(continuation, add_special_tokens=False), nbytes
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    context_ids = tokenizer.encode(context, add_special_tokens=False)
    return whole[: len(context_ids)], whole[len(context_ids) :], nbytes


def prepare(context: Sequence[int], continuation: Sequence[int], max_length: int) -> Fed:
    if len(continuation) > max_length:
        raise ValueError(f"a continuation of {len(continuation)} tokens does not fit max_length {max_length}")
    if not context:
        raise ValueError("empty context: nothing to predict the first continuation token from")
    whole = [*context, *continuation][-(max_length + 1) :]  # truncate from the left, as lm-eval
    return Fed(ids=whole[:-1], targets=whole[1:], scored=len(continuation))


# ---------------------------------------------------------------------------- batching


def padded_batches(seqs: list[Fed], batch_size: int) -> list[list[list[int]]]:
    """Indices of `seqs` per batch, one row each, longest first (ties by input order)."""
    order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i].ids), i))
    return [[[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


def packed_batches(seqs: list[Fed], batch_size: int, row_length: int) -> list[list[list[int]]]:
    """Indices of `seqs` per row, first-fit decreasing into rows of `row_length` tokens; `batch_size` rows a batch."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(seqs)), key=lambda i: (-len(seqs[i].ids), i)):
        n = len(seqs[i].ids)
        slot = next((r for r, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([i])
            room.append(row_length - n)
        else:
            rows[slot].append(i)
            room[slot] -= n
    return [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]


def collate(seqs: list[Fed], rows: list[list[int]], packed: bool, pad_id: int) -> dict[str, Any]:
    """Tensors for one batch: input_ids, labels (IGNORE off the continuations) and, padded, the
    attention mask; packed, position_ids restarting per sequence (a row's padding tail is one
    more sequence of its own, so no real token attends to it)."""
    import torch

    width = max(sum(len(seqs[i].ids) for i in row) for row in rows)
    ids, labels, extra = [], [], []
    for row in rows:
        row_ids, row_labels, row_extra = [], [], []
        for i in row:
            seq = seqs[i]
            n = len(seq.ids)
            row_ids += seq.ids
            row_labels += [IGNORE] * (n - seq.scored) + seq.targets[-seq.scored :] if seq.scored else [IGNORE] * n
            row_extra += list(range(n)) if packed else [1] * n
        tail = width - len(row_ids)
        ids.append(row_ids + [pad_id] * tail)
        labels.append(row_labels + [IGNORE] * tail)
        extra.append(row_extra + (list(range(tail)) if packed else [0] * tail))
    batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}
    batch["position_ids" if packed else "attention_mask"] = torch.tensor(extra)
    return batch


# ---------------------------------------------------------------------------- scoring


def attention_of(model: Any) -> str:
    return str(getattr(model.config, "_attn_implementation", None) or "eager")


def check_layout(model: Any, layout: str) -> bool:
    """Whether a packed batch must be one row; refuses packing where transformers would not mask it."""
    if layout not in ("padded", "packed"):
        raise ParamsError("layout", layout, "padded or packed")
    attention = attention_of(model)
    if layout == "padded" or attention in MASKED_PACKING:
        return False
    if "flash" in attention:
        return True
    raise ParamsError("layout", layout, f"padded: attention {attention} does not separate packed sequences")


def score_tokens(
    model: Any,
    pairs: Sequence[tuple[Sequence[int], Sequence[int], int]],
    *,
    layout: Layout = "padded",
    batch_size: int = 8,
    max_length: int | None = None,
    pad_id: int = 0,
    progress: bool = True,
) -> list[Score]:
    """Scores of (context ids, continuation ids, continuation bytes) triples, in their order.

    padded: `batch_size` sequences a forward pass; packed: `batch_size` rows of max_length tokens.
    max_length defaults to the model's context length.
    """
    import torch
    from tqdm import tqdm

    one_row = check_layout(model, layout)
    max_length = max_length or context_length(model)
    seqs = [prepare(context, continuation, max_length) for context, continuation, _ in pairs]
    packed = layout == "packed"
    batches = packed_batches(seqs, batch_size, max_length) if packed else padded_batches(seqs, batch_size)
    nll = [0.0] * len(seqs)
    device = next(model.parameters()).device
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    with torch.inference_mode(), tqdm(total=len(seqs), desc=f"scoring ({layout})", disable=not progress) as bar:
        for rows in batches:
            bar.update(sum(len(row) for row in rows))
            if one_row:  # flash kernels see packing only at batch size 1: the rows end to end
                rows = [[i for row in rows for i in row]]
            batch = {k: v.to(device) for k, v in collate(seqs, rows, packed, pad_id).items()}
            labels = batch.pop("labels")
            positions = (labels != IGNORE).any(dim=0).nonzero().flatten()
            if not len(positions):
                continue  # empty continuations only: nothing to score
            # Logits only where a continuation token is predicted (the LM head's cost, and its memory);
            # no cache, which would also turn off transformers' packed-sequence masking.
            extra = {"logits_to_keep": positions} if keep_logits else {}
            logits = model(**batch, use_cache=False, **extra).logits.float()
            if not keep_logits:
                logits = logits[:, positions]
            target = labels[:, positions]
            picked = target != IGNORE
            logprobs = logits[picked].log_softmax(-1)
            token_nll = -logprobs.gather(-1, target[picked].unsqueeze(-1)).squeeze(-1).double().cpu()
            # Which sequence each scored token belongs to, in the same (row-major) order as token_nll.
            owner = [i for row in rows for i in row for _ in range(seqs[i].scored)]
            for i, value in zip(owner, token_nll.tolist(), strict=True):
                nll[i] += value
    return [Score(nll=nll[i], tokens=seqs[i].scored, bytes=nbytes) for i, (_, _, nbytes) in enumerate(pairs)]


def score_texts(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    layout: Layout = "padded",
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = True,
) -> list[Score]:
    """Scores of (context, continuation) text pairs, tokenised as lm-eval does, in their order."""
    encoded = [encode_pair(tokenizer, context, continuation) for context, continuation in pairs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return score_tokens(
        model, encoded, layout=layout, batch_size=batch_size, max_length=max_length, pad_id=pad, progress=progress
    )
