"""judge: FLASK's prompt, parsing judge outputs, aggregation, the openai backend against a local
server (with the real openai client), and the hf backend on the tiny model."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stages.eval_align import FlaskParams, FlaskSource, read_judge_prompt, read_rubrics
from stages.files import write_jsonl
from stages.judge import (
    NA,
    aggregate,
    assign,
    build_messages,
    digit_plan,
    fit_prompt,
    metric_key,
    parse_judgment,
    render_chat,
    shared_prefix_logprobs,
)
from tests.conftest import DEMO, run_stage, set_params

FLASK_DEMO = DEMO / "flask"
KEY = "sk-test-Zq8vW3nB5xR1tY7u"  # what the test server expects; must never reach a written file
PAPER_SKILLS = [
    "Logical Correctness", "Factuality", "Commonsense Understanding", "Comprehension",
    "Completeness", "Insightfulness", "Readability", "Conciseness",
]  # fmt: skip


def demo_answers() -> list[dict[str, Any]]:
    """Two answers in the stages.eval_align format, written by hand (no model needed)."""
    return [
        {
            "idx": 3, "instruction": "How much do 7 muffins at 3 dollars cost with 10% off?",
            "reference": "18.90 dollars.", "skills": ["Logical Correctness", "Conciseness", "Readability"],
            "domain": ["Math"], "difficulty": "simple lifestyle knowledge", "task": "demo",
            "response": "7 x 3 = 21 dollars, minus 10% is 18.90 dollars.",
        },
        {
            "idx": 17, "instruction": "Why does a metal bench feel colder than a wooden one?",
            "reference": "Metal conducts heat away from the skin faster.",
            "skills": ["Factuality", "Comprehension", "Completeness"],
            "domain": ["Natural Science", "Math"], "difficulty": "formal education knowledge", "task": "demo",
            "response": "Because metal is colder.",
        },
    ]  # fmt: skip


def demo_source() -> FlaskSource:
    return FlaskSource(FlaskParams(path=str(FLASK_DEMO)))


# ---------------------------------------------------------------------------- FLASK's prompt


def test_the_demo_prompt_holds_rubrics_reference_and_response() -> None:
    source = demo_source()
    rubrics, prompt = read_rubrics(source), read_judge_prompt(source, 2)
    item = demo_answers()[0]
    system, user = build_messages(item, prompt, rubrics)
    assert system == {"role": "system", "content": prompt.system}
    text = user["content"]
    assert "[Ground truth Answer]\n18.90 dollars.\n\n[Assistant's Response]\n7 x 3 = 21" in text
    positions = [text.index(f"\n{skill}: {rubrics[skill]['Criteria']}\nScore 1: ") for skill in item["skills"]]
    assert positions == sorted(positions)  # in the instance's order, as FLASK lists them
    assert text.count("\nScore 5: ") == 3 and "{" not in text.replace("{'", "")
    assert "[Ground truth Answer]" not in build_messages(item, read_judge_prompt(source, 1), rubrics)[1]["content"]


def test_flask_own_prompt_2_is_the_reference_answer_variant(shared_data: Path) -> None:
    flask = FlaskParams(
        path=str(shared_data / "flask"),
        eval_set="flask_evaluation.jsonl",
        skills="skillset_description.json",
        prompts="judge_prompt.jsonl",
        reviewers="judge_reviewer.jsonl",
    )
    source = FlaskSource(flask)
    rubrics, prompt = read_rubrics(source), read_judge_prompt(source, 2)
    assert prompt.reviewer["reviewer_id"] == "gpt-4-0613-default" and len(rubrics) == 12
    item = {**demo_answers()[1], "skills": ["Commonsense Understanding", "Readability", "Comprehension"]}
    user = build_messages(item, prompt, rubrics)[1]["content"]
    assert "[Ground truth Answer]\nMetal conducts heat away from the skin faster." in user
    assert user.startswith("We would like to request your feedback") and user.endswith("[System]\n\n\n")
    for skill in item["skills"]:
        assert f"\n{skill}: {rubrics[skill]['Criteria']}\nScore 1: {rubrics[skill]['Scoring']['1']}" in user
    assert "return a Python dictionary" in user and "{prompt" not in user and "{skills}" not in user


# ---------------------------------------------------------------------------- parsing

GPT4_STYLE = """Logical Correctness: The response multiplies 7 by 3 and takes 10% off, reaching 18.90 \
dollars, which matches the ground truth answer.
Score: 5

Conciseness: The response contains only the needed steps.
Score: 5

Readability: The steps are easy to follow, though the notation is terse.
Score: 4

