"""judge_hf: the hf backend on the tiny model: score digits by the chain rule, the shared-prefix
scoring against full forward passes, cutting long responses, and the judge stage end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest

from instmix.align.flask import FILES, build_messages, read_judge_prompt, read_rubrics
from instmix.align.judge_hf import digit_plan, fit_prompt, render_chat, score_skills, score_slot, shared_prefix_logprobs
from instmix.align.judge_params import JudgeParams
from instmix.core.files import write_jsonl
from instmix.core.params import StageError
from tests.conftest import run_stage, set_params
from tests.test_judge import demo_answers


def test_the_prompt_is_the_chat_template_or_plain_text(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    messages = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Score this."}]
    text = render_chat(tokenizer, messages)
    assert text.endswith("<|assistant|>\n") and "Score this." in text
    assert not text.startswith(tokenizer.bos_token or "\0")
    tokenizer.chat_template = None
    assert render_chat(tokenizer, messages) == "Judge.\n\nScore this.\n\n"
    assert score_slot("Readability") == "\n\n{'Readability':"


def test_score_digits_are_read_by_the_chain_rule(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    plan = digit_plan(tokenizer, "x\n\n{'Readability':")
    for digit, steps in zip("12345", plan, strict=True):
        tokens = [token for _, token in steps]
        assert tokenizer.decode(tokens).strip() == digit
        assert all(context == steps[0][0] + tuple(tokens[:k]) for k, (context, _) in enumerate(steps))
    assert {len(steps) for steps in plan} == {1, 2}  # this BPE merges " 1" but not " 3": both ways handled


def test_shared_prefix_scores_equal_full_forward_passes(tiny_base: Path) -> None:
    import torch

    from instmix.gen.generate import load_model

    model, tokenizer = load_model(tiny_base, device="cpu")
    base = tokenizer("A prompt that the contexts share, long enough to matter.")["input_ids"]
    contexts = [(*base, 5, 9), (*base, 7), (*base, 5, 9, 11, 12)]
    wanted = {c: {3, 40, 100} for c in contexts}
    shared = shared_prefix_logprobs(model, contexts, wanted)
    for context in contexts:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([context])).logits[0, -1]
        full = torch.log_softmax(logits.float(), dim=-1)
        for token in wanted[context]:
            assert shared[(context, token)] == pytest.approx(float(full[token]), abs=1e-4)

    scores = score_skills(model, tokenizer, "The answer.", ["Readability", "Factuality"])
    assert set(scores) == {"Readability", "Factuality"}
    for p, mass in scores.values():
        assert len(p) == 5 and sum(p) == pytest.approx(1, abs=1e-6) and 0 < mass <= 1


def test_a_long_response_is_cut_to_fit_the_judge(tiny_base: Path, demo_flask: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    rubrics, prompt = read_rubrics(demo_flask), read_judge_prompt(demo_flask, 2)
    item = {**demo_answers()[0], "response": "The muffins cost a lot. " * 400}

    def render(response: str) -> str:
        return render_chat(tokenizer, build_messages(item, prompt, rubrics, response))

    text, cut = fit_prompt(tokenizer, item, render, 1500)
    assert cut and len(tokenizer(text)["input_ids"]) <= 1500 and "[...]\n\n[The End of Assistant's Response]" in text
    assert fit_prompt(tokenizer, demo_answers()[0], render, 1500) == (render(demo_answers()[0]["response"]), False)
    with pytest.raises(StageError, match=r"FLASK instance 3: the judge prompt is \d+ tokens over the judge's context"):
        fit_prompt(tokenizer, item, render, 100)


def test_hf_judge_is_deterministic_on_the_tiny_model(workdir: Path, tiny_base: Path, demo_flask: Path) -> None:
    judge = {"backend": "hf", "hf_model": str(tiny_base), "feedback_tokens": 4}
    set_params(workdir, **{"eval.judge": judge})
    write_jsonl(workdir / "answers.jsonl", demo_answers())

    def run_judge() -> subprocess.CompletedProcess[str]:
        return run_stage("judge", "answers.jsonl", demo_flask, "out", "cache", cwd=workdir)

    first = run_judge()
    assert first.returncode == 0, first.stderr[-3000:]
    outputs = {p.name: p.read_bytes() for p in (workdir / "out").iterdir()}
    (workdir / "out").rename(workdir / "first")
    assert run_judge().returncode == 0
    assert {p.name: p.read_bytes() for p in (workdir / "out").iterdir()} == outputs

    metrics = json.loads(outputs["metrics.json"])
    align = metrics["align"]
    assert align["judge"] == f"hf:{tiny_base} [weak judge]" and align["parse_failures"] == 0
    for key in ("logical_correctness", "conciseness", "readability", "factuality", "comprehension", "completeness"):
        assert 20 <= align[key] <= 100
    assert metrics["params"] == asdict(JudgeParams(**judge))
    for line in outputs["judgments.jsonl"].decode().splitlines():
        row = json.loads(line)
        assert row["parsed_as"] == "literal" and set(row["probs"]) == set(row["skills"])
        for skill, probs in row["probs"].items():
            assert sum(probs["p"]) == pytest.approx(1, abs=1e-5) and 0 < probs["mass"] <= 1
            assert row["scores"][skill] == pytest.approx(sum(d * p for d, p in enumerate(probs["p"], 1)), abs=1e-3)
    breakdown = json.loads(outputs["breakdown.json"])
    assert breakdown["judge"]["feedback_tokens"] == 4 and breakdown["judge"]["truncated_prompts"] == 0
    # the sha256 of FLASK's files the judge read: all four, as the flask stage copied them
    assert breakdown["flask_sha256"] == {
        key: hashlib.sha256((demo_flask / name).read_bytes()).hexdigest() for key, name in FILES.items()
    }
    assert breakdown["judge"]["flask_reviewer"]["prompt_id"] == 2 and breakdown["judge"]["prompt_id"] == 2
