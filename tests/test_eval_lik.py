"""eval_lik (instmix.score.sets, .evaluate, stages/eval_lik.py) on the tiny model: the held-out NLL is
sft's training loss, the code and align sets score exactly the reference text after the evaluated
prompt, and the stage is deterministic, with one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from instmix.align.answer import AlignParams, load_eval_set, render_prompts
from instmix.check import problems
from instmix.code.humaneval import read_problems
from instmix.core.files import read_jsonl, write_jsonl
from instmix.core.params import parse
from instmix.core.records import Record
from instmix.core.vocab import SOURCES
from instmix.score.evaluate import summarise
from instmix.score.likelihood import load_model, score_tokens
from instmix.score.sets import align_items, code_items, decoded, heldout_item
from instmix.train.config import SFTParams
from instmix.train.sft import build_trainer
from tests.conftest import REPO, run_stage, set_params
from tests.test_sft import demo_records

MAX_LENGTH = 64  # cuts some demo records, as training does


@pytest.fixture(scope="module")
def tiny(tiny_base: Path) -> tuple[Any, Any]:
    torch.set_num_threads(1)  # two test workers share two cores
    return load_model(tiny_base, device="cpu", dtype="float32")


@pytest.mark.parametrize("template", ["paper", "chat"])
def test_heldout_nll_is_the_training_loss(
    tiny_base: Path, tiny: tuple[Any, Any], tmp_path: Path, template: str
) -> None:
    model, tokenizer = tiny
    params = parse(SFTParams, {"max_length": MAX_LENGTH, "template": template, "global_batch": 8}, "sft")
    records = demo_records()
    trainer, _ = build_trainer(params, 42, records, tiny_base, tmp_path)
    assert len(trainer.train_dataset) == len(records)  # none dropped: pairs by position
    items = [heldout_item(tokenizer, record, template, MAX_LENGTH) for record in records]
    cut = 0
    for layout in ("padded", "packed"):
        scores = score_tokens(model, [(i.context, i.continuation, i.bytes) for i in items if i], layout=layout,  # type: ignore[arg-type]
                              batch_size=5, max_length=MAX_LENGTH, progress=False)  # fmt: skip
        scored = iter(scores)
        for record, example, item in zip(records, trainer.train_dataset, items, strict=True):
            ids, labels = example["input_ids"], example["labels"]
            start = next((k for k, label in enumerate(labels) if label != -100), len(ids))
            if item is None:  # the prompt fills max_length: TRL trains it with zero loss
                assert start == len(ids) == MAX_LENGTH
                continue
            end = start + len(item.continuation)
            assert item.context == ids[:start] and item.continuation == ids[start:end]
            tail = ids[end:]  # not scored: the EOS / the chat template's closing tokens, or nothing when cut
            cut += not tail
            if template == "paper":
                assert tail == [tokenizer.eos_token_id] or (not tail and len(ids) == MAX_LENGTH)
            else:
                assert tokenizer.decode(tail).startswith("<eos>") or (not tail and len(ids) == MAX_LENGTH)
            # The training example as the sft collator builds it, with its tail's labels masked too.
            masked = {"input_ids": ids, "labels": labels[:end] + [-100] * len(tail)}
            batch = trainer.data_collator([masked])
            with torch.inference_mode():
                loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
            score = next(scored)
            assert score.tokens == len(item.continuation) > 0
            assert score.nll == pytest.approx(float(loss) * score.tokens, rel=1e-6, abs=1e-5), record["id"]
            response = (" " if template == "paper" else "") + record["response"]
            text = decoded(tokenizer, item.continuation)
            assert item.bytes == len(text.encode()) and response.startswith(text)  # the response text scored
    assert cut, "no record was cut at max_length: the test would not cover truncation"


def test_code_scores_the_canonical_solution_after_the_evaluated_prompt(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    problems = list(read_problems().values())[:3]
    template = "Complete this function.\n{prompt}"
    for problem, item in zip(problems, code_items(tokenizer, problems, template), strict=True):
        prompt = template.replace("{prompt}", problem["prompt"])
        assert item.set == "code" and item.id == problem["task_id"]
        assert item.context == tokenizer(prompt)["input_ids"]  # what generate() feeds the model
        assert decoded(tokenizer, item.continuation) == problem["canonical_solution"]
        assert decoded(tokenizer, item.context + item.continuation) == prompt + problem["canonical_solution"]
        assert item.bytes == len(problem["canonical_solution"].encode())


@pytest.mark.parametrize("template", ["paper", "chat"])
def test_align_scores_the_reference_after_the_answering_template(
    tiny: tuple[Any, Any], demo_flask: Path, template: str
) -> None:
    _, tokenizer = tiny
    instances = load_eval_set(demo_flask, AlignParams(limit=4, template=template))
    items, unscored = align_items(tokenizer, instances, template)
    assert unscored == 0 and [i.id for i in items] == [i["idx"] for i in instances]
    prompts = render_prompts(tokenizer, [i["instruction"] for i in instances], template)
    for instance, prompt, item in zip(instances, prompts, items, strict=True):
        answer = (" " if template == "paper" else "") + instance["reference"]
        assert item.context == tokenizer(prompt)["input_ids"]
        assert decoded(tokenizer, item.continuation) == answer and item.bytes == len(answer.encode())
        if template == "chat":
            assert "<|assistant|>" in decoded(tokenizer, item.context)


def test_summary_pools_nats_over_bytes_and_tokens() -> None:
    rows = [
        {"set": "heldout:alpaca", "id": "a", "nll": 2.0, "tokens": 2, "bytes": 4},
        {"set": "heldout:alpaca", "id": "b", "nll": 6.0, "tokens": 2, "bytes": 4},
        {"set": "heldout:codealpaca", "id": "c", "nll": 1.0, "tokens": 1, "bytes": 1},
        {"set": "heldout:p3", "id": "d", "nll": 3.0, "tokens": 3, "bytes": 3},
        {"set": "code", "id": "HumanEval/0", "nll": 4.0, "tokens": 4, "bytes": 8},
    ]
    lik = summarise(rows, {"heldout:alpaca": 1, "align": 0})
    alpaca = lik["heldout"]["alpaca"]
    assert alpaca == {"bpb": 8.0 / math.log(2) / 8, "nll": 2.0, "records": 2, "tokens": 4, "bytes": 8, "unscored": 1}
    assert lik["heldout_bpb_avg"] == pytest.approx((1 / math.log(2) + 1 / math.log(2) + 1 / math.log(2)) / 3)
    assert lik["code"]["problems"] == 1 and lik["align"] == {
        "bpb": None, "nll": None, "tokens": 0, "bytes": 0, "instances": 0, "unscored": 0}  # fmt: skip
    assert lik["tokens_scored"] == 12


# ---------------------------------------------------------------------------- the stage


def heldout_files(folder: Path) -> None:
    """Held-out files in the record schema: demo records (the stage reads any record file)."""
    records: list[Record] = demo_records()
    for source in SOURCES:
        write_jsonl(folder / f"{source}.jsonl", [r for r in records if r["source"] == source][:5])


@pytest.fixture
def lik_dir(workdir: Path, demo_flask: Path) -> Path:
    set_params(workdir, **{"eval.lik.max_length": MAX_LENGTH, "eval.lik.limit": 4, "eval.lik.code_limit": 2,
                           "eval.lik.align_limit": 3, "eval.lik.batch_size": 4})  # fmt: skip
    heldout_files(workdir / "heldout")
    return workdir


def test_the_stage_is_deterministic(lik_dir: Path, tiny_base: Path, demo_flask: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = lik_dir / run
        result = run_stage("eval_lik", tiny_base, lik_dir / "heldout", demo_flask, out, cwd=lik_dir)
        assert result.returncode == 0, result.stderr
        assert "tokens/s" in result.stdout
        outputs.append({name: (out / name).read_bytes() for name in ("items.jsonl", "metrics.json")})
    assert outputs[0] == outputs[1]
    rows = read_jsonl(lik_dir / "a" / "items.jsonl")
    assert rows == sorted(rows, key=lambda r: (r["set"], r["id"]))
    assert {r["set"] for r in rows} == {"code", "align", *(f"heldout:{s}" for s in SOURCES)}
    metrics = json.loads((lik_dir / "a" / "metrics.json").read_text())
    lik = metrics["lik"]
    assert lik["code"]["problems"] == 2 and lik["align"]["instances"] == 3
    assert all(lik["heldout"][s]["records"] + lik["heldout"][s]["unscored"] == 4 for s in SOURCES)
    alpaca = [r for r in rows if r["set"] == "heldout:alpaca"]
    assert lik["heldout"]["alpaca"]["bpb"] == pytest.approx(
        sum(r["nll"] for r in alpaca) / math.log(2) / sum(r["bytes"] for r in alpaca)
    )
    assert metrics["params"]["max_length"] == MAX_LENGTH and lik["layout"] == "packed"  # sdpa on a CPU: packed


def test_a_bad_param_is_one_line(lik_dir: Path, tiny_base: Path, demo_flask: Path) -> None:
    set_params(lik_dir, **{"eval.lik.layout": "rows"})
    result = run_stage("eval_lik", tiny_base, lik_dir / "heldout", demo_flask, lik_dir / "out", cwd=lik_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: params.yaml: eval.lik.layout=rows is not allowed: one of auto, padded")
    assert not (lik_dir / "out").exists()


def test_a_missing_heldout_file_is_one_line_naming_it(lik_dir: Path, tiny_base: Path, demo_flask: Path) -> None:
    (lik_dir / "heldout" / "p3.jsonl").unlink()
    result = run_stage("eval_lik", tiny_base, lik_dir / "heldout", demo_flask, lik_dir / "out", cwd=lik_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{lik_dir / 'heldout' / 'p3.jsonl'}: no such file" in result.stderr
    assert not (lik_dir / "out").exists()


def test_check_names_an_eval_lik_value_that_differs_from_the_one_it_mirrors() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert problems(params) == []
    params["sft"]["max_length"] = 512
    params["eval"]["align"]["template"] = "paper"
    assert problems(params) == [
        "params.yaml: eval.lik.max_length=256 is not allowed: 512, as sft.max_length (eval_lik scores what it "
        "measures)",
        "params.yaml: eval.lik.align_template=chat is not allowed: paper, as eval.align.template (eval_lik scores what "
        "it measures)",
    ]