{'Logical Correctness': 5, 'Conciseness': 5, 'Readability': 4}"""
SKILLS = ["Logical Correctness", "Conciseness", "Readability"]


@pytest.mark.parametrize(
    ("output", "expected", "how"),  # expected per skill: a score, NA, - (missing) or x (invalid)
    [
        (GPT4_STYLE, "5 5 4", "literal"),
        # FLASK lower-cases and turns "_" into " "; keys may also come as FLASK's short names
        ("{'logical_correctness': 3, 'CONCISENESS': '4', 'readability': 2.5}", "3 4 2.5", "literal"),
        ("Scores:\n{\n  'correctness': 2,\n  'conciseness': 3,\n  'readability': 1\n}", "2 3 1", "literal"),
        ('{"Logical Correctness": 4, "Conciseness": "N/A", "Readability": "not applicable"}', "4 NA NA", "literal"),
        ("{'Logical Correctness': 'NA', 'Conciseness': 'n/a', 'Readability': 3}", "NA NA 3", "literal"),
        # extra dicts: FLASK takes the last one
        ("As {'Logical Correctness': 1} would be wrong, I give:\n" + GPT4_STYLE, "5 5 4", "literal"),
        (GPT4_STYLE + "\n\n{'note': 'the answer is short'}", "- - -", "literal"),
        # out of range and non-numbers are invalid, not clipped
        ("{'Logical Correctness': 0, 'Conciseness': 6, 'Readability': 'good'}", "x x x", "literal"),
        ("{'Logical Correctness': 10, 'Conciseness': 5, 'Readability': [4]}", "x 5 x", "literal"),
        # malformed: unquoted names, N/A unquoted -- read leniently from the same block
        ("Final scores: {Logical Correctness: 4, Conciseness: N/A, Readability: 5}", "4 NA 5", "lenient"),
        ("{'Logical Correctness': 4, 'Conciseness': 3}", "4 3 -", "literal"),
        # no dict at all, an unclosed one, an empty one, nothing
        ("Logical Correctness: 4\nConciseness: 3\nReadability: 5", "- - -", "none"),
        ("{'Logical Correctness': 4, 'Conciseness': 3, 'Readab", "- - -", "none"),
        ("I cannot judge this. {}", "- - -", "none"),
        ("", "- - -", "none"),
    ],
)
def test_parsing_flask_style_judge_outputs(output: str, expected: str, how: str) -> None:
    parsed, read_as = parse_judgment(output)
    scores, status = assign(parsed, SKILLS)
    assert read_as == how
    names = {"NA": "na", "-": "missing", "x": "invalid"}
    assert [status[s] for s in SKILLS] == [names.get(e, "ok") for e in expected.split()]
    values = {"NA": NA, "-": None, "x": None}
    assert [scores[s] for s in SKILLS] == [values[e] if e in values else float(e) for e in expected.split()]


def test_metric_keys_follow_the_contract() -> None:
    keys = [metric_key(skill) for skill in PAPER_SKILLS]
    assert keys == [
        "logical_correctness", "factuality", "commonsense", "comprehension",
        "completeness", "insightfulness", "readability", "conciseness",
    ]  # fmt: skip


# ---------------------------------------------------------------------------- aggregation


def judged(idx: int, scores: dict[str, Any], domain: list[str], difficulty: str) -> dict[str, Any]:
    status = {s: "ok" if isinstance(v, float) else "na" if v == NA else "invalid" for s, v in scores.items()}
    failed = any(v == "invalid" for v in status.values())
    return {"idx": idx, "skills": list(scores), "scores": scores, "status": status, "failed": failed,
            "domain": domain, "difficulty": difficulty, "parsed_as": "literal"}  # fmt: skip


def test_aggregation_is_the_mean_per_skill_times_20_and_avg_is_the_mean_of_skills() -> None:
    rows = [
        judged(1, {"Logical Correctness": 4.0, "Readability": 5.0, "Conciseness": 3.0}, ["Math"], "easy"),
        judged(2, {"Logical Correctness": 2.0, "Readability": NA, "Factuality": 3.0}, ["Math", "History"], "hard"),
        judged(3, {"Factuality": None, "Readability": 4.0, "Conciseness": 1.0}, ["History"], "hard"),
    ]
    metrics, breakdown = aggregate(rows, "openai:x")
    align = metrics["align"]
    assert align["logical_correctness"] == 60.0  # (4 + 2) / 2 x 20
    assert align["readability"] == 90.0  # N/A left out: (5 + 4) / 2
    assert align["factuality"] == 60.0  # the invalid one left out
    assert align["conciseness"] == 40.0
    assert align["avg"] == pytest.approx((60 + 90 + 60 + 40) / 4)
    assert (align["instances"], align["parse_failures"], align["judge"]) == (3, 1, "openai:x")
    assert breakdown["skills"]["readability"] == {"score": 90.0, "mean_1to5": 4.5, "ok": 2, "na": 1,
                                                      "missing": 0, "invalid": 0}  # fmt: skip
    assert breakdown["domain"]["Math"] == {"score": pytest.approx(20 * 17 / 5), "instances": 2, "scores": 5}
    assert breakdown["domain"]["History"]["score"] == pytest.approx(20 * (2 + 3 + 4 + 1) / 4)
    assert breakdown["difficulty"]["hard"]["skills"]["readability"] == 80.0
    assert breakdown["difficulty"]["easy"] == {"instances": 1, "score": 80.0, "skills": {
        "conciseness": 60.0, "logical_correctness": 80.0, "readability": 100.0}}  # fmt: skip


def test_a_skill_without_any_score_makes_avg_null() -> None:
    rows = [judged(1, {"Logical Correctness": 4.0, "Readability": NA}, ["Math"], "easy")]
    align = aggregate(rows, "hf:m")[0]["align"]
    assert align["readability"] is None and align["logical_correctness"] == 80.0 and align["avg"] is None


# ---------------------------------------------------------------------------- openai backend


class FakeEndpoint:
    """An OpenAI-compatible chat endpoint on 127.0.0.1: the first request fails with 500 (or
    every request with `status`); then each reply scores the rubric skills found in the prompt."""

    def __init__(self, status: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    endpoint.requests.append({"path": self.path, "headers": headers, "body": body})
                    first = len(endpoint.requests) == 1
                if endpoint.status or first:
                    status = endpoint.status or 500
                    message = f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}"
                    self.reply(status, {"error": {"message": message if status == 401 else "overloaded"}})
                    return
                content = flask_review(body["messages"][1]["content"])
                self.reply(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 950, "completion_tokens": 293, "total_tokens": 1243},
                })  # fmt: skip

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def review_score(skill: str) -> int:
    return len(skill) % 5 + 1


def flask_review(prompt: str) -> str:
    """A GPT-4-style FLASK review of the prompt's skills, ending with the scores dict."""
    skills = re.findall(r"\n([A-Z][A-Za-z ]+): [^\n]*\nScore 1: ", prompt)
    feedback = "".join(f"{s}: The response is adequate here.\nScore: {review_score(s)}\n\n" for s in skills)
    return feedback + "{" + ", ".join(f"'{s}': {review_score(s)}" for s in skills) + "}"


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    server = FakeEndpoint()
    yield server
    server.server.shutdown()


