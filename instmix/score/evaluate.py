"""eval_lik: every scored set of one model through the scorer, per-item rows and the metrics.

    inputs = read_inputs(heldout_dir, flask_dir, params)     # before the model: a missing file fails fast
    rows, metrics = evaluate(model_dir, inputs, params)

Rows (items.jsonl), sorted by set then id: {"set": "heldout:<source>" | "code" | "align", "id":
record id | HumanEval task_id | FLASK idx, "nll": summed nats, "tokens": tokens scored, "bytes":
UTF-8 bytes of the text scored}. Metrics: {"lik": {"heldout": {<source>: {"bpb", "nll",
"records", "tokens", "bytes", "unscored"}}, "heldout_bpb_avg", "code": {"bpb", "nll", "problems",
"tokens", "bytes"}, "align": {"bpb", "nll", "instances", "tokens", "bytes", "unscored"},
"tokens_scored", "layout"}, "params": {...}}. bpb = summed nats / ln 2 / summed bytes (pooled over
the set's items); nll = summed nats / summed tokens (the mean token NLL); heldout_bpb_avg = the
mean of the sources' bpb. No timing: the outputs are deterministic.

Held-out items are scored with max_length (the training cut, already applied); the code and align
items with rows as long as their longest item (at most the model's context length).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instmix.align.answer import AlignParams, load_eval_set
from instmix.code.humaneval import read_problems
from instmix.core.params import ParamsError
from instmix.core.records import Record, read_record_file
from instmix.core.vocab import SOURCES
from instmix.score.likelihood import MASKED_PACKING, Score, attention_of, context_length, load_model, score_tokens
from instmix.score.params import LikParams
from instmix.score.sets import Item, align_items, code_items, heldout_items


@dataclass(frozen=True)
class Inputs:
    heldout: dict[str, list[Record]]
    problems: list[dict[str, Any]]
    instances: list[dict[str, Any]]


def align_params(params: LikParams) -> AlignParams:
    """eval.align's selection of FLASK instances, from eval.lik's align_* keys."""
    return AlignParams(
        idx_max=params.align_idx_max, top_skills=params.align_top_skills, limit=params.align_limit,
        template=params.align_template, seed=params.align_seed,
    )  # fmt: skip


def read_inputs(heldout: Path, flask: Path, params: LikParams) -> Inputs:
    """Every input, read and checked before the model loads."""
    records = {source: read_record_file(heldout / f"{source}.jsonl")[: params.limit] for source in SOURCES}
    problems = list(read_problems().values())[: params.code_limit]  # the first ones, as eval.code.limit
    return Inputs(records, problems, load_eval_set(flask, align_params(params)))


def resolve_layout(model: Any, layout: str) -> str:
    """auto: packed where the attention implementation keeps packed sequences apart, else padded."""
    if layout != "auto":
        return layout
    attention = attention_of(model)
    return "packed" if attention in MASKED_PACKING or "flash" in attention else "padded"


def build_items(tokenizer: Any, inputs: Inputs, params: LikParams) -> tuple[list[Item], list[Item], dict[str, int]]:
    """(held-out items, code + align items, unscored count per set)."""
    held, unscored = [], {}
    for source, records in inputs.heldout.items():
        items, unscored[f"heldout:{source}"] = heldout_items(tokenizer, records, params.template, params.max_length)
        held += items
    aligned, unscored["align"] = align_items(tokenizer, inputs.instances, params.align_template)
    return held, code_items(tokenizer, inputs.problems, params.code_prompt_template) + aligned, unscored


def score(model: Any, items: Sequence[Item], params: LikParams, layout: str, max_length: int, pad: int) -> list[Score]:
    if not items:
        return []
    triples = [(item.context, item.continuation, item.bytes) for item in items]
    return score_tokens(
        model,
        triples,
        layout=layout,
        batch_size=params.batch_size,
        max_length=max_length,
        pad_id=pad,  # type: ignore[arg-type]
    )


def evaluate(model_dir: Path, inputs: Inputs, params: LikParams) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    model, tokenizer = load_model(model_dir, device=params.device, dtype=params.dtype)
    layout = resolve_layout(model, params.layout)
    held, generated, unscored = build_items(tokenizer, inputs, params)
    limit = context_length(model)
    if params.max_length > limit:
        raise ParamsError("eval.lik.max_length", params.max_length, f"at most the model's context length ({limit})")
    longest = max((len(i.context) + len(i.continuation) for i in generated), default=1)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = score(model, held, params, layout, params.max_length, pad)
    scores += score(model, generated, params, layout, min(longest, limit), pad)
    items = [*held, *generated]
    rows = [
        {"set": i.set, "id": i.id, "nll": s.nll, "tokens": s.tokens, "bytes": s.bytes}
        for i, s in zip(items, scores, strict=True)
    ]
    rows.sort(key=lambda row: (row["set"], row["id"]))
    metrics = {"lik": summarise(rows, unscored) | {"layout": layout}, "params": asdict(params)}
    return rows, metrics


def pooled(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    nll, tokens, nbytes = sum(r["nll"] for r in rows), sum(r["tokens"] for r in rows), sum(r["bytes"] for r in rows)
    return {
        "bpb": nll / math.log(2) / nbytes if nbytes else None,
        "nll": nll / tokens if tokens else None,
        "tokens": tokens,
        "bytes": nbytes,
    }


def summarise(rows: Sequence[dict[str, Any]], unscored: dict[str, int]) -> dict[str, Any]:
    """The `lik` metrics of the scored rows (see the module's docstring)."""
    of = {name: [r for r in rows if r["set"] == name] for name in sorted({r["set"] for r in rows} | set(unscored))}
    heldout = {}
    for source in SOURCES:
        name = f"heldout:{source}"
        heldout[source] = pooled(of.get(name, [])) | {
            "records": len(of.get(name, [])),
            "unscored": unscored.get(name, 0),
        }
    bpbs = [h["bpb"] for h in heldout.values()]
    return {
        "heldout": heldout,
        "heldout_bpb_avg": sum(bpbs) / len(bpbs) if None not in bpbs else None,
        "code": pooled(of.get("code", [])) | {"problems": len(of.get("code", []))},
        "align": pooled(of.get("align", []))
        | {"instances": len(of.get("align", [])), "unscored": unscored.get("align", 0)},
        "tokens_scored": sum(r["tokens"] for r in rows),
    }


def summary(metrics: dict[str, Any]) -> str:
    lik = metrics["lik"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    held = ", ".join(f"{s} {fmt(lik['heldout'][s]['bpb'])}" for s in SOURCES)
    code, align = fmt(lik["code"]["bpb"]), fmt(lik["align"]["bpb"])
    return f"held-out bpb {held} (avg {fmt(lik['heldout_bpb_avg'])}); code bpb {code}; align bpb {align}"