def openai_params(workdir: Path, url: str, **judge: Any) -> None:
    settings = {"backend": "openai", "model": "judge-test", "base_url": url, "api_key_env": "INSTMIX_JUDGE_KEY",
                "temperature": 0.3, "max_tokens": 77, "concurrency": 2, "retries": 2} | judge  # fmt: skip
    set_params(workdir, **{"eval.align": {"flask": {"path": str(FLASK_DEMO)}, "judge": settings}})
    write_jsonl(workdir / "answers.jsonl", demo_answers())


def run_judge(workdir: Path, **env: str) -> Any:
    return run_stage("judge", "answers.jsonl", "out", "cache", cwd=workdir, NO_PROXY="127.0.0.1", **env)


def test_openai_backend_retries_sends_settings_and_caches(workdir: Path, endpoint: FakeEndpoint) -> None:
    openai_params(workdir, endpoint.url)
    result = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(endpoint.requests) == 3  # one 500, retried, then one call per answer
    for request in endpoint.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["authorization"] == f"Bearer {KEY}"
        body = request["body"]
        assert (body["model"], body["temperature"], body["max_tokens"]) == ("judge-test", 0.3, 77)
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
    align = json.loads((workdir / "out/metrics.json").read_text())["align"]
    expected = {metric_key(s): review_score(s) * 20.0 for a in demo_answers() for s in a["skills"]}
    assert {k: align[k] for k in expected} == expected
    assert align["avg"] == pytest.approx(sum(expected.values()) / len(expected))
    assert (align["instances"], align["parse_failures"], align["judge"]) == (2, 0, "openai:judge-test")
    breakdown = json.loads((workdir / "out/breakdown.json").read_text())
    assert breakdown["usage"] == {"prompt_tokens": 1900, "completion_tokens": 586}
    assert breakdown["judge"]["temperature"] == 0.3
    judgments = [json.loads(line) for line in (workdir / "out/judgments.jsonl").read_text().splitlines()]
    assert [j["idx"] for j in judgments] == [3, 17] and judgments[0]["judge_output"].startswith("Logical Correctness")
    assert len(list((workdir / "cache").rglob("*.json"))) == 2

    outputs = {p: p.read_bytes() for p in (workdir / "out").iterdir()}
    rerun = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(endpoint.requests) == 3, "a rerun must be answered from the cache"
    assert "0 calls" in rerun.stdout and "2 answered from the cache" in rerun.stdout
    assert {p: p.read_bytes() for p in (workdir / "out").iterdir()} == outputs

    set_params(workdir, **{"eval.align.judge.temperature": 0.0})  # other settings: another cache entry
    assert run_judge(workdir, INSTMIX_JUDGE_KEY=KEY).returncode == 0
    assert len(endpoint.requests) == 5 and endpoint.requests[-1]["body"]["temperature"] == 0.0

    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert len(written) >= 7
    for path in written:
        assert KEY not in path.read_text(errors="replace"), f"the API key leaked into {path}"
    assert KEY not in result.stdout + result.stderr + rerun.stdout + rerun.stderr


def test_openai_backend_needs_the_key_variable(workdir: Path, endpoint: FakeEndpoint) -> None:
    openai_params(workdir, endpoint.url)
    result = run_judge(workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: eval.align.judge.api_key_env: the environment variable INSTMIX_JUDGE_KEY is not set"
    )
    assert not endpoint.requests and not (workdir / "out").exists()


def test_a_refused_key_stops_at_once_without_printing_it(workdir: Path) -> None:
    server = FakeEndpoint(status=401)
    try:
        openai_params(workdir, server.url, concurrency=1)
        result = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    finally:
        server.server.shutdown()
    assert result.returncode == 2
    assert "error: the judge endpoint refused the request: AuthenticationError" in result.stderr
    assert KEY not in result.stderr + result.stdout and KEY[-4:] not in result.stderr
    assert len(server.requests) == 1 and not (workdir / "out").exists()


def test_the_key_itself_is_refused_as_a_variable_name(workdir: Path) -> None:
    openai_params(workdir, "http://127.0.0.1:9/v1", api_key_env=KEY)
    result = run_judge(workdir)
    assert result.returncode == 2 and KEY not in result.stderr
    assert "eval.align.judge.api_key_env='<hidden>' is not allowed" in result.stderr


# ---------------------------------------------------------------------------- hf backend


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

    from stages.generate import load_model

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


def test_a_long_response_is_cut_to_fit_the_judge(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    source = demo_source()
    rubrics, prompt = read_rubrics(source), read_judge_prompt(source, 2)
    item = {**demo_answers()[0], "response": "The muffins cost a lot. " * 400}

    def render(response: str) -> str:
        return render_chat(tokenizer, build_messages(item, prompt, rubrics, response))

    text, cut = fit_prompt(tokenizer, item, render, 1500)
    assert cut and len(tokenizer(text)["input_ids"]) <= 1500 and "[...]\n\n[The End of Assistant's Response]" in text
    assert fit_prompt(tokenizer, demo_answers()[0], render, 1500) == (render(demo_answers()[0]["response"]), False)


def test_hf_judge_is_deterministic_on_the_tiny_model(workdir: Path, tiny_base: Path) -> None:
    judge = {"backend": "hf", "hf_model": str(tiny_base), "feedback_tokens": 4}
    set_params(workdir, **{"eval.align": {"flask": {"path": str(FLASK_DEMO)}, "judge": judge}})
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    first = run_judge(workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    outputs = {p.name: p.read_bytes() for p in (workdir / "out").iterdir()}
    (workdir / "out").rename(workdir / "first")
    assert run_judge(workdir).returncode == 0
    assert {p.name: p.read_bytes() for p in (workdir / "out").iterdir()} == outputs

    align = json.loads(outputs["metrics.json"])["align"]
    assert align["judge"] == f"hf:{tiny_base} [weak judge]" and align["parse_failures"] == 0
    for key in ("logical_correctness", "conciseness", "readability", "factuality", "comprehension", "completeness"):
        assert 20 <= align[key] <= 100
    for line in outputs["judgments.jsonl"].decode().splitlines():
        row = json.loads(line)
        assert row["parsed_as"] == "literal" and set(row["probs"]) == set(row["skills"])
        for skill, probs in row["probs"].items():
            assert sum(probs["p"]) == pytest.approx(1, abs=1e-5) and 0 < probs["mass"] <= 1
            assert row["scores"][skill] == pytest.approx(sum(d * p for d, p in enumerate(probs["p"], 1)), abs=1e-3)
    breakdown = json.loads(outputs["breakdown.json"])
    assert breakdown["judge"]["feedback_tokens"] == 4 and breakdown["judge"]["truncated_prompts"] == 0
    assert set(breakdown["flask_sha256"]) == {"skills", "prompts", "reviewers"}
